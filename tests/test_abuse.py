"""Nothing an anonymous visitor can exhaust: what a sign-in in progress leaves behind, a flood of them, a full store.

Real parts: the site and the embedded provider over HTTP, the file store in a temporary folder, and a
Redis of this module's own (`redis-server` on a free port: its memory settings change here). The flood
raises the sign-in limit through the settings (a flood is what the limit exists to stop; here it must go
through, to show what the stores do with it); test_rate_limits.py tests the limits themselves.
"""

from __future__ import annotations

import fcntl
import os
import pickle
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
import requests

from flask_logto.config import SIGN_IN_TIMEOUT_SECONDS
from flask_logto.errors import StoreWriteFailed
from flask_logto.session_store import SWEEPER_THREAD, refused_writes_fail, sweep_expired, sweep_if_due
from tests.conftest import Stack, csrf_token_in, page_text, sign_in, start_stack
from tests.redis_server import RedisServer, start_redis
from tests.servers import free_port, served, stop_process, wait_until

LIFETIME = 3 * 24 * 3600  # SESSION_LIFETIME of these stacks: far from the 15-minute sign-in timeout
FLOOD = 2000  # anonymous sign-in starts per store
PEOPLE = ("flood-ann", "flood-bob", "flood-cy")
LONG_NEXT = "/" + "n" * 2000


@pytest.fixture(scope="module")
def own_redis() -> Iterator[RedisServer]:
    """A Redis for this module alone: the tests set its maxmemory and eviction policy."""
    yield from served(start_redis(), "redis-server not found: apt-get install redis-server")


@dataclass
class Store:
    """A running site on one kind of session store, and a look into that store."""

    kind: str
    stack: Stack
    client: redis.Redis | None

    def sessions(self) -> list[tuple[dict[str, Any], float]]:
        """Every stored session and the Unix time it expires (files: the header cachelib wrote; Redis: the TTL)."""
        if self.client is None:
            found = []
            for path in (self.stack.data_dir / "sessions").iterdir():
                if path.name.startswith(".") or not path.is_file():
                    continue
                with path.open("rb") as file:
                    expires = struct.unpack("I", file.read(4))[0]
                    found.append((pickle.load(file), float(expires)))
            return found
        interface = self.stack.app.session_interface
        now = time.time()
        return [
            (interface.serializer.decode(self.client.get(key)), now + self.client.ttl(key))
            for key in self.client.scan_iter(f"{interface.key_prefix}*", count=1000)
        ]

    def stored_bytes(self) -> int:
        if self.client is None:
            return sum(path.stat().st_size for path in (self.stack.data_dir / "sessions").iterdir() if path.is_file())
        return int(self.client.info("memory")["used_memory"])


def site_on(kind: str, data_dir: Path, redis_server: RedisServer | None, **env: str) -> Store:
    if kind == "redis":
        assert redis_server is not None
        stack = start_stack(data_dir, SESSION_REDIS_URL=redis_server.url, SESSION_LIFETIME=str(LIFETIME), **env)
        return Store(kind, stack, redis_server.client())
    return Store(kind, start_stack(data_dir, SESSION_LIFETIME=str(LIFETIME), **env), None)


@pytest.fixture(params=["files", "redis"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    server = request.getfixturevalue("own_redis") if request.param == "redis" else None
    if server is not None:
        server.client().flushall()
    running = site_on(request.param, tmp_path / "site", server)
    yield running
    running.stack.stop()


def signed_in(stack: Stack, http: requests.Session, username: str) -> bool:
    answer = http.get(stack.base_url + "/profile", allow_redirects=False, timeout=15)
    return answer.status_code == 200 and f"<dd>{username}</dd>" in answer.text


def anonymous_sign_in_starts(stack: Stack, count: int, *, next_path: str | None = None, threads: int = 8) -> list[int]:
    """`count` cookie-less `GET /sign-in`s from `threads` clients at once; their status codes."""
    local = threading.local()

    def one(_: int) -> int:
        if not hasattr(local, "http"):
            local.http = requests.Session()
        local.http.cookies.clear()  # a new visitor every time
        params = {"next": next_path} if next_path else None
        return local.http.get(stack.base_url + "/sign-in", params=params, allow_redirects=False, timeout=30).status_code

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, range(count)))


