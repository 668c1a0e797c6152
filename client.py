"""The sign-in unit's public face for the site (and the design card): everything comes from the `flask_logto`
package, whose `__init__.py` says how to use it and lists its public names.

    from client import LogtoAuth, current_user, login_required
"""

import flask_logto
from flask_logto import *  # noqa: F403  (re-exported as they are: the package owns the list)

__all__ = flask_logto.__all__
