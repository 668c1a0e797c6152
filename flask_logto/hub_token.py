"""The signed-in user's Hugging Face access token, kept for them server-side by Logto's Secret Vault.

Logto stores the token set Hugging Face issues at a sign-in through a connector with token storage on (the
standard OIDC connector: the dedicated Hugging Face connector cannot store tokens), and gives the access token
to the user, never to anyone else, through its Account API:

    GET {LOGTO_ENDPOINT}/api/my-account/identities/huggingface/access-token
    Authorization: Bearer <the user's opaque Logto access token (no resource), scopes including `identities`>
    → 200 {"access_token": "hf_oauth_…", "scope": "…", "token_type": "bearer", "expires_in": <seconds left>}

Every way that can fail is an `HfTokenUnavailable` (which says what to do), `SessionEnded` (Logto does not know
the user's access token any more) or `LogtoUnavailable`. The token is fetched server-side only, with
`oidc_core.fetch_json` (no redirects, 1 MiB at most) within LOGTO_TIMEOUT, and kept at most in the server-side
session under `auth.hf_token` ({token, expires_at}) until shortly before it expires. It never reaches a log line,
an error message or the browser.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from logto import LogtoException

from flask_logto import oidc_core
from flask_logto.connection import (  # noqa: F401  (current_access_token: re-exported)
    Logto,
    access_token_due,
    current_access_token,
    logto_unavailable,
)
from flask_logto.errors import (
    AuthFailure,
    HfTokenExpired,
    HfTokenNotSetUp,
    HfTokenNotStored,
    HfTokenUnavailable,
    SessionEnded,
    safe_code,
)
from flask_logto.i18n import N_
from flask_logto.session_keys import HF_TOKEN, access_token_map

ACCESS_TOKEN_PATH = "/api/my-account/identities/huggingface/access-token"
EXPIRY_MARGIN_SECONDS = 60  # a kept token is dropped this long before Hugging Face would refuse it
UNKNOWN_LIFETIME_SECONDS = 300  # how long to keep a token whose reply gave no `expires_in`
TOKEN_SHAPE = re.compile(r"[\x21-\x7e]{1,4096}")  # printable, no spaces: fit for an Authorization header
STEP = "hf-token"


# Whole sentences, each marked for translation (flask_logto/i18n.py): shown in the visitor's language.
_REFUSALS: dict[str, tuple[type[HfTokenUnavailable], str]] = {
    "secrets.third_party_token_set.token_not_found": (
        HfTokenNotStored, N_("Logto holds no Hugging Face token for you. Sign out, then sign in with Hugging Face again: "
                             "Logto keeps the token Hugging Face gives at sign-in."),
    ),
    "secrets.third_party_token_set.access_token_expired": (
        HfTokenExpired, N_("The Hugging Face token Logto keeps for you has expired. Sign out, then sign in with Hugging "
                           "Face again: Logto keeps the token Hugging Face gives at sign-in."),
    ),
    "account_center.not_enabled": (
        HfTokenNotSetUp, N_("This site's Logto tenant does not hand out Hugging Face tokens: its Account Center is off."),
    ),
    "auth.forbidden": (
        HfTokenNotSetUp, N_("This site's sign-in does not ask Logto for the identities scope, which reading the "
                            "Hugging Face token needs."),
    ),
}


async def session_hf_token(
    logto: Logto, session: MutableMapping[str, Any], refresh: Callable[[], Awaitable[Any]]
) -> str:
    """The token kept in the session, else Logto's (with the session's access token, refreshed first if due).

    `refresh` refreshes the session's tokens (the unit's own refresh, the one `userinfo` uses).
    """
    kept = kept_token(session.get(HF_TOKEN))
    if kept is not None:
        return kept
    drop_expired(session)
    due = access_token_due(access_token_map(session))
    if due:
        await refresh()
    # Just refreshed, the token is good whatever the SDK's early expiry (60 s before Logto's) says.
    access_token = current_access_token(access_token_map(session), check_expiry=not due)
    if access_token is None:
        raise SessionEnded(N_("Your sign-in is no longer valid. Please sign in again."), f"{STEP}: no access token")
    token, expires_at = await fetch_hf_token(logto, access_token)
    keep_hf_token(session, token, expires_at)
    return token


def keep_hf_token(session: MutableMapping[str, Any], token: str, expires_at: int) -> None:
    """Keep the token in the session until shortly before it expires (one that is nearly expired is not kept)."""
    if expires_at - EXPIRY_MARGIN_SECONDS > time.time():
        session[HF_TOKEN] = {"token": token, "expires_at": expires_at}


async def fetch_hf_token(logto: Logto, access_token: str) -> tuple[str, int]:
    """Ask Logto's Account API for the user's Hugging Face token: (token, expiry as epoch seconds)."""
    url = f"{logto.settings.logto_endpoint}{ACCESS_TOKEN_PATH}"
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}

    async def ask() -> Any:
        try:
            return await oidc_core.fetch_json("GET", url, headers=headers)
        except LogtoException as error:  # an error answer: say which
            raise refusal(str(error)) from None

    reply = await logto.guarded(STEP, ask())  # timeout; unreachable, junk or too large: LogtoUnavailable
    token = reply.get("access_token") if isinstance(reply, dict) else None
    if not isinstance(token, str) or not TOKEN_SHAPE.fullmatch(token):
        raise logto_unavailable(STEP, "answer without a usable access_token")
    expires_in = reply.get("expires_in")
    if isinstance(expires_in, bool) or not isinstance(expires_in, int) or expires_in < 0:
        expires_in = UNKNOWN_LIFETIME_SECONDS
    return token, int(time.time()) + expires_in


def refusal(body: str) -> AuthFailure:
    """The failure for an error answer of the Account API (by Logto's `code`)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):
        parsed = None
    code = parsed.get("code") if isinstance(parsed, dict) else None
    if code in _REFUSALS:  # known codes only reach the log as they are
        kind, message = _REFUSALS[code]
        return kind(message, f"{STEP}: {code}", code)
    if code == "auth.unauthorized":  # Logto no longer knows the access token: the sign-in was revoked
        return SessionEnded(N_("Your sign-in is no longer valid. Please sign in again."), f"{STEP}: {code}")
    return logto_unavailable(STEP, f"error answer ({safe_code(code) if isinstance(code, str) else 'not Logto JSON'})")


def kept_token(stored: Any, now: float | None = None) -> str | None:
    """The session's kept token while it is good for more than `EXPIRY_MARGIN_SECONDS`, else None."""
    if not isinstance(stored, dict):
        return None
    token, expires_at = stored.get("token"), stored.get("expires_at")
    if not isinstance(token, str) or not isinstance(expires_at, int):
        return None
    return token if expires_at - EXPIRY_MARGIN_SECONDS > (time.time() if now is None else now) else None


def drop_expired(session: MutableMapping[str, Any]) -> None:
    """Remove a kept token that is (nearly) expired; the session is written only when there was one."""
    if HF_TOKEN in session and kept_token(session.get(HF_TOKEN)) is None:
        session.pop(HF_TOKEN, None)


def forget_hf_token(session: MutableMapping[str, Any]) -> None:
    """Drop the kept token (the Hub refused it): the next `hf_token()` asks Logto again."""
    session.pop(HF_TOKEN, None)
