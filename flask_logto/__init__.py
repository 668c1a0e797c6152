"""Sign in with Hugging Face through Logto: `flask_logto`, a Flask extension (`LogtoAuth`).

    from flask_logto import LogtoAuth, current_user, login_required
    auth = LogtoAuth(app)            # or: auth = LogtoAuth(); auth.init_app(app)

    @app.get("/private")
    @login_required
    def private():
        return f"Hello {current_user().hf_username}"

Settings come from `app.config` and are checked by `init_app` (a mistake raises `ConfigError`, one
line naming the key and the fix): `LOGTO_ENDPOINT`, `LOGTO_APP_ID`, `LOGTO_APP_SECRET`, `SECRET_KEY`,
`LOGTO_BASE_URL`, `LOGTO_SCOPES`, `LOGTO_DIRECT_SIGN_IN`, `LOGTO_TIMEOUT`, `LOGTO_SESSION_LIFETIME`,
`LOGTO_DATA_DIR`, `LOGTO_REDIS_URL`, `LOGTO_HF_ALLOWED_ORGS`, `LOGTO_HF_ENDPOINT` (config.py), and the
rate limits (rate_limits.py): `RATELIMIT_ENABLED`, `RATELIMIT_STORAGE_URI`, `RATELIMIT_SIGN_IN`,
`RATELIMIT_CALLBACK`, `RATELIMIT_SIGN_OUT`,
`RATELIMIT_BACKCHANNEL_LOGOUT`.

Routes (blueprint `auth`): `GET /sign-in?next=/path`, `GET /sign-up`, `GET /callback`, `POST /sign-out`
(CSRF token; also revokes the refresh token at Logto), `POST /backchannel-logout` (Logto's back-channel
logout: ends every site session of that Logto session, on every instance), in views.py. Each is
rate-limited (429 with Retry-After past it). Pages (override one with a template of the same name in the
app's `templates/`): `auth/layout.html`, `auth/error.html`, `auth/signed_out.html`.

Who may do what (access.py): `login_required`; `hf_org_required(org, role="read")` for members of a Hugging
Face organisation (`current_user().hf_orgs`, `HfOrg`, kept with the session: hf_orgs.py, user.py);
`recent_sign_in_required(max_age=300)` for a sign-in made at most that long ago; `LOGTO_HF_ALLOWED_ORGS` for
a site only some organisations may use (checked at sign-in and at every token refresh).

Languages: the unit's pages and messages are in the visitor's language when the app uses Flask-Babel
(i18n.py), else in English; `LogtoAuth(app, ui_locales=callable)` sends Logto the language to show
its sign-in pages in (`ui_locales`, e.g. "ja"). Signing out flashes "You are signed out." (category `signed-out`).

Tokens never reach a cookie: without a server-side session, `init_app` sets up Flask-Session on files in
`LOGTO_DATA_DIR/sessions`, or in Redis with `LOGTO_REDIS_URL` (session_store.py: a session
without a completed sign-in lives 15 minutes; a store that is down or full gives a 503 page and the site
recovers when it is back); without CSRF protection, it turns on Flask-WTF's (`csrf_token()` in templates).

Inside: extension.py (`LogtoAuth`), views.py (the routes and `current_user`), errors.py (every error it
raises), session_keys.py (the session keys it uses, listed there, and their one owner), connection.py (Logto
through the `logto` SDK), config.py (settings), session_store.py, rate_limits.py and limit_storage.py (where
sessions and counters live), backchannel.py, token_refresh.py, hub_token.py, oidc_core.py, i18n.py,
user.py (`SignedInUser`, `HfOrg`), hf_orgs.py (the person's organisations now), access.py (the decorators).
"""

from flask_logto.access import hf_org_required, login_required, recent_sign_in_required
from flask_logto.errors import (
    AuthFailure,
    BadCallback,
    ConfigError,
    HfTokenExpired,
    HfTokenNotSetUp,
    HfTokenNotStored,
    HfTokenUnavailable,
    LogtoUnavailable,
    SessionEnded,
    SignInRejected,
)
from flask_logto.extension import LogtoAuth
from flask_logto.user import HfOrg, SignedInUser
from flask_logto.views import current_user, safe_next, signed_in_key

__all__ = [
    "LogtoAuth", "current_user", "login_required", "safe_next", "signed_in_key", "SignedInUser", "ConfigError",
    "AuthFailure", "BadCallback", "SignInRejected", "SessionEnded", "LogtoUnavailable",
    "HfTokenUnavailable", "HfTokenNotStored", "HfTokenExpired", "HfTokenNotSetUp",
    "HfOrg", "hf_org_required", "recent_sign_in_required",
]
