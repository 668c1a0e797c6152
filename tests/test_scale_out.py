"""Two site instances sharing one Redis (SESSION_REDIS_URL), back-channel logout, and sign-out revoking the grant.

The instances are real HTTP servers (threaded Werkzeug) on two ports of `localhost`, each with its own
APP_DATA_DIR holding the same secrets (session-signing key, the dev client secret), so that they share
nothing but Redis and the provider, as two machines would. The session cookie is per host name, not per
port, so one `requests.Session` (a browser) carries it to both. Redis is a real `redis-server`
(tests/redis_server.py); logout tokens for the bad-input cases are signed here with the provider's own key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import secrets
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from jwt.algorithms import ECAlgorithm
from werkzeug.serving import make_server

from client import ConfigError
from flask_app import create_app
from flask_logto.backchannel import LOGOUT_EVENT
from flask_logto.config import read_auth_settings
from flask_logto.session_store import RedisStore
from tests.conftest import Stack, csrf_token_in, forms_in, page_text, sign_in
from tests.harness import ROOMY_LIMITS, QuietRequestHandler, _LateApp
from tests.redis_server import RedisServer, redis_server  # noqa: F401  (the fixture)
from tools.devidp.launcher import RunningProvider
from tools.flask_dev import start_local_provider
from website.settings import DEV_APP_ID, site_config

LIFETIME = 3600  # SESSION_LIFETIME for these instances


@dataclass
class Pair:
    """Two instances of the site (a, b) sharing one provider and one Redis."""

    a: Stack
    b: Stack
    provider: RunningProvider
    redis: RedisServer

    @property
    def both(self) -> tuple[Stack, Stack]:
        return self.a, self.b

    def stop(self) -> None:
        for stack in self.both:
            stack.server.shutdown()
            stack.server.server_close()
        self.provider.stop()


def start_pair(base: Path, redis: RedisServer) -> Pair:
    lates = [_LateApp(), _LateApp()]
    servers = [make_server("127.0.0.1", 0, late, threaded=True, request_handler=QuietRequestHandler) for late in lates]
    urls = [f"http://localhost:{server.server_port}" for server in servers]
    data_dirs = [base / "a", base / "b"]
    provider = start_local_provider(  # the back-channel logout goes to instance a; the store is shared
        urls[0], data_dirs[0], port=0, test_controls=True,
        redirect_uris=[f"{url}/callback" for url in urls], post_logout_redirect_uris=[f"{url}/" for url in urls],
    )
    (data_dirs[1] / "devidp").mkdir(parents=True)
    shutil.copy(data_dirs[0] / "devidp" / "client_secret", data_dirs[1] / "devidp" / "client_secret")
    key = secrets.token_hex(32)
    stacks = []
    for late, server, url, data_dir in zip(lates, servers, urls, data_dirs, strict=True):
        late.app = create_app({
            "APP_BASE_URL": url, "APP_DATA_DIR": str(data_dir), "DEVIDP_PORT": str(provider.port),
            "SESSION_REDIS_URL": redis.url, "FLASK_SECRET_KEY": key, "SESSION_LIFETIME": str(LIFETIME), **ROOMY_LIMITS,
        })
        thread = threading.Thread(target=server.serve_forever, name=f"site-{server.server_port}", daemon=True)
        thread.start()
        stacks.append(Stack(url, provider, late.app, server, data_dir, thread))
    return Pair(stacks[0], stacks[1], provider, redis)


@pytest.fixture(scope="module")
def pair(tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer) -> Iterator[Pair]:  # noqa: F811
    running = start_pair(tmp_path_factory.mktemp("pair"), redis_server)
    yield running
    running.stop()


# Helpers


def get(stack: Stack, http: requests.Session, path: str) -> requests.Response:
    return http.get(stack.base_url + path, allow_redirects=False, timeout=15)


def signed_in_as(stack: Stack, http: requests.Session, username: str) -> bool:
    """True when `/profile` on this instance shows this user (and nobody else); False when it sends to sign-in."""
    response = get(stack, http, "/profile")
    if response.status_code == 302 and "/sign-in" in response.headers["Location"]:
        return False
    assert response.status_code == 200, page_text(response.text)[:300]
    assert f"<dd>{username}</dd>" in response.text
    return True


def stored_session(stack: Stack, http: requests.Session | str) -> dict[str, Any] | None:
    """The session this browser (or session id) has, as the store keeps it (None once it is gone)."""
    interface = stack.app.session_interface
    sid = http if isinstance(http, str) else http.cookies["site_session"]
    raw = interface.client.get(interface.key_prefix + sid)
    return None if raw is None else interface.serializer.decode(raw)


def no_sign_in_stored(stack: Stack, sid: str) -> bool:
    """The store keeps no tokens and no user for this session id (it may keep a flash message)."""
    stored = stored_session(stack, sid) or {}
    return not any(key.startswith(("logto.", "auth.")) for key in stored)


def sign_out(stack: Stack, http: requests.Session) -> requests.Response:
    csrf = csrf_token_in(get(stack, http, "/").text)
    return http.post(stack.base_url + "/sign-out", data={"csrf_token": csrf}, allow_redirects=False, timeout=15)


def end_provider_session(provider: RunningProvider, http: requests.Session) -> None:
    """Sign out at the provider in this browser (what Logto's end-session page does), which sends the back-channel logout."""
    url = f"{provider.endpoint}/oidc/session/end?client_id={DEV_APP_ID}"
    form = forms_in(http.get(url, timeout=15).text)[0]
    answer = http.post(urljoin(url, str(form["action"])), data=form["fields"], allow_redirects=False, timeout=15)
    assert answer.status_code == 303, answer.text[:300]


def counts(provider: RunningProvider) -> dict[str, Any]:
    return provider.state()["counts"]


def signing_key(provider_data_dir: Path) -> tuple[jwt.PyJWK, str]:
    """The provider's current private signing key (ES384) and its kid, read from its data dir."""
    jwk = json.loads((provider_data_dir / "keys.json").read_text())["signing"][0]
    return jwt.PyJWK(jwk), jwk["kid"]


def logout_token(pair: Pair, claims: dict[str, Any] | None = None, *, drop: tuple[str, ...] = (),
                 key: Any = None, headers: dict[str, Any] | None = None, algorithm: str = "ES384") -> str:
    """A logout token as Logto makes it (overridden by `claims`, without `drop`), signed with the provider's key."""
    real_key, kid = signing_key(pair.a.data_dir / "devidp")
    now = int(time.time())
    body = {"iss": pair.provider.issuer, "aud": DEV_APP_ID, "iat": now, "exp": now + 120,
            "jti": secrets.token_urlsafe(32), "events": {LOGOUT_EVENT: {}}, "sub": "nobody-in-particular"}
    body.update(claims or {})
    for name in drop:
        body.pop(name, None)
    return jwt.encode(body, key if key is not None else real_key.key, algorithm=algorithm,
                      headers={"kid": kid, "typ": "logout+jwt", **(headers or {})})


def post_logout(stack: Stack, token: Any) -> requests.Response:
    data = {} if token is None else {"logout_token": token}
    return requests.post(stack.base_url + "/backchannel-logout", data=data, timeout=15)


def claims_of(stack: Stack, http: requests.Session) -> dict[str, Any]:
    stored = stored_session(stack, http)
    assert stored is not None
    return jwt.decode(stored["logto.idToken"], options={"verify_signature": False})


def new_browser(pair: Pair, username: str, on: Stack | None = None) -> requests.Session:
    http = requests.Session()
    assert sign_in(on or pair.a, http, username).status_code == 302
    return http


# One session, two instances


def test_a_session_made_on_one_instance_is_the_same_on_the_other(pair: Pair) -> None:
    http = new_browser(pair, "scale-ann", on=pair.a)

    assert signed_in_as(pair.b, http, "scale-ann") and signed_in_as(pair.a, http, "scale-ann")
    interface = pair.a.app.session_interface
    ttl = interface.client.ttl(interface.key_prefix + http.cookies["site_session"])
    assert LIFETIME - 60 < ttl <= LIFETIME  # the session lives SESSION_LIFETIME in Redis
    for stack in pair.both:  # nothing on disk: Redis holds the sessions
        assert not (stack.data_dir / "sessions").exists() or not any((stack.data_dir / "sessions").iterdir())

    sid = http.cookies["site_session"]
    assert sign_out(pair.b, http).status_code == 302

    assert not signed_in_as(pair.a, http, "scale-ann")
    assert no_sign_in_stored(pair.a, sid)


def test_signing_out_revokes_the_refresh_token(pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="auth")
    http = new_browser(pair, "scale-rev")
    refresh_token = stored_session(pair.a, http)["logto.refreshToken"]

    assert sign_out(pair.b, http).status_code == 302  # the browser does not even reach the provider's end-session

    secret = pair.b.app.config["LOGTO_APP_SECRET"]
    grant = requests.post(f"{pair.provider.issuer}/token", timeout=15, data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": DEV_APP_ID, "client_secret": secret,
    })
    assert grant.status_code == 400 and grant.json()["error"] == "invalid_grant"
    assert refresh_token not in caplog.text


