"""The SDK's OIDC core, made safe against a misbehaving or hostile identity provider.

logto 0.2.1's `OidcCore` follows redirects (a 307 would replay the client secret to another host),
reads bodies of any size, fetches JWKS with blocking urllib that no timeout around it can stop, and
accepts any ID token PyJWT accepts. `StrictOidcCore` keeps the SDK's interface and replaces the
network calls with `fetch_json` (no redirects, 1 MiB at most, async so `asyncio.wait_for` can stop
it), keeps the signing keys itself (fetched when a token names a key it does not know, or after
5 minutes), and checks ID tokens strictly. It also revokes tokens (RFC 7009, sign-out) and hands out
the signing key for a logout token (backchannel.py checks the rest).

`SingleFlight` lets many threads, each with its own event loop (Flask runs every async view in one),
share one fetch: the discovery document and the JWKS are fetched once however many requests ask at
the same moment, so every request verifies with the keys the shared core fetched.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import re
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar
from urllib.parse import urlsplit

import aiohttp
import jwt
import pydantic
from logto import LogtoException
from logto.models.oidc import IdTokenClaims, OidcProviderMetadata
from logto.models.response import TokenResponse, UserInfoResponse
from logto.OidcCore import OidcCore
from logto.utilities import removeFalsyKeys

from flask_logto.errors import ProviderError, ResponseTooLarge

MAX_BODY_BYTES = 1024 * 1024
KEYS_MAX_AGE_SECONDS = 300
KEYS_MIN_REFETCH_SECONDS = 10  # an unknown kid from outside (a logout token) refetches the JWKS at most this often
ID_TOKEN_ALGORITHMS = ["ES384", "ES256", "ES512", "RS256", "PS256"]  # asymmetric only
PRINTABLE_ID = re.compile(r"[\x21-\x7e]{1,255}")  # Logto ids are short alphanumerics
T = TypeVar("T")
M = TypeVar("M", bound=pydantic.BaseModel)


class ErrorAnswer(LogtoException):  # type: ignore[misc]  # the base is from a package without type information
    """A non-200 answer: the SDK's exception (its text is the body), with the HTTP status."""

    def __init__(self, status: int, body: str) -> None:
        super().__init__(body)
        self.status = status


async def fetch_json(method: str, url: str, *, expect_json: bool = True, **request: Any) -> Any:
    """One request to the identity provider, parsed as JSON; a non-200 raises `ErrorAnswer` (a `LogtoException(body)`,
    as the SDK raises, with the status).

    Anything else that goes wrong on the way (connection, size, not JSON) raises `ProviderError`.
    With `expect_json=False` the body of a 200 is not read as JSON (None is returned).
    """
    try:
        async with aiohttp.ClientSession() as http:
            async with http.request(method, url, allow_redirects=False, **request) as response:
                if (response.content_length or 0) > MAX_BODY_BYTES:
                    raise ResponseTooLarge(f"{response.content_length} bytes")
                body = bytearray()
                async for chunk in response.content.iter_chunked(64 * 1024):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise ResponseTooLarge(f"over {MAX_BODY_BYTES} bytes")
    except (aiohttp.ClientError, OSError) as error:
        raise ProviderError(type(error).__name__) from None
    text = body.decode("utf-8", errors="replace")
    if response.status != 200:
        raise ErrorAnswer(response.status, text)
    if not expect_json:
        return None
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise ProviderError("not JSON") from None


def parse_model(model: type[M], document: Any) -> M:
    """`document` as one of the SDK's models, or `ProviderError` when it does not fit."""
    if not isinstance(document, dict):
        raise ProviderError(f"{model.__name__}: not a JSON object")
    try:
        return model(**document)
    except (pydantic.ValidationError, TypeError, RecursionError):
        raise ProviderError(f"{model.__name__}: unexpected fields") from None


