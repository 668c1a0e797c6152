"""Benchmark: every variant of the site as ratios to a bare Flask page under the same gunicorn, in one run.

    python -m bench.bench [--seconds 8] [--rounds 3] [--sign-ins 20] [--budget 240]
                          [--profile | --no-profile] [--write-results]

Starts a Redis (tests/redis_server.py, on a free port), the embedded provider (devidp) and two gunicorn
instances of bench/bench_app.py, each 2 workers × 4 threads with a listening socket per worker: one keeps the
sessions in files (the embedded store), the other in Redis. It signs one user in on each, then runs wrk
(`-t2 -c8`, a separate process) in alternating rounds on

- `/bench/bare`: a template file padded to the signed-in page's size, no session, no Logto (the limit);
- `/bench/cookie`: the seed guide's way, the tokens in Flask's default cookie session (the baseline);
- `/` signed in, sessions in files; `/` signed in, sessions in Redis; `/profile` signed in, steady state.

Per page: the median req/s, the medians of the per-round ratios to the bare page (req/s, p99, and the
workers' CPU per request read from /proc, which other work on the machine moves less), wrk's errors and the
provider's requests meanwhile (0 in steady state). Then the sign-in: `GET /callback` over HTTP and its own
time without the provider's (bench/scale.py, in-process), the calls one sign-in makes, and the cookie's size.
It checks the targets (TARGETS, COOKIE_LIMIT) and, where one is missed, profiles that page in-process
(pyinstrument, bench/profiling.py) and prints where the time goes. Writes bench/results/latest.md; with
`--write-results` also bench/RESULTS.md (keeping the section bench/load.py writes).

A benchmark, not a test: it asserts no timing. Bounded by `--budget` seconds (default 240): a run that would
not fit is refused, reruns and the profile are skipped when time is short, and at the budget it stops.
Every process it started is stopped at the end (also on Ctrl-C or SIGTERM).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import logging
import os
import resource
import shutil
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.bench_app import BENCH_COOKIE, PADDING_TEMPLATE, cookie_session_value, create_bench_app, pad_bare_template
from bench.common import (
    COOKIE_NAME,
    RESULTS_MD,
    THREADS,
    WORKERS,
    WRK_CONNECTIONS,
    WRK_THREADS,
    Cluster,
    SignIn,
    WrkResult,
    machine,
    run_wrk,
    section,
    sign_in,
    start_cluster,
    stats,
)
from bench.profiling import RESULTS, Profiled, Tee, profile_pages
from bench.scale import callback_in_process, cookie_sizes, stored_session
from tests.harness import page_text
from tests.redis_server import start_redis

ROOT = Path(__file__).resolve().parent.parent

USERNAME = "bench-user"
SIZE_TOLERANCE = 0.05
SKEWED, MAX_RERUNS = 0.8, 2  # busiest worker's share of the workers' CPU in one wrk run; reruns of such a run
START_UP_S, PER_SIGN_IN_S, PROFILE_RESERVE_S = 25, 0.3, 40  # the budget's estimates


@dataclass(frozen=True)
class Page:
    key: str
    instance: str  # "files" or "redis"
    path: str
    cookie: str | None  # "site": the site's session cookie; "bench": the cookie-session baseline's
    label: str


PAGES = [
    Page("bare", "files", "/bench/bare", None, "`GET /bench/bare`: template only, same size (the limit)"),
    Page("cookie", "files", "/bench/cookie", "bench", "`GET /bench/cookie`: tokens in Flask's cookie session (baseline)"),
    Page("index_files", "files", "/", "site", "`GET /` signed in, sessions in files"),
    Page("index_redis", "redis", "/", "site", "`GET /` signed in, sessions in Redis"),
    Page("profile", "files", "/profile", "site", "`GET /profile` signed in, steady state"),
]


@dataclass(frozen=True)
class Target:
    page: str
    figure: str  # "ratio" (req/s × bare, at least) or "p99_ratio" (p99 × bare, at most)
    limit: float

    def met(self, value: float) -> bool:
        return value >= self.limit if self.figure == "ratio" else value <= self.limit

    def text(self, short: bool = False) -> str:
        figure = f"req/s ≥ {self.limit}× bare" if self.figure == "ratio" else f"p99 ≤ {self.limit}× bare"
        return f"{self.page if short else label(self.page)}{' ' if short else ': '}{figure}"


TARGETS = [
    Target("index_files", "ratio", 0.6), Target("index_files", "p99_ratio", 2.0),
    Target("index_redis", "ratio", 0.5), Target("index_redis", "p99_ratio", 2.0),
    Target("profile", "ratio", 0.6), Target("profile", "p99_ratio", 2.0),
]
COOKIE_LIMIT = 100  # bytes of the `site_session=<value>` pair
CALLBACK_OWN_LIMIT_MS = 5.0  # the site's own time in GET /callback, p50, on each store


@dataclass
class Measured(WrkResult):
    provider_requests: int | None = None
    other_cpu: float | None = None  # share of the machine's CPU that neither the site nor wrk used
    worker_split: list[float] = field(default_factory=list)  # each worker's share of the workers' CPU
    worker_cpu_s: float | None = None  # CPU seconds the gunicorn workers used in this run

    @property
    def cpu_ms_per_request(self) -> float | None:
        return None if self.worker_cpu_s is None else self.worker_cpu_s * 1000 / max(self.requests, 1)


@dataclass
class Run:
    """What one run found, for the report."""

    args: argparse.Namespace
    sizes: dict[str, int] = field(default_factory=dict)
    cookies: dict[str, dict[str, int]] = field(default_factory=dict)  # store -> cookie_sizes()
    sign_ins: dict[str, dict[str, Any]] = field(default_factory=dict)  # store -> figures
    results: list[dict[str, Measured]] = field(default_factory=list)  # one dict a round
    reruns: int = 0
    sessions: list[dict[str, int]] = field(default_factory=list)
    machine: str = field(default_factory=machine)  # at the start: its load average is the one before the run


class OverBudget(Exception):
    """SIGALRM: the run reached --budget."""


def _over_budget(*_: object) -> None:
    raise OverBudget


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=8, help="wrk duration of each page in each round (default 8)")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds over the pages (default 3)")
    parser.add_argument("--sign-ins", type=int, default=20, help="sign-ins timed per store, each way (default 20)")
    parser.add_argument("--budget", type=int, default=240, help="seconds the whole run may take (default 240)")
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument("--profile", action="store_true", help="profile the pages even if every target is met")
    choice.add_argument("--no-profile", action="store_true", help="never profile")
    parser.add_argument("--write-results", action="store_true", help="also rewrite bench/RESULTS.md")
    args = parser.parse_args()
    if min(args.seconds, args.rounds, args.sign_ins) < 1:
        parser.error("--seconds, --rounds and --sign-ins must be at least 1")
    planned = planned_seconds(args)
    if planned > args.budget:
        parser.error(f"this run needs about {planned:.0f} s: raise --budget or lower --seconds/--rounds")
    started = time.monotonic()
    deadline = started + args.budget
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop every process
    signal.signal(signal.SIGALRM, _over_budget)
    signal.alarm(args.budget)
    logging.disable(logging.INFO)  # the in-process apps' sign-in lines; gunicorn's go to its logs
    run = Run(args)
    redis = start_redis()  # the benchmark's own, so that the profile can still read the Redis sessions
    if redis is None:
        raise SystemExit("redis-server not found: apt-get install redis-server")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-") as tmp, _removed_at_exit(PADDING_TEMPLATE):
            cluster = start_cluster(Path(tmp), {"files": "files", "redis": "redis"}, redis=redis,
                                    test_controls=False, reuse_port=True)
            try:
                print(f"instances: {', '.join(f'{i.name} {i.base_url}' for i in cluster.instances.values())} "
                      f"({WORKERS} workers x {THREADS} threads each); provider port {cluster.provider.port}; "
                      f"{redis.url}", flush=True)
                headers = prepare(cluster, run)
                sign_in_figures(cluster, run)
                run.sessions.append(session_files(cluster.instances["files"].data_dir))
                load_rounds(cluster, headers, run, deadline)
                run.sessions.append(session_files(cluster.instances["files"].data_dir))
            finally:
                cluster.stop()  # gunicorn and the provider; Redis stays for the profile
            report = markdown(run, time.monotonic() - started)
            print("\n" + report)
            write_latest(report)
            missed = [target for target in TARGETS if not target.met(summary(run.results, target.page)[target.figure])]
            if args.profile or (missed and not args.no_profile):
                profile = profile_section(cluster, headers, run, missed, deadline)
                report = report.replace("<!-- /bench.py -->", f"{profile}\n<!-- /bench.py -->")
                write_latest(report)
    except OverBudget:
        raise SystemExit(f"stopped: the run took more than --budget {args.budget} s") from None
    finally:
        signal.alarm(0)
        redis.stop()
        shutil.rmtree(redis.base, ignore_errors=True)
    if args.write_results:
        write_results(report)
        print(f"(written to {RESULTS_MD.relative_to(ROOT)})")
    print(f"\nDone in {time.monotonic() - started:.0f} s; every process started here has stopped.")


def write_latest(report: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.md").write_text(report + "\n", encoding="utf-8")
    print(f"(written to {(RESULTS / 'latest.md').relative_to(ROOT)})")


def planned_seconds(args: argparse.Namespace) -> float:
    """About how long a run takes without reruns (start-up, sign-ins, warm-up, rounds, profile)."""
    runs = args.rounds * len(PAGES)
    return (START_UP_S + 2 * 2 * args.sign_ins * PER_SIGN_IN_S + len(PAGES) * 1.5
            + runs * (args.seconds + 0.5) + PROFILE_RESERVE_S)


@contextlib.contextmanager
def _removed_at_exit(path: Path) -> Iterator[None]:
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


# -- before the load ------------------------------------------------------------------------------------


def prepare(cluster: Cluster, run: Run) -> dict[str, str | None]:
    """Signs the user in on each instance; checks every page; pads the bare page. Returns each page's Cookie header."""
    signed: dict[str, SignIn] = {}
    for name in ("files", "redis"):
        try:
            signed[name] = sign_in(cluster.instances[name], USERNAME)
        except RuntimeError as failure:
            raise SystemExit(f"sign-in on {name}: {failure}") from None
    session = stored_session(cluster.redis.client(), signed["redis"].cookie)  # type: ignore[union-attr]
    run.cookies = {name: cookie_sizes(signed[name], cluster.secret_key, session) for name in signed}
    cookie_header = {"site": None, "bench": f"{BENCH_COOKIE}={cookie_session_value(cluster.secret_key, session)}"}
    headers = {page.key: (f"{COOKIE_NAME}={signed[page.instance].cookie}" if page.cookie == "site"
                          else cookie_header.get(page.cookie or "")) for page in PAGES}
    name = USERNAME.title()  # the full name follow_to_callback types into the provider's form
    for page in PAGES:
        if page.key == "bare":
            continue
        response = get(cluster, page, headers[page.key])
        text = page_text(response.text)
        if response.status_code != 200 or name not in text:
            raise SystemExit(f"{page.label} answered {response.status_code}, expected {name!r} on it: {text[:300]}")
        run.sizes[page.key] = len(response.content)
    pad_bare_template(run.sizes["index_files"])
    response = get(cluster, PAGES[0], None)  # the first render: each worker caches the padded template
    run.sizes["bare"] = len(response.content)
    if response.status_code != 200 or abs(run.sizes["bare"] / run.sizes["index_files"] - 1) > SIZE_TOLERANCE:
        raise SystemExit(f"/bench/bare answered {response.status_code} with {run.sizes['bare']} bytes "
                         f"(signed-in / has {run.sizes['index_files']})")
    print("pages: " + ", ".join(f"{page.key} {run.sizes[page.key]} B" for page in PAGES), flush=True)
    return headers


