"""Rate limits (Flask-Limiter): how often one client address, or one signed-in person, may ask for a thing.

- `setup_limiter(app, store, data_dir)`: one `Limiter` per app. It counts per client address
  (`request.remote_addr`: the connection's; an app behind proxies says how many it trusts with Werkzeug's
  `ProxyFix`, so a made-up `X-Forwarded-For` never buys a fresh allowance; an IPv6 client counts per /64,
  the block one subscriber gets, so a block's addresses do not each get one). Counters live where the
  sessions live: in their Redis with `LOGTO_REDIS_URL` (every instance counts together), else in an
  SQLite file in `LOGTO_DATA_DIR` that the machine's worker processes share (limit_storage.py).
  Flask-Limiter's own settings apply: `RATELIMIT_ENABLED` (default true), `RATELIMIT_STORAGE_URI`, ...
- `limit_views(app, endpoints, setting, ...)`: a limit, read from `app.config[setting]` (e.g. "20 per
  minute"), on views already registered. With `check_csrf` the view's CSRF check comes after the limit
  has counted the request, so requests refused for their CSRF token count too.
- `too_many_requests()`: the 429 page, with `Retry-After`, and one log line per client and window.

The unit's own limits are `UNIT_LIMITS`; a site adds its own with `check_limit` and `limit_views`.
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import math
import time
from collections.abc import Callable, Iterable, MutableMapping
from pathlib import Path
from typing import Any

import limits
from flask import Flask, current_app, render_template, request
from flask_limiter import Limiter

from flask_logto.config import check_flag
from flask_logto.errors import ConfigError
from flask_logto.i18n import N_
from flask_logto.limit_storage import SCHEME as SQLITE_SCHEME
from flask_logto.session_store import STORE_ERRORS, RedisStore, Store

log = logging.getLogger("auth")
LIMITER = "logto_auth_limiter"  # its key in app.extensions
# The unit's limits (extension.py puts them on its routes): per client address, sign-in starts (/sign-in and
# /sign-up together) and callbacks; sign-outs per person once signed in; refused back-channel logouts only.
UNIT_LIMITS = {
    "RATELIMIT_SIGN_IN": "20 per minute",
    "RATELIMIT_CALLBACK": "60 per minute",
    "RATELIMIT_SIGN_OUT": "30 per minute",
    "RATELIMIT_BACKCHANNEL_LOGOUT": "120 per minute",
}
TITLE = N_("Too many requests")
MESSAGE = N_("You have done this too often in a short time. Please wait %(seconds)s seconds and try again.")


def check_limit(config: MutableMapping[str, Any], name: str, default: str) -> str:
    """`config[name]` (default `default`) as a checked Flask-Limiter limit string, written back; `ConfigError` if not one."""
    raw = config.get(name)
    value = default if raw in (None, "") else str(raw).strip()
    try:
        limits.parse_many(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a rate limit: use e.g. '20 per minute' or '100/hour'") from None
    config[name] = value
    return value


def setup_limiter(app: Flask, store: Store, data_dir: Path, redis_url: str) -> Limiter:
    """The app's `Limiter`, its counters beside the sessions (unless `RATELIMIT_STORAGE_URI` says where)."""
    config = app.config
    check_flag(config, "RATELIMIT_ENABLED", True)
    for name, default in UNIT_LIMITS.items():
        check_limit(config, name, default)
    options = dict(config.get("RATELIMIT_STORAGE_OPTIONS") or {})
    options.setdefault("wrap_exceptions", True)  # any failure of the counters' store is a `StorageError`
    if not config.get("RATELIMIT_STORAGE_URI"):
        if isinstance(store, RedisStore):
            config["RATELIMIT_STORAGE_URI"] = redis_url or "redis://"
            options.setdefault("connection_pool", store.client.connection_pool)  # its short timeouts
        else:
            config["RATELIMIT_STORAGE_URI"] = f"{SQLITE_SCHEME}://{data_dir / 'ratelimits.sqlite'}"
    config["RATELIMIT_STORAGE_OPTIONS"] = options
    strategy = config.setdefault("RATELIMIT_STRATEGY", "fixed-window")
    if config["RATELIMIT_STORAGE_URI"].startswith(SQLITE_SCHEME) and strategy != "fixed-window":
        raise ConfigError(f"RATELIMIT_STRATEGY={strategy!r} needs counters in Redis: set LOGTO_REDIS_URL")
    limiter = RouteLimiter(client_address, app=app)
    app.extensions[LIMITER] = limiter
    logging.getLogger("flask-limiter").setLevel(logging.WARNING)  # its INFO line per refused request, client unquoted
    return limiter


