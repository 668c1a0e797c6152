"""The sign-in unit's insides; its public face is client.py (`LogtoAuth`, `current_user`, `login_required`).

- config.py: the settings it reads from `app.config`, and the rules they are checked by
- connection.py: the Logto connection (SDK client, sign-in steps, refresh, the failure pages' exceptions)
- oidc_core.py: the SDK's OIDC core with a safe transport and strict ID-token checks
- token_refresh.py: one refresh at a time per session
- session_store.py: the server-side sessions (files, or Redis with SESSION_REDIS_URL) and what instances share
- backchannel.py: Logto's back-channel logouts (the logout token's checks, the sign-in index)
- hub_token.py: the user's Hugging Face token from Logto's Account API (Secret Vault), kept until it expires
- templates/auth/: the pages the unit shows
"""
