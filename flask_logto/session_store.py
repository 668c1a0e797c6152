"""Where the unit keeps what requests, worker processes and site instances share.

That is the server-side sessions (Flask-Session) and, next to them, the refresh lock and the refresh
handoff (token_refresh.py), the index from Logto sessions and users to site sessions and the logout
tokens already used (backchannel.py). Two stores, chosen by `LOGTO_REDIS_URL`:

- `FileStore` (the default): session files in `LOGTO_DATA_DIR/sessions`, locks on `flock` stripes, the
  rest in cachelib files; shared by the processes of one machine. No request ever walks a folder:
  expired files are deleted by a background thread of each process (`ExpiredFileSweeper`).
- `RedisStore`: everything in one Redis, shared by any number of instances. Locks are Redis keys with
  an expiry (SET NX PX, released only by the holder's token), so a crashed holder blocks nobody for long.

What lives how long: a session that holds a completed sign-in lives `LOGTO_SESSION_LIFETIME` from its last
change; any other session (a sign-in in progress, a "signed out" notice, an anonymous form's CSRF token)
lives at most the sign-in timeout, 15 minutes, as a Redis key's TTL or a file's expiry. So anonymous
traffic never outlives a quarter of an hour, and a Redis with `maxmemory-policy volatile-ttl` evicts
it before any signed-in session.

A store that cannot answer or cannot write never shows a traceback: Redis down, slow, out of memory
(`maxmemory`), read-only or refusing writes, and a file that cannot be written (disk full) are all
`STORE_ERRORS`. The session interfaces here turn a failed load or save into the unit's 503 page
"Session store unavailable" (`store_unavailable_page`); the client's short socket timeouts and a fresh
connection per attempt let the site recover by itself once Redis answers (or has room) again.
A session that was loaded and then ended elsewhere meanwhile (signed out, back-channel logout) is not
written back by a request that was still working on it.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import wraps
from pathlib import Path
from typing import Any, BinaryIO, Protocol, TypeVar

import redis
from cachelib import FileSystemCache
from flask import Flask, Request, Response, g, render_template, session
from flask.sessions import SessionMixin
from flask_session.base import ServerSideSession, ServerSideSessionInterface
from flask_session.cachelib import CacheLibSessionInterface
from flask_session.defaults import Defaults
from flask_session.redis import RedisSessionInterface
from limits.errors import StorageError
from redis.backoff import NoBackoff
from redis.exceptions import LockNotOwnedError
from redis.retry import Retry

from flask_logto.config import SIGN_IN_TIMEOUT_SECONDS
from flask_logto.errors import StoreWriteFailed
from flask_logto.i18n import N_
from flask_logto.session_keys import holds_sign_in

log = logging.getLogger("auth")
T = TypeVar("T")
STORE_ERRORS: tuple[type[Exception], ...] = (
    redis.exceptions.ConnectionError,  # down, still loading, too many clients
    redis.exceptions.TimeoutError,  # slow
    redis.exceptions.OutOfMemoryError,  # full: maxmemory with noeviction
    redis.exceptions.ReadOnlyError,  # a replica, e.g. during a failover
    redis.exceptions.ExecAbortError,  # a MULTI whose write was refused (e.g. out of memory)
    redis.exceptions.ClusterDownError,
    redis.exceptions.TryAgainError,
    StorageError,  # the rate limiter's store (rate_limits.py), whatever failed in it
    StoreWriteFailed,
)
SIGN_IN_LIFETIME = timedelta(seconds=SIGN_IN_TIMEOUT_SECONDS)
REDIS_CONNECT_TIMEOUT, REDIS_READ_TIMEOUT = 1.0, 2.0  # seconds: a dead Redis costs a request at most this
LOCK_STRIPES = 1024  # FileStore: a fixed number of lock files, each shared by the names hashed to it
SWEEP_INTERVAL_SECONDS = 60.0  # FileStore: how often each process looks for expired files
SWEEPER_THREAD = "expired-file-sweeper"
UNAVAILABLE_TITLE = N_("Session store unavailable")
UNAVAILABLE_MESSAGE = N_("We could not reach the place where sign-ins are kept. Please try again in a moment.")


def session_lifetime(signed_in_lifetime: timedelta, stored: Mapping[str, Any]) -> timedelta:
    """How long the store keeps a session: `LOGTO_SESSION_LIFETIME` when signed in, else the sign-in timeout."""
    return signed_in_lifetime if holds_sign_in(stored) else min(SIGN_IN_LIFETIME, signed_in_lifetime)


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
        self._cache = unpruned_cache(data_dir / "shared")

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
        written(self._cache.set(key, value, timeout=ttl))

    def put_new(self, key: str, value: Any, ttl: int) -> bool:
        with self.lock(f"new:{key}", wait=10, expiry=10):
            if self._cache.has(key):
                return False
            return written(self._cache.set(key, value, timeout=ttl))

    def add_to_set(self, key: str, member: str, ttl: int) -> None:
        with self.lock(f"set:{key}", wait=10, expiry=10):
            members = self._cache.get(key) or []
            if member not in members:
                written(self._cache.set(key, [*members, member], timeout=ttl))

    def members(self, key: str) -> set[str]:
        return set(self._cache.get(key) or [])

    def delete(self, key: str) -> None:
        self._cache.delete(key)


def unpruned_cache(folder: Path) -> FileSystemCache:
    """A cachelib folder that never prunes in a request (cachelib's threshold walks every file once it is
    passed, and drops the entries that expire first: signed-in people); expired files go by the sweeper."""
    cache = FileSystemCache(str(folder), threshold=0, mode=0o600)
    ExpiredFileSweeper.watch(folder)
    return cache


def written(stored: bool) -> bool:
    """cachelib's `set` answers False (and logs) when the file could not be written: a refused write, not a lost one."""
    if not stored:
        raise StoreWriteFailed("a file of the session store could not be written")
    return True


