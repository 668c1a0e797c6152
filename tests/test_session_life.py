"""A session from start to end: refresh, revoked sign-in, a new sign-in's clean slate, headers, logs."""

from __future__ import annotations

import json
import logging
import re

import pytest
import requests

from tests.conftest import Stack, csrf_token_in, follow_to_callback, sign_in, start_sign_in


def stored_session(stack: Stack, http: requests.Session) -> dict:
    """What the server keeps for this browser (the test looks; the browser never can)."""
    interface = stack.app.session_interface
    sid = http.cookies.get("site_session")
    return (interface.cache.get(interface.key_prefix + sid) if sid else None) or {}


def token_values(session_data: dict) -> set[str]:
    values = {session_data.get("logto.idToken"), session_data.get("logto.refreshToken")}
    access_map = session_data.get("logto.accessTokenMap")
    if access_map:
        values |= {entry["token"] for entry in json.loads(access_map)["x"].values()}
    return {value for value in values if value}


@pytest.fixture(scope="module")
def short_tokens(tmp_path_factory):
    """Access tokens the SDK always considers expired (it subtracts 60 s from 30 s): every /profile refreshes."""
    from tests.conftest import start_stack

    running = start_stack(tmp_path_factory.mktemp("short"), access_token_ttl=30)
    yield running
    running.stop()


def test_profile_refreshes_and_stores_the_rotated_refresh_token(short_tokens: Stack):
    http = requests.Session()
    sign_in(short_tokens, http, "rita")
    first = stored_session(short_tokens, http)["logto.refreshToken"]
    assert http.get(short_tokens.base_url + "/profile", timeout=10).status_code == 200
    second = stored_session(short_tokens, http)["logto.refreshToken"]
    assert http.get(short_tokens.base_url + "/profile", timeout=10).status_code == 200
    third = stored_session(short_tokens, http)["logto.refreshToken"]
    assert len({first, second, third}) == 3


def test_revoked_sign_in_ends_the_session_cleanly(short_tokens: Stack):
    http = requests.Session()
    sign_in(short_tokens, http, "sam")
    sub = stored_session(short_tokens, http)["auth.user"]["sub"]
    short_tokens.provider.revoke(sub)
    response = http.get(short_tokens.base_url + "/profile", allow_redirects=False, timeout=10)
    assert response.status_code == 401 and "Your session ended" in response.text and "sign in again" in response.text
    assert http.get(short_tokens.base_url + "/profile", allow_redirects=False, timeout=10).status_code == 302
    assert set(stored_session(short_tokens, http)) <= {"_permanent", "csrf_token"}  # only the pages' form token left


def test_two_tabs_refreshing_at_once_keep_the_session(short_tokens: Stack):
    """Logto revokes the whole sign-in when a rotated refresh token is used twice."""
    from concurrent.futures import ThreadPoolExecutor

    http = requests.Session()
    sign_in(short_tokens, http, "tabs")
    cookies = http.cookies.get_dict()
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(
            lambda _: requests.get(short_tokens.base_url + "/profile", cookies=cookies, timeout=10).status_code, range(8)
        ))
    assert statuses == [200] * 8
    assert http.get(short_tokens.base_url + "/profile", timeout=10).status_code == 200


def test_a_new_sign_in_starts_from_nothing(stack: Stack):
    http = requests.Session()
    sign_in(stack, http, "uma")
    before = stored_session(stack, http)
    start_sign_in(stack, http)
    during = stored_session(stack, http)
    assert token_values(during) == token_values(before) and len(during["auth.pending"]) == 1  # nobody signed out yet
    assert http.get(stack.base_url + "/profile", allow_redirects=False, timeout=10).status_code == 200
    assert sign_in(stack, http, "uma-again").status_code == 302
    after = stored_session(stack, http)
    assert token_values(after) and not token_values(after) & token_values(before)
    assert "auth.pending" not in after and set(after) <= {"auth.user", "auth.userinfo", *before}


def test_security_headers_on_every_page(stack: Stack):
    http = requests.Session()
    sign_in(stack, http, "victor")
    for path in ["/", "/profile", "/nope", "/callback?junk=1"]:
        response = http.get(stack.base_url + path, allow_redirects=False, timeout=10)
        csp = response.headers["Content-Security-Policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
        assert re.search(r"style-src 'nonce-[\w-]{16,}'", csp)
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Referrer-Policy"] == "same-origin"
        assert response.headers["Cache-Control"] == "no-store"
        assert "<script" not in response.text


def test_no_token_code_or_cookie_reaches_logs_or_pages(stack: Stack, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    http = requests.Session()
    seen_pages: list[str] = []
    authorize_url = start_sign_in(stack, http)
    callback_url = follow_to_callback(http, authorize_url, stack.base_url, username="wendy")
    code = re.search(r"code=([^&]+)", callback_url).group(1)
    seen_pages.append(http.get(callback_url, timeout=10).text)
    seen_pages.append(http.get(stack.base_url + "/profile", timeout=10).text)
    tokens = token_values(stored_session(stack, http))
    assert len(tokens) == 3  # ID, refresh and access token
    browser_cookies = {cookie.name: cookie.value for cookie in http.cookies}
    assert not any(token in value for token in tokens for value in browser_cookies.values())
    secrets = tokens | {code, browser_cookies["site_session"], stack.app.secret_key, stack.app.config["LOGTO_APP_SECRET"]}
    home = http.get(stack.base_url + "/", timeout=10)
    seen_pages.append(home.text)
    csrf = csrf_token_in(home.text)
    sign_out = http.post(stack.base_url + "/sign-out", data={"csrf_token": csrf}, allow_redirects=False, timeout=10)
    seen_pages.append(sign_out.text)

    # Everything the site process logged (urllib3 lines are this test's own HTTP client).
    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records if not r.name.startswith("urllib3"))
    assert "event=sign-in user=" in logs and "event=sign-out user=" in logs
    for secret in secrets:
        assert secret not in logs
        assert not any(secret in page for page in seen_pages)


def test_steady_pages_neither_write_the_session_nor_call_logto(make_stack):
    """A signed-in `/` and `/profile` read the stored session; they write it only when something changed."""
    running = make_stack()
    http = requests.Session()
    sign_in(running, http, "steady-reader")
    assert http.get(running.base_url + "/profile", timeout=10).status_code == 200  # csrf token made once
    session_files = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in (running.data_dir / "sessions").iterdir()}
    running.provider.stop()  # any call to Logto would now fail
    for _ in range(3):
        for path in ["/", "/profile"]:
            answer = http.get(running.base_url + path, timeout=10)
            assert answer.status_code == 200 and "steady-reader" in answer.text
    after = {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in (running.data_dir / "sessions").iterdir()}
    assert after == session_files
