"""Where the unit keeps what requests, worker processes and site instances share.

That is the server-side sessions (Flask-Session) and, next to them, the refresh lock and the refresh
handoff (token_refresh.py), the index from Logto sessions and users to site sessions and the logout
tokens already used (backchannel.py). Two stores, chosen by `SESSION_REDIS_URL`:

- `FileStore` (the default): session files in `APP_DATA_DIR/sessions`, locks on `flock` stripes, the
  rest in cachelib files; shared by the processes of one machine.
- `RedisStore`: everything in one Redis, shared by any number of instances. Locks are Redis keys with
  an expiry (SET NX PX, released only by the holder's token), so a crashed holder blocks nobody for long.

Redis down or slow never shows a traceback: the session interfaces here turn a failed load or save into
the unit's 503 page "Session store unavailable" (`store_unavailable_page`); the client's short socket
timeouts and a fresh connection per attempt let the site recover by itself once Redis answers again.
A session that was loaded and then ended elsewhere meanwhile (signed out, back-channel logout) is not
written back by a request that was still working on it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import time
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Protocol

import redis
from cachelib import FileSystemCache
from flask import Flask, Request, Response, g, render_template, session
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from flask_session.cachelib import CacheLibSessionInterface
from flask_session.defaults import Defaults
from flask_session.redis import RedisSessionInterface
from redis.backoff import NoBackoff
from redis.exceptions import LockNotOwnedError
from redis.retry import Retry

from logto_auth.i18n import N_

log = logging.getLogger("auth")
STORE_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
REDIS_CONNECT_TIMEOUT, REDIS_READ_TIMEOUT = 1.0, 2.0  # seconds: a dead Redis costs a request at most this
LOCK_STRIPES = 1024  # FileStore: a fixed number of lock files, each shared by the names hashed to it
MAX_STORED_SESSIONS = 100_000  # FileStore: past this, expired entries go first, then the oldest
UNAVAILABLE_TITLE = N_("Session store unavailable")
UNAVAILABLE_MESSAGE = N_("We could not reach the place where sign-ins are kept. Please try again in a moment.")


class Store(Protocol):
    """What the unit keeps beside the sessions. Values are JSON; `ttl` is in seconds."""

    def lock(self, name: str, *, wait: float, expiry: float) -> Any:
        """A context manager holding the lock `name`; `TimeoutError` if it is not free within `wait` seconds.
        A holder that dies keeps it at most `expiry` seconds."""

    def get(self, key: str) -> Any: ...

    def put(self, key: str, value: Any, ttl: int) -> None: ...

    def put_new(self, key: str, value: Any, ttl: int) -> bool:
        """Store `value` unless `key` exists (atomically); True if stored."""

    def add_to_set(self, key: str, member: str, ttl: int) -> None:
        """Add `member` to the set `key`; the set lives `ttl` seconds after its last addition."""

    def members(self, key: str) -> set[str]: ...

    def delete(self, key: str) -> None: ...


class FileStore:
    """Files under `data_dir`, shared by the processes of one machine."""

    def __init__(self, data_dir: Path) -> None:
        self._lock_dir = data_dir / "refresh-locks"
        self._lock_dir.mkdir(parents=True, exist_ok=True)
        self._cache = FileSystemCache(str(data_dir / "shared"), threshold=MAX_STORED_SESSIONS, mode=0o600)

    @contextmanager
    def lock(self, name: str, *, wait: float, expiry: float) -> Iterator[None]:  # expiry: the kernel drops a dead holder's flock
        stripe = int(hashlib.sha256(name.encode()).hexdigest(), 16) % LOCK_STRIPES
        with open(self._lock_dir / f"{stripe:04d}.lock", "a+b") as lock_file:
            _flock(lock_file, wait)
            try:
                yield
            finally:
                fcntl.flock(lock_file, fcntl.LOCK_UN)

    def get(self, key: str) -> Any:
        return self._cache.get(key)

    def put(self, key: str, value: Any, ttl: int) -> None:
        self._cache.set(key, value, timeout=ttl)

    def put_new(self, key: str, value: Any, ttl: int) -> bool:
        with self.lock(f"new:{key}", wait=10, expiry=10):
            if self._cache.has(key):
                return False
            return bool(self._cache.set(key, value, timeout=ttl))

    def add_to_set(self, key: str, member: str, ttl: int) -> None:
        with self.lock(f"set:{key}", wait=10, expiry=10):
            members = self._cache.get(key) or []
            if member not in members:
                self._cache.set(key, [*members, member], timeout=ttl)

    def members(self, key: str) -> set[str]:
        return set(self._cache.get(key) or [])

    def delete(self, key: str) -> None:
        self._cache.delete(key)


def _flock(lock_file: BinaryIO, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise TimeoutError("lock busy") from None
            time.sleep(0.01)


class RedisStore:
    """Keys under `logto_auth:` in the sessions' Redis, shared by every instance."""

    PREFIX = "logto_auth:"

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @contextmanager
    def lock(self, name: str, *, wait: float, expiry: float) -> Iterator[None]:
        # redis-py's Lock: SET NX PX with a random token; release and expiry are checked against that token.
        held = self.client.lock(
            f"{self.PREFIX}lock:{_digest(name)}", timeout=expiry, sleep=0.01, blocking_timeout=wait, thread_local=False
        )
        if not held.acquire():
            raise TimeoutError("lock busy")
        try:
            yield
        finally:
            try:
                held.release()
            except LockNotOwnedError:  # it expired while held: someone else may have it now, and keeps it
                log.warning("event=lock-expired name=%s expiry=%gs", name.split(":", 1)[0], expiry)

    def get(self, key: str) -> Any:
        value = self.client.get(self.PREFIX + key)
        return None if value is None else json.loads(value)

    def put(self, key: str, value: Any, ttl: int) -> None:
        self.client.set(self.PREFIX + key, json.dumps(value), ex=max(1, ttl))

    def put_new(self, key: str, value: Any, ttl: int) -> bool:
        return bool(self.client.set(self.PREFIX + key, json.dumps(value), ex=max(1, ttl), nx=True))

    def add_to_set(self, key: str, member: str, ttl: int) -> None:
        with self.client.pipeline() as pipe:  # MULTI/EXEC: the set never exists without its expiry
            pipe.sadd(self.PREFIX + key, member).expire(self.PREFIX + key, max(1, ttl)).execute()

    def members(self, key: str) -> set[str]:
        return {member.decode() for member in self.client.smembers(self.PREFIX + key)}

    def delete(self, key: str) -> None:
        self.client.delete(self.PREFIX + key)


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def redis_client(url: str) -> redis.Redis:
    """A client that fails fast (1 s to connect, 2 s to answer, one retry on a fresh connection, no backoff)."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT, socket_timeout=REDIS_READ_TIMEOUT,
        retry=Retry(NoBackoff(), 1), health_check_interval=30,
    )


# The session interfaces


class _GuardedSessions(ServerSideSessionInterface):
    """Flask-Session's interface, made safe for a session store that goes away, and for sessions ended elsewhere.

    - A failed load gives an empty session marked `store_unavailable`; `refuse_without_store` (the app's
      first before-request hook) then answers 503. A failed save turns the response into the same 503 page.
    - A session that was loaded is written back only if it still exists: a request that started before a
      sign-out or a back-channel logout cannot bring the session back.
    """

    def open_session(self, app: Flask, request: Request) -> ServerSideSession:
        cookie = request.cookies.get(app.config["SESSION_COOKIE_NAME"])
        try:
            session = super().open_session(app, request)
        except STORE_ERRORS as error:
            _log_unavailable("load", error)
            session = self.session_class(sid=self._generate_sid(self.sid_length), permanent=self.permanent)
            session.store_unavailable = True  # type: ignore[attr-defined]
            return session
        session.stored = bool(cookie) and session.sid == cookie  # type: ignore[attr-defined]
        return session

    def save_session(self, app: Flask, session: ServerSideSession, response: Response) -> None:
        if getattr(session, "store_unavailable", False):
            return
        try:
            super().save_session(app, session, response)
        except STORE_ERRORS as error:
            _log_unavailable("save", error)
            _become_unavailable_page(response)

    def regenerate(self, session: ServerSideSession) -> None:
        super().regenerate(session)
        session.stored = False  # type: ignore[attr-defined]


class RedisSessions(_GuardedSessions, RedisSessionInterface):
    def _upsert_session(self, session_lifetime: timedelta, session: ServerSideSession, store_id: str) -> None:
        self.client.set(
            store_id, self.serializer.encode(session), ex=int(session_lifetime.total_seconds()),
            xx=getattr(session, "stored", False),  # only if it still exists (atomic)
        )


class FileSessions(_GuardedSessions, CacheLibSessionInterface):
    def _upsert_session(self, session_lifetime: timedelta, session: ServerSideSession, store_id: str) -> None:
        if getattr(session, "stored", False) and not self.cache.has(store_id):
            return
        super()._upsert_session(session_lifetime, session, store_id)


def session_interface(app: Flask, data_dir: Path, redis_url: str) -> tuple[ServerSideSessionInterface, Store]:
    """The unit's own sessions, in Redis when `redis_url` is set, else in files, and the store beside them."""
    options = {
        "key_prefix": app.config.get("SESSION_KEY_PREFIX", Defaults.SESSION_KEY_PREFIX),
        "permanent": app.config.get("SESSION_PERMANENT", Defaults.SESSION_PERMANENT),
        "sid_length": app.config.get("SESSION_ID_LENGTH", Defaults.SESSION_ID_LENGTH),
        "serialization_format": app.config.get("SESSION_SERIALIZATION_FORMAT", Defaults.SESSION_SERIALIZATION_FORMAT),
    }
    if redis_url:
        client = redis_client(redis_url)
        return RedisSessions(app, client=client, **options), RedisStore(client)
    cache = FileSystemCache(str(data_dir / "sessions"), threshold=MAX_STORED_SESSIONS, mode=0o600)
    return FileSessions(app, client=cache, **options), FileStore(data_dir)


