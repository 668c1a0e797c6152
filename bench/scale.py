"""The sign-in figures bench.py reports next to the page ratios: the callback, the calls, the cookie.

- `callback_in_process`: the site's own time in `GET /callback` (code exchange, ID-token check, userinfo,
  session and sign-in index writes) without the provider's: the view runs in this process (Flask's test
  client, the instance's settings and store) and the time spent waiting for the provider
  (`flask_logto.oidc_core.fetch_json`) is taken off; it also counts the calls of each sign-in (browser →
  site, browser → provider, site → provider).
- `stored_session`: the session Redis keeps for a cookie, for the cookie-session baseline (`/bench/cookie`).
- `cookie_sizes`: the site's cookie (`site_session=<opaque id>`) vs the cookie a cookie session would need.
"""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlsplit

import requests

from bench.bench_app import cookie_session_value, create_bench_app
from bench.common import COOKIE_NAME, Instance, SignIn, stats
from tests.harness import follow_to_callback, page_text

BROWSER_COOKIE_LIMIT = 4096  # bytes per cookie that browsers keep (RFC 6265's minimum; what they all use)


class _CountingSession(requests.Session):
    """A browser that counts its requests."""

    def __init__(self) -> None:
        super().__init__()
        self.requests = 0

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        self.requests += 1
        return super().request(method, url, *args, **kwargs)


class _ProviderCalls:
    """Wraps `oidc_core.fetch_json` (every call the site makes to the provider): the calls and the time waited."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.calls: list[str] = []
        self.waited = 0.0

    def __enter__(self) -> _ProviderCalls:
        from flask_logto import oidc_core

        self.module, self.original = oidc_core, oidc_core.fetch_json

        async def fetch_json(method: str, url: str, **request: Any) -> Any:
            started = time.perf_counter()
            try:
                return await self.original(method, url, **request)
            finally:
                with self.lock:
                    self.waited += time.perf_counter() - started
                    self.calls.append(f"{method} {urlsplit(url).path}")

        oidc_core.fetch_json = fetch_json  # type: ignore[assignment]
        return self

    def __exit__(self, *_: object) -> None:
        self.module.fetch_json = self.original  # type: ignore[assignment]

    def reset(self) -> None:
        with self.lock:
            self.calls, self.waited = [], 0.0


def callback_in_process(instance: Instance, sign_ins: int, prefix: str) -> dict[str, Any]:
    """`sign_ins` sign-ins of new users through an in-process copy of `instance`, after one to warm it up.

    Returns stats (ms) of the callback's view time, of the provider's share of it and of the rest (the
    site's own time), and the calls of the first (cold) and of a warm sign-in.
    """
    app = create_bench_app(instance.env)
    samples: dict[str, list[float]] = {"callback": [], "provider": [], "own": []}
    calls: list[dict[str, Any]] = []
    with _ProviderCalls() as provider:
        for number in range(1 + sign_ins):
            provider.reset()
            site, browser = app.test_client(), _CountingSession()
            response = site.get("/sign-in", base_url=instance.base_url)
            if response.status_code != 302:
                raise RuntimeError(f"in-process /sign-in answered {response.status_code}")
            try:
                callback = follow_to_callback(browser, response.headers["Location"], instance.base_url,
                                              username=f"{prefix}-{number:03d}")
            except AssertionError as failure:
                raise RuntimeError(f"sign-in failed at the provider: {failure}") from None
            before = len(provider.calls), provider.waited
            started = time.perf_counter()
            response = site.get(callback)
            view = time.perf_counter() - started
            if response.status_code != 302 or site.get_cookie(COOKIE_NAME) is None:
                raise RuntimeError(f"in-process /callback answered {response.status_code}: {page_text(response.text)[:200]}")
            waited = provider.waited - before[1]
            calls.append({"browser_to_site": 2, "browser_to_provider": browser.requests,
                          "site_to_provider": list(provider.calls), "in_callback": len(provider.calls) - before[0]})
            if number:  # the first one fetched the discovery document and the keys
                samples["callback"].append(view * 1000)
                samples["provider"].append(waited * 1000)
                samples["own"].append((view - waited) * 1000)
    return {**{key: stats(values) for key, values in samples.items()}, "cold": calls[0], "warm": calls[-1]}


def stored_session(redis_client: Any, cookie: str) -> dict[str, Any]:
    """The session Redis keeps for this cookie (decoded as Flask-Session's msgpack)."""
    import msgspec

    raw = redis_client.get(f"session:{cookie}")
    if raw is None:
        raise SystemExit("the signed-in session is not in Redis")
    return msgspec.msgpack.decode(raw)


def cookie_sizes(run: SignIn, secret_key: str, session: dict[str, Any]) -> dict[str, int]:
    """Bytes of the site's cookie (the `site_session=<value>` pair and the whole Set-Cookie header) vs a cookie session's."""
    whole = cookie_session_value(secret_key, session)
    user_only = cookie_session_value(secret_key, {"auth.user": session["auth.user"]})
    return {"pair": len(f"{COOKIE_NAME}={run.cookie}".encode()), "set_cookie": len(run.set_cookie.encode()),
            "value": len(run.cookie), "cookie_session_whole": len(whole), "cookie_session_user_only": len(user_only),
            "browser_limit": BROWSER_COOKIE_LIMIT}
