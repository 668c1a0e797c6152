"""Sign in with Hugging Face through Logto, as one Flask extension: `LogtoAuth`.

    from client import LogtoAuth, current_user, login_required
    auth = LogtoAuth(app)            # or: auth = LogtoAuth(); auth.init_app(app)

    @app.get("/private")
    @login_required
    def private():
        return f"Hello {current_user().hf_username}"

Settings come from `app.config` and are checked by `init_app` (a mistake raises `ConfigError`, one
line naming the key and the fix): `LOGTO_ENDPOINT`, `LOGTO_APP_ID`, `LOGTO_APP_SECRET`, `SECRET_KEY`,
`APP_BASE_URL`, `LOGTO_SCOPES`, `LOGTO_DIRECT_SIGN_IN`, `LOGTO_TIMEOUT`, `SESSION_LIFETIME`, `APP_DATA_DIR`,
`SESSION_REDIS_URL`, and the rate limits (logto_auth/rate_limits.py): `RATELIMIT_ENABLED`,
`RATELIMIT_STORAGE_URI`, `RATELIMIT_SIGN_IN`, `RATELIMIT_CALLBACK`, `RATELIMIT_SIGN_OUT`,
`RATELIMIT_BACKCHANNEL_LOGOUT`.

Routes (blueprint `auth`): `GET /sign-in?next=/path`, `GET /sign-up`, `GET /callback`, `POST /sign-out`
(CSRF token; also revokes the refresh token at Logto), `POST /backchannel-logout` (Logto's back-channel
logout: ends every site session of that Logto session, on every instance). Each is rate-limited per
client address (429 with Retry-After past it). Pages (override one with a template of the same name in the app's `templates/`):
`auth/layout.html`, `auth/error.html`, `auth/signed_out.html`.

Languages: the unit's pages and messages are in the visitor's language when the app uses Flask-Babel
(logto_auth/i18n.py), else in English; `LogtoAuth(app, ui_locales=callable)` sends Logto the language to show
its sign-in pages in (`ui_locales`, e.g. "ja"). Signing out flashes "You are signed out." (category `signed-out`).

Tokens never reach a cookie: without a server-side session, `init_app` sets up Flask-Session on files in
`APP_DATA_DIR/sessions`, or in Redis with `SESSION_REDIS_URL` (logto_auth/session_store.py: a session
without a completed sign-in lives 15 minutes; a store that is down or full gives a 503 page and the site
recovers when it is back); without CSRF protection, it turns on Flask-WTF's (`csrf_token()` in templates).

Session keys, all that the unit uses. Signing in and signing out clear the whole session (as Flask's
tutorial does at login); in between, the app's own keys are left alone.
- `auth.user`: the `SignedInUser`, as a dict
- `auth.userinfo`: Logto's userinfo from the sign-in or the last refresh
- `auth.pending`: sign-ins in progress, by `state` (PKCE verifier, nonce, start time, `next` path)
- `auth.hf_token`: the user's Hugging Face access token and its expiry, until it expires (logto_auth/hub_token.py)
- `logto.idToken`, `logto.refreshToken`, `logto.accessTokenMap`: the SDK's tokens
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable
from dataclasses import asdict
from typing import Any
from urllib.parse import urlsplit

import jwt
from asgiref.sync import async_to_sync
from flask import Blueprint, Flask, current_app, flash, g, redirect, render_template, request, session, url_for
from flask.sessions import SecureCookieSessionInterface
from flask_limiter.errors import RateLimitExceeded
from flask_session import Session
from flask_session.base import ServerSideSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect

from logto_auth.backchannel import BadLogoutToken
from logto_auth.config import AuthSettings, ConfigError, read_auth_settings
from logto_auth.connection import (
    USER_KEY,
    USERINFO_KEY,
    AuthFailure,
    BadCallback,
    Logto,
    LogtoUnavailable,
    SessionEnded,
    SignedInUser,
    SignInRejected,
    access_token_due,
)
from logto_auth.hub_token import (
    HfTokenExpired,
    HfTokenNotSetUp,
    HfTokenNotStored,
    HfTokenUnavailable,
    drop_expired,
    session_hf_token,
)
from logto_auth.i18n import N_, jinja_helpers, language_tag, translate
from logto_auth.rate_limits import client_address, limit_views, setup_limiter, too_many_requests
from logto_auth.session_store import (
    STORE_ERRORS,
    Store,
    delete_sessions,
    holds_sign_in,
    refuse_without_store,
    session_interface,
    store_beside,
    store_unavailable_page,
)
from logto_auth.token_refresh import TOKEN_KEYS

__all__ = [
    "LogtoAuth", "current_user", "login_required", "safe_next", "SignedInUser", "ConfigError",
    "AuthFailure", "BadCallback", "SignInRejected", "SessionEnded", "LogtoUnavailable",
    "HfTokenUnavailable", "HfTokenNotStored", "HfTokenExpired", "HfTokenNotSetUp",
]

log = logging.getLogger("auth")
AUTH_PATHS = frozenset({"/sign-in", "/sign-up", "/callback", "/sign-out"})
MAX_NEXT_LENGTH = 2048
_USER_CACHE = "_logto_auth_user"

blueprint = Blueprint("auth", __name__, template_folder="logto_auth/templates")


class LogtoAuth:
    """The Flask extension: checks the settings, sets up sessions and CSRF if needed, adds the routes."""

    def __init__(self, app: Flask | None = None, *, ui_locales: Callable[[], str | None] | None = None) -> None:
        """`ui_locales`: optional, called at each sign-in for the `ui_locales` to send Logto (e.g. "ja"), or None."""
        self.ui_locales = ui_locales
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        settings = read_auth_settings(app.config)
        store = _server_side_sessions(app, settings)
        setup_limiter(app, store, settings.data_dir, settings.session_redis_url)
        app.config.setdefault("WTF_CSRF_TIME_LIMIT", None)  # the form token lives as long as the session
        if "csrf" not in app.extensions:
            CSRFProtect(app)
        app.extensions["csrf"].exempt(backchannel_logout)  # Logto's server posts it, with a signed token
        app.extensions["logto_auth"] = Logto(settings, store, ui_locales=self.ui_locales)
        app.register_blueprint(blueprint)
        limit_views(app, ["auth.sign_in", "auth.sign_up"], "RATELIMIT_SIGN_IN", scope="sign-in")
        limit_views(app, ["auth.callback"], "RATELIMIT_CALLBACK")
        # per person once signed in: nobody behind the same address can stop someone from signing out
        limit_views(app, ["auth.sign_out"], "RATELIMIT_SIGN_OUT", key=signed_in_key, check_csrf=True)
        # Logto's servers post every user's logout: only the refused ones count
        limit_views(app, ["auth.backchannel_logout"], "RATELIMIT_BACKCHANNEL_LOGOUT", refused_only=True)

    @property
    def settings(self) -> AuthSettings:
        return _logto().settings

    def userinfo(self) -> dict[str, Any]:
        """The signed-in user's Logto userinfo, refreshing the access token when it is due (sync views)."""
        _signed_in("userinfo")
        # The steady state needs no event loop (async_to_sync costs a thread and a loop per call).
        return _kept_userinfo() or async_to_sync(self.userinfo_async)()

    async def userinfo_async(self) -> dict[str, Any]:
        """`userinfo()` for async views. No call to Logto unless the access token is due."""
        user = _signed_in("userinfo")
        return _kept_userinfo() or await _refresh_session(user)

    def hf_token(self) -> str:
        """The signed-in user's Hugging Face access token, kept for them by Logto (sync views).

        Raises an `HfTokenUnavailable` that says why there is none (`HfTokenNotStored`, `HfTokenExpired`,
        `HfTokenNotSetUp`), `SessionEnded` or `LogtoUnavailable`. Server-side only: never send it to the browser.
        """
        return async_to_sync(self.hf_token_async)()

    async def hf_token_async(self) -> str:
        """`hf_token()` for async views. No call to Logto while the session keeps an unexpired one."""
        user = _signed_in("hf-token")
        return await session_hf_token(_logto(), session, lambda: _refresh_session(user))


