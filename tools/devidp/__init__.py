"""devidp: the embedded development identity provider (looks like Logto to the `logto` SDK).

See README.md. The provider itself is Node (server.js); this package only starts and stops it.
"""

from .launcher import DEVIDP_DIR, DevIdpError, RunningProvider, ensure_installed, start_provider

__all__ = ["DEVIDP_DIR", "DevIdpError", "RunningProvider", "ensure_installed", "start_provider"]