class RouteLimiter(Limiter):
    """Flask-Limiter for limits put on routes (`limit_views`), which their own wrappers check.

    Flask-Limiter also checks app-wide limits (default, application, meta and blueprint limits) before
    every request; with none set, that check finds nothing at ~90 µs a request (a tenth of a signed-in
    page), so it is skipped until an app sets one (in `app.config`, e.g. `RATELIMIT_DEFAULT`, or on this limiter).
    """

    def _check_request_limit(self, callable_name: str | None = None, in_middleware: bool = True) -> None:
        if in_middleware and not self._has_app_wide_limits():
            return
        super()._check_request_limit(callable_name, in_middleware)

    def _has_app_wide_limits(self) -> bool:
        manager = self.limit_manager
        return bool(
            manager.default_limits or manager.application_limits or manager._blueprint_limits or self._meta_limits
        )


def client_address() -> str:
    """The client's address; an IPv6 one as its /64 (an IPv4 one mapped into IPv6 as itself)."""
    address = request.remote_addr or "unknown"
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:  # e.g. a unix socket's
        return address
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{parsed}/64", strict=False))
    return address


def limit_views(
    app: Flask, endpoints: Iterable[str], setting: str, *, key: Callable[[], str] = client_address,
    scope: str | None = None, check_csrf: bool = False, refused_only: bool = False,
) -> None:
    """Limit these registered views to `app.config[setting]` per `key()`; with `scope`, all of them together.

    With `check_csrf`, the app-wide CSRF check (which runs before any view, and so before the limit)
    skips them and they check the token themselves, after the limit has counted the request. With
    `refused_only`, only the answers that refused the request (4xx) count.
    """
    limiter: Limiter = app.extensions[LIMITER]

    def value() -> str:
        return str(current_app.config[setting])

    def refused(response: Any) -> bool:
        return 400 <= int(response.status_code) < 500

    deduct_when = refused if refused_only else None
    if scope:
        decorate = limiter.shared_limit(value, scope=scope, key_func=key, deduct_when=deduct_when)
    else:
        decorate = limiter.limit(value, key_func=key, deduct_when=deduct_when)
    for endpoint in endpoints:
        view: Callable[..., Any] = app.view_functions[endpoint]
        if check_csrf:
            view = _csrf_checked(app, view)
        app.view_functions[endpoint] = decorate(view)


def _csrf_checked(app: Flask, view: Callable[..., Any]) -> Callable[..., Any]:
    csrf = app.extensions["csrf"]
    csrf.exempt(view)

    @functools.wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()
        return current_app.ensure_sync(view)(*args, **kwargs)

    return checked


def too_many_requests() -> tuple[str, int, dict[str, str]]:
    """The 429 page in the visitor's language, with `Retry-After`; logged once per client and window."""
    limiter: Limiter = current_app.extensions[LIMITER]
    breached = limiter.current_limit
    retry_after = 60
    if breached is not None:
        try:
            retry_after = max(1, math.ceil(breached.reset_at - time.time()))
            first = limiter.storage.incr(f"breach-logged/{breached.key}", retry_after) == 1
        except STORE_ERRORS:  # the page matters more than the log line
            first = False
        if first:
            *_, client, scope = breached.request_args
            log.warning(
                "event=rate-limited client=%r scope=%r limit=%r retry_after=%d",
                client, scope, str(breached.limit), retry_after,
            )
    html = render_template("auth/error.html", title=TITLE, message=MESSAGE, values={"seconds": retry_after})
    return html, 429, {"Retry-After": str(retry_after)}