class ExpiredFileSweeper:
    """Deletes the expired files of the watched cachelib folders, from one background thread per process.

    Once a minute, and only in one process at a time (a lock file per folder, whose time says when the
    folder was last swept), it reads each file's 4-byte expiry and deletes the expired ones. Requests
    never walk a folder: cachelib itself only hides an expired file from `get`.
    """

    _folders: set[Path] = set()
    _pid: int | None = None
    _lock = threading.Lock()

    @classmethod
    def watch(cls, folder: Path) -> None:
        with cls._lock:
            cls._folders.add(folder)
            if cls._pid != os.getpid():  # a new process (e.g. a forked worker) starts its own thread
                cls._pid = os.getpid()
                threading.Thread(target=cls._run, name=SWEEPER_THREAD, daemon=True).start()

    @classmethod
    def _run(cls) -> None:
        while True:
            time.sleep(SWEEP_INTERVAL_SECONDS)
            with cls._lock:
                folders = list(cls._folders)
            for folder in folders:
                if not folder.is_dir():  # deleted (an app's data folder that is gone): nothing to keep clean
                    with cls._lock:
                        cls._folders.discard(folder)
                    continue
                try:
                    sweep_if_due(folder, time.time())
                except Exception as error:  # the thread must outlive a bad folder
                    log.warning("event=sweep-failed folder=%r cause=%s", folder.name, type(error).__name__)


def sweep_if_due(folder: Path, now: float, interval: float = SWEEP_INTERVAL_SECONDS) -> int | None:
    """Sweep `folder` unless another process is at it or did it less than `interval` seconds ago;
    the number of files deleted, or None when it was not this process's turn."""
    marker = folder / ".swept"  # empty until the first sweep; then its time is the last sweep's
    with open(marker, "a+b") as lock_file:
        try:
            fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        last = os.fstat(lock_file.fileno())
        if last.st_size and now - last.st_mtime < interval:
            return None
        removed = sweep_expired(folder, now)
        if not last.st_size:
            lock_file.write(b".")
            lock_file.flush()
        os.utime(marker, (now, now))
        return removed


CACHELIB_TEMPORARY_SUFFIX = ".__wz_cache"
ABANDONED_WRITE_SECONDS = 3600  # a temporary file left by a writer that died


def sweep_expired(folder: Path, now: float) -> int:
    """Delete the cachelib files of `folder` that expired before `now`; the number deleted."""
    removed = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_file(follow_symlinks=False):
                continue
            try:
                if entry.name.endswith(CACHELIB_TEMPORARY_SUFFIX):
                    expired = entry.stat().st_mtime < now - ABANDONED_WRITE_SECONDS
                    inode = entry.inode()
                else:
                    with open(entry.path, "rb") as file:
                        expires = struct.unpack("I", file.read(4))[0]
                        inode = os.fstat(file.fileno()).st_ino
                    expired = expires != 0 and expires < now
                # the same file still (a writer may have replaced it since: its new expiry is not ours to judge)
                if expired and os.stat(entry.path).st_ino == inode:
                    os.unlink(entry.path)
                    removed += 1
            except (OSError, struct.error):  # gone meanwhile, or a file cachelib did not write whole
                continue
    return removed


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


