"""Start and stop devidp, the embedded development identity provider (``node server.js``).

Used by the Flask app (zero-config local development) and by the integration tests.
Standard library only.

The provider ends with the process that started it, however that ends: it exits when its stdin
(a pipe this side never writes) reaches EOF, which the kernel delivers even after a SIGKILL, and
on Linux it also gets SIGTERM from PR_SET_PDEATHSIG. If it dies on its own, the "devidp" logger
reports it at ERROR level with its exit code.

    ensure_installed()                      # npm ci, once
    with start_provider(port=0, ...) as idp:
        idp.endpoint                        # "http://localhost:<port>" (Logto endpoint, no /oidc)
"""

from __future__ import annotations

import atexit
import collections
import ctypes
import json
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

DEVIDP_DIR = Path(__file__).resolve().parent
READY_TIMEOUT = 15.0
OUTPUT_LINES = 200
_READY_RE = re.compile(r"^devidp ready (http://[^\s:/]+:(\d+))$")
_PR_SET_PDEATHSIG = 1
log = logging.getLogger("devidp")


class DevIdpError(RuntimeError):
    """devidp could not be installed or started."""


def _require(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        raise DevIdpError(
            f"`{tool}` was not found on PATH. devidp needs Node.js 20+ with npm "
            "(https://nodejs.org/) to run the local identity provider."
        )
    return path


def _wanted_oidc_provider_version(devidp_dir: Path) -> str:
    package = json.loads((devidp_dir / "package.json").read_text(encoding="utf-8"))
    return str(package["dependencies"]["oidc-provider"])


def _installed_oidc_provider_version(devidp_dir: Path) -> str | None:
    manifest = devidp_dir / "node_modules" / "oidc-provider" / "package.json"
    try:
        return str(json.loads(manifest.read_text(encoding="utf-8"))["version"])
    except (OSError, ValueError, KeyError):
        return None


def ensure_installed(devidp_dir: Path | str = DEVIDP_DIR) -> None:
    """Run ``npm ci`` in devidp_dir unless the pinned oidc-provider is already installed."""
    devidp_dir = Path(devidp_dir)
    _require("node")
    wanted = _wanted_oidc_provider_version(devidp_dir)
    if _installed_oidc_provider_version(devidp_dir) == wanted:
        return
    npm = _require("npm")
    result = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"],
        cwd=devidp_dir,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0 or _installed_oidc_provider_version(devidp_dir) != wanted:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-20:])
        raise DevIdpError(f"`npm ci` in {devidp_dir} failed (exit {result.returncode}):\n{tail}")


@dataclass(frozen=True)
class _Config:
    client_id: str
    client_secret: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...]
    data_dir: Path
    test_controls: bool
    access_token_ttl: int | None
    host_name: str
    app_name: str | None
    backchannel_logout_uri: str | None
    hf_scopes: str | None = None
    hf_connector: str | None = None

    def env(self, port: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("DEVIDP_")}
        env.update(
            DEVIDP_PORT=str(port),
            DEVIDP_HOST_NAME=self.host_name,
            DEVIDP_CLIENT_ID=self.client_id,
            DEVIDP_CLIENT_SECRET=self.client_secret,
            DEVIDP_REDIRECT_URIS=" ".join(self.redirect_uris),
            DEVIDP_POST_LOGOUT_REDIRECT_URIS=" ".join(self.post_logout_redirect_uris),
            DEVIDP_DATA_DIR=str(self.data_dir),
            DEVIDP_TEST_CONTROLS="1" if self.test_controls else "0",
            DEVIDP_EXIT_ON_STDIN_EOF="1",
        )
        if self.access_token_ttl is not None:
            env["DEVIDP_ACCESS_TOKEN_TTL"] = str(self.access_token_ttl)
        if self.app_name:
            env["DEVIDP_APP_NAME"] = self.app_name
        if self.backchannel_logout_uri:
            env["DEVIDP_BACKCHANNEL_LOGOUT_URI"] = self.backchannel_logout_uri
        if self.hf_scopes is not None:
            env["DEVIDP_HF_SCOPES"] = self.hf_scopes
        if self.hf_connector is not None:
            env["DEVIDP_HF_CONNECTOR"] = self.hf_connector
        return env


