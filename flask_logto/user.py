"""What the session keeps about the signed-in person: `SignedInUser` (no tokens) and their Hugging Face
organisations (`HfOrg`), read from Logto's userinfo or the Hub's `whoami-v2`.

Everything here comes from outside (Logto, Hugging Face through Logto, the Hub) and is parsed defensively:
a value of the wrong type is dropped, never an error; names are checked against the Hub's name rules and
images must be https URLs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

HF_USERNAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,95}")
# Hugging Face's roles in an organisation, from least to most.
HF_ROLES = ("read", "contributor", "write", "admin")
MAX_HF_ORGS = 200  # the most organisations kept for one person
FUTURE_AUTH_TIME_SECONDS = 60  # how far ahead of our clock Logto's may be


@dataclass(frozen=True)
class HfOrg:
    """One of the person's Hugging Face organisations. `name` is its name on the Hub (`acme`); `role` is
    "admin", "write", "contributor", "read", or None when Hugging Face did not say (or said something unknown)."""

    name: str
    display_name: str | None = None
    role: str | None = None
    is_enterprise: bool = False
    avatar: str | None = None

    def has_role(self, needed: str) -> bool:
        """True when this membership's role is `needed` or above (read < contributor < write < admin).
        A role Hugging Face did not say passes only "read"."""
        if self.role not in HF_ROLES:
            return needed == "read"
        return HF_ROLES.index(self.role) >= HF_ROLES.index(needed)

    @classmethod
    def from_session(cls, stored: Any) -> HfOrg | None:
        """An organisation as the session keeps it (`asdict`), checked again; None when it is not one."""
        if not isinstance(stored, dict) or not isinstance(name := stored.get("name"), str) or not HF_USERNAME.fullmatch(name):
            return None
        role = stored.get("role")
        return cls(name, _text(stored.get("display_name")), role if role in HF_ROLES else None,
                   stored.get("is_enterprise") is True, _https_url(stored.get("avatar")))


@dataclass(frozen=True)
class SignedInUser:
    """What the site keeps about the signed-in person (shown on every page; no tokens).

    `auth_time`: when they last proved who they are at Logto (the ID token's `auth_time`, epoch seconds), or
    None when Logto did not say (it says only when asked: `recent_sign_in_required`). `hf_orgs`: their Hugging
    Face organisations as Hugging Face shared them (an empty tuple when none were shared).
    """

    sub: str
    name: str | None
    username: str | None
    hf_username: str | None
    hf_name: str | None
    hf_id: str | None
    avatar: str | None
    email: str | None
    hf_orgs: tuple[HfOrg, ...] = ()
    auth_time: int | None = None

    @classmethod
    def from_claims(
        cls, id_claims: Mapping[str, Any], userinfo: Mapping[str, Any], hf_orgs: Iterable[HfOrg] = (),
    ) -> SignedInUser:
        details = huggingface_details(userinfo)
        raw_data = details.get("rawData")
        raw: dict[str, Any] = raw_data if isinstance(raw_data, dict) else {}
        identities = userinfo.get("identities")
        identity = identities.get("huggingface") if isinstance(identities, dict) else None
        auth_time = id_claims.get("auth_time")
        return cls(
            sub=str(id_claims["sub"]),
            name=_text(userinfo.get("name")) or _text(id_claims.get("name")),
            username=_text(userinfo.get("username")) or _text(id_claims.get("username")),
            # the dedicated connector keeps Hugging Face's userinfo in rawData; the OIDC connector its ID token
            hf_username=_hf_username(raw.get("preferred_username")) or _hf_username(details.get("username")),
            hf_name=_text(details.get("name")) or _text(raw.get("name")),
            hf_id=_text(identity.get("userId")) if isinstance(identity, dict) else None,
            avatar=_https_url(details.get("avatar")) or _https_url(raw.get("picture")) or _https_url(id_claims.get("picture")),
            email=_text(details.get("email")) or _text(raw.get("email")) or _text(userinfo.get("email")),
            hf_orgs=tuple(hf_orgs),
            auth_time=auth_time if isinstance(auth_time, int) and not isinstance(auth_time, bool) else None,
        )

    @classmethod
    def from_session(cls, stored: Any) -> SignedInUser | None:
        if not isinstance(stored, dict):
            return None
        try:
            fields: dict[str, Any] = {name: stored.get(name) for name in cls.__dataclass_fields__}
            kept = fields["hf_orgs"] if isinstance(fields["hf_orgs"], list | tuple) else ()
            fields["hf_orgs"] = tuple(org for org in map(HfOrg.from_session, kept) if org is not None)
            return cls(**fields)
        except TypeError:
            return None

    def hf_org(self, name: str) -> HfOrg | None:
        """The person's membership of the organisation `name` (Hub names match whatever their case), or None."""
        wanted = name.casefold()
        return next((org for org in self.hf_orgs if org.name.casefold() == wanted), None)


def signed_in_within(auth_time: Any, max_age: int, now: float | None = None) -> bool:
    """True when `auth_time` (epoch seconds, from an ID token) is at most `max_age` seconds ago. No `auth_time`
    (Logto sends it only when asked with `max_age`) is not recent; neither is one more than a minute ahead."""
    if not isinstance(auth_time, int) or isinstance(auth_time, bool):
        return False
    elapsed = (time.time() if now is None else now) - auth_time
    return -FUTURE_AUTH_TIME_SECONDS <= elapsed <= max_age


def huggingface_details(userinfo: Mapping[str, Any]) -> dict[str, Any]:
    identities = userinfo.get("identities")
    hf = identities.get("huggingface") if isinstance(identities, dict) else None
    details = hf.get("details") if isinstance(hf, dict) else None
    return details if isinstance(details, dict) else {}


def orgs_in_userinfo(userinfo: Mapping[str, Any]) -> tuple[HfOrg, ...] | None:
    """The organisations in Logto's userinfo (`identities.huggingface.details.rawData.orgs`: Hugging Face's
    userinfo as Logto kept it), or None when it has no `orgs` at all (not shared, or token storage, where
    rawData is Hugging Face's ID token)."""
    raw = huggingface_details(userinfo).get("rawData")
    if not isinstance(raw, dict) or "orgs" not in raw:
        return None
    return _orgs(raw["orgs"], name="preferred_username", display_name="name", avatar="picture")


def orgs_in_whoami(whoami: Any) -> tuple[HfOrg, ...]:
    """The organisations in the Hub's `whoami-v2` answer (`orgs[].name`, `fullname`, `roleInOrg`, ...)."""
    orgs = whoami.get("orgs") if isinstance(whoami, dict) else None
    return _orgs(orgs, name="name", display_name="fullname", avatar="avatarUrl")


def _orgs(entries: Any, *, name: str, display_name: str, avatar: str) -> tuple[HfOrg, ...]:
    if not isinstance(entries, list):
        return ()
    found: dict[str, HfOrg] = {}
    for entry in entries[:MAX_HF_ORGS]:
        org_name = _hf_username(entry.get(name)) if isinstance(entry, dict) else None
        if org_name is None or org_name.casefold() in found:
            continue
        role = entry.get("roleInOrg")
        found[org_name.casefold()] = HfOrg(
            name=org_name,
            display_name=_text(entry.get(display_name)),
            role=role if role in HF_ROLES else None,
            is_enterprise=entry.get("isEnterprise") is True,
            avatar=_https_url(entry.get(avatar)),
        )
    return tuple(found.values())


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