class SingleFlight(Generic[T]):
    """At most one run of a piece of work at a time; callers arriving while it runs share its outcome.

    Works across threads and event loops (the result travels in a `concurrent.futures.Future`).
    A failed run is not remembered: the next caller starts a new one.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flight: concurrent.futures.Future[T] | None = None
        self.waiting = 0  # callers sharing the run under way (observable by tests)

    async def run(self, work: Callable[[], Awaitable[T]]) -> T:
        with self._lock:
            flight, owner = self._flight, self._flight is None
            if owner:
                flight = self._flight = concurrent.futures.Future()
                flight.set_running_or_notify_cancel()  # a sharer that gives up cannot cancel it for the rest
            else:
                self.waiting += 1
        assert flight is not None
        if not owner:
            try:
                return await asyncio.wrap_future(flight)
            finally:
                with self._lock:
                    self.waiting -= 1
        try:
            value = await work()
        except BaseException as error:
            # A cancelled owner (its caller's timeout) must not cancel the requests sharing its run.
            if isinstance(error, asyncio.CancelledError):
                error = TimeoutError("the shared fetch was cancelled")
            self._end_flight()
            flight.set_exception(error)
            raise
        self._end_flight()
        flight.set_result(value)
        return value

    def _end_flight(self) -> None:
        with self._lock:
            self._flight = None


class LogtoProviderMetadata(OidcProviderMetadata):  # type: ignore[misc]  # the base is from a package without type information
    """The SDK's discovery model plus the revocation endpoint (RFC 7009), which Logto lists and the SDK drops."""

    revocation_endpoint: str | None = None


