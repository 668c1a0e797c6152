"""The sign-in unit's routes (blueprint `auth`), its error pages, and what a request asks of it.

Routes: `GET /sign-in?next=/path`, `GET /sign-up`, `GET /callback`, `POST /sign-out` (CSRF token; also
revokes the refresh token at Logto), `POST /backchannel-logout` (Logto's back-channel logout: ends every
site session of that Logto session, on every instance); the extension (extension.py) puts rate limits on
them. Per request: `current_user()`, `login_required`, `safe_next()`, `signed_in_key()` (a rate-limit key
per person), and the session-level steps the extension's `userinfo()` and `hf_token()` use.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, replace
from typing import Any, TypeVar
from urllib.parse import urlsplit

import jwt
from asgiref.sync import async_to_sync
from flask import Blueprint, current_app, flash, g, has_app_context, redirect, render_template, request, session
from flask_limiter.errors import RateLimitExceeded
from flask_wtf.csrf import CSRFError

from flask_logto.config import AuthSettings
from flask_logto.connection import Logto, access_token_due, current_access_token
from flask_logto.errors import (
    AuthFailure,
    BadLogoutToken,
    HubUnavailable,
    LogtoUnavailable,
    NotInAllowedOrg,
    SessionEnded,
    SignInRejected,
)
from flask_logto.hf_orgs import check_allowed, current_hf_orgs
from flask_logto.hub_token import drop_expired, keep_hf_token
from flask_logto.i18n import N_, language_tag, logto_gettext, translate
from flask_logto.rate_limits import client_address, too_many_requests
from flask_logto.session_keys import (
    USER,
    USERINFO,
    access_token_map,
    holds_sign_in,
    keep_pending,
    keep_tokens,
    pending,
    refresh_token,
    tokens,
)
from flask_logto.session_store import STORE_ERRORS, delete_sessions, refuse_without_store, store_unavailable_page
from flask_logto.user import HfOrg, SignedInUser

log = logging.getLogger("auth")
T = TypeVar("T")
MAX_NEXT_LENGTH = 2048
MAX_AGE_DIGITS = 8  # `max_age` up to about three years
_USER_CACHE = "_logto_auth_user"

blueprint = Blueprint("auth", __name__, template_folder="templates")


def _kept_userinfo() -> dict[str, Any] | None:
    """The userinfo kept with the session, while its access token is not due; else None."""
    stored = session.get(USERINFO)
    if isinstance(stored, dict) and stored and not access_token_due(access_token_map(session)):
        return stored
    return None


def _signed_in(step: str) -> SignedInUser:
    user = current_user()
    if user is None:
        raise SessionEnded(N_("Please sign in."), f"{step}: nobody is signed in")
    return user


async def _refresh_session(user: SignedInUser) -> dict[str, Any]:
    """Refresh the session's tokens (one refresh at a time, for the same user); store and return the new userinfo.
    The person's Hugging Face organisations are asked again, and the site's allowed organisations checked again:
    someone no longer in one is signed out (and their new refresh token revoked)."""
    logto = _logto()
    new_tokens, userinfo = await logto.refresh(_session_id(), tokens(session), user.sub)
    try:
        orgs, hf_token = await _hf_orgs_now(logto, new_tokens, userinfo, known=user.hf_orgs)
        if orgs is None:  # the site allows only some organisations and cannot tell whether this person is in one
            raise SessionEnded(N_("Your sign-in is no longer valid. Please sign in again."), "refresh: organisations unknown")
        check_allowed(logto.settings.hf_allowed_orgs, orgs)
    except NotInAllowedOrg as refused:
        await _revoke_quietly(logto, new_tokens.get("refreshToken"), user.sub)
        raise SessionEnded(N_("Your sign-in is no longer valid. Please sign in again."), f"refresh: {refused.cause}") from None
    except SessionEnded:
        await _revoke_quietly(logto, new_tokens.get("refreshToken"), user.sub)
        raise
    keep_tokens(session, new_tokens)
    id_claims = jwt.decode(new_tokens["idToken"], options={"verify_signature": False})  # verified in refresh
    session[USER] = asdict(SignedInUser.from_claims(id_claims, userinfo, orgs))
    session[USERINFO] = userinfo
    if hf_token is not None:
        keep_hf_token(session, *hf_token)
    g.pop(_USER_CACHE, None)
    return userinfo


async def refresh_if_due() -> None:
    """Refresh a signed-in session whose access token is due, so that its organisations are checked again (and
    nothing otherwise). Before each request of a site that allows only some organisations (`recheck_orgs`), and
    before each view `hf_org_required` guards."""
    user = current_user()
    if user is not None and access_token_due(access_token_map(session)):
        await _refresh_session(user)


def refresh_now_if_due() -> None:
    """`refresh_if_due` from sync code, with no event loop when nothing is due."""
    if current_user() is not None and access_token_due(access_token_map(session)):
        run_sync(refresh_if_due)


def recheck_orgs() -> None:
    """A site that allows only some organisations: a session due for a refresh refreshes before anything else,
    and someone no longer in one of them is signed out there."""
    if _logto().settings.hf_allowed_orgs:
        refresh_now_if_due()


async def _hf_orgs_now(
    logto: Logto, sdk_tokens: Mapping[str, str | None], userinfo: Mapping[str, Any], *, known: tuple[HfOrg, ...],
) -> tuple[tuple[HfOrg, ...] | None, tuple[str, int] | None]:
    """The person's organisations now (hf_orgs.py) and the Hub token fetched on the way.

    When they cannot be told (Logto or the Hub down: `LogtoUnavailable`, `HubUnavailable`; no Hub token any more;
    the Hub refusing it), a site that allows only some organisations gets None (or the 503), any other what it
    `known` (at a sign-in: none)."""
    access_token = current_access_token(sdk_tokens.get("accessTokenMap"), check_expiry=False)
    if access_token is None:
        raise SessionEnded(N_("Your sign-in is no longer valid. Please sign in again."), "hf-orgs: no access token")
    allowed_only = bool(logto.settings.hf_allowed_orgs)
    try:
        orgs, hf_token = await current_hf_orgs(logto, access_token, userinfo)
    except (HubUnavailable, LogtoUnavailable) as failure:
        if allowed_only:
            raise
        log.warning("event=hf-orgs-unavailable cause=%r", failure.cause)
        return known, None
    if orgs is None:
        return (None if allowed_only and known else known), None
    return orgs, hf_token


def run_sync(work: Callable[[], Awaitable[T]]) -> T:
    """Run the coroutine `work()` makes and wait for it, from sync code: on a new event loop in this thread when
    it has none (asgiref's `async_to_sync`, which Flask uses for async views, starts a thread for every call:
    ~0.4 ms), else through asgiref."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work())  # type: ignore[arg-type]  # a coroutine, whatever makes it
    return async_to_sync(work)()


