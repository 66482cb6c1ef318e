"""Redis for a new user: an embedded server when none runs, a clear sentence when none can be had."""

from __future__ import annotations

import subprocess

import psutil
import pytest

from core.exceptions import RedisUnavailable
from core.redis_conn import (EmbeddedRedis, connect, connect_or_embed, embedded_password, find_server_binary, free_port,
                             safe_url, with_embedded_password)


def test_the_wheel_ships_a_server_new_enough_for_rq():
    binary = find_server_binary()
    assert binary
    version = subprocess.run([binary, "--version"], capture_output=True, text=True).stdout
    number = version.split("v=")[1].split()[0]
    assert tuple(int(p) for p in number.split(".")[:2]) >= (6, 2)  # BLMOVE, which RQ's dequeue needs


def test_embedded_server_keeps_data_across_a_restart(tmp_path):
    port = free_port()
    with EmbeddedRedis(tmp_path / "redis", port=port) as server:
        connect(server.url).set("task:abc123:note", "kept")
    assert (tmp_path / "redis").exists()
    with pytest.raises(RedisUnavailable):
        connect(f"redis://127.0.0.1:{port}/0")  # stopped on exit
    with EmbeddedRedis(tmp_path / "redis", port=port) as server:
        assert connect(server.url).get("task:abc123:note") == b"kept"


def test_unreachable_redis_names_the_fix():
    url = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(RedisUnavailable) as caught:
        connect(url)
    message = str(caught.value)
    assert url in message and "REDIS_URL" in message and "main_tars.py" in message


def test_nothing_answering_locally_starts_the_embedded_server(tmp_path):
    url = f"redis://localhost:{free_port()}/0"
    client, server = connect_or_embed(url, tmp_path, embed=True)
    try:
        assert server is not None
        assert client.ping()
        assert list((tmp_path / "redis").glob("appendonly*")), "AOF persistence is on"
    finally:
        server.stop()


def test_embedding_disabled_or_remote_host_raises(tmp_path):
    with pytest.raises(RedisUnavailable):
        connect_or_embed(f"redis://127.0.0.1:{free_port()}/0", tmp_path, embed=False)
    with pytest.raises(RedisUnavailable):
        connect_or_embed(f"unix://{tmp_path}/no.sock", tmp_path, embed=True)  # only redis:// on this host is embedded


def test_an_existing_server_is_used_as_it_is(redis_server, tmp_path):
    client, server = connect_or_embed(redis_server.url, tmp_path)
    assert server is None and client.ping()


def test_passwords_never_reach_messages():
    assert safe_url("redis://:hunter2@db:6379/0") == "redis://:***@db:6379/0"
    assert safe_url("redis://db:6379/0") == "redis://db:6379/0"


def test_blocking_waits_longer_than_five_seconds_are_not_cut_short(redis_server):
    import time

    client = connect(redis_server.url)
    began = time.monotonic()
    assert client.blmove("tars:test:latch", "tars:test:latch", 6, "RIGHT", "LEFT") is None
    assert 5.9 < time.monotonic() - began < 9  # redis-py 8's default read timeout (5 s) would retry it


def test_the_embedded_server_has_a_password_only_tars_can_read(tmp_path):
    """The model's sandboxed commands reach local TCP ports: without a password they could queue a job on the embedded
    Redis that a worker runs outside the sandbox. The password lives in DATA_DIR (hidden from them), never on a
    command line (readable by every process)."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    client, server = connect_or_embed(url, tmp_path, embed=True)
    try:
        assert client.ping()
        password = embedded_password(tmp_path)
        assert password and len(password) >= 24
        assert oct((tmp_path / "redis" / "password").stat().st_mode & 0o777) == "0o600"
        assert password not in " ".join(psutil.Process(server.process.pid).cmdline())
        with pytest.raises(RedisUnavailable, match="password"):
            connect(url)  # no password: refused
        # every TARS process finds it through the settings: the URL gains the password for this local server
        assert with_embedded_password(url, tmp_path) == server.url and connect(server.url).ping()
        assert "***" in safe_url(server.url) and password not in safe_url(server.url)
    finally:
        server.stop()
    # a second start reuses the same password (its AOF, and workers started with it, stay valid)
    client, again = connect_or_embed(with_embedded_password(url, tmp_path), tmp_path, embed=True)
    try:
        assert again.password == password and client.ping()
    finally:
        again.stop()
    # other URLs are left as they are
    for other in ("redis://:given@127.0.0.1:6379/0", "redis://redis.example.com:6379/0", "unix:///tmp/r.sock"):
        assert with_embedded_password(other, tmp_path) == other


def test_a_probe_asks_once_where_a_client_rides_out_the_outage():
    """/health says "degraded" at once: its probe tries one connection, the server's client keeps retrying."""
    import socket
    import threading

    import redis

    from core.redis_conn import probe_client

    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []

    def hang_up_on_everyone():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: the test is over
            accepted.append(conn)
            conn.close()

    threading.Thread(target=hang_up_on_everyone, daemon=True).start()
    try:
        client = connect(f"redis://127.0.0.1:{listener.getsockname()[1]}/0", check=False, outage_seconds=0.2)
        with pytest.raises(redis.ConnectionError):
            probe_client(client).ping()
        assert len(accepted) == 1
        with pytest.raises(redis.ConnectionError):
            client.ping()
        assert len(accepted) > 2  # the client itself retried
    finally:
        listener.close()