def store_beside(interface: ServerSideSessionInterface, data_dir: Path) -> Store:
    """For sessions the app set up itself: its Redis if it uses one, else files under `data_dir`."""
    if isinstance(interface, RedisSessionInterface):
        return RedisStore(interface.client)
    return FileStore(data_dir)


def delete_sessions(interface: ServerSideSessionInterface, sids: set[str]) -> None:
    """Delete these site sessions from the store, whichever interface keeps them."""
    for sid in sids:
        interface._delete_session(interface._get_store_id(sid))


# The 503 page


def store_unavailable_page() -> tuple[str, int, dict[str, str]]:
    """The unit's error page, 503 "Session store unavailable", rendered as for a signed-out visitor."""
    g._logto_auth_user = None  # the page must not read the session (client.current_user's cache)
    html = render_template("auth/error.html", title=UNAVAILABLE_TITLE, message=UNAVAILABLE_MESSAGE)
    return html, 503, {"Retry-After": "5"}


def refuse_without_store() -> tuple[str, int, dict[str, str]] | None:
    """Before every request: 503 if the session could not be loaded (`_GuardedSessions.open_session`)."""
    if getattr(session._get_current_object(), "store_unavailable", False):
        return store_unavailable_page()
    return None


def _become_unavailable_page(response: Response) -> None:
    """Turn an answer whose session could not be saved into the 503 page (no redirect, no cookie)."""
    html, status, headers = store_unavailable_page()
    response.set_data(html)
    response.status_code = status
    response.mimetype = "text/html"
    response.headers.pop("Location", None)
    response.headers.remove("Set-Cookie")
    response.headers.update(headers)


def _log_unavailable(step: str, error: Exception) -> None:
    log.warning("event=session-store-unavailable step=%s cause=%s", step, type(error).__name__)
