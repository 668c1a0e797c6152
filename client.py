"""Logto wiring: the SDK's `LogtoClient` on Flask-session storage, and what logto 0.2.1 leaves to us.

- `SessionStorage`: the SDK's `Storage` on the server-side Flask session (tokens never reach the browser).
- `Logto`: one per app. Fetches discovery and JWKS once per process, hands out a `LogtoClient` per
  request, and wraps every call to Logto in a timeout and the failure pages below.
- Sign-in extras the SDK cannot do: `nonce`, `direct_sign_in`, `first_screen`, the callback's
  `iss` check, and the nonce check on the ID token.
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
from logto.OidcCore import OidcCore
from logto.models.oidc import IdTokenClaims, OidcProviderMetadata

from settings import Settings
from token_refresh import TOKEN_KEYS, RefreshGuard

log = logging.getLogger("auth")
T = TypeVar("T")

SIGN_IN_TIMEOUT_SECONDS = 15 * 60
ID_TOKEN_ALGORITHMS = ["ES384", "ES256", "ES512", "RS256", "PS256"]  # asymmetric only
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
    if isinstance(value, str) and urlsplit(value).scheme == "https" and urlsplit(value).hostname:
        return value
    return None


class StrictOidcCore(OidcCore):
    """The SDK's OIDC core with a stricter ID-token check (asymmetric algorithms, required claims)."""

    def verifyIdToken(self, idToken: str, clientId: str) -> None:
        signing_key = self.jwksClient.get_signing_key_from_jwt(idToken)
        claims = jwt.decode(
            idToken,
            signing_key.key,
            algorithms=ID_TOKEN_ALGORITHMS,
            audience=clientId,
            issuer=self.metadata.issuer,
            leeway=30,
            options={"require": ["iss", "sub", "aud", "exp", "iat"]},
        )
        if not isinstance(claims["sub"], str) or not claims["sub"]:
            raise jwt.InvalidTokenError("sub is not a non-empty string")
        # The SDK reads stored ID tokens with this model later (`getIdTokenClaims`), so a token it cannot
        # read must not get in; e.g. it wants `aud` as one string, which is what Logto issues.
        try:
            IdTokenClaims(**claims)
        except pydantic.ValidationError:
            raise jwt.InvalidTokenError("claims of unexpected types") from None


