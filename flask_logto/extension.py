"""`LogtoAuth`, the Flask extension: checks the settings, sets up sessions, CSRF and rate limits if the app
has none, registers the `auth` blueprint (views.py), and answers `userinfo()` and `hf_token()`.

Without a server-side session of the app's own, `init_app` sets up Flask-Session on files in
`LOGTO_DATA_DIR/sessions`, or in Redis with `LOGTO_REDIS_URL` (session_store.py); tokens never reach a cookie.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any
from weakref import WeakKeyDictionary

from flask import Flask, current_app, session
from flask.sessions import SecureCookieSessionInterface
from flask_session import Session
from flask_session.base import ServerSideSessionInterface
from flask_wtf.csrf import CSRFProtect

from flask_logto.config import AuthSettings, check_url_prefix, read_auth_settings
from flask_logto.connection import Logto
from flask_logto.errors import ConfigError
from flask_logto.hub_token import kept_token, session_hf_token
from flask_logto.rate_limits import limit_views, setup_limiter
from flask_logto.session_keys import HF_TOKEN
from flask_logto.session_store import Store, session_interface, store_beside
from flask_logto.views import (
    _kept_userinfo,
    _logto,
    _refresh_session,
    _signed_in,
    backchannel_logout,
    blueprint,
    run_sync,
    signed_in_key,
)


class LogtoAuth:
    """The Flask extension: checks the settings, sets up sessions and CSRF if needed, adds the routes.

    One object may serve several apps: each app's own part (its settings, its Logto connection and session
    store: a `Logto`) is kept per app, and `app.extensions["logto"]` is this object, so any code reaches it
    with `current_app.extensions["logto"]`.
    """

    def __init__(
        self, app: Flask | None = None, *, ui_locales: Callable[[], str | None] | None = None, url_prefix: str = "",
    ) -> None:
        """`ui_locales`: optional, called at each sign-in for the `ui_locales` to send Logto (e.g. "ja"), or None.
        `url_prefix`: where the routes go (e.g. "/auth": `/auth/sign-in`, `/auth/callback`, ...); default `/`."""
        self.ui_locales = ui_locales
        self.url_prefix = check_url_prefix(url_prefix)
        self._per_app: WeakKeyDictionary[Flask, Logto] = WeakKeyDictionary()
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        settings = read_auth_settings(app.config)
        store = _server_side_sessions(app, settings)
        # First, so that its hooks run before CSRFProtect's (which reads the session: a store that failed is a 503)
        app.register_blueprint(blueprint, url_prefix=self.url_prefix or None)
        setup_limiter(app, store, settings.data_dir, settings.session_redis_url)
        app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the form token lives as long as the session
        if "csrf" not in app.extensions:
            CSRFProtect(app)
        app.extensions["csrf"].exempt(backchannel_logout)  # Logto's server posts it, with a signed token
        self._per_app[app] = Logto(_routed(app, settings), store, ui_locales=self.ui_locales)
        app.extensions["logto"] = self
        limit_views(app, ["auth.sign_in", "auth.sign_up"], "RATELIMIT_SIGN_IN", scope="sign-in")
        limit_views(app, ["auth.callback"], "RATELIMIT_CALLBACK")
        # per person once signed in: nobody behind the same address can stop someone from signing out
        limit_views(app, ["auth.sign_out"], "RATELIMIT_SIGN_OUT", key=signed_in_key, check_csrf=True)
        # Logto's servers post every user's logout: only the refused ones count
        limit_views(app, ["auth.backchannel_logout"], "RATELIMIT_BACKCHANNEL_LOGOUT", refused_only=True)

    def connection(self, app: Flask | None = None) -> Logto:
        """This app's (default: the current app's) Logto connection, settings and session store."""
        return self._per_app[app or current_app._get_current_object()]  # type: ignore[attr-defined]

    @property
    def settings(self) -> AuthSettings:
        """The current app's settings, as `init_app` checked them."""
        return self.connection().settings

    def userinfo(self) -> dict[str, Any]:
        """The signed-in user's Logto userinfo, refreshing the access token when it is due (sync views)."""
        _signed_in("userinfo")
        # The steady state needs no event loop (async_to_sync costs a thread and a loop per call).
        return _kept_userinfo() or run_sync(self.userinfo_async)

    async def userinfo_async(self) -> dict[str, Any]:
        """`userinfo()` for async views. No call to Logto unless the access token is due."""
        user = _signed_in("userinfo")
        return _kept_userinfo() or await _refresh_session(user)

    def hf_token(self) -> str:
        """The signed-in user's Hugging Face access token, kept for them by Logto (sync views).

        Raises an `HfTokenUnavailable` that says why there is none (`HfTokenNotStored`, `HfTokenExpired`,
        `HfTokenNotSetUp`), `SessionEnded` or `LogtoUnavailable`. Server-side only: never send it to the browser.
        """
        _signed_in("hf-token")
        # A kept, unexpired token needs no event loop (as userinfo's steady state).
        return kept_token(session.get(HF_TOKEN)) or run_sync(self.hf_token_async)

    async def hf_token_async(self) -> str:
        """`hf_token()` for async views. No call to Logto while the session keeps an unexpired one."""
        user = _signed_in("hf-token")
        return await session_hf_token(_logto(), session, lambda: _refresh_session(user))


def _routed(app: Flask, settings: AuthSettings) -> AuthSettings:
    """The settings with the paths the app's URL map gives the unit's routes (as `url_for` builds them)."""
    urls = app.url_map.bind("localhost")
    paths = {endpoint: urls.build(f"auth.{endpoint}") for endpoint in ROUTES}
    return replace(
        settings, callback_path=paths["callback"], backchannel_logout_path=paths["backchannel_logout"],
        auth_paths=frozenset(paths.values()),
    )


ROUTES = ("sign_in", "sign_up", "callback", "sign_out", "backchannel_logout")


def _server_side_sessions(app: Flask, settings: AuthSettings) -> Store:
    """Keep the session (and so the tokens) on the server: Flask-Session, on files or Redis unless the app chose a store.

    Returns the store the unit keeps its own shared state in, beside the sessions (session_store.py).
    """
    app.config["PERMANENT_SESSION_LIFETIME"] = settings.session_lifetime
    if isinstance(app.session_interface, ServerSideSessionInterface):
        if settings.session_redis_url:
            raise ConfigError("LOGTO_REDIS_URL is set but the app set up Flask-Session itself: keep one of the two")
        return store_beside(app.session_interface, settings.data_dir)
    if type(app.session_interface) is not SecureCookieSessionInterface:
        raise ConfigError(
            "the app's session interface is neither Flask's default nor Flask-Session's: "
            "set up Flask-Session (its session id is what the sign-in renews) or leave sessions to LogtoAuth"
        )
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if app.config.get("SESSION_COOKIE_SAMESITE") is None:
        app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SECURE"] = app.config.get("SESSION_COOKIE_SECURE") or settings.is_https
    app.config["SESSION_REFRESH_EACH_REQUEST"] = False  # write the session only when it changed
    if app.config.get("SESSION_TYPE") not in (None, "null"):  # the app chose a Flask-Session backend by config
        if settings.session_redis_url:
            raise ConfigError("LOGTO_REDIS_URL is set but so is SESSION_TYPE: keep one of the two")
        Session(app)
        return store_beside(app.session_interface, settings.data_dir)
    app.session_interface, store = session_interface(app, settings.data_dir, settings.session_redis_url)
    return store
