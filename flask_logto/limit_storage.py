"""Rate-limit counters in one SQLite file, shared by the worker processes of one machine.

A storage for the `limits` library (Flask-Limiter's counters), registered under the scheme
`logto-sqlite` (`logto-sqlite:////abs/path/ratelimits.sqlite`). `limits` has no storage that several
processes share without a server (its `memory://` is per process), and the unit's default store is files
on one machine; with `LOGTO_REDIS_URL` the counters go to Redis instead (rate_limits.py). It serves
the fixed-window strategy: a counter per key that lives until its window ends.

Each call is one short write transaction (WAL, `BEGIN IMMEDIATE`), so processes count together; a few
counters whose window ended are deleted on the way (an index on the expiry: no scan, a bounded cost).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from typing import Any, cast

from limits.storage import Storage

SCHEME = "logto-sqlite"
BUSY_TIMEOUT_SECONDS = 5.0
EXPIRED_PER_CALL = 16  # counters whose window ended, deleted by each increment (more than one is ever added)


class SqliteCounters(Storage):
    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = uri.split("://", 1)[1]
        self._local = threading.local()
        schema = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS)  # not kept: a gunicorn master forks after this
        try:
            # WAL is a property of the file: set once here, never by the connections that count (switching
            # needs the file to itself, which a connection in the middle of an increment does not give)
            schema.execute("PRAGMA journal_mode=WAL")
            schema.executescript(
                "CREATE TABLE IF NOT EXISTS counters (key TEXT PRIMARY KEY, value INTEGER NOT NULL, expires_at REAL NOT NULL);"
                "CREATE INDEX IF NOT EXISTS counters_by_expiry ON counters (expires_at);"
            )
        finally:
            schema.close()

    @property
    def base_exceptions(self) -> type[Exception]:
        return sqlite3.Error

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (a new one after a fork: a connection must not cross processes)."""
        local = self._local
        if getattr(local, "pid", None) != os.getpid():
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_SECONDS, isolation_level=None)
            connection.execute("PRAGMA synchronous=NORMAL")
            local.connection, local.pid = connection, os.getpid()
        return cast(sqlite3.Connection, local.connection)

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        db = self._connection()
        db.execute("BEGIN IMMEDIATE")
        try:
            db.execute(  # a few of the ended windows each time: no call waits for a big clean-up
                "DELETE FROM counters WHERE key IN (SELECT key FROM counters WHERE expires_at <= ? LIMIT ?)",
                (now, EXPIRED_PER_CALL),
            )
            (value,) = db.execute(
                "INSERT INTO counters (key, value, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = value + excluded.value RETURNING value",
                (key, amount, now + expiry),
            ).fetchone()
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return int(value)

    def get(self, key: str) -> int:
        row = self._connection().execute(
            "SELECT value FROM counters WHERE key = ? AND expires_at > ?", (key, time.time())
        ).fetchone()
        return int(row[0]) if row else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        row = self._connection().execute(
            "SELECT expires_at FROM counters WHERE key = ? AND expires_at > ?", (key, now)
        ).fetchone()
        return float(row[0]) if row else now

    def check(self) -> bool:
        try:
            self._connection().execute("SELECT 1 FROM counters LIMIT 1").fetchall()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        return self._connection().execute("DELETE FROM counters").rowcount

    def clear(self, key: str) -> None:
        self._connection().execute("DELETE FROM counters WHERE key = ?", (key,))
