"""What bench.py and load.py share: the stack on loopback, wrk, a browser's sign-in and the report's parts.

- `start_cluster`: Redis (if a store needs it), the embedded provider (devidp) and one gunicorn instance of
  bench/bench_app.py (2 workers × 4 threads) per entry of `stores`; `Cluster.stop()` stops all of it.
- `run_wrk` / `parse_wrk`: one wrk run (`-t2 -c8`, a separate process) against an instance, and its figures.
- `sign_in`: one whole sign-in through devidp as a browser, timed.
- `stats`, `machine`, `write_section`: percentiles, the machine line, a section of bench/RESULTS.md.

Every process started here gets SIGTERM if this process dies first (Linux), so none outlives a run.
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import requests

from flask_logto.config import backchannel_logout_uri, post_sign_out_uri, redirect_uri
from tests.harness import ROOMY_LIMITS, follow_to_callback, page_text
from tests.redis_server import RedisServer, start_redis
from tests.servers import free_port, stop_process, wait_until
from tools.devidp.launcher import RunningProvider, ensure_installed, start_provider
from website.settings import DEV_APP_ID, dev_client_secret

ROOT = Path(__file__).resolve().parent.parent

RESULTS_MD = ROOT / "bench" / "RESULTS.md"
WORKERS, THREADS = 2, 4
WRK_THREADS, WRK_CONNECTIONS = 2, 8
COOKIE_NAME = "site_session"
APP = "bench.bench_app:create_bench_app()"
# Site settings that must not leak in from the caller's environment (the bench always uses devidp).
SITE_VARIABLES = re.compile(r"^(LOGTO_|APP_|DEVIDP_|FLASK_|SESSION_|SPACE_|RATELIMIT_|DATABASE_URL$|TRUSTED_PROXY_HOPS$)")


# -- the stack ------------------------------------------------------------------------------------------


@dataclass
class Instance:
    name: str
    base_url: str  # http://localhost:<port>, its APP_BASE_URL
    port: int
    env: dict[str, str]
    data_dir: Path
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def url(self, path: str) -> str:
        return self.base_url + path


@dataclass
class Cluster:
    provider: RunningProvider
    instances: dict[str, Instance]
    redis: RedisServer | None
    secret_key: str
    tmp: Path
    counter: ProviderRequestCounter | None = None
    started: list[Callable[[], None]] = field(default_factory=list)  # what stop() undoes, last first

    def stop(self) -> None:
        for undo in reversed(self.started):
            with contextlib.suppress(Exception):
                undo()
        self.started.clear()


def start_cluster(tmp: Path, stores: Mapping[str, str], *, database_url: str = "", redis: RedisServer | None = None,
                  workers: int = WORKERS, threads: int = THREADS, test_controls: bool = True,
                  reuse_port: bool = False) -> Cluster:
    """Redis (if a store is "redis" and `redis` is None), devidp and one gunicorn per entry of `stores`
    (name → "redis" | "files").

    The instances share the provider, FLASK_SECRET_KEY, the dev client secret and (for "redis") one Redis, but
    not APP_DATA_DIR, as separate machines would. The provider's back-channel logouts go to the first instance.
    A `redis` passed in is used and left running. `reuse_port`: a listening socket per worker (the kernel
    spreads connections over the workers).
    """
    ensure_installed()
    secret_key = secrets.token_hex(32)
    ports = {name: free_port() for name in stores}
    urls = {name: f"http://localhost:{port}" for name, port in ports.items()}
    first = next(iter(stores))
    data_dirs = {name: tmp / name for name in stores}
    client_secret = dev_client_secret(data_dirs[first])
    cluster = Cluster(provider=None, instances={}, redis=redis, secret_key=secret_key, tmp=tmp)  # type: ignore[arg-type]
    try:
        if "redis" in stores.values() and cluster.redis is None:
            cluster.redis = own = start_redis()
            if own is None:
                raise SystemExit("redis-server not found: apt-get install redis-server")
            cluster.started.append(lambda: (own.stop(), shutil.rmtree(own.base, ignore_errors=True)))
        cluster.provider = start_provider(
            port=0, client_id=DEV_APP_ID, client_secret=client_secret,
            redirect_uris=[redirect_uri(url) for url in urls.values()],
            post_logout_redirect_uris=[post_sign_out_uri(url) for url in urls.values()],
            backchannel_logout_uri=backchannel_logout_uri(urls[first]),
            data_dir=data_dirs[first] / "devidp", test_controls=test_controls,
        )
        cluster.started.append(cluster.provider.stop)
        cluster.counter = ProviderRequestCounter.attach(cluster.provider)
        base_env = {name: value for name, value in os.environ.items() if not SITE_VARIABLES.match(name)}
        for name, store in stores.items():
            (data_dirs[name] / "devidp").mkdir(parents=True, exist_ok=True)
            (data_dirs[name] / "devidp" / "client_secret").write_text(client_secret)
            env = {**base_env, "APP_BASE_URL": urls[name], "APP_DATA_DIR": str(data_dirs[name]),
                   "DEVIDP_PORT": str(cluster.provider.port), "FLASK_SECRET_KEY": secret_key, **ROOMY_LIMITS}
            if store == "redis":
                env["SESSION_REDIS_URL"] = cluster.redis.url  # type: ignore[union-attr]
            if database_url:
                env["DATABASE_URL"] = database_url
            instance = Instance(name, urls[name], ports[name], env, data_dirs[name])
            start_gunicorn(instance, tmp, workers, threads, reuse_port)
            cluster.started.append(lambda instance=instance: stop_process(instance.process, 15, group=True))  # type: ignore[arg-type]
            cluster.instances[name] = instance
        for instance in cluster.instances.values():
            wait_ready(instance)
    except BaseException:
        cluster.stop()
        raise
    return cluster


def start_gunicorn(instance: Instance, tmp: Path, workers: int, threads: int, reuse_port: bool = False) -> None:
    """gunicorn serving bench_app on 127.0.0.1:`instance.port`, in its own session (Ctrl-C reaches only us)."""
    instance.log = tmp / f"gunicorn-{instance.name}.log"
    with open(instance.log, "wb") as log_file:
        instance.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-w", str(workers), "--threads", str(threads),
             "-b", f"127.0.0.1:{instance.port}", "--timeout", "60", "--chdir", str(ROOT),
             *(["--reuse-port"] if reuse_port else []), APP],
            cwd=ROOT, env=instance.env, stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
            start_new_session=True, preexec_fn=parent_death_signal(),
        )


def wait_ready(instance: Instance, timeout: float = 60) -> None:
    """Until `/healthz` answers 200; SystemExit with the log's tail if gunicorn exits or is not up in time."""
    process = instance.process
    assert process is not None

    def healthy() -> bool:
        try:
            return requests.get(instance.url("/healthz"), timeout=2).status_code == 200
        except requests.RequestException:
            return False

    if wait_until(healthy, lambda: process.poll() is None, timeout, interval=0.1):
        return
    if process.poll() is not None:
        raise SystemExit(f"gunicorn {instance.name} exited with {process.returncode}:\n{tail(instance.log)}")
    raise SystemExit(f"gunicorn {instance.name} did not answer within {timeout:.0f} s:\n{tail(instance.log)}")


