"""Every error the sign-in unit raises, in one place.

- `ConfigError`: a setting is wrong (one line naming it); `init_app` raises it.
- `AuthFailure` and its kinds: what a person sees as a page (status, title, message; `cause` for the log only):
  `BadCallback` (400), `SignInRejected` (401), `SessionEnded` (401), `LogtoUnavailable` (503), and
  `HfTokenUnavailable` with `HfTokenNotStored`, `HfTokenExpired`, `HfTokenNotSetUp` (`auth.hf_token()`),
  `HubUnavailable` (503), `SignInNotRecent` (401, `recent_sign_in_required`), `HfOrgRequired` (403,
  `hf_org_required`) and `NotInAllowedOrg` (403, `LOGTO_HF_ALLOWED_ORGS`).
- `ProviderError`: Logto could not be reached or answered something unusable (the connection turns it into
  `LogtoUnavailable`); `BadLogoutToken`: a back-channel logout token breaks a rule (400);
  `StoreWriteFailed`: the session store refused a write (a 503 page).
"""

from __future__ import annotations

from flask_logto.i18n import N_


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line naming the key and the fix."""


class AuthFailure(Exception):
    """A failure the user sees as a page: HTTP status, title, message; `cause` goes to the log only."""

    status = 400
    title = N_("Sign-in failed")

    def __init__(self, message: str, cause: str, **values: str) -> None:
        super().__init__(cause)
        self.message = message
        self.cause = cause
        self.values = values  # the message's %(name)s placeholders
        self.subject = ""  # whose sign-in failed, when not the session's person (for the log)


class BadCallback(AuthFailure):
    status, title = 400, N_("Sign-in link not valid")


class SignInRejected(AuthFailure):
    status, title = 401, N_("Sign-in not completed")


class SessionEnded(AuthFailure):
    status, title = 401, N_("Your session ended")


class LogtoUnavailable(AuthFailure):
    status, title = 503, N_("Identity service unavailable")


class HfTokenUnavailable(AuthFailure):
    """The signed-in user has no usable Hugging Face token; the message says what to do.

    `code` is Logto's error code; `remedy` says who can fix it: "sign-in-again" (the user) or "admin".
    """

    status, title, remedy = 403, N_("Hugging Face access unavailable"), "sign-in-again"

    def __init__(self, message: str, cause: str, code: str = "") -> None:
        super().__init__(message, cause)
        self.code = code


class HfTokenNotStored(HfTokenUnavailable):
    """Logto holds no token for this user (404 `secrets.third_party_token_set.token_not_found`)."""

    status, title = 401, N_("No Hugging Face token yet")


class HfTokenExpired(HfTokenUnavailable):
    """The stored token expired and Hugging Face gave no refresh token (401 `…access_token_expired`)."""

    status, title = 401, N_("Hugging Face token expired")


class HfTokenNotSetUp(HfTokenUnavailable):
    """The tenant does not hand tokens to this site: Account Center off (400) or no `identities` scope (403)."""

    status, title, remedy = 403, N_("Hugging Face access not set up"), "admin"


class HubUnavailable(AuthFailure):
    """The Hugging Face Hub could not be asked who the person is (down, slow, or an unusable answer)."""

    status, title = 503, N_("Hugging Face unavailable")


class SignInNotRecent(AuthFailure):
    """A sign-in asked for a recent authentication and Logto's ID token does not show one (`auth_time`)."""

    status, title = 401, N_("Sign-in not recent enough")


class HfOrgRequired(AuthFailure):
    """The page is for members of a Hugging Face organisation (with a role), and the person is not one."""

    status, title = 403, N_("Organisation members only")


class NotInAllowedOrg(AuthFailure):
    """The site is only for members of some Hugging Face organisations (`LOGTO_HF_ALLOWED_ORGS`)."""

    status, title = 403, N_("Members of certain organisations only")


class ProviderError(Exception):
    """The identity provider could not be reached, or sent something unusable (the text says what, briefly)."""


class ResponseTooLarge(ProviderError):
    """The identity provider sent more than `MAX_BODY_BYTES`."""


class BadLogoutToken(Exception):
    """The logout token breaks a rule; the text says which (for the log and the 400 answer)."""


class StoreWriteFailed(Exception):
    """The store refused a write: a file that could not be written (disk full), or Redis refusing writes (MISCONF)."""


def safe_code(code: str) -> str:
    """An error code fit for a log line: short, no spaces or control characters."""
    return "".join(c for c in code[:40] if c.isalnum() or c in "_-.") or "unknown"
