"""The unit's Logto connection: the SDK's `LogtoClient` on scratch storage, and what logto 0.2.1 leaves to us.

It never touches the Flask session: it takes what a request keeps (the sign-ins in progress, the tokens) and
returns what to keep; views.py reads and writes the session (through session_keys.py).

- `Logto`: one per app. Keeps one OIDC core per process (oidc_core.py: discovery, signing keys, a safe
  transport), hands out a `LogtoClient` per call, and turns every way a call to Logto can fail into one
  of the `AuthFailure` pages, within a timeout.
- Sign-in extras the SDK cannot do: `nonce`, `direct_sign_in`, `first_screen`, the callback's `iss` check,
  the nonce check on the ID token, several sign-ins in progress at once (one per `state`), and refreshes
  that cannot switch the user.
- Sign-out's revocation of the refresh token (Logto's end-session leaves an offline_access grant alive),
  and the checks on a back-channel logout token (backchannel.py) with Logto's signing keys.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qs, parse_qsl, quote, urlencode, urlsplit, urlunsplit

import jwt
from logto import LogtoClient, LogtoConfig, LogtoException, Storage
from logto.LogtoClient import SignInSession

from flask_logto.backchannel import SignInIndex, check_logout_token, unverified_header
from flask_logto.config import SIGN_IN_TIMEOUT_SECONDS, AuthSettings
from flask_logto.errors import (
    AuthFailure,
    BadCallback,
    LogtoUnavailable,
    ProviderError,
    SessionEnded,
    SignInNotRecent,
    SignInRejected,
    safe_code,
)
from flask_logto.i18n import N_
from flask_logto.oidc_core import SingleFlight, StrictOidcCore, check_discovery
from flask_logto.session_store import FileStore, Store
from flask_logto.token_refresh import RefreshGuard
from flask_logto.user import SignedInUser, signed_in_within

T = TypeVar("T")

REVOCATION_TIMEOUT_SECONDS = 3.0  # sign-out waits at most this long for Logto to revoke the refresh token
BACKCHANNEL_TIMEOUT_SECONDS = 2.0  # Logto gives a back-channel logout 2.5 s
MAX_PENDING_SIGN_INS = 5  # tabs with a sign-in in progress at once; the oldest is dropped
# Session keys (the full list is in client.py's docstring).


class DictStorage(Storage):  # type: ignore[misc]  # the base is from a package without type information
    """Scratch storage: SDK calls work here and only a complete result is copied to the session."""

    def __init__(self, data: Mapping[str, str | None] | None = None) -> None:
        self.data: dict[str, str] = {key: value for key, value in (data or {}).items() if value is not None}

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def set(self, key: str, value: str | None) -> None:
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


class SiteLogtoClient(LogtoClient):  # type: ignore[misc]  # the base is from a package without type information
    """`LogtoClient` that shares one OIDC core (discovery + JWKS) per process instead of one per instance."""

    def __init__(self, logto: Logto, storage: Storage) -> None:
        super().__init__(logto.config, storage)
        self._logto = logto

    async def getOidcCore(self) -> StrictOidcCore:
        return await self._logto.core()


class Logto:
    """The app's Logto connection: settings, the shared OIDC core, guarded SDK calls, and the session store
    beside the sessions (the refresh lock and handoff, the sign-in index for back-channel logouts)."""

    def __init__(
        self, settings: AuthSettings, store: Store | None = None, *, ui_locales: Callable[[], str | None] | None = None,
    ) -> None:
        self.settings = settings
        self.ui_locales = ui_locales  # the language for Logto's pages, asked at each sign-in (LogtoAuth's hook)
        self.config = LogtoConfig(
            endpoint=settings.logto_endpoint,
            appId=settings.logto_app_id,
            appSecret=settings.logto_app_secret,
            scopes=list(settings.scopes),
        )
        self._core: StrictOidcCore | None = None
        self._core_build: SingleFlight[StrictOidcCore] = SingleFlight()
        self.store = store or FileStore(settings.data_dir)
        self._refresh_guard = RefreshGuard(self.store)
        self.sign_ins = SignInIndex(self.store, int(settings.session_lifetime.total_seconds()))

    def client(self, storage: Storage) -> SiteLogtoClient:
        return SiteLogtoClient(self, storage)

    async def core(self) -> StrictOidcCore:
        """The OIDC core, made once per process from Logto's discovery document (retried until it works).

        Requests arriving together share one build, and once built the core is never replaced: a
        request that fetched signing keys into it verifies the ID token with the same core.
        """
        return self._core or await self._core_build.run(self._build_core)

    async def _build_core(self) -> StrictOidcCore:
        if self._core is None:  # builds run one at a time, so this check cannot race
            discovery_url = f"{self.settings.issuer}/.well-known/openid-configuration"
            metadata = await StrictOidcCore.getProviderMetadata(discovery_url)
            problem = check_discovery(metadata, self.settings.issuer)
            if problem:
                raise LogtoUnavailable(N_("The identity service is misconfigured."), problem)
            self._core = StrictOidcCore(metadata)
        return self._core

    async def guarded(self, step: str, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Await an SDK call with a timeout (default LOGTO_TIMEOUT); turn each way Logto can fail into an `AuthFailure`.

        Only the provider's failures are caught here; a bug in our code reaches the 500 handler.
        """
        timeout = min(timeout or self.settings.logto_timeout, self.settings.logto_timeout)
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError:
            raise logto_unavailable(step, f"no answer within {timeout:g}s") from None
        except LogtoException as error:
            raise _rejection(step, _oauth_error(str(error))) from None
        except ProviderError as error:
            raise logto_unavailable(step, f"{type(error).__name__}: {str(error)[:120]}") from None
        except jwt.PyJWTError as error:
            raise SignInRejected(
                N_("The sign-in could not be verified. Please try again."), f"{step}: ID token rejected ({str(error)[:120]})"
            ) from None

    async def start_sign_in(
        self, waiting: Mapping[str, dict[str, Any]], *, sign_up: bool, next_path: str, max_age: int | None = None,
    ) -> tuple[str, dict[str, dict[str, Any]]]:
        """The authorize URL (PKCE, state, nonce, ui_locales, direct_sign_in, first_screen), and the sign-ins
        waiting for their callback with this one added (the caller keeps them in the session).

        Several may wait at once (one per tab), each under its own `state`; the oldest is dropped past
        `MAX_PENDING_SIGN_INS`, and expired ones go. With `max_age` (seconds), Logto is asked for a sign-in
        at most that old (`max_age`, and `prompt=login consent`: `login` alone would cost the refresh token),
        and the callback checks the ID token's `auth_time`.
        """
        scratch = DictStorage()
        url = await self.guarded("sign-in", self.client(scratch).signIn(self.settings.redirect_uri))
        pending_json = scratch.get("signInSession")
        assert pending_json is not None
        nonce = secrets.token_urlsafe(32)
        still_waiting = {state: entry for state, entry in waiting.items() if not _expired(entry)}
        entry: dict[str, Any] = {"sign_in_session": pending_json, "nonce": nonce, "started": int(time.time()), "next": next_path}
        if max_age is not None:
            entry["max_age"] = max_age
        still_waiting[SignInSession.model_validate_json(pending_json).state] = entry
        newest = sorted(still_waiting.items(), key=lambda item: item[1]["started"])[-MAX_PENDING_SIGN_INS:]
        extra = {"nonce": nonce}
        if self.ui_locales and (ui_locales := self.ui_locales()):
            extra["ui_locales"] = ui_locales
        if self.settings.direct_sign_in:
            extra["direct_sign_in"] = self.settings.direct_sign_in
        if sign_up:
            extra["first_screen"] = "register"
        if max_age is None:
            return f"{url}&{urlencode(extra)}", dict(newest)
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        query.update(extra, max_age=str(max_age), prompt="login consent")  # the SDK's own prompt is `consent`
        return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote))), dict(newest)

    @staticmethod
    def take_sign_in(
        query_string: str, waiting: Mapping[str, dict[str, Any]],
    ) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
        """The sign-in in progress a callback's `state` names, and the ones left waiting (the caller keeps them:
        the one taken is used up whatever the outcome). A `state` that matches none leaves them all alone (a
        forged link cannot cancel one): `BadCallback`."""
        query = parse_qs(query_string, keep_blank_values=True)
        if not waiting:
            raise BadCallback(
                N_("There is no sign-in in progress in this browser (it may have finished already, or cookies are blocked)."),
                "callback without a sign-in in progress",
            )
        state = _single(query, "state")
        match = next((key for key in waiting if state is not None and hmac.compare_digest(key.encode(), state.encode())), None)
        if match is None:
            raise BadCallback(N_("The sign-in response did not match the sign-in this browser started."), "state mismatch")
        return waiting[match], {state: entry for state, entry in waiting.items() if state != match}

    async def finish_sign_in(
        self, query_string: str, entry: Mapping[str, Any],
    ) -> tuple[DictStorage, SignedInUser, dict[str, Any], str, dict[str, Any]]:
        """Check the callback of the sign-in `entry` (`take_sign_in`), exchange the code, verify the ID token and
        nonce, fetch userinfo. Returns the new tokens (scratch storage), the user, their userinfo, the `next`
        path and the ID token's (verified) claims; the caller puts them in a fresh session."""
        query = parse_qs(query_string, keep_blank_values=True)
        if _expired(entry):
            raise BadCallback(N_("The sign-in took too long. Please start again."), "sign-in expired")
        error = _single(query, "error")
        if error is not None:
            if error == "access_denied":
                raise SignInRejected(N_("Sign-in was cancelled."), "user cancelled (access_denied)")
            raise SignInRejected(N_("Logto could not complete the sign-in."), f"authorization error {safe_code(error)}")
        core = await self.guarded("discovery", self.core())
        if _single(query, "iss") != core.metadata.issuer:  # RFC 9207: Logto always sends it
            raise BadCallback(N_("The sign-in response came from an unexpected issuer."), "iss missing or mismatched")
        if not _single(query, "code"):
            raise BadCallback(N_("The sign-in response has no authorization code."), "callback without code")

        scratch = DictStorage({"signInSession": entry["sign_in_session"]})
        client = self.client(scratch)
        await self.guarded("token", client.handleSignInCallback(f"{self.settings.redirect_uri}?{query_string}"))
        id_token = client.getIdToken()
        if id_token is None:
            raise SignInRejected(N_("Logto did not return an ID token."), "token: no id_token")
        claims = jwt.decode(id_token, options={"verify_signature": False})  # verified by the SDK just now
        if not hmac.compare_digest(str(claims.get("nonce", "")).encode(), str(entry["nonce"]).encode()):
            raise SignInRejected(N_("The sign-in could not be verified. Please try again."), "nonce mismatch")
        max_age = entry.get("max_age")
        if isinstance(max_age, int) and not signed_in_within(claims.get("auth_time"), max_age):
            if refresh := scratch.get("refreshToken"):  # this sign-in goes no further: nothing of it stays usable
                with contextlib.suppress(LogtoUnavailable):
                    await self.revoke_refresh_token(refresh)
            raise SignInNotRecent(  # OpenID Connect Core 3.1.2.1 (max_age) and 3.1.3.7 (auth_time)
                N_("This needs a sign-in made just now, and Logto did not confirm one. Please try again."),
                f"auth_time missing or older than max_age={max_age}",
            )
        userinfo = await self._userinfo(client, claims)
        return scratch, SignedInUser.from_claims(claims, userinfo), userinfo, str(entry["next"]), claims

    async def refresh(self, session_id: str, tokens: Mapping[str, str | None], sub: str) -> tuple[dict[str, str], dict[str, Any]]:
        """New tokens and userinfo for a session whose access token is due, one refresh of it at a time.

        Works on a copy of `tokens`; the result is for the same user (`sub`) or the refresh fails.
        Refreshes of one session are serialised (token_refresh.py), and one that another request
        made meanwhile is adopted instead of refreshing again.
        """
        scratch = DictStorage(tokens)
        try:
            with self._refresh_guard.exclusive(session_id, scratch, timeout=2 * self.settings.logto_timeout):
                client = self.client(scratch)
                access_token = await self.guarded("refresh", client.getAccessToken())
                if access_token is None:
                    raise SessionEnded(N_("Your sign-in is no longer valid. Please sign in again."), "refresh: no refresh token")
                id_token = client.getIdToken()  # a refresh may have replaced it; the SDK verified the new one
                if id_token is None or jwt.decode(id_token, options={"verify_signature": False}).get("sub") != sub:
                    raise SessionEnded(
                        N_("Your sign-in is no longer valid. Please sign in again."), "refresh: another user's ID token"
                    )
                userinfo = await self._userinfo(client, {"sub": sub})
        except TimeoutError:
            raise logto_unavailable("refresh", "another refresh of this session did not finish") from None
        return scratch.data, userinfo

    async def _userinfo(self, client: SiteLogtoClient, id_claims: Mapping[str, Any]) -> dict[str, Any]:
        access_token = await self.guarded("refresh", client.getAccessToken())
        if access_token is None:
            raise SessionEnded(N_("Your sign-in is no longer valid. Please sign in again."), "refresh: no refresh token")
        core = await self.guarded("discovery", self.core())
        userinfo = await self.guarded("userinfo", core.fetchUserInfo(access_token))
        if userinfo.sub != id_claims.get("sub"):
            raise SignInRejected(N_("The sign-in could not be verified. Please try again."), "userinfo sub mismatch")
        info: dict[str, Any] = userinfo.model_dump()
        return info

    async def sign_out_url(self) -> str:
        return await self.guarded("sign-out", self.client(DictStorage()).signOut(self.settings.post_sign_out_uri))

    async def revoke_refresh_token(self, refresh_token: str) -> None:
        """Revoke the refresh token at Logto (RFC 7009), which ends its grant; `LogtoUnavailable` within 3 s if not.

        Logto's end-session does not revoke an offline_access grant: without this, the token would keep working.
        """
        core = await self.guarded("revocation", self.core(), REVOCATION_TIMEOUT_SECONDS)
        revoke = core.revokeToken(self.config.appId, self.config.appSecret, refresh_token, "refresh_token")
        await self.guarded("revocation", revoke, REVOCATION_TIMEOUT_SECONDS)

    async def logout_claims(self, logout_token: Any) -> dict[str, Any]:
        """The claims of a valid back-channel logout token, or `BadLogoutToken`.

        No call to Logto but, for a key the site does not know yet, one JWKS fetch (and the discovery
        document, once per process); within 2 s or `LogtoUnavailable`.
        """
        unverified_header(logout_token)  # junk is refused before anything else
        core = await self.guarded("backchannel-logout", self.core(), BACKCHANNEL_TIMEOUT_SECONDS)
        key = await self.guarded("backchannel-logout", core.signing_key(logout_token), BACKCHANNEL_TIMEOUT_SECONDS)
        return check_logout_token(logout_token, key, issuer=core.metadata.issuer, client_id=self.settings.logto_app_id)


