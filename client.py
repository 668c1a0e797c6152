"""Logto wiring: the SDK's `LogtoClient` on Flask-session storage, and what logto 0.2.1 leaves to us.

- `SessionStorage`: the SDK's `Storage` on the server-side Flask session (tokens never reach the browser).
- `Logto`: one per app. Keeps one OIDC core per process (oidc_core.py: discovery, signing keys, a
  safe transport), hands out a `LogtoClient` per request, and turns every way a call to Logto can
  fail into one of the `AuthFailure` pages below, within a timeout.
- Sign-in extras the SDK cannot do: `nonce`, `direct_sign_in`, `first_screen`, the callback's
  `iss` check, the nonce check on the ID token, and refreshes that cannot switch the user.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Mapping, TypeVar
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp
import jwt
import pydantic
from flask import session
from logto import LogtoClient, LogtoConfig, LogtoException, Storage
from logto.LogtoClient import SignInSession

from oidc_core import ResponseTooLarge, StrictOidcCore, check_discovery
from settings import Settings
from token_refresh import TOKEN_KEYS, RefreshGuard

log = logging.getLogger("auth")
T = TypeVar("T")

SIGN_IN_TIMEOUT_SECONDS = 15 * 60
HF_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")


class AuthFailure(Exception):
    """A failure the user sees as a page: HTTP status, title, message; `cause` goes to the log only."""

    status = 400
    title = "Sign-in failed"

    def __init__(self, message: str, cause: str) -> None:
        super().__init__(cause)
        self.message = message
        self.cause = cause


class BadCallback(AuthFailure):
    status, title = 400, "Sign-in link not valid"


class SignInRejected(AuthFailure):
    status, title = 401, "Sign-in not completed"


class SessionEnded(AuthFailure):
    status, title = 401, "Your session ended"


class LogtoUnavailable(AuthFailure):
    status, title = 503, "Identity service unavailable"


class SessionStorage(Storage):
    """The SDK's storage on the (server-side) Flask session, under `logto.*` keys."""

    def get(self, key: str) -> str | None:
        return session.get(f"logto.{key}")

    def set(self, key: str, value: str | None) -> None:
        session[f"logto.{key}"] = value

    def delete(self, key: str) -> None:
        session.pop(f"logto.{key}", None)


class DictStorage(Storage):
    """Scratch storage: a callback works here and only a complete sign-in is copied to the session."""

    def __init__(self, data: Mapping[str, str] | None = None) -> None:
        self.data: dict[str, str] = dict(data or {})

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def set(self, key: str, value: str | None) -> None:
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


@dataclass(frozen=True)
class SignedInUser:
    """What the site keeps about the signed-in person (shown on every page; no tokens)."""

    sub: str
    name: str | None
    username: str | None
    hf_username: str | None
    hf_name: str | None
    avatar: str | None
    email: str | None

    @classmethod
    def from_claims(cls, id_claims: Mapping[str, Any], userinfo: Mapping[str, Any]) -> SignedInUser:
        details = huggingface_details(userinfo)
        raw = details.get("rawData") if isinstance(details.get("rawData"), dict) else {}
        return cls(
            sub=str(id_claims["sub"]),
            name=_text(userinfo.get("name")) or _text(id_claims.get("name")),
            username=_text(userinfo.get("username")) or _text(id_claims.get("username")),
            hf_username=_hf_username(raw.get("preferred_username")),
            hf_name=_text(details.get("name")),
            avatar=_https_url(details.get("avatar")) or _https_url(id_claims.get("picture")),
            email=_text(details.get("email")) or _text(userinfo.get("email")),
        )


def huggingface_details(userinfo: Mapping[str, Any]) -> dict[str, Any]:
    identities = userinfo.get("identities")
    hf = identities.get("huggingface") if isinstance(identities, dict) else None
    details = hf.get("details") if isinstance(hf, dict) else None
    return details if isinstance(details, dict) else {}


def _text(value: Any) -> str | None:
    return value.strip()[:200] or None if isinstance(value, str) else None


def _hf_username(value: Any) -> str | None:
    return value if isinstance(value, str) and HF_USERNAME.fullmatch(value) else None


def _https_url(value: Any) -> str | None:
    """Only https image URLs reach an <img src>; anything else (javascript:, data:, http:) is dropped."""
    try:
        parts = urlsplit(value) if isinstance(value, str) else None
    except ValueError:  # e.g. "https://[oops"
        return None
    return value if parts and parts.scheme == "https" and parts.hostname else None


class SiteLogtoClient(LogtoClient):
    """`LogtoClient` that shares one OIDC core (discovery + JWKS) per process instead of one per instance."""

    def __init__(self, logto: Logto, storage: Storage) -> None:
        super().__init__(logto.config, storage)
        self._logto = logto

    async def getOidcCore(self) -> StrictOidcCore:
        return await self._logto.core()


