"""One token refresh at a time per session, across threads, worker processes and site instances.

Logto rotates the refresh token (at the latest once 70% of its lifetime has passed) and, when an
already-used one comes back, revokes the whole sign-in. Two tabs whose access token expired together
would both refresh with the same token and sign the user out. So refreshes of one session take a
lock in the session store (a file lock, or a Redis lock with an expiry: session_store.py), and the
request that refreshed leaves its new tokens behind for a few minutes, filed under the token they
replace; the others adopt them instead of refreshing again (their copy of the session was loaded before).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import contextmanager

from logto import Storage

from flask_logto.session_keys import SDK_TOKENS
from flask_logto.session_store import Store

HANDOFF_SECONDS = 300


class RefreshGuard:
    def __init__(self, store: Store) -> None:
        self._store = store

    @contextmanager
    def exclusive(self, session_id: str, storage: Storage, *, timeout: float) -> Iterator[None]:
        """Hold this session's refresh lock; bring `storage` up to date first, pass on new tokens after.

        Raises `TimeoutError` if the lock is not free within `timeout` seconds; a holder that dies keeps
        it at most `timeout` seconds plus a little (the time a refresh may take).
        """
        with self._store.lock(f"refresh:{session_id}", wait=timeout, expiry=timeout + 5):
            self._adopt(session_id, storage)
            before = storage.get("refreshToken")
            yield
            if before and storage.get("refreshToken") != before:
                tokens = {name: storage.get(name) for name in SDK_TOKENS}
                self._store.put(_handoff_key(session_id, before), tokens, HANDOFF_SECONDS)

    def _adopt(self, session_id: str, storage: Storage) -> None:
        """Follow the chain of refreshes other requests made since this copy of the session was loaded."""
        for _ in range(100):
            refresh_token = storage.get("refreshToken")
            tokens = self._store.get(_handoff_key(session_id, refresh_token)) if refresh_token else None
            if not tokens:
                return
            for name, value in tokens.items():
                storage.set(name, value)


def _handoff_key(session_id: str, replaced_refresh_token: str) -> str:
    return "handoff:" + hashlib.sha256(f"{session_id}:{replaced_refresh_token}".encode()).hexdigest()