@pytest.mark.parametrize(("mode", "cause"), [("error500", "error answer"), ("slow", "no answer within 3s")])
def test_a_revocation_that_fails_is_logged_and_does_not_stop_the_sign_out(
    pair: Pair, caplog: pytest.LogCaptureFixture, mode: str, cause: str
) -> None:
    caplog.set_level(logging.INFO, logger="auth")
    http = new_browser(pair, f"scale-{mode}")
    sid = http.cookies["site_session"]
    refresh_token = stored_session(pair.a, sid)["logto.refreshToken"]
    pair.provider.set_fault(mode, delay_ms=5000 if mode == "slow" else 0)
    try:
        started = time.monotonic()
        answer = sign_out(pair.a, http)
        took = time.monotonic() - started
    finally:
        pair.provider.set_fault("none")

    assert answer.status_code == 302 and "/oidc/session/end" in answer.headers["Location"]
    assert took < 4.5
    assert no_sign_in_stored(pair.a, sid)
    failure = next(record.getMessage() for record in caplog.records if "event=revocation-failed" in record.getMessage())
    assert cause in failure and refresh_token not in caplog.text


# Back-channel logout


def test_ending_the_provider_session_ends_its_site_session_on_both_instances(pair: Pair) -> None:
    first = new_browser(pair, "scale-bcl", on=pair.b)
    second = new_browser(pair, "scale-bcl", on=pair.a)  # the same person in another browser: another Logto session
    assert claims_of(pair.a, first)["sid"] != claims_of(pair.a, second)["sid"]
    sent = counts(pair.provider)["backchannel_logouts"]["sent"]

    end_provider_session(pair.provider, first)

    assert counts(pair.provider)["backchannel_logouts"]["sent"] == sent + 1  # delivered before end-session's 303
    for stack in pair.both:
        assert not signed_in_as(stack, first, "scale-bcl")
        assert signed_in_as(stack, second, "scale-bcl")  # only that Logto session ended


