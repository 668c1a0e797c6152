"""What the servers the tests start (tests/postgres.py, tests/redis_server.py) and bench/ share.

`free_port()` a loopback port nobody listens on; `start_on_free_port()` a start on one, again on another
if it was taken meanwhile; `wait_until()` a poll until a server accepts; `stop_process()` SIGTERM, then
SIGKILL (of the whole process group for a server started with `start_new_session=True`); `served()` the
body of a session fixture for such a server.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol, TypeVar

import pytest


class Server(Protocol):
    base: Path  # its folder, deleted at the end

    def stop(self) -> None: ...


S = TypeVar("S", bound=Server)


def free_port() -> int:
    """A loopback port that was free a moment ago (the kernel's choice)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_on_free_port(start: Callable[[int], bool], port: int = 0, attempts: int = 5) -> int | None:
    """`start(port)` once on `port` if it is set, else on up to `attempts` free ports; the port it started on, or None."""
    for _ in range(attempts):
        candidate = port or free_port()
        if start(candidate):
            return candidate
        if port:
            break
    return None


def wait_until(ready: Callable[[], bool], alive: Callable[[], bool], timeout: float, interval: float = 0.02) -> bool:
    """Poll `ready()` until it is true (True), the server is no longer `alive()` or `timeout` s pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive():
        if ready():
            return True
        time.sleep(interval)
    return False


def stop_process(process: subprocess.Popen[bytes], timeout: float = 10, *, group: bool = False) -> None:
    """SIGTERM, SIGKILL after `timeout` s; with `group`, then SIGKILL what is left of its process group."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            if group:
                os.killpg(process.pid, signal.SIGKILL)
            else:
                process.kill()
            process.wait()
    if group:  # a child (a gunicorn worker) that outlived its parent
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def served(server: S | None, missing: str) -> Iterator[S]:
    """`yield from` this in a session fixture: `server`, then stopped and its folder deleted.

    None (not installed) skips the tests with `missing`, or fails them under CI=true (.ci/run installs the
    servers: missing there is a broken set-up).
    """
    if server is None:
        if os.environ.get("CI") == "true":
            pytest.fail(missing)
        pytest.skip(missing)
    yield server
    server.stop()
    shutil.rmtree(server.base, ignore_errors=True)
