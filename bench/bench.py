"""Benchmark: what signing in costs, as ratios to a bare Flask route on the same server, in one run.

    python bench/bench.py [--requests 400]

Starts the dev identity provider and the site (threaded Werkzeug server) on free loopback ports,
signs one user in, then times sequential requests from one client. Prints medians, p95 and the
ratio of each median to `/healthz` (a route that touches neither the session nor Logto).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import requests

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.harness import Stack, sign_in, start_stack  # noqa: E402


def timed(action: Callable[[], requests.Response], count: int, expect: int) -> list[float]:
    samples = []
    for _ in range(count):
        started = time.perf_counter()
        response = action()
        samples.append((time.perf_counter() - started) * 1000)
        if response.status_code != expect:
            raise SystemExit(f"unexpected {response.status_code} from {response.url}")
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400, help="requests per page (sign-ins: a quarter)")
    count = parser.parse_args().requests

    with tempfile.TemporaryDirectory() as data_dir:
        stack = start_stack(Path(data_dir))
        for name in ("werkzeug", "auth"):  # one log line per request would be measured too
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            rows = measure(stack, count)
        finally:
            stack.stop()

    base = statistics.median(rows[0][1])
    print(f"{'what':44} {'median ms':>10} {'p95 ms':>8} {'x healthz':>10}")
    for name, samples in rows:
        median = statistics.median(samples)
        p95 = statistics.quantiles(samples, n=20)[-1]
        print(f"{name:44} {median:10.2f} {p95:8.2f} {median / base:10.1f}")


def measure(stack: Stack, count: int) -> list[tuple[str, list[float]]]:
    url = stack.base_url
    anonymous, signed_in = requests.Session(), requests.Session()
    sign_in(stack, signed_in, "bench-user")
    get = lambda http, path, **kw: (lambda: http.get(url + path, allow_redirects=False, timeout=10, **kw))  # noqa: E731

    for http in (anonymous, signed_in):  # warm up connections, discovery and JWKS caches
        timed(get(http, "/"), 20, 200)

    def whole_sign_in() -> requests.Response:
        return sign_in(stack, requests.Session(), "bench-user")

    return [
        ("GET /healthz (bare route)", timed(get(anonymous, "/healthz"), count, 200)),
        ("GET / signed out", timed(get(anonymous, "/"), count, 200)),
        ("GET / signed in (session + isAuthenticated)", timed(get(signed_in, "/"), count, 200)),
        ("GET /profile signed in (+ Logto userinfo)", timed(get(signed_in, "/profile"), count, 200)),
        ("GET /sign-in (build authorize URL)", timed(get(anonymous, "/sign-in"), count, 302)),
        ("whole sign-in (site + provider, ~7 requests)", timed(whole_sign_in, max(count // 4, 10), 302)),
    ]


if __name__ == "__main__":
    main()