class SiteLogtoClient(LogtoClient):
    """`LogtoClient` that shares one OIDC core (discovery + JWKS) per process instead of one per instance."""

    def __init__(self, logto: Logto, storage: Storage) -> None:
        super().__init__(logto.config, storage)
        self._logto = logto

    async def getOidcCore(self) -> OidcCore:
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
        if self._core is None:
            discovery_url = f"{self.settings.issuer}/.well-known/openid-configuration"
            metadata = await OidcCore.getProviderMetadata(discovery_url)
            _check_discovery(metadata, self.settings.issuer)
            core = StrictOidcCore(metadata)
            core.jwksClient = jwt.PyJWKClient(
                metadata.jwks_uri,
                cache_keys=True,
                timeout=self.settings.logto_timeout,
                cooldown_duration=0,  # a rotated signing key is fetched at the next sign-in, not 30 s later
            )
            self._core = core
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
            oauth_error = _oauth_error(str(error))
            if oauth_error is None:
                raise _unavailable(step, "unexpected answer") from None
            if step == "refresh" or oauth_error == "invalid_token":
                raise SessionEnded(
                    "Your sign-in is no longer valid. Please sign in again.", f"{step}: {oauth_error}"
                ) from None
            raise SignInRejected("Logto did not accept this sign-in. Please try again.", f"{step}: {oauth_error}") from None
        except jwt.PyJWKClientConnectionError:
            raise _unavailable(step, "JWKS unreachable") from None
        except (jwt.PyJWKClientError, jwt.InvalidTokenError) as error:
            raise SignInRejected(
                "The sign-in could not be verified. Please try again.", f"{step}: ID token rejected ({type(error).__name__})"
            ) from None
        except (aiohttp.ClientError, OSError, ValueError, pydantic.ValidationError, KeyError, TypeError) as error:
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

        Works on scratch storage: the session is only changed by the caller, on success.
        Raises `AuthFailure`; the pending sign-in is consumed either way.
        """
        pending_json = session.pop("logto.signInSession", None)
        nonce = session.pop("sign_in.nonce", None)
        started = session.pop("sign_in.started", 0)
        pending = _parse_sign_in_session(pending_json)
        if pending is None or not isinstance(nonce, str):
            raise BadCallback(
                "There is no sign-in in progress in this browser (it may have finished already, or cookies are blocked).",
                "callback without a sign-in in progress",
            )
        query = parse_qs(query_string, keep_blank_values=True)
        state = _single(query, "state")
        if state is None or not hmac.compare_digest(state.encode(), pending.state.encode()):
            raise BadCallback("The sign-in response did not match the sign-in this browser started.", "state mismatch")
        if time.time() - started > SIGN_IN_TIMEOUT_SECONDS:
            raise BadCallback("The sign-in took too long. Please start again.", "sign-in expired")
        error = _single(query, "error")
        if error is not None:
            if error == "access_denied":
                raise SignInRejected("Sign-in was cancelled.", "user cancelled (access_denied)")
            raise SignInRejected("Logto could not complete the sign-in.", f"authorization error {_safe_code(error)}")
        core = await self.guarded("discovery", self.core())
        if "iss" in query and _single(query, "iss") != core.metadata.issuer:  # RFC 9207 mix-up defence
            raise BadCallback("The sign-in response came from an unexpected issuer.", "iss mismatch")
        if not _single(query, "code"):
            raise BadCallback("The sign-in response has no authorization code.", "callback without code")

        scratch = DictStorage({"signInSession": pending_json})
        client = self.client(scratch)
        await self.guarded("token", client.handleSignInCallback(f"{self.settings.redirect_uri}?{query_string}"))
        if client.getIdToken() is None:
            raise SignInRejected("Logto did not return an ID token.", "token: no id_token")
        claims = jwt.decode(client.getIdToken(), options={"verify_signature": False})
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), nonce.encode()):
            raise SignInRejected("The sign-in could not be verified. Please try again.", "nonce mismatch")
        userinfo = await self.fetch_userinfo(scratch, claims)
        return scratch, SignedInUser.from_claims(claims, userinfo)

    async def fetch_userinfo(
        self, storage: Storage, id_claims: Mapping[str, Any], *, session_id: str | None = None
    ) -> dict[str, Any]:
        """Userinfo (refreshing the access token first if needed); its `sub` must be the ID token's.

        With a `session_id`, refreshes of that session are serialised (see token_refresh.py).
        """
        client = self.client(storage)
        if session_id is None:
            access_token = await self.guarded("refresh", client.getAccessToken())
        else:
            with self._refresh_guard.exclusive(session_id, storage):
                access_token = await self.guarded("refresh", client.getAccessToken())
        if access_token is None:
            raise SessionEnded("Your sign-in is no longer valid. Please sign in again.", "refresh: no refresh token")
        core = await self.guarded("discovery", self.core())
        userinfo = await self.guarded("userinfo", core.fetchUserInfo(access_token))
        if userinfo.sub != id_claims.get("sub"):
            raise SignInRejected("The sign-in could not be verified. Please try again.", "userinfo sub mismatch")
        return userinfo.model_dump()

    async def sign_out_url(self) -> str:
        return await self.guarded("sign-out", self.client().signOut(self.settings.post_sign_out_uri))


def _check_discovery(metadata: OidcProviderMetadata, issuer: str) -> None:
    """Logto serves every endpoint from its own origin; anything else is not the Logto we were told to use."""
    if metadata.issuer != issuer:
        raise _misconfigured(f"discovery issuer {metadata.issuer!r} is not {issuer!r}")
    origin = urlsplit(issuer)[:2]
    endpoints = [metadata.authorization_endpoint, metadata.token_endpoint, metadata.userinfo_endpoint,
                 metadata.jwks_uri, metadata.end_session_endpoint or issuer]
    for url in endpoints:
        if urlsplit(url)[:2] != origin:
            raise _misconfigured(f"discovery endpoint {url[:100]!r} is not on {issuer!r}")


def _misconfigured(cause: str) -> LogtoUnavailable:
    return LogtoUnavailable("The identity service is misconfigured.", cause)


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
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return _safe_code(error) if isinstance(error, str) else None


def _safe_code(code: str) -> str:
    """An error code fit for a log line: short, no spaces or control characters."""
    return "".join(c for c in code[:40] if c.isalnum() or c in "_-.") or "unknown"


def _unavailable(step: str, cause: str) -> LogtoUnavailable:
    return LogtoUnavailable(
        "We could not reach the identity service. Please try again in a moment.", f"{step}: {cause}"
    )
