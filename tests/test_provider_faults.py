"""The identity provider misbehaves: slow, junk answers, server errors, a rotated signing key.

Each case gets a clear page within the configured timeout, and the site recovers with the provider.
"""

from __future__ import annotations

import requests

from tests.conftest import Stack, follow_to_callback, sign_in, start_sign_in

TIMEOUT = "1"  # LOGTO_TIMEOUT for these stacks, in seconds
SLOWER_THAN_TIMEOUT_MS = 6000
CLIENT_PATIENCE = 4  # seconds: fails the test if the site waited for the slow provider


def reach_callback(stack: Stack, http: requests.Session, username: str) -> str:
    return follow_to_callback(http, start_sign_in(stack, http), stack.base_url, username=username)


def test_slow_token_endpoint_times_out_then_recovers(make_stack):
    stack = make_stack(LOGTO_TIMEOUT=TIMEOUT)
    http = requests.Session()
    callback_url = reach_callback(stack, http, "slowpoke")
    stack.provider.set_fault("slow", SLOWER_THAN_TIMEOUT_MS)
    response = http.get(callback_url, timeout=CLIENT_PATIENCE)
    assert response.status_code == 503 and "Identity service unavailable" in response.text
    stack.provider.set_fault("none")
    assert sign_in(stack, http, "slowpoke").status_code == 302


def test_slow_discovery_times_out(make_stack):
    stack = make_stack(LOGTO_TIMEOUT=TIMEOUT)
    stack.provider.set_fault("slow", SLOWER_THAN_TIMEOUT_MS)
    response = requests.get(stack.base_url + "/sign-in", allow_redirects=False, timeout=CLIENT_PATIENCE)
    assert response.status_code == 503
    stack.provider.set_fault("none")
    assert requests.get(stack.base_url + "/sign-in", allow_redirects=False, timeout=10).status_code == 302


def test_html_from_the_token_endpoint(make_stack):
    stack = make_stack()
    http = requests.Session()
    callback_url = reach_callback(stack, http, "htmlfan")
    stack.provider.set_fault("html")
    response = http.get(callback_url, timeout=10)
    assert response.status_code == 503 and "Identity service unavailable" in response.text
    assert http.get(stack.base_url + "/profile", allow_redirects=False, timeout=10).status_code == 302
    stack.provider.set_fault("none")
    assert sign_in(stack, http, "htmlfan").status_code == 302


def test_server_errors_on_userinfo_keep_the_user_signed_in(make_stack):
    stack = make_stack(access_token_ttl=30)  # every /profile refreshes, then asks userinfo
    http = requests.Session()
    sign_in(stack, http, "errol")
    stack.provider.set_fault("error500")
    response = http.get(stack.base_url + "/profile", allow_redirects=False, timeout=10)
    assert response.status_code == 503
    stack.provider.set_fault("none")
    assert http.get(stack.base_url + "/profile", allow_redirects=False, timeout=10).status_code == 200


def test_signing_key_rotated_between_two_sign_ins(make_stack):
    stack = make_stack()
    first, second = requests.Session(), requests.Session()
    assert sign_in(stack, first, "before-rotation").status_code == 302
    old_kid = stack.provider.state()["kids"]
    stack.provider.rotate_key(keep_old=False)
    assert stack.provider.state()["kids"] != old_kid
    assert sign_in(stack, second, "after-rotation").status_code == 302
    assert second.get(stack.base_url + "/profile", timeout=10).status_code == 200
    assert first.get(stack.base_url + "/profile", timeout=10).status_code == 200