def test_a_logout_token_with_only_sub_ends_all_of_that_users_sessions(pair: Pair) -> None:
    browsers = [new_browser(pair, "scale-all", on=stack) for stack in pair.both]
    bystander = new_browser(pair, "scale-other")
    sub = claims_of(pair.a, browsers[0])["sub"]

    started = time.monotonic()
    answer = post_logout(pair.b, logout_token(pair, {"sub": sub}))

    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    assert time.monotonic() - started < 2  # Logto waits 2.5 s, once
    for stack in pair.both:
        assert not any(signed_in_as(stack, http, "scale-all") for http in browsers)
        assert signed_in_as(stack, bystander, "scale-other")


def _other_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP384R1())


def hand_made(pair: Pair, claims: dict[str, Any], header: dict[str, Any], *, hs256_with_public_key: bool = False) -> str:
    """A logout token built by hand, for headers PyJWT will not write; ES384 with the provider's key, or
    the algorithm-confusion attack: HS256 keyed with the provider's public key (which anyone can fetch)."""
    key, kid = signing_key(pair.a.data_dir / "devidp")
    now = int(time.time())
    body = {"iss": pair.provider.issuer, "aud": DEV_APP_ID, "iat": now, "exp": now + 120,
            "jti": secrets.token_urlsafe(32), "events": {LOGOUT_EVENT: {}}, **claims}
    part = lambda value: base64.urlsafe_b64encode(value).rstrip(b"=")  # noqa: E731
    alg = "HS256" if hs256_with_public_key else "ES384"
    signing_input = (part(json.dumps({"alg": alg, "typ": "logout+jwt", "kid": kid, **header}).encode()) + b"."
                     + part(json.dumps(body).encode()))
    if hs256_with_public_key:
        public = key.key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        signature = hmac.new(public, signing_input, hashlib.sha256).digest()
    else:
        signature = ECAlgorithm(ECAlgorithm.SHA384).sign(signing_input, key.key)
    return (signing_input + b"." + part(signature)).decode()


