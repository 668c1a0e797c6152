"""Where the time goes: the pages in-process under pyinstrument, as differences from the bare page.

bench.py calls `profile_pages` for the pages that missed a target, after gunicorn and the provider have
stopped (a steady-state page must not need the provider: if one does, it shows as an error here). Each page
runs through Flask's test client of an app like the instance's (same settings, store and cookie), one
thread; the full trees go to bench/results/profile-<page>.txt.
"""

from __future__ import annotations

import collections
import contextlib
import io
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.common import COOKIE_NAME, ROOT

RESULTS = ROOT / "bench" / "results"
PROFILE_REQUESTS = 200
_PLUMBING = re.compile(r"^(bench/|bench\.py|profiling\.py|werkzeug|flask/|click|pyinstrument|threading|contextlib|<frozen)")


@dataclass
class Profiled:
    key: str
    label: str
    app: Any  # a Flask app
    base_url: str
    path: str
    cookie_header: str | None
    name: str  # the user's name: on the page if and only if `signed_in`
    signed_in: bool


class Tee(contextlib.redirect_stdout):
    """Prints as usual and keeps a copy (the profile also goes to the report)."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.terminal = sys.stdout
        super().__init__(self)  # type: ignore[arg-type]

    def write(self, text: str) -> int:
        self.buffer.write(text)
        return self.terminal.write(text)

    def flush(self) -> None:
        self.terminal.flush()

    def text(self) -> str:
        return self.buffer.getvalue()


def profile_pages(bare: Profiled, pages: list[Profiled]) -> None:
    """Each page with pyinstrument; prints, per page, the functions behind its difference from `bare`."""
    try:
        from pyinstrument import Profiler
    except ImportError:
        print("pyinstrument is not installed: pip install -r requirements-dev.txt")
        return
    per_page: dict[str, tuple[float, dict[str, float], dict[str, float]]] = {}
    plain: dict[str, float] = {}
    for page in [bare, *pages]:
        call = _caller(page)
        for _ in range(50):
            call()
        started = time.perf_counter()
        for _ in range(PROFILE_REQUESTS):
            call()
        plain[page.key] = (time.perf_counter() - started) * 1000 / PROFILE_REQUESTS
        profiler = Profiler(interval=0.0005, use_timing_thread=True)  # this VM's clock is slow to read
        started = time.perf_counter()
        profiler.start()
        for _ in range(PROFILE_REQUESTS):
            call()
        session = profiler.stop()
        per_page[page.key] = ((time.perf_counter() - started) * 1000 / PROFILE_REQUESTS, *_times(session.root_frame()))
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / f"profile-{page.key}.txt").write_text(
            profiler.output_text(unicode=True, color=False, show_all=False), encoding="utf-8")

    labels = {page.key: page.label for page in [bare, *pages]}
    base_ms, base_inclusive, base_own = per_page[bare.key]
    print(f"In-process, Flask test client, {PROFILE_REQUESTS} requests per page, one thread. Per request "
          "without the profiler: " + ", ".join(f"{labels[key]} {ms:.2f} ms" for key, ms in plain.items())
          + "; under pyinstrument (which slows every call, so read the shares): "
          + ", ".join(f"{ms:.2f} ms" for ms, _, _ in per_page.values())
          + ". Full trees: bench/results/profile-*.txt.")
    scale = 1e6 / PROFILE_REQUESTS  # seconds of samples over all requests -> µs per request
    for page in pages:
        ms, inclusive, own = per_page[page.key]
        print(f"\n{page.label}: {ms - base_ms:+.2f} ms per request over the bare page. Where it goes "
              "(µs per request more than on the bare page):")
        extra = sorted(((t - base_inclusive.get(f, 0.0)) * scale, f) for f, t in inclusive.items())
        shown = [(t, f) for t, f in reversed(extra) if t > 10 and not _PLUMBING.match(f.split(" ", 1)[1])]
        print("  inclusive (the function and what it calls):")
        for us, name in shown[:14]:
            print(f"    {us:7.0f} µs  {name}")
        extra_own = sorted(((t - base_own.get(f, 0.0)) * scale, f) for f, t in own.items())
        print("  own time (top 10):")
        for us, name in list(reversed(extra_own))[:10]:
            print(f"    {us:7.0f} µs  {name}")
    seen: set[int] = set()
    for page in pages:  # once per app, in a request with the site's own session cookie
        if (page.cookie_header or "").startswith(f"{COOKIE_NAME}=") and id(page.app) not in seen:
            seen.add(id(page.app))
            direct_costs(page)


def _caller(page: Profiled) -> Callable[[], None]:
    client = page.app.test_client(use_cookies=False)  # the cookie goes in a header, as from wrk
    headers = {"Cookie": page.cookie_header} if page.cookie_header else {}

    def call() -> None:
        response = client.get(page.path, base_url=page.base_url, headers=headers)
        if response.status_code != 200 or page.signed_in != (page.name in response.text):
            raise SystemExit(f"in-process {page.label} answered {response.status_code}, "
                             f"{'without' if page.signed_in else 'with'} the user's name")

    return call


def direct_costs(page: Profiled, count: int = 200) -> None:
    """What the profile points at, timed on its own (µs per call, one thread, in a signed-in request)."""
    from asgiref.sync import async_to_sync
    from flask import g, render_template, request, session

    app = page.app

    async def nothing() -> None:
        return None

    def timed(what: str, action: Callable[[], Any]) -> None:
        try:
            action()
            started = time.perf_counter()
            for _ in range(count):
                action()
            print(f"    {(time.perf_counter() - started) * 1e6 / count:7.0f} µs  {what}")
        except Exception as error:  # the site's internals move; the rest of the report still helps
            print(f"        n/a  {what}: {type(error).__name__}: {error}")

    def csrf_token() -> Any:
        g.pop(app.config.get("WTF_CSRF_FIELD_NAME", "csrf_token"), None)  # Flask-WTF caches it per request
        return app.jinja_env.globals["csrf_token"]()

    def userinfo() -> Any:
        from flask_app import auth

        return auth.userinfo()

    def steady_state_check() -> Any:
        from flask_logto.connection import access_token_due
        from flask_logto.session_keys import USERINFO, access_token_map

        return session.get(USERINFO) if not access_token_due(access_token_map(session)) else None

    print(f"\nThe same costs timed directly, in one signed-in request context ({page.label}):")
    with app.test_request_context("/profile", base_url=page.base_url, headers={"Cookie": page.cookie_header}):
        timed(f"session load ({type(app.session_interface).__name__}.open_session)",
              lambda: app.session_interface.open_session(app, request))
        timed("csrf_token() (Flask-WTF: a new signed token each request)", csrf_token)
        timed("render_template('index.html') signed in (csrf_token() cached after the first call)",
              lambda: render_template("index.html"))
        timed("render_template('bench/bare.html')", lambda: render_template("bench/bare.html", title="Bare page"))
        timed("auth.userinfo(), steady state (no call to Logto)", userinfo)
        timed("the same steady-state check without async_to_sync (session.get + access_token_due)",
              steady_state_check)
        timed("async_to_sync() around a coroutine that does nothing (asgiref, no event loop in the thread)",
              lambda: async_to_sync(nothing)())


def _times(root: Any) -> tuple[dict[str, float], dict[str, float]]:
    """Inclusive (once per stack, so recursion is not counted twice) and own seconds per function."""
    inclusive: dict[str, float] = collections.defaultdict(float)
    own: dict[str, float] = collections.defaultdict(float)

    def visit(frame: Any, above: frozenset[str]) -> None:
        if frame.is_synthetic:  # "[self]", "[await]": already in the caller's own time
            return
        name = f"{frame.function} {frame.file_path_short}:{frame.line_no}"
        if name not in above:
            inclusive[name] += frame.time
        own[name] += frame.total_self_time
        for child in frame.children:
            visit(child, above | {name})

    visit(root, frozenset())
    return inclusive, own