def signed_in_key() -> str:
    """A rate-limit key per signed-in person (their Logto id), else per client address."""
    user = current_user()
    return f"user:{user.sub}" if user else client_address()


def current_user() -> SignedInUser | None:
    """The signed-in user, from the session alone (no SDK client, no network), or None."""
    if _USER_CACHE not in g:
        setattr(g, _USER_CACHE, SignedInUser.from_session(session.get(USER)) if holds_sign_in(session) else None)
    user: SignedInUser | None = getattr(g, _USER_CACHE)
    return user


def safe_next(target: str | None) -> str:
    """`target` if it is a path on this site, else `/` (no `//host`, `/\\host`, schemes or control characters)."""
    if not target or len(target) > MAX_NEXT_LENGTH:
        return "/"
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(not 0x21 <= ord(char) <= 0x7E for char in target):
        return "/"
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or parts.path in _auth_paths():
        return "/"
    return target


# The routes are sync views that run their coroutine with `run_sync` (cheaper than Flask's way for async views).
@blueprint.get("/sign-in")
def sign_in() -> Any:
    """`?next=/path` to come back to; `?max_age=N` (recent_sign_in_required) for a sign-in at most N seconds old."""
    return run_sync(lambda: _start_sign_in(sign_up=False))


@blueprint.get("/sign-up")
def sign_up() -> Any:
    return run_sync(lambda: _start_sign_in(sign_up=True))


async def _start_sign_in(*, sign_up: bool) -> Any:
    next_path = safe_next(request.args.get("next"))
    max_age = request.args.get("max_age", "")
    url, waiting = await _logto().start_sign_in(
        pending(session), sign_up=sign_up, next_path=next_path,
        max_age=int(max_age) if max_age.isascii() and max_age.isdigit() and len(max_age) <= MAX_AGE_DIGITS else None,
    )
    keep_pending(session, waiting)  # whoever is signed in stays so: nothing else in the session changes
    return redirect(url)


@blueprint.get("/callback")
def callback() -> Any:
    """Finish a sign-in: clear the session, keep the tokens, store the user, then a new session id."""
    return run_sync(_finish_sign_in)