class Logto:
    """The site's Logto connection: settings, the shared OIDC core, and guarded SDK calls."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.config = LogtoConfig(
            endpoint=settings.logto_endpoint,
            appId=settings.logto_app_id,
            appSecret=settings.logto_app_secret,
            scopes=list(settings.scopes),
        )
        self._core: StrictOidcCore | None = None
        self._refresh_guard = RefreshGuard(settings.data_dir)

    def client(self, storage: Storage | None = None) -> SiteLogtoClient:
        return SiteLogtoClient(self, storage or SessionStorage())

    async def core(self) -> StrictOidcCore:
        """The OIDC core, made once per process from Logto's discovery document (retried until it works)."""
        if self._core is None:
            discovery_url = f"{self.settings.issuer}/.well-known/openid-configuration"
            metadata = await StrictOidcCore.getProviderMetadata(discovery_url)
            problem = check_discovery(metadata, self.settings.issuer)
            if problem:
                raise LogtoUnavailable("The identity service is misconfigured.", problem)
            self._core = StrictOidcCore(metadata)
        return self._core

    async def guarded(self, step: str, awaitable: Awaitable[T]) -> T:
        """Await an SDK call with a timeout; turn every way it can fail into an `AuthFailure`."""
        try:
            return await asyncio.wait_for(awaitable, self.settings.logto_timeout)
        except AuthFailure:
            raise
        except asyncio.TimeoutError:
            raise _unavailable(step, f"no answer within {self.settings.logto_timeout:g}s") from None
        except LogtoException as error:
            raise _rejection(step, _oauth_error(str(error))) from None
        except (jwt.PyJWKSetError, ResponseTooLarge) as error:
            raise _unavailable(step, type(error).__name__) from None
        except jwt.PyJWTError as error:
            raise SignInRejected(
                "The sign-in could not be verified. Please try again.", f"{step}: ID token rejected ({str(error)[:120]})"
            ) from None
        except (aiohttp.ClientError, OSError, ValueError, pydantic.ValidationError, KeyError, TypeError,
                RecursionError) as error:
            raise _unavailable(step, type(error).__name__) from None

    async def sign_in_url(self, *, sign_up: bool) -> str:
        """Start a sign-in: the SDK's URL (PKCE, state) plus nonce, direct_sign_in and first_screen."""
        nonce = secrets.token_urlsafe(32)
        url = await self.guarded("sign-in", self.client().signIn(self.settings.redirect_uri))
        session["sign_in.nonce"] = nonce
        session["sign_in.started"] = int(time.time())
        extra = {"nonce": nonce}
        if self.settings.direct_sign_in:
            extra["direct_sign_in"] = self.settings.direct_sign_in
        if sign_up:
            extra["first_screen"] = "register"
        return f"{url}&{urlencode(extra)}"

    async def finish_sign_in(self, query_string: str) -> tuple[DictStorage, SignedInUser]:
        """Check the callback, exchange the code, verify the ID token and nonce, fetch userinfo.

        Works on scratch storage: the session only changes through the caller, on success. A callback
        whose `state` does not match leaves the sign-in in progress alone (a forged link cannot cancel
        it); any other outcome consumes it.
        """
        query = parse_qs(query_string, keep_blank_values=True)
        pending = _parse_sign_in_session(session.get("logto.signInSession"))
        nonce, started = session.get("sign_in.nonce"), session.get("sign_in.started", 0)
        if pending is None or not isinstance(nonce, str):
            raise BadCallback(
                "There is no sign-in in progress in this browser (it may have finished already, or cookies are blocked).",
                "callback without a sign-in in progress",
            )
        state = _single(query, "state")
        if state is None or not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise BadCallback("The sign-in response did not match the sign-in this browser started.", "state mismatch")
        pending_json = session.pop("logto.signInSession")
        for key in ("sign_in.nonce", "sign_in.started"):
            session.pop(key, None)
        if not isinstance(started, int) or time.time() - started > SIGN_IN_TIMEOUT_SECONDS:
            raise BadCallback("The sign-in took too long. Please start again.", "sign-in expired")
        error = _single(query, "error")
        if error is not None:
            if error == "access_denied":
                raise SignInRejected("Sign-in was cancelled.", "user cancelled (access_denied)")
            raise SignInRejected("Logto could not complete the sign-in.", f"authorization error {_safe_code(error)}")
        core = await self.guarded("discovery", self.core())
        if _single(query, "iss") != core.metadata.issuer:  # RFC 9207: Logto always sends it
            raise BadCallback("The sign-in response came from an unexpected issuer.", "iss missing or mismatched")
        if not _single(query, "code"):
            raise BadCallback("The sign-in response has no authorization code.", "callback without code")

        scratch = DictStorage({"signInSession": pending_json})
        client = self.client(scratch)
        await self.guarded("token", client.handleSignInCallback(f"{self.settings.redirect_uri}?{query_string}"))
        id_token = client.getIdToken()
        if id_token is None:
            raise SignInRejected("Logto did not return an ID token.", "token: no id_token")
        claims = jwt.decode(id_token, options={"verify_signature": False})  # verified by the SDK just now
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise SignInRejected("The sign-in could not be verified. Please try again.", "nonce mismatch")
        userinfo = await self.fetch_userinfo(scratch, claims)
        return scratch, SignedInUser.from_claims(claims, userinfo)

    async def fetch_userinfo(
        self, storage: Storage, id_claims: Mapping[str, Any], *, session_id: str | None = None
    ) -> dict[str, Any]:
        """Userinfo, refreshing the access token first if needed; the user must stay the same.

        A refresh works on a copy of `storage`, which gets the new tokens only when the refreshed ID
        token is still about `id_claims["sub"]`. With a `session_id`, refreshes of that session are
        serialised (see token_refresh.py).
        """
        if session_id is None:
            return await self._fetch_userinfo(storage, id_claims)
        try:
            with self._refresh_guard.exclusive(session_id, storage, timeout=2 * self.settings.logto_timeout):
                return await self._fetch_userinfo(storage, id_claims)
        except TimeoutError:
            raise _unavailable("refresh", "another refresh of this session did not finish") from None

    async def _fetch_userinfo(self, storage: Storage, id_claims: Mapping[str, Any]) -> dict[str, Any]:
        scratch = DictStorage({key: storage.get(key) for key in TOKEN_KEYS if storage.get(key) is not None})
        client = self.client(scratch)
        access_token = await self.guarded("refresh", client.getAccessToken())
        if access_token is None:
            raise SessionEnded("Your sign-in is no longer valid. Please sign in again.", "refresh: no refresh token")
        id_token = client.getIdToken()  # a refresh may have replaced it; the SDK verified the new one
        if id_token is None or jwt.decode(id_token, options={"verify_signature": False}).get("sub") != id_claims.get("sub"):
            raise SessionEnded("Your sign-in is no longer valid. Please sign in again.", "refresh: another user's ID token")
        core = await self.guarded("discovery", self.core())
        userinfo = await self.guarded("userinfo", core.fetchUserInfo(access_token))
        if userinfo.sub != id_claims.get("sub"):
            raise SignInRejected("The sign-in could not be verified. Please try again.", "userinfo sub mismatch")
        for key in TOKEN_KEYS:
            storage.set(key, scratch.get(key))
        return userinfo.model_dump()

    async def sign_out_url(self) -> str:
        return await self.guarded("sign-out", self.client().signOut(self.settings.post_sign_out_uri))


