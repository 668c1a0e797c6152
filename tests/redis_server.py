"""A throwaway Redis for the tests and bench/: `redis-server` in a temporary folder, on a free loopback port.

`redis_server` (session-scoped fixture) starts one per test session. Without `redis-server` its tests are
skipped with the reason (`apt-get install redis-server`; .ci/run does it), except under CI=true, where that
is a failure. The server listens on 127.0.0.1 only and keeps an append-only file with every write synced,
so `stop()` then `start()` (same port, same folder) is a Redis that went away and came back with its data.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import redis

from tests.servers import served, start_on_free_port, stop_process, wait_until

START_TIMEOUT = 15.0


def find_redis_server() -> str | None:
    return shutil.which("redis-server") or ("/usr/bin/redis-server" if os.path.exists("/usr/bin/redis-server") else None)


@dataclass
class RedisServer:
    executable: str
    base: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5)

    def start(self) -> None:
        """Start (again), on `port` if it has one, else on a free port (another try if one is taken meanwhile)."""
        port = start_on_free_port(self._start_on, self.port)
        if port is None:
            raise RuntimeError(f"redis-server did not start:\n{self.log_tail()}")
        self.port = port

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None

    def _start_on(self, port: int) -> bool:
        with open(self.base / "redis.log", "ab") as log:
            process = subprocess.Popen(
                [self.executable, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(self.base),
                 "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--protected-mode", "yes"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        probe = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=0.5, socket_timeout=1)

        def answers() -> bool:
            try:
                return bool(probe.ping())
            except redis.exceptions.RedisError:  # not listening yet, or still loading its file
                return False

        try:
            if wait_until(answers, lambda: process.poll() is None, START_TIMEOUT):
                self.process = process
                return True
        finally:
            probe.close()
        stop_process(process)
        return False

    def log_tail(self) -> str:
        log = self.base / "redis.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""


def start_redis() -> RedisServer | None:
    """A new, started server, or None without `redis-server`."""
    executable = find_redis_server()
    if executable is None:
        return None
    server = RedisServer(executable, Path(tempfile.mkdtemp(prefix="site-redis-")))
    try:
        server.start()
    except BaseException:
        shutil.rmtree(server.base, ignore_errors=True)
        raise
    return server


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    yield from served(start_redis(), "redis-server not found: apt-get install redis-server")