# What a visitor who is not signed in leaves behind


def test_a_sign_in_in_progress_is_kept_15_minutes_and_a_completed_one_the_session_lifetime(store: Store) -> None:
    stack = store.stack
    before = time.time()
    anonymous = requests.get(stack.base_url + "/sign-in", allow_redirects=False, timeout=15)
    head = requests.head(stack.base_url + "/sign-up", allow_redirects=False, timeout=15)
    assert anonymous.status_code == head.status_code == 302
    expiry = {c.name: c.expires for c in anonymous.cookies}
    assert expiry["site_session"] is not None and expiry["site_session"] <= before + SIGN_IN_TIMEOUT_SECONDS + 2
    stored = store.sessions()
    assert len(stored) == 2 and all("auth.pending" in data for data, _ in stored)
    assert all(expires <= before + SIGN_IN_TIMEOUT_SECONDS + 2 for _, expires in stored)

    http = requests.Session()
    assert sign_in(stack, http, "kept-long").status_code == 302
    mine = [expires for data, expires in store.sessions() if data.get("logto.idToken")]
    assert len(mine) == 1 and mine[0] >= time.time() + LIFETIME - 60
    session_cookie = next(c for c in http.cookies if c.name == "site_session")
    assert session_cookie.expires is not None and session_cookie.expires >= time.time() + LIFETIME - 60

    # Signing out leaves only a "you are signed out" notice, kept as briefly as a sign-in in progress.
    home = http.get(stack.base_url + "/", timeout=15).text
    http.post(stack.base_url + "/sign-out", data={"csrf_token": csrf_token_in(home)}, allow_redirects=False, timeout=15)
    left = [(data, expires) for data, expires in store.sessions() if "_flashes" in data]
    assert left and all(expires <= time.time() + SIGN_IN_TIMEOUT_SECONDS + 2 for _, expires in left)