class RunningProvider:
    """A running devidp process. Use as a context manager, or call stop()."""

    endpoint: str
    port: int
    process: subprocess.Popen[str]

    def __init__(self, config: _Config, port: int) -> None:
        self._config = config
        self._lines: collections.deque[str] = collections.deque(maxlen=OUTPUT_LINES)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._spawn(port)
        _live.add(self)

    # -- process management ------------------------------------------------------------

    def _spawn(self, port: int) -> None:
        node = _require("node")
        if _installed_oidc_provider_version(DEVIDP_DIR) is None:
            raise DevIdpError(f"devidp is not installed: call ensure_installed() (npm ci in {DEVIDP_DIR})")
        ready = threading.Event()
        found: list[tuple[str, int]] = []
        process = subprocess.Popen(
            [node, "server.js"],
            cwd=DEVIDP_DIR,
            env=self._config.env(port),
            stdin=subprocess.PIPE,  # the lifeline: never written; EOF tells the server to exit
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            bufsize=1,
            preexec_fn=_parent_death_signal(),
            process_group=0,  # Ctrl-C in a terminal reaches only the parent, which then stops it via stop()
        )
        assert process.stdout is not None and process.stderr is not None

        def on_stdout(line: str) -> None:
            match = _READY_RE.match(line)
            if match and not ready.is_set():
                found.append((match.group(1), int(match.group(2))))
                ready.set()

        drains = [
            threading.Thread(target=self._drain, args=(stream, prefix, callback), name="devidp-output", daemon=True)
            for stream, prefix, callback in ((process.stdout, "", on_stdout), (process.stderr, "[stderr] ", None))
        ]
        for thread in drains:
            thread.start()

        try:
            deadline = time.monotonic() + READY_TIMEOUT
            while not ready.wait(0.02):
                if process.poll() is not None:
                    for thread in drains:
                        thread.join(1.0)  # the last lines
                    raise DevIdpError(self._start_failure(process.returncode))
                if time.monotonic() > deadline:
                    raise DevIdpError(f"devidp was not ready within {READY_TIMEOUT:.0f} s:\n{self.output()}")
        except BaseException:  # also KeyboardInterrupt or a signal during start-up: leave nothing running
            _terminate(process)
            raise
        stopping = threading.Event()
        self.process, self._stopping = process, stopping
        self.endpoint, self.port = found[0]
        threading.Thread(
            target=self._watch, args=(process, drains, stopping), name="devidp-watch", daemon=True
        ).start()

    def _start_failure(self, code: int) -> str:
        """server.js reports a bad configuration or a busy port as one "devidp: ..." line; else all output."""
        reasons = [line for line in self.output().splitlines() if line.startswith("[stderr] devidp: ")]
        if code == 2 and reasons:
            return reasons[-1].removeprefix("[stderr] ")
        return f"devidp exited with code {code} before it was ready:\n{self.output()}"

    def _watch(self, process: subprocess.Popen[str], drains: list[threading.Thread], stopping: threading.Event) -> None:
        """Report the process ending unless stop() ended it (each spawn has its own `stopping`)."""
        for thread in drains:
            thread.join()  # EOF on its output: it has exited (or closed both streams)
        code = process.wait()
        if stopping.is_set():
            return
        how = f" (killed by {signal.Signals(-code).name})" if code < 0 and -code in signal.valid_signals() else ""
        log.error(
            "devidp exited unexpectedly with code %s%s; restart flask dev. Its last output:\n%s",
            code, how, "\n".join(self.output().splitlines()[-20:]),
        )

    def _drain(self, stream: TextIO, prefix: str, callback: Any) -> None:
        for raw in stream:
            line = raw.rstrip("\r\n")
            with self._lock:
                self._lines.append(prefix + line)
            if callback is not None:
                callback(line)
        stream.close()

    @property
    def issuer(self) -> str:
        return f"{self.endpoint}/oidc"

    def output(self) -> str:
        """The last ~200 lines the process printed (stderr lines prefixed "[stderr] ")."""
        with self._lock:
            return "\n".join(self._lines)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, wait up to `timeout` seconds, then SIGKILL."""
        self._stopping.set()
        _terminate(self.process, timeout)

    def restart(self) -> None:
        """Stop and start again on the same port with the same data dir."""
        self.stop()
        self._spawn(self.port)

    def __enter__(self) -> RunningProvider:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- test controls (need test_controls=True) -----------------------------------------

    def control(self, name: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """POST a JSON body to /__devidp__/<name> (GET when body is None); returns the JSON reply."""
        url = f"http://127.0.0.1:{self.port}/__devidp__/{name}"
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(url, data=data, headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                result: dict[str, Any] = json.load(response)
                return result
        except urllib.error.HTTPError as err:
            raise DevIdpError(f"devidp control {name} failed: {err.code} {err.read().decode(errors='replace')}") from err

    def set_fault(self, mode: str, delay_ms: int = 0) -> dict[str, Any]:
        """mode: none | html | slow | error500 | bad-jwks (applies to every /oidc/* request)."""
        return self.control("fault", {"mode": mode, "delay_ms": delay_ms})

    def rotate_key(self, keep_old: bool = False) -> dict[str, Any]:
        return self.control("rotate-key", {"keep_old": keep_old})

    def revoke(self, sub: str) -> dict[str, Any]:
        return self.control("revoke", {"sub": sub})

    def state(self) -> dict[str, Any]:
        return self.control("state")

    def set_hf_token(self, sub: str, state: str) -> dict[str, Any]:
        """The user's stored Hugging Face token: missing | expired | valid (a new one)."""
        return self.control("hf-token", {"sub": sub, "state": state})

    def set_account_api(self, mode: str) -> dict[str, Any]:
        """mode: none | not-enabled (Account Center off) | forbidden (as without the `identities` scope)."""
        return self.control("account-api", {"mode": mode})

    def set_hub_fault(self, mode: str, delay_ms: int = 0) -> dict[str, Any]:
        """mode: none | error500 | slow (applies to every /hub/api/* request)."""
        return self.control("hub-fault", {"mode": mode, "delay_ms": delay_ms})


def start_provider(
    *,
    port: int,
    client_id: str,
    client_secret: str,
    redirect_uris: list[str],
    post_logout_redirect_uris: list[str],
    data_dir: Path,
    test_controls: bool = False,
    access_token_ttl: int | None = None,
    host_name: str = "localhost",
    app_name: str | None = None,
    backchannel_logout_uri: str | None = None,
    hf_scopes: str | None = None,
    hf_connector: str | None = None,
) -> RunningProvider:
    """Spawn ``node server.js`` and wait (at most 15 s) for its ready line.

    port=0 lets the server pick a free port; the returned object's .port/.endpoint tell which.
    app_name is shown as "Sign in to <app_name>" (default "your app").
    backchannel_logout_uri: where end-session sends the client's back-channel logout (ID tokens then carry `sid`).
    hf_scopes: the simulated Hugging Face connector's scope (default "profile email read-memberships": its
    consent page offers organisations); hf_connector: "token-storage" (default) or "dedicated" (see README.md).
    Raises DevIdpError (with the process output) if it exits or is not ready in time.
    """
    config = _Config(
        client_id=client_id,
        client_secret=client_secret,
        redirect_uris=tuple(redirect_uris),
        post_logout_redirect_uris=tuple(post_logout_redirect_uris),
        data_dir=Path(data_dir).resolve(),
        test_controls=test_controls,
        access_token_ttl=access_token_ttl,
        host_name=host_name,
        app_name=app_name,
        backchannel_logout_uri=backchannel_logout_uri,
        hf_scopes=hf_scopes,
        hf_connector=hf_connector,
    )
    return RunningProvider(config, port)


def _parent_death_signal() -> Callable[[], None] | None:
    """A preexec_fn asking Linux to SIGTERM the child when its parent dies, else None.

    Linux sends it when the *thread* that forked exits, so it is only used from the main thread
    (which lives as long as the process); the stdin lifeline covers every other case.
    """
    if not sys.platform.startswith("linux") or threading.current_thread() is not threading.main_thread():
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up before the fork, not in the child
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def preexec() -> None:
        zero = ctypes.c_ulong(0)
        prctl(_PR_SET_PDEATHSIG, ctypes.c_ulong(signal.SIGTERM), zero, zero, zero)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(1)

    return preexec


def _terminate(process: subprocess.Popen[str], timeout: float = 5.0) -> None:
    try:
        if process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    finally:
        if process.stdin is not None:
            process.stdin.close()


_live: weakref.WeakSet[RunningProvider] = weakref.WeakSet()


def _stop_all() -> None:
    for provider in list(_live):
        if hasattr(provider, "process"):
            provider.stop(timeout=2.0)


atexit.register(_stop_all)
