"""The sign-in unit's insides; its public face is client.py (`LogtoAuth`, `current_user`, `login_required`).

- config.py: the settings it reads from `app.config`, and the rules they are checked by
- connection.py: the Logto connection (SDK client, sign-in steps, refresh, the failure pages' exceptions)
- oidc_core.py: the SDK's OIDC core with a safe transport and strict ID-token checks
- token_refresh.py: one refresh at a time per session
- templates/auth/: the pages the unit shows
"""