def get(cluster: Cluster, page: Page, cookie_header: str | None) -> requests.Response:
    headers = {"Cookie": cookie_header} if cookie_header else {}
    return requests.get(cluster.instances[page.instance].url(page.path), headers=headers, allow_redirects=False, timeout=10)


def sign_in_figures(cluster: Cluster, run: Run) -> None:
    """Per store: `sign_ins` new users over HTTP (gunicorn, provider included), then as many in-process."""
    count = run.args.sign_ins
    for name, instance in cluster.instances.items():
        before = cluster.counter.now() if cluster.counter else None
        try:
            runs = [sign_in(instance, f"http-{name}-{number:03d}") for number in range(count)]
            in_process = callback_in_process(instance, count, f"inproc-{name}")
        except RuntimeError as failure:
            raise SystemExit(f"sign-in on {name}: {failure}") from None
        after = cluster.counter.now() if cluster.counter else None
        run.sign_ins[name] = {
            "http_callback": stats([r.callback_ms for r in runs]), "http_whole": stats([r.whole_ms for r in runs]),
            # the provider's requests per sign-in over HTTP and in-process (2 × count, warm-up not counted)
            "provider_per_sign_in": None if before is None else (after - before) / (2 * count + 1),  # type: ignore[operator]
            **in_process,
        }
        print(f"sign-in {name}: /callback over HTTP p50 {run.sign_ins[name]['http_callback']['p50']:.1f} ms, "
              f"in-process own time p50 {in_process['own']['p50']:.1f} ms", flush=True)


