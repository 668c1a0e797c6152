"""The one owner of the session keys the sign-in unit uses: nothing else in the unit spells one.

Signing in and signing out clear the whole session (as Flask's tutorial does at login); in between, the
app's own keys are left alone. The keys:
- `auth.user`: the `SignedInUser`, as a dict
- `auth.userinfo`: Logto's userinfo from the sign-in or the last refresh
- `auth.pending`: sign-ins in progress, by `state` (PKCE verifier, nonce, start time, `next` path)
- `auth.hf_token`: the user's Hugging Face access token and its expiry, until it expires (hub_token.py)
- `logto.idToken`, `logto.refreshToken`, `logto.accessTokenMap`: the `logto` SDK's tokens (its storage names
  them `idToken`, ...; `sdk_key` adds the prefix)
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import Any

USER = "auth.user"
USERINFO = "auth.userinfo"
PENDING = "auth.pending"
HF_TOKEN = "auth.hf_token"
SDK_TOKENS = ("idToken", "refreshToken", "accessTokenMap")  # the SDK's names for what it keeps


def sdk_key(name: str) -> str:
    """The session key under which the SDK's storage keeps `name` (e.g. `idToken`)."""
    return f"logto.{name}"


def holds_sign_in(stored: Mapping[str, Any]) -> bool:
    """True when a session belongs to a completed sign-in (it keeps Logto's ID token)."""
    return stored.get(sdk_key("idToken")) is not None


def tokens(stored: Mapping[str, Any]) -> dict[str, str | None]:
    """The SDK's tokens kept in a session, by the SDK's names."""
    return {name: stored.get(sdk_key(name)) for name in SDK_TOKENS}


def keep_tokens(stored: MutableMapping[str, Any], new_tokens: Mapping[str, str | None]) -> None:
    """Put the SDK's tokens (by its names) into a session; a missing one is removed."""
    for name in SDK_TOKENS:
        if new_tokens.get(name) is None:
            stored.pop(sdk_key(name), None)
        else:
            stored[sdk_key(name)] = new_tokens.get(name)


def access_token_map(stored: Mapping[str, Any]) -> str | None:
    """The SDK's stored access tokens (JSON), read on every signed-in page (connection.current_access_token)."""
    value = stored.get(sdk_key("accessTokenMap"))
    return value if isinstance(value, str) else None


def refresh_token(stored: Mapping[str, Any]) -> str | None:
    value = stored.get(sdk_key("refreshToken"))
    return value if isinstance(value, str) else None


def pending(stored: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The sign-ins in progress kept in a session, by `state` (anything malformed is ignored)."""
    waiting = stored.get(PENDING)
    if not isinstance(waiting, dict):
        return {}
    return {
        state: entry for state, entry in waiting.items()
        if isinstance(state, str) and isinstance(entry, dict) and isinstance(entry.get("sign_in_session"), str)
        and isinstance(entry.get("nonce"), str) and isinstance(entry.get("started"), int)
    }


def keep_pending(stored: MutableMapping[str, Any], waiting: Mapping[str, dict[str, Any]]) -> None:
    stored[PENDING] = dict(waiting)