BAD_TOKENS: dict[str, Callable[[Pair, dict[str, Any]], Any]] = {
    "missing field": lambda pair, c: None,
    "empty": lambda pair, c: "",
    "junk": lambda pair, c: "not-a-jwt",
    "junk with dots": lambda pair, c: "eyJhbGciOiJFUzM4NCJ9.eyJzdWIiOiJ4In0.c2ln",
    "too long": lambda pair, c: logout_token(pair, {**c, "pad": "x" * 20_000}),
    "bad signature": lambda pair, c: logout_token(pair, c, key=_other_key()),
    "unknown kid": lambda pair, c: logout_token(pair, c, key=_other_key(), headers={"kid": "not-a-kid-logto-has"}),
    "hs256 with the public key": lambda pair, c: hand_made(pair, c, {}, hs256_with_public_key=True),
    "alg none": lambda pair, c: jwt.encode(c, None, algorithm="none"),
    "wrong aud": lambda pair, c: logout_token(pair, {**c, "aud": "another-app"}),
    "wrong iss": lambda pair, c: logout_token(pair, {**c, "iss": "http://localhost:1/oidc"}),
    "no events": lambda pair, c: logout_token(pair, c, drop=("events",)),
    "other event": lambda pair, c: logout_token(pair, {**c, "events": {"http://example.com/other": {}}}),
    "event not an object": lambda pair, c: logout_token(pair, {**c, "events": {LOGOUT_EVENT: "yes"}}),
    "with nonce": lambda pair, c: logout_token(pair, {**c, "nonce": "n-0S6_WzA2Mj"}),
    "neither sid nor sub": lambda pair, c: logout_token(pair, c, drop=("sid", "sub")),
    "no jti": lambda pair, c: logout_token(pair, c, drop=("jti",)),
    "no iat": lambda pair, c: logout_token(pair, c, drop=("iat",)),
    "expired": lambda pair, c: logout_token(pair, {**c, "iat": int(time.time()) - 600, "exp": int(time.time()) - 300}),
    "iat in the future": lambda pair, c: logout_token(pair, {**c, "iat": int(time.time()) + 600}),
    "old without exp": lambda pair, c: logout_token(pair, {**c, "iat": int(time.time()) - 3600}, drop=("exp",)),
    "typ JWT (an ID token's)": lambda pair, c: logout_token(pair, c, headers={"typ": "JWT"}),
    "typ not a string": lambda pair, c: hand_made(pair, c, {"typ": ["logout+jwt"]}),
    "kid not a string": lambda pair, c: hand_made(pair, c, {"kid": ["a", "list"]}),
    "sid not a string": lambda pair, c: logout_token(pair, {**c, "sid": ["a", "b"]}),
}


@pytest.fixture(scope="module")
def target(pair: Pair) -> requests.Session:
    """A signed-in browser that no bad logout token may sign out."""
    return new_browser(pair, "scale-target")


