"""The signed-in person's Hugging Face organisations as of now, asked at every sign-in and every token refresh.

- Logto's userinfo has them (`identities.huggingface.details.rawData.orgs`) with the dedicated Hugging Face
  connector and the `read-memberships` scope. Logto 1.42 writes rawData only at a person's first Hugging Face
  sign-in, so these are as of then; that connector cannot store tokens, so there is nothing fresher to ask.
- With token storage (the OIDC connector), rawData is Hugging Face's ID token, which has no `orgs`; the
  person's Hub token (Logto's Account API, hub_token.py), which Logto replaces at every sign-in, asks the
  Hub's `whoami-v2`: the organisations the person shares with the site now.
- Neither: none (an empty tuple).

The Hub is asked server-side only (no redirects, 1 MiB at most, within LOGTO_TIMEOUT); a Hub that is down,
slow or answers junk is `HubUnavailable`, and a token the Hub refuses counts as no organisations.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from flask_logto import oidc_core
from flask_logto.connection import Logto
from flask_logto.errors import HfOrgRequired, HfTokenUnavailable, HubUnavailable, NotInAllowedOrg, ProviderError
from flask_logto.hub_token import fetch_hf_token
from flask_logto.i18n import N_
from flask_logto.oidc_core import ErrorAnswer
from flask_logto.user import HfOrg, SignedInUser, orgs_in_userinfo, orgs_in_whoami

WHOAMI_PATH = "/api/whoami-v2"
STEP = "hf-orgs"
NOT_ALLOWED_CAUSE = "not a member of an allowed organisation"


async def current_hf_orgs(
    logto: Logto, access_token: str, userinfo: Mapping[str, Any],
) -> tuple[tuple[HfOrg, ...] | None, tuple[str, int] | None]:
    """The person's organisations, and their Hub token with its expiry when it was fetched on the way (to keep).

    None when they cannot be told: no Hub token (no token storage, or Logto no longer holds one for the person:
    Hugging Face's expire after 8 hours), or the Hub refusing it. The caller decides what that means."""
    in_userinfo = orgs_in_userinfo(userinfo)
    if in_userinfo is not None:
        return in_userinfo, None
    try:
        hf_token = await fetch_hf_token(logto, access_token)
    except HfTokenUnavailable:
        return None, None
    answer = await whoami(logto, hf_token[0])
    return (None if answer is None else orgs_in_whoami(answer)), hf_token


async def whoami(logto: Logto, hf_token: str) -> Any:
    """The Hub's `whoami-v2` for the person whose token this is; None when the Hub refuses the token."""
    url = f"{logto.settings.hf_endpoint}{WHOAMI_PATH}"
    timeout = logto.settings.logto_timeout
    try:
        return await asyncio.wait_for(oidc_core.fetch_json("GET", url, headers={"Authorization": f"Bearer {hf_token}"}), timeout)
    except ErrorAnswer as answer:
        if answer.status in (401, 403):  # the token was revoked on Hugging Face (Settings, Connected Applications)
            return None
        raise HubUnavailable(_UNAVAILABLE, f"{STEP}: whoami-v2 answered {answer.status}") from None
    except TimeoutError:
        raise HubUnavailable(_UNAVAILABLE, f"{STEP}: no answer within {timeout:g}s") from None
    except ProviderError as error:
        raise HubUnavailable(_UNAVAILABLE, f"{STEP}: {type(error).__name__}: {str(error)[:120]}") from None


_UNAVAILABLE = N_("We could not ask Hugging Face which organisations you are in. Please try again in a moment.")


def check_allowed(allowed: tuple[str, ...], orgs: tuple[HfOrg, ...]) -> None:
    """Raise `NotInAllowedOrg` unless the person is in one of the `allowed` organisations (none set: anyone)."""
    if not allowed:
        return
    wanted = {name.casefold() for name in allowed}
    if not any(org.name.casefold() in wanted for org in orgs):
        raise NotInAllowedOrg(
            N_("This site is only for members of the Hugging Face organisations %(orgs)s. If you are a member of one, "
               "sign in again and tick it on Hugging Face's consent page, where you choose what to share with this site."),
            NOT_ALLOWED_CAUSE, orgs=", ".join(allowed),
        )


def check_member(user: SignedInUser, org: str, role: str) -> None:
    """Raise `HfOrgRequired` unless `user` is in the organisation `org` with at least `role`."""
    membership = user.hf_org(org)
    if membership is None or not membership.has_role(role):
        raise HfOrgRequired(
            N_("This page is for members of the Hugging Face organisation %(org)s with the role %(role)s or higher. "
               "If you are one, share the organisation with this site: sign out, sign in again, and tick %(org)s on "
               "Hugging Face's consent page."),
            f"{STEP}: needs {org} ({role}), has {membership.role if membership else 'no membership'}", org=org, role=role,
        )
