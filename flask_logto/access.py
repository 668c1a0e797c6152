"""Who may open a view: decorators for sync and async views, on top of `current_user()` (views.py).

- `login_required`: anyone signed in.
- `hf_org_required(org, role="read")`: members of a Hugging Face organisation with at least that role
  (read < contributor < write < admin); anyone else gets a 403 page that says how to share the organisation.
- `recent_sign_in_required(max_age=300)`: someone who signed in at most `max_age` seconds ago (the ID token's
  `auth_time`); anyone else goes through a new sign-in that asks Logto for one, then comes back.

A signed-out visitor (or one whose sign-in is too old) is sent to `/sign-in` and comes back: to the same page
after a GET, and after a POST to the page that held the form (a same-site `Referer`, else the home page), so that
nothing a form sent is replayed by a redirect.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Flask, current_app, redirect, request, url_for

from flask_logto.hf_orgs import check_member
from flask_logto.user import HF_ROLES, HF_USERNAME, signed_in_within
from flask_logto.views import MAX_AGE_DIGITS, current_user, refresh_if_due, refresh_now_if_due, safe_next

View = TypeVar("View", bound=Callable[..., Any])
MAX_MAX_AGE = 10**MAX_AGE_DIGITS - 1  # what /sign-in?max_age= takes
ORG_MARK = "hf_org_required"  # the attribute a guarded view carries: (org, role)


def login_required(view: View) -> View:
    """Send a signed-out visitor to sign in, and back here after. Sync or async views."""

    def refusal() -> Any:
        return _to_sign_in() if current_user() is None else None

    return _guarded(view, refusal)


def hf_org_required(org: str, role: str = "read") -> Callable[[View], View]:
    """Only members of the Hugging Face organisation `org` (its Hub name) with at least `role` get the view.

    A member whose role Hugging Face did not say passes only `role="read"`. Sync or async views."""
    if not HF_USERNAME.fullmatch(org):
        raise ValueError(f"hf_org_required: {org!r} is not a Hugging Face organisation name")
    if role not in HF_ROLES:
        raise ValueError(f"hf_org_required: role must be one of {', '.join(HF_ROLES)}, not {role!r}")

    def refusal() -> Any:
        user = current_user()
        if user is None:
            return _to_sign_in()
        check_member(user, org, role)  # HfOrgRequired: the 403 page
        return None

    def decorator(view: View) -> View:
        guarded = _guarded(view, refusal, refresh_first=True)
        setattr(guarded, ORG_MARK, (org, role))  # found by `hf_org_pages` (what `flask logto doctor` checks)
        return guarded

    return decorator


def hf_org_pages(app: Flask) -> list[str]:
    """The app's endpoints that `hf_org_required` guards, as `endpoint (org, role)`."""
    return [
        f"{endpoint} ({mark[0]}, {mark[1]})" for endpoint, view in app.view_functions.items()
        if (mark := getattr(view, ORG_MARK, None))
    ]


def recent_sign_in_required(max_age: int = 300) -> Callable[[View], View]:
    """Only someone who signed in at most `max_age` seconds ago gets the view; anyone else signs in again first
    (Logto is asked for it with `max_age` and `prompt=login consent`). Sync or async views."""
    if isinstance(max_age, bool) or not isinstance(max_age, int) or not 1 <= max_age <= MAX_MAX_AGE:
        raise ValueError(f"recent_sign_in_required: max_age must be 1 to {MAX_MAX_AGE} seconds, not {max_age!r}")

    def refusal() -> Any:
        user = current_user()
        if user is None or not signed_in_within(user.auth_time, max_age):
            return _to_sign_in(max_age=max_age)
        return None

    return lambda view: _guarded(view, refusal)


def _guarded(view: View, refusal: Callable[[], Any], *, refresh_first: bool = False) -> View:
    """`view`, run only when `refusal()` gives None (else its answer instead). With `refresh_first`, a session
    whose access token is due is refreshed first (its organisations asked again)."""
    if inspect.iscoroutinefunction(view):
        @functools.wraps(view)
        async def wrapped_async(*args: Any, **kwargs: Any) -> Any:
            if refresh_first:
                await refresh_if_due()
            answer = refusal()
            return answer if answer is not None else await view(*args, **kwargs)

        return wrapped_async  # type: ignore[return-value]

    @functools.wraps(view)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if refresh_first:
            refresh_now_if_due()
        answer = refusal()
        return answer if answer is not None else view(*args, **kwargs)

    return wrapped  # type: ignore[return-value]


def _to_sign_in(max_age: int | None = None) -> Any:
    target = url_for("auth.sign_in", next=_back_here(), max_age=max_age)
    return redirect(target, 302 if request.method in ("GET", "HEAD") else 303)


def _back_here() -> str:
    """Where to come back after signing in: this page after a GET; after a POST, the same-site page that held
    the form (its `Referer`), else the home page."""
    if request.method in ("GET", "HEAD"):
        return request.full_path.rstrip("?")
    try:
        referrer = urlsplit(request.referrer or "")
    except ValueError:  # e.g. "http://[oops/x"
        return "/"
    origin = f"{referrer.scheme}://{referrer.netloc}"
    if origin in (request.host_url.rstrip("/"), current_app.extensions["logto"].settings.app_base_url):
        return safe_next(referrer.path + (f"?{referrer.query}" if referrer.query else ""))
    return "/"