def parent_death_signal() -> Callable[[], None] | None:
    """SIGTERM for a child (gunicorn's master) if this process dies without stopping it (Linux only)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    parent = os.getpid()

    def preexec() -> None:
        zero = ctypes.c_ulong(0)
        prctl(1, ctypes.c_ulong(signal.SIGTERM), zero, zero, zero)  # PR_SET_PDEATHSIG
        if os.getppid() != parent:
            os._exit(1)

    return preexec


def tail(path: Path | None, lines: int = 30) -> str:
    if path is None or not path.exists():
        return ""
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


class ProviderRequestCounter(collections.deque):  # type: ignore[type-arg]
    """Counts the provider's access-log lines ("GET /oidc/me 200 3ms") as its output drain appends them.

    devidp's request counter (`state`) exists only with test controls on; its log line per request is
    always there. Swapped in for RunningProvider's output buffer: None if that buffer is not where expected.
    """

    LINE = re.compile(r"^[A-Z]+ /\S* \d{3} \d+ms$")

    def __init__(self, lines: collections.deque, maxlen: int | None) -> None:  # type: ignore[type-arg]
        super().__init__(lines, maxlen)
        self.requests = 0

    def append(self, line: str) -> None:
        if self.LINE.match(line):
            self.requests += 1
        super().append(line)

    @classmethod
    def attach(cls, provider: RunningProvider) -> ProviderRequestCounter | None:
        lines, lock = getattr(provider, "_lines", None), getattr(provider, "_lock", None)
        if not isinstance(lines, collections.deque) or lock is None:
            return None
        with lock:
            counter = cls(lines, lines.maxlen)
            provider._lines = counter  # type: ignore[assignment]
        return counter

    def now(self) -> int:
        time.sleep(0.3)  # let the drain thread read the last lines
        return self.requests


# -- wrk ------------------------------------------------------------------------------------------------


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bytes_read: float
    non_2xx_3xx: int
    socket_errors: int


def run_wrk(instance: Instance, path: str, cookie_header: str | None, seconds: int) -> WrkResult:
    """wrk -t2 -c8 on `path` for `seconds` s, with `Cookie: cookie_header` if given."""
    command = ["wrk", f"-t{WRK_THREADS}", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "--latency",
               "-H", f"Host: localhost:{instance.port}"]  # APP_BASE_URL's host name (else: a redirect to it)
    if cookie_header:
        command += ["-H", f"Cookie: {cookie_header}"]
    command.append(f"http://127.0.0.1:{instance.port}{path}")
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        raise SystemExit(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    return parse_wrk(done.stdout)


_TIME_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_SIZE_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def parse_wrk(output: str) -> WrkResult:
    """The figures of wrk's `--latency` output; SystemExit with the output if one is missing."""
    def find(pattern: str) -> re.Match[str]:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise SystemExit(f"unexpected wrk output (no {pattern!r}):\n{output}")
        return match

    latency = {
        match.group(1): float(match.group(2)) * _TIME_UNITS[match.group(3)]
        for match in re.finditer(r"^\s+(\d+)%\s+([\d.]+)(us|ms|s|m|h)\s*$", output, re.MULTILINE)
    }
    totals = find(r"(\d+) requests in [\d.]+\w+, ([\d.]+)([KMGT]?)B read")
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if "50" not in latency or "99" not in latency:
        raise SystemExit(f"unexpected wrk output (no latency distribution):\n{output}")
    return WrkResult(
        rps=float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        p50_ms=latency["50"],
        p99_ms=latency["99"],
        requests=int(totals.group(1)),
        bytes_read=float(totals.group(2)) * _SIZE_UNITS[totals.group(3)],
        non_2xx_3xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
    )