def session_files(data_dir: Path) -> dict[str, int]:
    """The file store's sessions (name -> mtime in ns): the load must not add or rewrite any."""
    store = data_dir / "sessions"
    if not store.is_dir():
        return {}
    return {entry.name: entry.stat().st_mtime_ns for entry in store.iterdir() if not entry.name.startswith("__wz_")}


# -- load -----------------------------------------------------------------------------------------------


def measure(cluster: Cluster, page: Page, cookie_header: str | None, seconds: int) -> Measured:
    """One wrk run on `page`, with the workers' CPU and the provider's requests meanwhile."""
    instance = cluster.instances[page.instance]
    before = cluster.counter.requests if cluster.counter else None
    meter = CpuMeter(instance.process.pid if instance.process else None)
    result = Measured(**vars(run_wrk(instance, page.path, cookie_header, seconds)))
    result.other_cpu, result.worker_split, result.worker_cpu_s = meter.stop()
    if before is not None and cluster.counter is not None:
        result.provider_requests = cluster.counter.now() - before
    return result


def load_rounds(cluster: Cluster, headers: dict[str, str | None], run: Run, deadline: float) -> None:
    """Rounds of every page in turn. A run where one worker got (nearly) all of wrk's 8 keep-alive
    connections measures one core, not the site: it is run again (twice at most, if the budget allows)."""
    seconds, rounds = run.args.seconds, run.args.rounds
    print(f"warm-up: 1 s per page; then {rounds} rounds x {len(PAGES)} pages x {seconds} s "
          f"(wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS})", flush=True)
    for page in PAGES:  # both workers: imports, template compilation, the OIDC core
        measure(cluster, page, headers[page.key], 1)
    for number in range(1, rounds + 1):
        this_round: dict[str, Measured] = {}
        for index, page in enumerate(PAGES):
            left = (rounds - number) * len(PAGES) + len(PAGES) - index - 1  # runs after this one
            for attempt in range(1 + MAX_RERUNS):
                result = this_round[page.key] = measure(cluster, page, headers[page.key], seconds)
                fits = time.monotonic() + (left + 1) * (seconds + 0.5) + PROFILE_RESERVE_S < deadline
                if not result.worker_split or result.worker_split[0] <= SKEWED or attempt == MAX_RERUNS or not fits:
                    break
                run.reruns += 1
                print(f"  round {number} {page.key:12} one worker did {result.worker_split[0]:.0%} of the work: again",
                      flush=True)
            print(f"  round {number} {page.key:12} {result.rps:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                  f"p99 {result.p99_ms:6.2f} ms  {result.bytes_read / max(result.requests, 1):6.0f} B/resp  "
                  f"non-2xx {result.non_2xx_3xx}  workers {'/'.join(f'{share:.0%}' for share in result.worker_split)}  "
                  f"other CPU {'n/a' if result.other_cpu is None else f'{result.other_cpu:.0%}'}  "
                  f"{_number(result.cpu_ms_per_request)} CPU ms/req", flush=True)
        run.results.append(this_round)
    for page in PAGES:  # still 200 after the load (wrk does not count redirects as errors)
        status = get(cluster, page, headers[page.key]).status_code
        if status != 200:
            raise SystemExit(f"{page.label} answered {status} after the load")