@pytest.mark.parametrize("kind", ["files", "redis"])
def test_a_flood_of_anonymous_sign_ins_signs_nobody_out_and_expires_within_15_minutes(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str,
) -> None:
    """People sign in; then FLOOD anonymous sign-in starts (a tenth of them with a 2 KB `next`) from 8 clients
    while the people keep using the site. Nobody is signed out, nothing answers 5xx, and everything the
    flood stored expires within 15 minutes of its request."""
    server = request.getfixturevalue("own_redis") if kind == "redis" else None
    if server is not None:
        server.client().flushall()
    store = site_on(kind, tmp_path / "site", server, RATELIMIT_SIGN_IN=f"{10 * FLOOD} per minute")
    stack = store.stack
    try:
        browsers = {name: requests.Session() for name in PEOPLE}
        for name, http in browsers.items():
            assert sign_in(stack, http, name).status_code == 302
        bytes_before = store.stored_bytes()
        checks: list[bool] = []
        done = threading.Event()

        def keep_using_the_site() -> None:
            while not done.is_set():
                for name, http in browsers.items():
                    checks.append(signed_in(stack, http, name))

        person = threading.Thread(target=keep_using_the_site)
        person.start()
        started = time.time()
        try:
            statuses = anonymous_sign_in_starts(stack, FLOOD * 9 // 10)
            statuses += anonymous_sign_in_starts(stack, FLOOD // 10, next_path=LONG_NEXT)
        finally:
            done.set()
            person.join()
        took = time.time() - started

        assert statuses.count(302) == FLOOD, {status: statuses.count(status) for status in set(statuses)}
        assert checks and all(checks), f"{checks.count(False)} of {len(checks)} page views were not signed in"
        assert all(signed_in(stack, http, name) for name, http in browsers.items())
        stored = store.sessions()
        anonymous = [expires for data, expires in stored if not data.get("logto.idToken")]
        people = [expires for data, expires in stored if data.get("logto.idToken")]
        assert len(anonymous) == FLOOD and len(people) == len(PEOPLE)
        assert max(anonymous) <= time.time() + SIGN_IN_TIMEOUT_SECONDS + 2
        assert min(anonymous) >= started + SIGN_IN_TIMEOUT_SECONDS - 2
        assert min(people) >= time.time() + LIFETIME - 120
        print(
            f"\nflood on {kind}: {FLOOD} anonymous sign-in starts in {took:.1f} s ({FLOOD / took:.0f}/s), "
            f"0 answered 5xx; {len(checks)} signed-in page views meanwhile, all signed in; "
            f"stored +{(store.stored_bytes() - bytes_before) / 1e6:.2f} MB in {len(anonymous)} "
            f"{'files' if kind == 'files' else 'keys'}, every one expiring within "
            f"{max(anonymous) - started:.0f} s of the flood's start; the {len(PEOPLE)} people's sessions in "
            f"{(min(people) - time.time()) / 86400:.1f} days"
        )
    finally:
        stack.stop()


# A Redis that cannot take more: full, evicting, read-only


def index_keys(store: Store) -> list[bytes]:
    assert store.client is not None
    return list(store.client.scan_iter("flask_logto:s[iu][db]:*"))


def test_a_full_redis_gives_503_never_500_and_the_site_recovers_when_it_has_room(own_redis: RedisServer, tmp_path: Path) -> None:
    own_redis.client().flushall()
    store = site_on("redis", tmp_path / "site", own_redis, RATELIMIT_SIGN_IN="100000 per minute")
    client = store.client
    assert client is not None
    try:
        http = requests.Session()
        assert sign_in(store.stack, http, "full-redis-ann").status_code == 302
        assert signed_in(store.stack, http, "full-redis-ann")  # her first page filed its form token: no more writes
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + 200_000)
        statuses = anonymous_sign_in_starts(store.stack, 1000)
        assert set(statuses) <= {302, 503} and statuses.count(503) > 0, {s: statuses.count(s) for s in set(statuses)}
        client.config_set("maxmemory", 1)  # and stays full (keys that expire meanwhile must not make room)
        full = requests.get(store.stack.base_url + "/sign-in", allow_redirects=False, timeout=15)
        assert full.status_code == 503 and "Session store unavailable" in page_text(full.text)
        assert "Traceback" not in full.text and "site_session" not in full.headers.get("Set-Cookie", "")
        assert signed_in(store.stack, http, "full-redis-ann")  # reading a session needs no room
    finally:
        client.config_set("maxmemory", 0)
    try:
        assert requests.get(store.stack.base_url + "/sign-in", allow_redirects=False, timeout=15).status_code == 302
        assert sign_in(store.stack, requests.Session(), "full-redis-bob").status_code == 302
    finally:
        store.stack.stop()


def test_with_volatile_ttl_a_full_redis_drops_sign_ins_in_progress_before_anyone_signed_in(
    own_redis: RedisServer, tmp_path: Path,
) -> None:
    """The README's production setting: `maxmemory` with `maxmemory-policy volatile-ttl`."""
    own_redis.client().flushall()
    store = site_on("redis", tmp_path / "site", own_redis, RATELIMIT_SIGN_IN="100000 per minute")
    client = store.client
    assert client is not None
    try:
        browsers = {name: requests.Session() for name in PEOPLE}
        for name, http in browsers.items():
            assert sign_in(store.stack, http, name).status_code == 302
        index = index_keys(store)
        assert len(index) == 2 * len(PEOPLE)  # by Logto session and by user
        client.config_set("maxmemory-policy", "volatile-ttl")
        client.config_set("maxmemory", int(client.info("memory")["used_memory"]) + 500_000)
        statuses = anonymous_sign_in_starts(store.stack, 3000)
        assert statuses.count(302) == 3000, {s: statuses.count(s) for s in set(statuses)}
        assert int(client.info("stats")["evicted_keys"]) > 0  # the store was full and made room
        assert all(signed_in(store.stack, http, name) for name, http in browsers.items())
        assert sorted(index_keys(store)) == sorted(index)  # the back-channel logout index is whole
    finally:
        client.config_set("maxmemory", 0)
        client.config_set("maxmemory-policy", "noeviction")
        store.stack.stop()


def test_a_read_only_redis_gives_503_and_the_site_recovers_when_it_takes_writes_again(
    own_redis: RedisServer, tmp_path: Path,
) -> None:
    """A Redis turned into a replica (a failover in progress) answers READONLY to every write."""
    own_redis.client().flushall()
    store = site_on("redis", tmp_path / "site", own_redis)
    client = store.client
    assert client is not None
    http = requests.Session()
    try:
        assert sign_in(store.stack, http, "read-only-ann").status_code == 302
        assert signed_in(store.stack, http, "read-only-ann")
        client.execute_command("REPLICAOF", "127.0.0.1", "1")  # a master that is never there: no sync, no flush
        refused = requests.get(store.stack.base_url + "/sign-in", allow_redirects=False, timeout=15)
        assert refused.status_code == 503 and "Session store unavailable" in page_text(refused.text)
        assert signed_in(store.stack, http, "read-only-ann")
    finally:
        client.execute_command("REPLICAOF", "NO", "ONE")
    try:
        assert requests.get(store.stack.base_url + "/sign-in", allow_redirects=False, timeout=15).status_code == 302
    finally:
        store.stack.stop()


@pytest.fixture
def unpersisting_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A Redis whose snapshots cannot be written (its folder is /sys): after a failed BGSAVE it refuses every
    write with MISCONF, as a Redis whose disk is full does while `stop-writes-on-bgsave-error` is on."""
    executable = shutil.which("redis-server")
    if executable is None:
        if os.environ.get("CI") == "true":
            pytest.fail("redis-server not found")
        pytest.skip("redis-server not found: apt-get install redis-server")
    port = free_port()
    process = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--dir", "/sys", "--save", "3600 1",
         "--appendonly", "no", "--logfile", str(tmp_path / "redis.log")],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    server = RedisServer(executable, tmp_path, port, process)
    probe = server.client()
    try:
        assert wait_until(lambda: _answers(probe), lambda: process.poll() is None, 15), server.log_tail()
        yield server
    finally:
        if process.poll() is None:
            probe.config_set("save", "")  # else it refuses SIGTERM: it cannot write its final snapshot either
        probe.close()
        stop_process(process)


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False


def test_a_redis_that_cannot_persist_writes_gives_503_on_every_write_and_recovers(
    unpersisting_redis: RedisServer, tmp_path: Path,
) -> None:
    """MISCONF has no class in redis-py: every command of the store's client turns it into StoreWriteFailed.
    Sign-in, the refresh lock and sign-out (which deletes the session) all write."""
    client = unpersisting_redis.client()
    stack = start_stack(tmp_path / "site", SESSION_REDIS_URL=unpersisting_redis.url, access_token_ttl=30)
    http = requests.Session()
    try:
        assert sign_in(stack, http, "misconf-ann").status_code == 302
        home = http.get(stack.base_url + "/", timeout=15).text
        client.bgsave()
        assert wait_until(lambda: client.info("persistence")["rdb_last_bgsave_status"] == "err", lambda: True, 15)
        with pytest.raises(redis.exceptions.ResponseError, match="MISCONF"):
            client.set("probe", "1")
        for answer in (
            requests.get(stack.base_url + "/sign-in", allow_redirects=False, timeout=15),
            http.get(stack.base_url + "/profile", allow_redirects=False, timeout=15),  # a refresh: its lock is a write
            http.post(stack.base_url + "/sign-out", data={"csrf_token": csrf_token_in(home)}, allow_redirects=False, timeout=15),
        ):
            assert answer.status_code == 503 and "Session store unavailable" in page_text(answer.text)
        client.config_set("stop-writes-on-bgsave-error", "no")
        assert requests.get(stack.base_url + "/sign-in", allow_redirects=False, timeout=15).status_code == 302
    finally:
        stack.stop()


def test_only_a_misconf_answer_is_a_refused_write() -> None:
    @refused_writes_fail
    def write(error: Exception) -> None:
        raise error

    with pytest.raises(StoreWriteFailed):
        write(redis.exceptions.ResponseError("MISCONF Redis is configured to save RDB snapshots, but ..."))
    with pytest.raises(redis.exceptions.ResponseError):  # any other error answer is a bug, not an outage
        write(redis.exceptions.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"))


def test_a_session_file_that_cannot_be_written_gives_503(tmp_path: Path) -> None:
    """cachelib answers False (and logs) when it cannot write a file, e.g. on a full disk; stubbed here."""
    from flask_app import create_app

    app = create_app({"APP_DATA_DIR": str(tmp_path)})
    app.session_interface.cache.set = lambda *args, **kwargs: False  # type: ignore[attr-defined]

    @app.get("/_write")
    def write() -> str:
        from flask import session

        session["mine"] = "x"
        return "written"

    answer = app.test_client().get("/_write")
    assert answer.status_code == 503 and "Session store unavailable" in page_text(answer.get_data(as_text=True))
    assert answer.headers.get("Set-Cookie") is None


# The file store's housekeeping


def expiring_file(folder: Path, name: str, expires: int, body: bytes = b"x") -> Path:
    path = folder / name
    path.write_bytes(struct.pack("I", expires) + body)
    return path


def test_the_sweeper_deletes_expired_files_and_nothing_else(tmp_path: Path) -> None:
    now = int(time.time())
    expired = [expiring_file(tmp_path, f"gone{i}", now - 1) for i in range(3)]
    kept = [expiring_file(tmp_path, "later", now + 60), expiring_file(tmp_path, "forever", 0)]
    short = tmp_path / "short"
    short.write_bytes(b"\x01")  # a file cachelib did not write whole
    assert sweep_expired(tmp_path, now) == 3
    assert not any(path.exists() for path in expired) and all(path.exists() for path in [*kept, short])
    assert sweep_expired(tmp_path, now + 61) == 1 and not kept[0].exists() and kept[1].exists()


def test_the_sweeper_runs_in_one_process_at_a_time_once_a_minute(tmp_path: Path) -> None:
    now = time.time()
    expiring_file(tmp_path, "old", int(now) - 1)
    with open(tmp_path / ".swept", "a+b") as held:  # another process is sweeping
        fcntl.flock(held, fcntl.LOCK_EX)
        assert sweep_if_due(tmp_path, now) is None
    assert sweep_if_due(tmp_path, now) == 1
    expiring_file(tmp_path, "old2", int(now) - 1)
    assert sweep_if_due(tmp_path, now + 30) is None  # swept less than a minute ago
    assert sweep_if_due(tmp_path, now + 61) == 1


def test_no_request_walks_the_session_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """cachelib's pruning walked every file once past its threshold; the store's folders have none now."""
    store = site_on("files", tmp_path / "site", None)
    # cachelib walks a folder when its threshold is passed (then on every write): the store's folders have none
    assert store.stack.app.session_interface.cache._threshold == 0  # type: ignore[attr-defined]
    assert store.stack.app.extensions["logto"].connection(store.stack.app).store._cache._threshold == 0

    walked: list[str] = []
    real_listdir, real_scandir = os.listdir, os.scandir

    def in_a_request() -> bool:  # the background sweeper may walk a folder at any time: that is its job
        return threading.current_thread().name != SWEEPER_THREAD

    def listdir(path: Any = ".") -> list[str]:
        if in_a_request():
            walked.append(str(path))
        return real_listdir(path)

    def scandir(path: Any = ".") -> Any:
        if in_a_request():
            walked.append(str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr(os, "scandir", scandir)
    try:
        statuses = anonymous_sign_in_starts(store.stack, 30, threads=2)
        assert statuses == [302] * 30
        assert sign_in(store.stack, requests.Session(), "no-walk").status_code == 302
    finally:
        store.stack.stop()
    assert not [path for path in walked if str(store.stack.data_dir) in path]