def _kept_userinfo() -> dict[str, Any] | None:
    """The userinfo kept with the session, while its access token is not due; else None."""
    stored = session.get(USERINFO_KEY)
    if isinstance(stored, dict) and stored and not access_token_due(session.get("logto.accessTokenMap")):
        return stored
    return None


def _signed_in(step: str) -> SignedInUser:
    user = current_user()
    if user is None:
        raise SessionEnded(N_("Please sign in."), f"{step}: nobody is signed in")
    return user


async def _refresh_session(user: SignedInUser) -> dict[str, Any]:
    """Refresh the session's tokens (one refresh at a time, for the same user); store and return the new userinfo."""
    tokens = {key: session.get(f"logto.{key}") for key in TOKEN_KEYS}
    new_tokens, userinfo = await _logto().refresh(_session_id(), tokens, user.sub)
    for key in TOKEN_KEYS:
        session[f"logto.{key}"] = new_tokens.get(key)
    id_claims = jwt.decode(new_tokens["idToken"], options={"verify_signature": False})  # verified in refresh
    session[USER_KEY] = asdict(SignedInUser.from_claims(id_claims, userinfo))
    session[USERINFO_KEY] = userinfo
    g.pop(_USER_CACHE, None)
    return userinfo


def signed_in_key() -> str:
    """A rate-limit key per signed-in person (their Logto id), else per client address."""
    user = current_user()
    return f"user:{user.sub}" if user else client_address()


