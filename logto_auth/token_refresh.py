"""One token refresh at a time per session, across threads and worker processes.

Logto rotates the refresh token on every use and, when an already-used one comes back, revokes
the whole sign-in. Two tabs whose access token expired together would both refresh with the same
token and sign the user out. So refreshes of one session take a file lock, and the request that
refreshed leaves its new tokens behind for a few minutes, filed under the token they replace; the
others adopt them instead of refreshing again (their copy of the session was loaded before).
"""

from __future__ import annotations

import fcntl
import hashlib
import time
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterator

from cachelib import FileSystemCache
from logto import Storage

LOCK_STRIPES = 1024  # a fixed number of lock files, each shared by the sessions hashed to it
HANDOFF_SECONDS = 300
TOKEN_KEYS = ("idToken", "refreshToken", "accessTokenMap")


class RefreshGuard:
    def __init__(self, data_dir: Path) -> None:
        self._lock_dir = data_dir / "refresh-locks"
        self._lock_dir.mkdir(parents=True, exist_ok=True)
        self._handoff = FileSystemCache(
            str(data_dir / "refresh-handoff"), threshold=0, default_timeout=HANDOFF_SECONDS, mode=0o600
        )

    @contextmanager
    def exclusive(self, session_id: str, storage: Storage, *, timeout: float) -> Iterator[None]:
        """Hold this session's refresh lock; bring `storage` up to date first, pass on new tokens after.

        Raises `TimeoutError` if the lock is not free within `timeout` seconds.
        """
        stripe = int(hashlib.sha256(session_id.encode()).hexdigest(), 16) % LOCK_STRIPES
        with open(self._lock_dir / f"{stripe:04d}.lock", "a+b") as lock_file:
            _lock(lock_file, timeout)
            try:
                self._adopt(session_id, storage)
                before = storage.get("refreshToken")
                yield
                if before and storage.get("refreshToken") != before:
                    tokens = {name: storage.get(name) for name in TOKEN_KEYS}
                    self._handoff.set(_handoff_key(session_id, before), tokens)
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _adopt(self, session_id: str, storage: Storage) -> None:
        """Follow the chain of refreshes other requests made since this copy of the session was loaded."""
        for _ in range(100):
            refresh_token = storage.get("refreshToken")
            tokens = self._handoff.get(_handoff_key(session_id, refresh_token)) if refresh_token else None
            if not tokens:
                return
            for name, value in tokens.items():
                storage.set(name, value)


def _lock(lock_file: BinaryIO, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError("refresh lock busy") from None
            time.sleep(0.01)


def _handoff_key(session_id: str, replaced_refresh_token: str) -> str:
    return hashlib.sha256(f"{session_id}:{replaced_refresh_token}".encode()).hexdigest()