def refused_writes_fail(write: Callable[..., T]) -> Callable[..., T]:
    """A Redis that refuses writes because it cannot persist them (`MISCONF`, e.g. its disk is full) is a
    store that cannot write, like one out of memory; redis-py gives that error no class of its own.
    (`StoreRedis` applies this to every command; a MULTI/EXEC pipeline needs it on its own.)"""

    @wraps(write)
    def guarded(*args: Any, **kwargs: Any) -> T:
        try:
            return write(*args, **kwargs)
        except redis.exceptions.ResponseError as error:
            if str(error).startswith("MISCONF"):
                raise StoreWriteFailed("Redis refuses writes (MISCONF)") from error
            raise

    return guarded


class RedisStore:
    """Keys under `flask_logto:` in the sessions' Redis, shared by every instance."""

    PREFIX = "flask_logto:"

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

    @refused_writes_fail
    def add_to_set(self, key: str, member: str, ttl: int) -> None:
        with self.client.pipeline() as pipe:  # MULTI/EXEC: the set never exists without its expiry
            pipe.sadd(self.PREFIX + key, member)
            pipe.expire(self.PREFIX + key, max(1, ttl))
            pipe.execute()

    def members(self, key: str) -> set[str]:
        members: set[bytes] = self.client.smembers(self.PREFIX + key)  # type: ignore[assignment]  # bytes: no decode_responses
        return {member.decode() for member in members}

    def delete(self, key: str) -> None:
        self.client.delete(self.PREFIX + key)


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


class StoreRedis(redis.Redis):
    """redis-py's client, with a write Redis refuses to persist (MISCONF) as `StoreWriteFailed`: every
    command goes through here (sessions, their deletion, locks), so none of them can end in a 500."""

    @refused_writes_fail
    def execute_command(self, *args: Any, **options: Any) -> Any:
        return super().execute_command(*args, **options)  # type: ignore[no-untyped-call]


def redis_client(url: str) -> redis.Redis:
    """A client that fails fast (1 s to connect, 2 s to answer, one retry on a fresh connection, no backoff)."""
    return StoreRedis.from_url(
        url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT, socket_timeout=REDIS_READ_TIMEOUT,
        retry=Retry(NoBackoff(), 1), health_check_interval=30,
    )


# The session interfaces


class _GuardedSessions(ServerSideSessionInterface):  # type: ignore[misc]  # the base is from a package without type information
    """Flask-Session's interface, made safe for a session store that goes away, and for sessions ended elsewhere.

    - A failed load gives an empty session marked `store_unavailable`; `refuse_without_store` (the unit's
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
            session.store_unavailable = True
            return session
        session.stored = bool(cookie) and session.sid == cookie
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
        session.stored = False

    def get_expiration_time(self, app: Flask, session: SessionMixin) -> datetime | None:
        """The cookie lasts as long as the stored session (15 minutes unless signed in)."""
        if not session.permanent:
            return None
        return datetime.now(UTC) + session_lifetime(app.permanent_session_lifetime, session)


class RedisSessions(_GuardedSessions, RedisSessionInterface):  # type: ignore[misc]  # the base is from a package without type information
    def _upsert_session(self, lifetime: timedelta, session: ServerSideSession, store_id: str) -> None:
        self.client.set(
            store_id, self.serializer.encode(session), ex=int(session_lifetime(lifetime, session).total_seconds()),
            xx=getattr(session, "stored", False),  # only if it still exists (atomic)
        )


class FileSessions(_GuardedSessions, CacheLibSessionInterface):  # type: ignore[misc]  # the base is from a package without type information
    def _upsert_session(self, lifetime: timedelta, session: ServerSideSession, store_id: str) -> None:
        if getattr(session, "stored", False) and not self.cache.has(store_id):
            return
        seconds = int(session_lifetime(lifetime, session).total_seconds())
        written(self.cache.set(key=store_id, value=dict(session), timeout=seconds))


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
    return FileSessions(app, client=unpruned_cache(data_dir / "sessions"), **options), FileStore(data_dir)


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
    g._logto_auth_user = None  # the page must not read the session (views.current_user's cache)
    html = render_template("auth/error.html", title=UNAVAILABLE_TITLE, message=UNAVAILABLE_MESSAGE)
    return html, 503, {"Retry-After": "5"}


def refuse_without_store() -> tuple[str, int, dict[str, str]] | None:
    """Before every request: 503 if the session could not be loaded (`_GuardedSessions.open_session`)."""
    if getattr(session, "store_unavailable", False):
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