def current_user() -> SignedInUser | None:
    """The signed-in user, from the session alone (no SDK client, no network), or None."""
    if _USER_CACHE not in g:
        setattr(g, _USER_CACHE, SignedInUser.from_session(session.get(USER_KEY)) if holds_sign_in(session) else None)
    user: SignedInUser | None = getattr(g, _USER_CACHE)
    return user


def login_required(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send a signed-out visitor to `/sign-in?next=<this path>`, and back here after. Sync or async views."""

    def to_sign_in() -> Any:
        return redirect(url_for("auth.sign_in", next=request.full_path.rstrip("?")))

    if inspect.iscoroutinefunction(view):
        @functools.wraps(view)
        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            return to_sign_in() if current_user() is None else await view(*args, **kwargs)

        return wrapped_async

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        return to_sign_in() if current_user() is None else view(*args, **kwargs)

    return wrapped


def safe_next(target: str | None) -> str:
    """`target` if it is a path on this site, else `/` (no `//host`, `/\\host`, schemes or control characters)."""
    if not target or len(target) > MAX_NEXT_LENGTH:
        return "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(not 0x21 <= ord(char) <= 0x7E for char in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path in AUTH_PATHS:
        return "/"
    return target


@blueprint.get("/sign-in")
async def sign_in() -> Any:
    return await _start_sign_in(sign_up=False)


@blueprint.get("/sign-up")
async def sign_up() -> Any:
    return await _start_sign_in(sign_up=True)


async def _start_sign_in(*, sign_up: bool) -> Any:
    next_path = safe_next(request.args.get("next"))
    return redirect(await _logto().start_sign_in(sign_up=sign_up, next_path=next_path))


@blueprint.get("/callback")
async def callback() -> Any:
    """Finish a sign-in: clear the session, keep the tokens, store the user, then a new session id."""
    tokens, user, userinfo, next_path = await _logto().finish_sign_in(request.query_string.decode("latin-1"))
    session.clear()
    for key in TOKEN_KEYS:
        if tokens.get(key) is not None:
            session[f"logto.{key}"] = tokens.get(key)
    session[USER_KEY] = asdict(user)
    session[USERINFO_KEY] = userinfo
    _renew_session_id()  # no session fixation
    id_claims = jwt.decode(tokens.data["idToken"], options={"verify_signature": False})  # verified in finish_sign_in
    _logto().sign_ins.remember(_session_id(), id_claims)  # for back-channel logouts
    g.pop(_USER_CACHE, None)
    log.info("event=sign-in user=%s", user.sub)
    return redirect(safe_next(next_path))


@blueprint.post("/sign-out")
async def sign_out() -> Any:
    """Clear the local session, revoke the refresh token, then end the Logto session (a page says so if
    Logto cannot be reached; a revocation that fails is logged and does not stop the sign-out)."""
    user = current_user()
    refresh_token = session.get("logto.refreshToken")
    session.clear()
    g.pop(_USER_CACHE, None)
    flash(translate(N_("You are signed out.")), "signed-out")
    _renew_session_id()  # the flash's session is not the one a back-channel logout ends
    if user is None:
        return redirect(_logto().settings.post_sign_out_uri)
    log.info("event=sign-out user=%s", user.sub)
    if refresh_token:
        try:
            await _logto().revoke_refresh_token(refresh_token)
        except LogtoUnavailable as failure:
            log.warning("event=revocation-failed user=%s cause=%r", user.sub, failure.cause)
    try:
        return redirect(await _logto().sign_out_url())
    except LogtoUnavailable as failure:
        log.warning("event=sign-out-local-only user=%s cause=%r", user.sub, failure.cause)
        return render_template("auth/signed_out.html"), 503


@blueprint.post("/backchannel-logout")
async def backchannel_logout() -> Any:
    """Logto's back-channel logout: a valid, unused logout token ends its Logto session's site sessions."""
    logto = _logto()
    try:
        claims = await logto.logout_claims(request.form.get("logout_token"))
        if not logto.sign_ins.first_use(claims):
            raise BadLogoutToken("jti already used (a replay)")
    except BadLogoutToken as bad:
        log.warning("event=backchannel-logout-refused cause=%r", str(bad))
        return {"error": "invalid_request", "error_description": "logout token rejected"}, 400, _NO_STORE
    ended = logto.sign_ins.site_sessions(claims)
    delete_sessions(current_app.session_interface, ended)
    log.info("event=backchannel-logout user=%s sessions=%d", claims.get("sub", "-"), len(ended))
    return "", 200, _NO_STORE


_NO_STORE = {"Cache-Control": "no-store"}


@blueprint.app_errorhandler(AuthFailure)
def auth_failure(failure: AuthFailure) -> tuple[str, int]:
    user = current_user()
    log.warning(
        "event=auth-failure kind=%s status=%s path=%r user=%s cause=%r",
        type(failure).__name__, failure.status, request.path, user.sub if user else "-", failure.cause,
    )
    if isinstance(failure, SessionEnded):
        session.clear()
        g.pop(_USER_CACHE, None)
    return render_template("auth/error.html", title=failure.title, message=failure.message), failure.status


@blueprint.errorhandler(CSRFError)
def csrf_failure(error: CSRFError) -> tuple[str, int]:
    log.warning("event=csrf-failure path=%r cause=%r", request.path, error.description)
    return render_template("auth/error.html", title=N_("Form expired"), message=N_("Please reload the page and try again.")), 400


def store_failure(error: Exception) -> tuple[str, int, dict[str, str]]:
    """The store failed in the middle of a request (the load and the save are handled in session_store.py).
    Nothing of this request's session is saved: a sign-in that could not be filed whole does not happen."""
    log.warning("event=session-store-unavailable step=request path=%r cause=%s", request.path, type(error).__name__)
    session.store_unavailable = True  # type: ignore[attr-defined]
    return store_unavailable_page()


for _error in STORE_ERRORS:
    blueprint.app_errorhandler(_error)(store_failure)


@blueprint.app_errorhandler(RateLimitExceeded)
def rate_limited(_error: RateLimitExceeded) -> tuple[str, int, dict[str, str]]:
    return too_many_requests()


blueprint.before_app_request(lambda: drop_expired(session))  # an expired Hugging Face token leaves the session


@blueprint.app_context_processor
def template_helpers() -> dict[str, Any]:
    return {"current_user": current_user, "page_language": language_tag, **jinja_helpers()}


def _logto() -> Logto:
    logto: Logto = current_app.extensions["logto_auth"]
    return logto


def _session_id() -> str:
    """This request's server-side session id (Flask-Session's), under which the store files what it keeps."""
    server_side: Any = session
    return str(server_side.sid)


def _renew_session_id() -> None:
    """A new id for this session (Flask-Session's `regenerate`): the old id stops working."""
    interface: Any = current_app.session_interface
    interface.regenerate(session)


def _server_side_sessions(app: Flask, settings: AuthSettings) -> Store:
    """Keep the session (and so the tokens) on the server: Flask-Session, on files or Redis unless the app chose a store.

    Returns the store the unit keeps its own shared state in, beside the sessions (session_store.py).
    """
    app.config["PERMANENT_SESSION_LIFETIME"] = settings.session_lifetime
    if isinstance(app.session_interface, ServerSideSessionInterface):
        if settings.session_redis_url:
            raise ConfigError("SESSION_REDIS_URL is set but the app set up Flask-Session itself: keep one of the two")
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
            raise ConfigError("SESSION_REDIS_URL is set but so is SESSION_TYPE: keep one of the two")
        Session(app)
        return store_beside(app.session_interface, settings.data_dir)
    app.session_interface, store = session_interface(app, settings.data_dir, settings.session_redis_url)
    app.before_request_funcs.setdefault(None, []).insert(0, refuse_without_store)  # before CSRF reads the session
    return store