# -- signing in -----------------------------------------------------------------------------------------


@dataclass
class SignIn:
    http: requests.Session
    cookie: str
    set_cookie: str  # the Set-Cookie header of the callback's answer
    callback_ms: float
    whole_ms: float


def sign_in(instance: Instance, username: str, http: requests.Session | None = None) -> SignIn:
    """A whole sign-in through devidp as a browser; raises RuntimeError with the page's text if a step fails."""
    http = http or requests.Session()
    started = time.perf_counter()
    response = http.get(instance.url("/sign-in"), allow_redirects=False, timeout=30)
    if response.status_code != 302:
        raise RuntimeError(f"/sign-in answered {response.status_code}: {page_text(response.text)[:200]}")
    try:
        callback = follow_to_callback(http, response.headers["Location"], instance.base_url, username=username)
    except AssertionError as failure:
        raise RuntimeError(f"sign-in failed at the provider: {failure}") from None
    before_callback = time.perf_counter()
    response = http.get(callback, allow_redirects=False, timeout=30)
    done = time.perf_counter()
    cookie = http.cookies.get(COOKIE_NAME)
    if response.status_code != 302 or not cookie:
        raise RuntimeError(f"/callback answered {response.status_code}: {page_text(response.text)[:200]}")
    return SignIn(http, cookie, response.headers.get("Set-Cookie", ""), (done - before_callback) * 1000,
                  (done - started) * 1000)


# -- the report -----------------------------------------------------------------------------------------


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {"n": len(ordered), "p50": statistics.median(ordered),
            "p95": ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))], "max": ordered[-1]}


def machine() -> str:
    """CPU model, CPUs (as `nproc` counts them), memory, kernel, Python, Redis, Node, load average now."""
    model = ""
    with contextlib.suppress(OSError):
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    memory = ""
    with contextlib.suppress(OSError, StopIteration, ValueError):
        kib = int(next(line for line in Path("/proc/meminfo").read_text().splitlines() if line.startswith("MemTotal")).split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB RAM"
    redis_version = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        version = subprocess.run(["redis-server", "--version"], capture_output=True, text=True, timeout=5).stdout
        found = re.search(r"v=(\S+)", version)
        redis_version = f", Redis {found.group(1)}" if found else ""
    node = ""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        node = f", Node {subprocess.run(['node', '--version'], capture_output=True, text=True, timeout=5).stdout.strip()}"
    load = ""
    with contextlib.suppress(OSError):
        load = f"; load average at the start {os.getloadavg()[0]:.1f}"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (f"{model or platform.processor() or 'unknown CPU'}, {cores} cores{memory}, Linux {platform.release()}, "
            f"Python {platform.python_version()}{redis_version}{node}{load}")


def _marked(marker: str) -> re.Pattern[str]:
    return re.compile(rf"<!-- {re.escape(marker)} -->.*?<!-- /{re.escape(marker)} -->", re.DOTALL)


def section(path: Path, marker: str) -> str | None:
    """The section between `<!-- marker -->` and `<!-- /marker -->` in `path`, markers included, if there is one."""
    found = _marked(marker).search(path.read_text()) if path.exists() else None
    return found.group(0) if found else None


def write_section(path: Path, new: str, marker: str) -> None:
    """Replace the section between `<!-- marker -->` and `<!-- /marker -->` in `path` (or append it)."""
    text = path.read_text() if path.exists() else "# Benchmark and load-test results\n"
    pattern = _marked(marker)
    text = pattern.sub(lambda _: new, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + new
    path.write_text(text.rstrip("\n") + "\n")
