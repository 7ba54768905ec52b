"""The Redis boundary: the only code that names a key (:mod:`~semcache.redis.keys`), spells a
command (:mod:`~semcache.redis.commands`), reads a reply (:mod:`~semcache.redis.replies`) or holds
a socket (the executors, the cluster helpers and the L1 listener)."""