async def _finish_sign_in() -> Any:
    query = request.query_string.decode("latin-1")
    entry, still_waiting = _logto().take_sign_in(query, pending(session))
    keep_pending(session, still_waiting)  # the one taken is used up, whatever comes of it
    logto = _logto()
    new_tokens, user, userinfo, next_path, id_claims = await logto.finish_sign_in(query, entry)
    try:
        orgs, _hf_token = await _hf_orgs_now(logto, new_tokens.data, userinfo, known=())
        check_allowed(logto.settings.hf_allowed_orgs, orgs or ())
    except AuthFailure as failure:  # the session keeps nothing of this person, and their refresh token is revoked
        await _revoke_quietly(logto, new_tokens.data.get("refreshToken"), user.sub)
        failure.subject = user.sub
        if isinstance(failure, SessionEnded):  # not the session's own end: whoever is signed in stays so
            raise SignInRejected(N_("Logto could not complete the sign-in."), failure.cause) from None
        raise
    session.clear()
    keep_tokens(session, new_tokens.data)
    session[USER] = asdict(replace(user, hf_orgs=orgs or ()))
    session[USERINFO] = userinfo
    _renew_session_id()  # no session fixation
    logto.sign_ins.remember(_session_id(), id_claims)  # for back-channel logouts
    g.pop(_USER_CACHE, None)
    log.info("event=sign-in user=%s", user.sub)
    return redirect(safe_next(next_path))


@blueprint.post("/sign-out")
def sign_out() -> Any:
    """Clear the local session, revoke the refresh token, then end the Logto session (a page says so if
    Logto cannot be reached; a revocation that fails is logged and does not stop the sign-out)."""
    return run_sync(_sign_out)


async def _sign_out() -> Any:
    user = current_user()
    refresh = refresh_token(session)
    session.clear()
    g.pop(_USER_CACHE, None)
    flash(translate(N_("You are signed out.")), "signed-out")
    _renew_session_id()  # the flash's session is not the one a back-channel logout ends
    if user is None:
        return redirect(_logto().settings.post_sign_out_uri)
    log.info("event=sign-out user=%s", user.sub)
    await _revoke_quietly(_logto(), refresh, user.sub)
    try:
        return redirect(await _logto().sign_out_url())
    except LogtoUnavailable as failure:
        log.warning("event=sign-out-local-only user=%s cause=%r", user.sub, failure.cause)
        return render_template("auth/signed_out.html"), 503


async def _revoke_quietly(logto: Logto, refresh: str | None, sub: str) -> None:
    """Revoke a refresh token at Logto; a revocation that fails is logged and stops nothing."""
    if not refresh:
        return
    try:
        await logto.revoke_refresh_token(refresh)
    except LogtoUnavailable as failure:
        log.warning("event=revocation-failed user=%s cause=%r", sub, failure.cause)


@blueprint.post("/backchannel-logout")
def backchannel_logout() -> Any:
    """Logto's back-channel logout: a valid, unused logout token ends its Logto session's site sessions."""
    return run_sync(_backchannel_logout)


async def _backchannel_logout() -> Any:
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
        type(failure).__name__, failure.status, request.path, failure.subject or (user.sub if user else "-"), failure.cause,
    )
    if isinstance(failure, SessionEnded):
        session.clear()
        g.pop(_USER_CACHE, None)
    return render_template("auth/error.html", title=failure.title, message=failure.message, values=failure.values), failure.status


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


blueprint.before_app_request(refuse_without_store)  # a session the store could not load: the 503 page
blueprint.before_app_request(lambda: drop_expired(session))  # an expired Hugging Face token leaves the session
blueprint.before_app_request(recheck_orgs)


@blueprint.app_context_processor
def template_helpers() -> dict[str, Any]:
    return {"current_user": current_user, "page_language": language_tag, "logto_gettext": logto_gettext}


def _auth_paths() -> frozenset[str]:
    """The unit's own routes (where `next` must not lead), as this app has them; the defaults outside an app."""
    if has_app_context() and "logto" in current_app.extensions:
        return _logto().settings.auth_paths
    return AuthSettings.auth_paths


def _logto() -> Logto:
    logto: Logto = current_app.extensions["logto"].connection()
    return logto


def _session_id() -> str:
    """This request's server-side session id (Flask-Session's), under which the store files what it keeps."""
    server_side: Any = session
    return str(server_side.sid)


def _renew_session_id() -> None:
    """A new id for this session (Flask-Session's `regenerate`): the old id stops working."""
    interface: Any = current_app.session_interface
    interface.regenerate(session)