class CpuMeter:
    """CPU time over one wrk run (Linux /proc): the machine's, gunicorn's (master, each worker) and wrk's.

    What is left is other work on the machine (a test suite, a build): it is reported, since it moves
    the numbers more than anything the site does.
    """

    def __init__(self, master: int | None) -> None:
        self.master = master
        self.ok = master is not None and Path("/proc/stat").exists()
        if self.ok:
            self.start = self._snapshot()

    def _snapshot(self) -> tuple[float, float, dict[int, float], float]:  # busy, total, workers, wrk+master (s)
        with open("/proc/stat") as stat:
            ticks = [int(n) for n in stat.readline().split()[1:]]
        busy = sum(ticks) - ticks[3] - ticks[4] - sum(ticks[8:])  # less idle, iowait, guest (in user already)
        workers = {pid: _process_ticks(pid) for pid in _children(self.master)}  # type: ignore[arg-type]
        children = resource.getrusage(resource.RUSAGE_CHILDREN)  # wrk, once reaped
        others = children.ru_utime + children.ru_stime + _process_ticks(self.master) / os.sysconf("SC_CLK_TCK")  # type: ignore[arg-type]
        return busy, sum(ticks), workers, others

    def stop(self) -> tuple[float | None, list[float], float | None]:
        """(other processes' share of the machine, each worker's share of the workers' CPU, workers' CPU s)"""
        if not self.ok:
            return None, [], None
        try:
            busy0, total0, workers0, wrk0 = self.start
            busy1, total1, workers1, wrk1 = self._snapshot()
            hz = os.sysconf("SC_CLK_TCK")
            worker_ticks = {pid: workers1[pid] - workers0.get(pid, 0) for pid in workers1}
            ours = sum(worker_ticks.values()) + (wrk1 - wrk0) * hz  # workers, wrk, gunicorn's master
            other = max(0.0, (busy1 - busy0) - ours) / max(total1 - total0, 1)
            spent = sum(worker_ticks.values()) or 1
            split = sorted((ticks / spent for ticks in worker_ticks.values()), reverse=True)
            return other, split, sum(worker_ticks.values()) / hz
        except (OSError, ValueError):
            return None, [], None