@pytest.mark.parametrize("case", list(BAD_TOKENS))
def test_a_bad_logout_token_is_refused_and_changes_nothing(pair: Pair, target: requests.Session, case: str) -> None:
    claims = claims_of(pair.a, target)
    before = {key: pair.redis.client().smembers(key) for key in index_keys(claims)}
    jwks_fetches_before = pair.provider.output().count("GET /oidc/jwks ")

    answer = post_logout(pair.a, BAD_TOKENS[case](pair, {"sid": claims["sid"], "sub": claims["sub"]}))

    assert answer.status_code == 400, answer.text[:300]
    assert answer.json()["error"] == "invalid_request" and answer.headers["Cache-Control"] == "no-store"
    assert {key: pair.redis.client().smembers(key) for key in index_keys(claims)} == before
    assert stored_session(pair.a, target) is not None and signed_in_as(pair.b, target, "scale-target")
    assert pair.provider.output().count("GET /oidc/jwks ") <= jwks_fetches_before + 1  # no network but the keys


def index_keys(claims: dict[str, Any]) -> list[str]:
    return [f"{RedisStore.PREFIX}sid:{claims['sid']}", f"{RedisStore.PREFIX}sub:{claims['sub']}"]


def test_a_replayed_logout_token_is_refused_on_every_instance(pair: Pair) -> None:
    http = new_browser(pair, "scale-replay")
    claims = claims_of(pair.a, http)
    token = logout_token(pair, {"sid": claims["sid"], "sub": claims["sub"]})
    assert post_logout(pair.a, token).status_code == 200
    assert not signed_in_as(pair.a, http, "scale-replay")
    assert sign_in(pair.b, http, "scale-replay").status_code == 302  # the same Logto session: the same sid
    assert claims_of(pair.a, http)["sid"] == claims["sid"]

    for stack in pair.both:
        assert post_logout(stack, token).status_code == 400

    assert signed_in_as(pair.a, http, "scale-replay")


# Refresh: one at a time across instances


def expire_access_token(stack: Stack, http: requests.Session) -> None:
    """Make the stored access token due, as if an hour had passed (the session's TTL is kept)."""
    interface = stack.app.session_interface
    key = interface.key_prefix + http.cookies["site_session"]
    stored = interface.serializer.decode(interface.client.get(key))
    access = json.loads(stored["logto.accessTokenMap"])
    for entry in access["x"].values():
        entry["expiresAt"] = int(time.time()) - 10
    stored["logto.accessTokenMap"] = json.dumps(access)
    interface.client.set(key, interface.serializer.encoder.encode(stored), keepttl=True)


def test_both_instances_refreshing_one_session_at_once_make_one_refresh(pair: Pair) -> None:
    http = new_browser(pair, "scale-refresh")
    expire_access_token(pair.a, http)
    refreshes = counts(pair.provider)["grants"].get("refresh_token", 0)
    cookies = http.cookies.get_dict()
    start = threading.Barrier(8)

    def profile(stack: Stack) -> requests.Response:
        start.wait()
        return requests.get(stack.base_url + "/profile", cookies=cookies, allow_redirects=False, timeout=30)

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(profile, [pair.a, pair.b] * 4))

    assert [answer.status_code for answer in answers] == [200] * 8
    assert all("<dd>scale-refresh</dd>" in answer.text for answer in answers)
    assert counts(pair.provider)["grants"].get("refresh_token", 0) == refreshes + 1
    for stack in pair.both:  # the new tokens are in the session: no further refresh
        assert signed_in_as(stack, http, "scale-refresh")
    assert counts(pair.provider)["grants"].get("refresh_token", 0) == refreshes + 1
    assert not list(pair.redis.client().scan_iter(f"{RedisStore.PREFIX}lock:*"))


def test_the_redis_lock_is_exclusive_and_a_dead_holders_lock_expires(redis_server: RedisServer) -> None:  # noqa: F811
    store = RedisStore(redis_server.client())
    dead = store.lock("refresh:crashed-holder", wait=1, expiry=0.5)
    dead.__enter__()  # and never leaves: its process "died"
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        with store.lock("refresh:crashed-holder", wait=0.1, expiry=5):
            pass
    with store.lock("refresh:crashed-holder", wait=5, expiry=5):
        waited = time.monotonic() - started
        dead.__exit__(None, None, None)  # the late holder's release must not free the new holder's lock
        with pytest.raises(TimeoutError):
            with store.lock("refresh:crashed-holder", wait=0.1, expiry=5):
                pass
    assert 0.4 < waited < 2


