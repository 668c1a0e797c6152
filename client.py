"""The sign-in unit's public face for the site (and the design card): everything comes from the `flask_logto`
package (flask_logto/__init__.py says how to use it).

    from client import LogtoAuth, current_user, login_required
"""

from flask_logto import (
    AuthFailure,
    BadCallback,
    ConfigError,
    HfTokenExpired,
    HfTokenNotSetUp,
    HfTokenNotStored,
    HfTokenUnavailable,
    LogtoAuth,
    LogtoUnavailable,
    SessionEnded,
    SignedInUser,
    SignInRejected,
    current_user,
    login_required,
    safe_next,
    signed_in_key,
)

__all__ = [
    "LogtoAuth", "current_user", "login_required", "safe_next", "signed_in_key", "SignedInUser", "ConfigError",
    "AuthFailure", "BadCallback", "SignInRejected", "SessionEnded", "LogtoUnavailable",
    "HfTokenUnavailable", "HfTokenNotStored", "HfTokenExpired", "HfTokenNotSetUp",
]