def _children(pid: int) -> list[int]:
    try:
        return [int(n) for n in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _process_ticks(pid: int) -> float:
    """utime + stime of a process, all its threads, in clock ticks (0 if it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return float(int(fields[11]) + int(fields[12]))


# -- report ---------------------------------------------------------------------------------------------


def label(key: str) -> str:
    return next(page.label for page in PAGES if page.key == key)


def summary(results: list[dict[str, Measured]], key: str) -> dict[str, Any]:
    rounds = [this_round[key] for this_round in results]
    providers = [r.provider_requests for r in rounds]
    return {
        "rps": statistics.median(r.rps for r in rounds),
        "ratio": statistics.median(r[key].rps / r["bare"].rps for r in results),
        "p50": statistics.median(r.p50_ms for r in rounds),
        "p99": statistics.median(r.p99_ms for r in rounds),
        "p99_ratio": statistics.median(r[key].p99_ms / r["bare"].p99_ms for r in results),
        "non_2xx": sum(r.non_2xx_3xx for r in rounds),
        "socket_errors": sum(r.socket_errors for r in rounds),
        "provider": None if None in providers else sum(providers),  # type: ignore[arg-type]
        "cpu_ms": _median_or_none([r.cpu_ms_per_request for r in rounds]),
        "cpu_ratio": _median_or_none([
            r["bare"].cpu_ms_per_request / r[key].cpu_ms_per_request  # type: ignore[operator]
            for r in results if r["bare"].cpu_ms_per_request and r[key].cpu_ms_per_request
        ]),
    }


def _number(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _median_or_none(values: list[float | None]) -> float | None:
    known = [value for value in values if value is not None]
    return statistics.median(known) if known else None


def markdown(run: Run, elapsed: float) -> str:
    args, results = run.args, run.results
    command = " ".join(["python -m bench.bench", *sys.argv[1:]])
    lines = [
        "<!-- bench.py -->",
        "## Benchmark: the site's pages against a bare Flask page, the sign-in and the cookie",
        "",
        f"`{command}`, {datetime.datetime.now().astimezone():%Y-%m-%d %H:%M %Z}. Machine: {run.machine}. "
        f"Two gunicorn instances, {WORKERS} workers × {THREADS} threads each (a listening socket per worker), one "
        f"keeping sessions in files, one in Redis; wrk -t{WRK_THREADS} -c{WRK_CONNECTIONS} from a separate process, "
        f"{args.rounds} alternating rounds of {args.seconds} s per page. Ratios are medians of per-round ratios to "
        f"the bare page ({run.sizes['bare']} B vs {run.sizes['index_files']} B for signed-in `/`); × bare (CPU) is "
        "bare's worker CPU per request over the page's (higher is better, like × bare req/s), which other work on "
        "the machine moves less.",
        "",
        "| page | req/s | × bare req/s | p50 ms | p99 ms | × bare p99 | worker CPU ms/req | × bare (CPU) "
        "| non-2xx/3xx | socket errors | provider requests |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for page in PAGES:
        s = summary(results, page.key)
        lines.append(
            f"| {page.label} | {s['rps']:.0f} | {s['ratio']:.2f} | {s['p50']:.2f} | {s['p99']:.2f} | "
            f"{s['p99_ratio']:.2f} | {_number(s['cpu_ms'])} | {_number(s['cpu_ratio'])} | {s['non_2xx']} | "
            f"{s['socket_errors']} | {'n/a' if s['provider'] is None else s['provider']} |")
    cookie = run.cookies["files"]
    lines += ["", "| target | measured | |", "|---|---|---|"]
    for target in TARGETS:
        value = summary(results, target.page)[target.figure]
        lines.append(f"| {target.text()} | {value:.2f}× | {'met' if target.met(value) else '**missed**'} |")
    lines.append(f"| cookie: the `{COOKIE_NAME}=<value>` pair ≤ {COOKIE_LIMIT} bytes | {cookie['pair']} B | "
                 f"{'met' if cookie['pair'] <= COOKIE_LIMIT else '**missed**'} |")
    for name, figures in run.sign_ins.items():
        own = figures["own"]["p50"]
        lines.append(f"| `GET /callback` with sessions in {name}: the site's own time p50 ≤ {CALLBACK_OWN_LIMIT_MS:g} ms | "
                     f"{own:.1f} ms | {'met' if own <= CALLBACK_OWN_LIMIT_MS else '**missed**'} |")
    lines += [
        "", f"| sign-in ({args.sign_ins} new users a store, one at a time) | `GET /callback` over HTTP p50 / p95 ms "
        "| whole sign-in p50 ms | in-process view p50 ms | provider's share p50 ms | **site's own time** p50 / p95 ms "
        "| provider requests per sign-in (browser's and site's) |", "|---|---|---|---|---|---|---|",
    ]
    for name, figures in run.sign_ins.items():
        per = figures["provider_per_sign_in"]
        lines.append(
            f"| sessions in {name} | {figures['http_callback']['p50']:.1f} / {figures['http_callback']['p95']:.1f} | "
            f"{figures['http_whole']['p50']:.1f} | {figures['callback']['p50']:.1f} | {figures['provider']['p50']:.1f} | "
            f"{figures['own']['p50']:.1f} / {figures['own']['p95']:.1f} | {'n/a' if per is None else f'{per:.1f}'} |")
    warm, cold = run.sign_ins["files"]["warm"], run.sign_ins["files"]["cold"]
    lines += [
        "",
        f"Calls per sign-in (a new user, warm process): browser → site {warm['browser_to_site']}, browser → provider "
        f"{warm['browser_to_provider']}, site → provider {len(warm['site_to_provider'])} "
        f"({', '.join(warm['site_to_provider'])}; {warm['in_callback']} of them in the callback); the first sign-in "
        f"of a process also fetches what it keeps: {len(cold['site_to_provider'])} ({', '.join(cold['site_to_provider'])}). "
        "The site's own time is the view's time in-process minus the time it waited for the provider.",
        "",
        f"Cookie: the `{COOKIE_NAME}=<value>` pair is {cookie['pair']} bytes (an opaque {cookie['value']}-character id; "
        f"{run.cookies['redis']['pair']} with Redis); the whole `Set-Cookie` header value is {cookie['set_cookie']} bytes "
        f"(attributes included). The cookie-session baseline's cookie holding the same session is "
        f"{cookie['cookie_session_whole']} bytes ({cookie['cookie_session_user_only']} with the user alone, no tokens; "
        f"browsers keep {cookie['browser_limit']} at most).",
        "",
        _footnote(run, elapsed),
        "<!-- /bench.py -->",
    ]
    return "\n".join(lines)


def _footnote(run: Run, elapsed: float) -> str:
    results = run.results
    per_round = " · ".join(f"{page.key}: " + ", ".join(f"{r[page.key].rps:.0f}" for r in results) for page in PAGES)
    every = [r for this_round in results for r in this_round.values()]
    others = [r.other_cpu for r in every if r.other_cpu is not None]
    splits = [r.worker_split[0] for r in every if len(r.worker_split) > 1]
    busy = (
        f"Other processes used {statistics.median(others):.0%} of the machine's CPU during the rounds "
        f"(median; max {max(others):.0%}){' ⚠ busy machine: the ratios are less reliable' if max(others) > 0.10 else ''}. "
        if others else ""
    ) + (f"Busiest worker's share of the workers' CPU: median {statistics.median(splits):.0%}, max {max(splits):.0%}. "
         if splits else "")
    before, after = run.sessions
    rewritten = sum(1 for name, ns in after.items() if before.get(name) not in (None, ns))
    return (f"req/s per round: {per_round}. {busy}Session files in the store: {len(before)} before the load, "
            f"{len(after)} after, {rewritten} rewritten meanwhile. Runs repeated because one worker got all "
            f"connections: {run.reruns}. Start-up, sign-ins and rounds took {elapsed:.0f} s.")


def profile_section(cluster: Cluster, headers: dict[str, str | None], run: Run, missed: list[Target],
                    deadline: float) -> str:
    """Profiles the pages with a missed target (all with --profile), in-process; returns it as Markdown."""
    why = "requested" if run.args.profile else "missed: " + ", ".join(target.text(short=True) for target in missed)
    heading = f"### Where the time goes ({why})"
    print(f"\n{heading}\n")
    if time.monotonic() + 15 > deadline:
        note = "Skipped: too little of --budget left."
        print(note)
        return f"{heading}\n\n{note}"
    keys = [page.key for page in PAGES if page.key != "bare" and (run.args.profile or any(t.page == page.key for t in missed))]
    apps = {name: create_bench_app(instance.env) for name, instance in cluster.instances.items()}
    profiled = [Profiled(page.key, page.label, apps[page.instance], cluster.instances[page.instance].base_url,
                         page.path, headers[page.key], USERNAME.title(), page.key != "bare")
                for page in PAGES if page.key == "bare" or page.key in keys]
    with Tee() as tee:
        try:
            profile_pages(profiled[0], profiled[1:])
        except OverBudget:
            print("\n(stopped here: the run reached --budget)")
    return f"{heading}\n\n```text\n{tee.text().strip()}\n```"


def write_results(report: str) -> None:
    """bench/RESULTS.md: what the file is, this run, and the load test's section as bench/load.py last wrote it."""
    load = section(RESULTS_MD, "load.py")
    intro = ("# Benchmark and load-test results\n\n"
             "Written by `python -m bench.bench --write-results` (the benchmark, the first section) and "
             "`python -m bench.load` (the load test, which replaces only its own section). Both run on loopback "
             "only and stop every process they start. The machine and its load average at the start are in each "
             "section; absolute numbers move with other work on the machine, so compare rows of one run.")
    RESULTS_MD.write_text("\n\n".join(part for part in (intro, report, load) if part) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