# Redis goes away, and comes back


def test_redis_down_gives_a_503_page_and_the_site_recovers_by_itself(pair: Pair) -> None:
    http = new_browser(pair, "scale-outage")
    claims = claims_of(pair.a, http)
    token = logout_token(pair, {"sid": claims["sid"], "sub": claims["sub"]})
    pair.redis.stop()
    try:
        for stack in pair.both:
            started = time.monotonic()
            loaded = get(stack, http, "/profile")  # the session cannot be loaded
            saved = get(stack, requests.Session(), "/sign-in")  # a new visitor: the session cannot be saved
            logout = post_logout(stack, token)  # the index cannot be read
            assert time.monotonic() - started < 10
            for answer in (loaded, saved, logout):
                assert answer.status_code == 503, answer.text[:300]
                assert "Session store unavailable" in answer.text and "Traceback" not in answer.text
                assert "Location" not in answer.headers and "Set-Cookie" not in answer.headers
            assert get(stack, requests.Session(), "/healthz").status_code == 200
    finally:
        pair.redis.start()

    for stack in pair.both:  # no restart of the site: the next requests work again
        deadline = time.monotonic() + 15
        while get(stack, http, "/profile").status_code != 200:
            assert time.monotonic() < deadline, "the site did not recover"
            time.sleep(0.05)
        assert signed_in_as(stack, http, "scale-outage")
    assert post_logout(pair.b, token).status_code == 200  # its jti was never recorded
    assert not signed_in_as(pair.a, http, "scale-outage")


# The file store (the zero-config default) does the same on one machine


def test_with_the_file_store_the_provider_session_ending_ends_the_site_session(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack()
    http = requests.Session()
    assert sign_in(stack, http, "files-bcl").status_code == 302
    sid = http.cookies["site_session"]
    assert stack.app.session_interface.cache.has(stack.app.session_interface.key_prefix + sid)

    end_provider_session(stack.provider, http)

    assert not stack.app.session_interface.cache.has(stack.app.session_interface.key_prefix + sid)
    assert get(stack, http, "/profile").status_code == 302


# Settings


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://localhost:6379", "is not a Redis URL"),
        ("localhost:6379", "is not a Redis URL"),
        ("redis://", "is not a Redis URL"),
        ("redis://:s3cret@cache.example:port/0", "is not a Redis URL"),
        ("memcached://:s3cret@cache.example:11211", "'memcached://:***@cache.example:11211'"),
    ],
)
def test_a_bad_session_redis_url_is_one_line_that_hides_the_password(tmp_path: Path, url: str, problem: str) -> None:
    with pytest.raises(ConfigError) as refused:  # the site checks it under its environment name
        site_config({"APP_DATA_DIR": str(tmp_path), "SESSION_REDIS_URL": url})
    message = str(refused.value)
    assert message.startswith("SESSION_REDIS_URL") and problem in message
    assert "s3cret" not in message and "\n" not in message


@pytest.mark.parametrize("url", ["redis://localhost:6379/0", "rediss://:s3cret@cache.example:6380/1", ""])
def test_good_session_redis_urls(tmp_path: Path, url: str) -> None:
    assert read_auth_settings(site_config({"APP_DATA_DIR": str(tmp_path), "SESSION_REDIS_URL": url})).session_redis_url == url


def test_the_hand_made_tokens_are_valid_but_for_their_flaw(pair: Pair) -> None:
    """The bad-token cases built by hand are refused for what they change, not for how they are built."""
    assert post_logout(pair.a, hand_made(pair, {"sub": "nobody-in-particular"}, {})).status_code == 200
    assert post_logout(pair.a, logout_token(pair)).status_code == 200