def current_access_token(stored_map: str | None, *, check_expiry: bool = True, now: float | None = None) -> str | None:
    """The session's access token (the SDK's `accessTokenMap`, resource ""), or None when missing (or expired,
    with `check_expiry`). Plain JSON, not the SDK's model: this is on every signed-in page's path."""
    try:
        entry = json.loads(stored_map or "{}").get("x", {}).get("")
    except (ValueError, AttributeError, RecursionError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("token"), str):
        return None
    expires_at = entry.get("expiresAt")
    if check_expiry and (not isinstance(expires_at, int) or expires_at < (time.time() if now is None else now)):
        return None
    token: str = entry["token"]
    return token


def access_token_due(stored_map: str | None, now: float | None = None) -> bool:
    """True when the session's access token is missing or expired (a refresh is due)."""
    return current_access_token(stored_map, now=now) is None


def _expired(entry: Mapping[str, Any]) -> bool:
    return bool(time.time() - entry["started"] > SIGN_IN_TIMEOUT_SECONDS)


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
    return safe_code(error) if isinstance(error, str) else None


def _rejection(step: str, oauth_error: str | None) -> AuthFailure:
    """The failure for an error answer from Logto at `step`."""
    if (step, oauth_error) in {("refresh", "invalid_grant"), ("userinfo", "invalid_token")}:
        return SessionEnded(N_("Your sign-in is no longer valid. Please sign in again."), f"{step}: {oauth_error}")
    if step == "token" and oauth_error is not None:
        return SignInRejected(N_("Logto did not accept this sign-in. Please try again."), f"token: {oauth_error}")
    return logto_unavailable(step, f"error answer ({oauth_error or 'not OAuth JSON'})")


def logto_unavailable(step: str, cause: str) -> LogtoUnavailable:
    return LogtoUnavailable(
        N_("We could not reach the identity service. Please try again in a moment."), f"{step}: {cause}"
    )