class StrictOidcCore(OidcCore):  # type: ignore[misc]  # the base is from a package without type information
    metadata: LogtoProviderMetadata

    def __init__(self, metadata: OidcProviderMetadata) -> None:
        super().__init__(metadata)
        self.jwksClient = None  # the SDK's blocking JWKS client is never used
        self._keys: dict[str | None, jwt.PyJWK] = {}
        self._keys_fetched_at = 0.0
        self._key_fetch: SingleFlight[None] = SingleFlight()

    @staticmethod
    async def getProviderMetadata(discoveryUrl: str) -> LogtoProviderMetadata:
        return parse_model(LogtoProviderMetadata, await fetch_json("GET", discoveryUrl))

    async def fetchTokenByCode(
        self, clientId: str, clientSecret: str | None, redirectUri: str, code: str, codeVerifier: str
    ) -> TokenResponse:
        form = {"grant_type": "authorization_code", "client_id": clientId, "client_secret": clientSecret,
                "redirect_uri": redirectUri, "code": code, "code_verifier": codeVerifier}
        return await self._token_request(form)

    async def fetchTokenByRefreshToken(
        self, clientId: str, clientSecret: str | None, refreshToken: str, resource: str = ""
    ) -> TokenResponse:
        form = {"grant_type": "refresh_token", "client_id": clientId, "client_secret": clientSecret,
                "refresh_token": refreshToken, "resource": resource}
        return await self._token_request(form)

    async def fetchUserInfo(self, accessToken: str) -> UserInfoResponse:
        headers = {"Authorization": f"Bearer {accessToken}"}
        return parse_model(UserInfoResponse, await fetch_json("GET", self.metadata.userinfo_endpoint, headers=headers))

    async def revokeToken(self, clientId: str, clientSecret: str | None, token: str, hint: str) -> None:
        """RFC 7009 at the revocation endpoint (client auth as at the token endpoint); `ProviderError` without one."""
        if not self.metadata.revocation_endpoint:
            raise ProviderError("discovery lists no revocation_endpoint")
        form = {"token": token, "token_type_hint": hint, "client_id": clientId, "client_secret": clientSecret}
        await fetch_json("POST", self.metadata.revocation_endpoint, data=removeFalsyKeys(form), expect_json=False)

    async def signing_key(self, token: str) -> jwt.PyJWK | None:
        """The key a JWT from outside names (a logout token); the JWKS is fetched only for a kid not known yet,
        and at most every `KEYS_MIN_REFETCH_SECONDS`, so junk tokens cannot make the site hammer Logto."""
        kid = jwt.get_unverified_header(token).get("kid")
        recently = self._keys and time.monotonic() - self._keys_fetched_at < KEYS_MIN_REFETCH_SECONDS
        if self._key_for(kid) is None and not recently:
            await self._key_fetch.run(self._fetch_keys)
        return self._key_for(kid)

    async def _token_request(self, form: dict[str, Any]) -> TokenResponse:
        tokens = parse_model(TokenResponse, await fetch_json("POST", self.metadata.token_endpoint, data=removeFalsyKeys(form)))
        if tokens.id_token is not None:
            await self._have_key_for(tokens.id_token)  # the SDK verifies it next, synchronously
        return tokens

    async def _have_key_for(self, id_token: str) -> None:
        kid = jwt.get_unverified_header(id_token).get("kid")
        fresh = time.monotonic() - self._keys_fetched_at < KEYS_MAX_AGE_SECONDS
        if fresh and self._key_for(kid) is not None:
            return
        await self._key_fetch.run(self._fetch_keys)

    async def _fetch_keys(self) -> None:
        document = await fetch_json("GET", self.metadata.jwks_uri)
        if not isinstance(document, dict):
            raise ProviderError("the JWKS is not a JSON object")
        try:
            key_set = jwt.PyJWKSet.from_dict(document)
        except jwt.PyJWTError:
            raise ProviderError("the JWKS has no usable key") from None
        self._keys = {key.key_id: key for key in key_set.keys if key.public_key_use in (None, "sig")}
        self._keys_fetched_at = time.monotonic()

    def _key_for(self, kid: str | None) -> jwt.PyJWK | None:
        """The signing key a token names; a token naming none may use the JWKS's only key (never one of several)."""
        keys = self._keys
        if kid is None and len(keys) == 1:
            return next(iter(keys.values()))
        return keys.get(kid) if kid is not None else None

    def verifyIdToken(self, idToken: str, clientId: str) -> None:
        kid = jwt.get_unverified_header(idToken).get("kid")
        key = self._key_for(kid)
        if key is None:
            raise jwt.InvalidTokenError(
                "signed with a key the JWKS does not have" if kid is not None else "no kid, and the JWKS has several keys"
            )
        try:
            claims = jwt.decode(
                idToken,
                key.key,
                algorithms=ID_TOKEN_ALGORITHMS,
                audience=clientId,
                issuer=self.metadata.issuer,
                leeway=30,
                options={"require": ["iss", "sub", "aud", "exp", "iat"]},
            )
        except (TypeError, ValueError) as error:  # e.g. an RS256 header on an EC key
            raise jwt.InvalidTokenError(f"signature check failed ({type(error).__name__})") from None
        if not isinstance(claims["sub"], str) or not PRINTABLE_ID.fullmatch(claims["sub"]):
            raise jwt.InvalidTokenError("sub is not a printable id")
        if "azp" in claims and claims["azp"] != clientId:
            raise jwt.InvalidTokenError("azp names another client")
        # The SDK reads stored ID tokens with this model later (`getIdTokenClaims`), so a token it cannot
        # read must not get in; e.g. it wants `aud` as one string, which is what Logto issues.
        try:
            IdTokenClaims(**claims)
        except pydantic.ValidationError:
            raise jwt.InvalidTokenError("claims of unexpected types") from None


def check_discovery(metadata: OidcProviderMetadata, issuer: str) -> str | None:
    """What is wrong with a discovery document for `issuer`, if anything.

    Logto serves every endpoint from its own origin; anything else is not the Logto we were told to use.
    """
    if metadata.issuer != issuer:
        return f"discovery issuer {metadata.issuer[:100]!r} is not {issuer!r}"
    origin = urlsplit(issuer)[:2]
    endpoints = [metadata.authorization_endpoint, metadata.token_endpoint, metadata.userinfo_endpoint,
                 metadata.jwks_uri, metadata.end_session_endpoint or issuer,
                 getattr(metadata, "revocation_endpoint", None) or issuer]
    for url in endpoints:
        if urlsplit(url)[:2] != origin:
            return f"discovery endpoint {url[:100]!r} is not on {issuer!r}"
    return None