def keep_tokens(scratch: DictStorage) -> None:
    """Copy a completed sign-in's tokens into the (fresh) session."""
    for key in TOKEN_KEYS:
        if scratch.get(key) is not None:
            SessionStorage().set(key, scratch.get(key))


def _parse_sign_in_session(raw: Any) -> SignInSession | None:
    if not isinstance(raw, str):
        return None
    try:
        return SignInSession.model_validate_json(raw)
    except pydantic.ValidationError:
        return None


def _single(query: Mapping[str, list[str]], name: str) -> str | None:
    values = query.get(name)
    return values[0] if values and len(values) == 1 else None


def _oauth_error(text: str) -> str | None:
    """The OAuth `error` code from an error body Logto sent, if it is one."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return _safe_code(error) if isinstance(error, str) else None


def _safe_code(code: str) -> str:
    """An error code fit for a log line: short, no spaces or control characters."""
    return "".join(c for c in code[:40] if c.isalnum() or c in "_-.") or "unknown"


def _rejection(step: str, oauth_error: str | None) -> AuthFailure:
    """The failure for an error answer from Logto at `step`."""
    if (step, oauth_error) in {("refresh", "invalid_grant"), ("userinfo", "invalid_token")}:
        return SessionEnded("Your sign-in is no longer valid. Please sign in again.", f"{step}: {oauth_error}")
    if step == "token" and oauth_error is not None:
        return SignInRejected("Logto did not accept this sign-in. Please try again.", f"token: {oauth_error}")
    return _unavailable(step, f"error answer ({oauth_error or 'not OAuth JSON'})")


def _unavailable(step: str, cause: str) -> LogtoUnavailable:
    return LogtoUnavailable(
        "We could not reach the identity service. Please try again in a moment.", f"{step}: {cause}"
    )
