"""`flask dev` as a real process: the local provider never outlives the site, dies loudly, and ports are explained.

Each test starts `python -m flask --app flask_app dev` on free ports and kills whatever it started.
Waits are polls with a deadline, never fixed sleeps.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
START_TIMEOUT = 30.0  # node start-up (the launcher allows 15 s)
DEADLINE = 10.0  # for things that take well under a second

pytestmark = pytest.mark.skipif(shutil.which("node") is None, reason="devidp needs Node.js")


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_is_free(port: int) -> bool:
    """True if a server could listen on `port` now (with SO_REUSEADDR, as werkzeug and node do)."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen()
        except OSError:
            return False
        return True


def accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_until(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout:.0f} s: {what}")
        time.sleep(0.05)


def process_state(pid: int) -> tuple[int, str, str] | None:
    """(parent pid, state letter, command name) from /proc, or None once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    name = stat[stat.index("(") + 1 : stat.rindex(")")]
    state, ppid = stat[stat.rindex(")") + 2 :].split()[:2]
    return int(ppid), state, name


def is_running(pid: int) -> bool:
    state = process_state(pid)
    return state is not None and state[1] != "Z"


def node_children(parent: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            state = process_state(int(entry.name))
            if state is not None and state[0] == parent and state[2] == "node" and state[1] != "Z":
                found.append(int(entry.name))
    return found


class FlaskDev:
    """One `flask dev` process with its output collected by a reader thread."""

    def __init__(self, data_dir: Path, site_port: int, idp_port: int) -> None:
        self.site_port, self.idp_port = site_port, idp_port
        self.url = f"http://localhost:{site_port}"
        self.node_pid: int | None = None
        env = {k: v for k, v in os.environ.items() if not k.startswith(("LOGTO_", "DEVIDP_", "APP_", "SPACE_"))}
        env.update(
            APP_BASE_URL=self.url,
            DEVIDP_PORT=str(idp_port),
            APP_DATA_DIR=str(data_dir),
            LOGTO_ENDPOINT="",  # empty, not unset: a developer's .env must not bring one in
            LOGTO_APP_ID="",
            LOGTO_APP_SECRET="",
            PYTHONUNBUFFERED="1",
        )
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._eof = False
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flask", "--app", "flask_app", "dev"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._read, name="flask-dev-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:
            for line in self.process.stdout:
                with self._changed:
                    self._lines.append(line)
                    self._changed.notify_all()
        with self._changed:
            self._eof = True
            self._changed.notify_all()

    @property
    def output(self) -> str:
        with self._changed:
            return "".join(self._lines)

    def wait_for_output(self, text: str, timeout: float = DEADLINE) -> None:
        deadline = time.monotonic() + timeout
        with self._changed:
            while text not in "".join(self._lines):
                remaining = deadline - time.monotonic()
                if self._eof or remaining <= 0:
                    raise AssertionError(f"{text!r} not in the output of flask dev:\n{''.join(self._lines)}")
                self._changed.wait(remaining)

    def wait_ready(self) -> None:
        """Wait for the site's URL line, both ports accepting, and note the provider's pid."""
        self.wait_for_output(f" * Site: {self.url}", START_TIMEOUT)
        wait_until(lambda: accepts(self.site_port) and accepts(self.idp_port), "both ports accept connections")
        wait_until(lambda: len(node_children(self.process.pid)) == 1, "one node child of flask dev")
        [self.node_pid] = node_children(self.process.pid)

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        code = self.process.wait(timeout)
        self._reader.join(timeout)
        return code

    def cleanup(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        self._reader.join()
        if self.node_pid is not None and is_running(self.node_pid):
            if b"server.js" in Path(f"/proc/{self.node_pid}/cmdline").read_bytes():
                os.kill(self.node_pid, signal.SIGKILL)


@pytest.fixture
def flask_dev(tmp_path: Path) -> Iterator[Callable[..., FlaskDev]]:
    started: list[FlaskDev] = []

    def start(site_port: int | None = None, idp_port: int | None = None) -> FlaskDev:
        ports = free_ports(2)
        dev = FlaskDev(tmp_path / f"data{len(started)}", site_port or ports[0], idp_port or ports[1])
        started.append(dev)
        return dev

    yield start
    for dev in started:
        dev.cleanup()


def test_sigterm_stops_site_and_provider(flask_dev):
    dev = flask_dev()
    dev.wait_ready()
    dev.process.send_signal(signal.SIGTERM)
    assert dev.wait_exit() == 0, dev.output
    wait_until(lambda: port_is_free(dev.site_port) and port_is_free(dev.idp_port), "both ports free")
    assert "exited unexpectedly" not in dev.output  # a deliberate stop is not reported as a crash


def test_sigkill_frees_provider_port(flask_dev):
    dev = flask_dev()
    dev.wait_ready()
    dev.process.kill()
    dev.wait_exit()
    wait_until(lambda: port_is_free(dev.idp_port), f"provider port {dev.idp_port} free")
    assert dev.node_pid is not None
    wait_until(lambda: not is_running(dev.node_pid), "node exited")


def test_provider_death_is_reported_with_its_exit_code(flask_dev):
    dev = flask_dev()
    dev.wait_ready()
    assert dev.node_pid is not None
    os.kill(dev.node_pid, signal.SIGKILL)
    dev.wait_for_output("devidp exited unexpectedly with code -9")
    assert "restart flask dev" in dev.output
    assert dev.process.poll() is None  # the site keeps serving
    dev.process.send_signal(signal.SIGTERM)
    assert dev.wait_exit() == 0, dev.output


def test_busy_provider_port_says_how_to_move_it(flask_dev):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        dev = flask_dev(idp_port=taken.getsockname()[1])
        code = dev.wait_exit(START_TIMEOUT)
    assert code != 0
    assert "in use" in dev.output and "DEVIDP_PORT=" in dev.output, dev.output
    wait_until(lambda: port_is_free(dev.site_port), "site port free")


def test_busy_site_port_says_how_to_move_it(flask_dev):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        dev = flask_dev(site_port=taken.getsockname()[1])
        code = dev.wait_exit(START_TIMEOUT)
    assert code != 0
    assert f"port {dev.site_port} is in use" in dev.output, dev.output
    assert "APP_BASE_URL=http://localhost:<free port>" in dev.output and "redirect URI" in dev.output
    assert "identity provider" not in dev.output  # the site's port is checked first


def test_prints_the_site_url_once_and_logs_access_without_query(flask_dev):
    dev = flask_dev()
    dev.wait_ready()
    with urllib.request.urlopen(f"{dev.url}/healthz?code=secret-code", timeout=5) as response:
        assert response.read() == b"ok\n"
    dev.wait_for_output('"GET /healthz HTTP/1.1" 200')
    dev.process.send_signal(signal.SIGTERM)
    dev.wait_exit()
    assert dev.output.count(dev.url) == 1, dev.output
    assert "Running on" not in dev.output and "secret-code" not in dev.output
