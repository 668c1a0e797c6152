"""OpenID Connect Back-Channel Logout 1.0: Logto tells the site that a sign-in ended; the site ends its sessions.

Logto POSTs `logout_token=<JWT>` to `{LOGTO_BASE_URL}/backchannel-logout` when someone signs out at Logto
(end-session), once, with a 2.5 s timeout and no retry. The token is signed with Logto's ID-token keys
and carries `iss`, `aud` (the app id), `iat`, `exp`, `jti`, `events` with the back-channel logout event,
`sub` and, when the app has `backchannelLogoutSessionRequired`, `sid` (the Logto session, also in the
ID token); never a `nonce`.

- `check_logout_token`: every rule of the spec, on a token whose signing key the caller found.
- `SignInIndex`: at sign-in, the site session id is filed under the ID token's `sid` and `sub` in the
  session store (session_store.py), so that a logout can find every site session of that Logto session
  (or, without `sid`, of that user), whichever instance made it. Each `jti` is accepted once.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import jwt

from flask_logto.errors import BadLogoutToken
from flask_logto.oidc_core import ID_TOKEN_ALGORITHMS, PRINTABLE_ID
from flask_logto.session_store import Store

LOGOUT_EVENT = "http://schemas.openid.net/event/backchannel-logout"
LEEWAY_SECONDS = 30
MAX_AGE_SECONDS = 300  # a token without `exp` is taken up to this long after its `iat`
MAX_TOKEN_LENGTH = 16 * 1024


def unverified_header(token: Any) -> dict[str, Any]:
    """The token's JOSE header, after the checks that need no key (a JWT string of sane size)."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        raise BadLogoutToken("logout_token missing or too long")
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise BadLogoutToken("logout_token is not a JWT") from None
    typ, kid = header.get("typ", "logout+jwt"), header.get("kid")
    if not isinstance(typ, str) or typ.lower() not in ("logout+jwt", "application/logout+jwt"):
        raise BadLogoutToken("typ is not logout+jwt")
    if kid is not None and not isinstance(kid, str):
        raise BadLogoutToken("kid is not a string")
    return header


def check_logout_token(
    token: str, key: jwt.PyJWK | None, *, issuer: str, client_id: str, now: float | None = None,
) -> dict[str, Any]:
    """The claims of a valid logout token for `client_id` from `issuer`, or `BadLogoutToken`."""
    unverified_header(token)
    if key is None:
        raise BadLogoutToken("signed with a key the JWKS does not have")
    now = time.time() if now is None else now
    try:
        claims = jwt.decode(
            token, key.key, algorithms=ID_TOKEN_ALGORITHMS, audience=client_id, issuer=issuer,
            leeway=LEEWAY_SECONDS, options={"require": ["iss", "aud", "iat", "jti"], "verify_iat": False},
        )
    except jwt.PyJWTError as error:
        raise BadLogoutToken(f"rejected ({str(error)[:100]})") from None
    except (TypeError, ValueError) as error:  # e.g. an RS256 header on an EC key
        raise BadLogoutToken(f"signature check failed ({type(error).__name__})") from None
    iat = claims["iat"]
    if not isinstance(iat, (int, float)) or isinstance(iat, bool) or iat > now + LEEWAY_SECONDS:
        raise BadLogoutToken("iat is not a time in the past")
    if "exp" not in claims and iat < now - MAX_AGE_SECONDS - LEEWAY_SECONDS:
        raise BadLogoutToken("too old (iat, no exp)")
    events = claims.get("events")
    if not isinstance(events, dict) or not isinstance(events.get(LOGOUT_EVENT), dict):
        raise BadLogoutToken("events has no back-channel logout event")
    if "nonce" in claims:
        raise BadLogoutToken("has a nonce (an ID token?)")
    if "sid" not in claims and "sub" not in claims:
        raise BadLogoutToken("neither sid nor sub")
    for name in ("sid", "sub", "jti"):
        if name in claims and not (isinstance(claims[name], str) and PRINTABLE_ID.fullmatch(claims[name])):
            raise BadLogoutToken(f"{name} is not a printable id")
    if "azp" in claims and claims["azp"] != client_id:
        raise BadLogoutToken("azp names another client")
    return claims


def replay_window(claims: Mapping[str, Any], now: float | None = None) -> int:
    """Seconds a token's `jti` must be remembered: as long as the token could still be accepted."""
    now = time.time() if now is None else now
    until = claims["exp"] if isinstance(claims.get("exp"), (int, float)) else claims["iat"] + MAX_AGE_SECONDS
    return max(60, int(until + LEEWAY_SECONDS - now) + 1)


class SignInIndex:
    """Site session ids by Logto session (`sid`) and by user (`sub`), in the session store."""

    def __init__(self, store: Store, session_seconds: int) -> None:
        self.store = store
        self.session_seconds = session_seconds

    def remember(self, site_session_id: str, id_token_claims: Mapping[str, Any]) -> None:
        """File a new site session under the Logto session and the user of its (verified) ID token."""
        for key in _keys(id_token_claims.get("sid"), id_token_claims.get("sub")):
            self.store.add_to_set(key, site_session_id, self.session_seconds)

    def first_use(self, claims: Mapping[str, Any]) -> bool:
        """True the first time this logout token's `jti` is seen (by any instance)."""
        return self.store.put_new(f"jti:{claims['jti']}", 1, replay_window(claims))

    def site_sessions(self, claims: Mapping[str, Any]) -> set[str]:
        """The site sessions a logout ends: those of its `sid` if it has one (that Logto session), else all of its `sub`.

        The index entries go with them.
        """
        sid, sub = claims.get("sid"), claims.get("sub")
        keys = _keys(sid, None) if sid else _keys(None, sub)
        sessions: set[str] = set()
        for key in keys:
            sessions |= self.store.members(key)
            self.store.delete(key)
        return sessions


def _keys(sid: Any, sub: Any) -> list[str]:
    return [f"{kind}:{value}" for kind, value in (("sid", sid), ("sub", sub)) if isinstance(value, str) and value]
