"""The cache's logic without I/O: flows that yield operations (:mod:`semcache.core.ops`) for the
shells to execute, one module per layer (L1, exact, semantic, embedding cache, invalidation,
stampede), and the data models (:mod:`semcache.core.types`)."""
