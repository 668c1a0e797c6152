"""Property-based: arbitrary input to the auth routes never gets a 5xx or a redirect off the site.

The only place the site may send a browser is itself or the configured Logto endpoint.
"""

from __future__ import annotations

from urllib.parse import urlencode, urlsplit

import pytest
import requests
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from client import safe_next
from tests.conftest import Stack, follow_to_callback, sign_in, start_sign_in

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
junk = st.text(st.characters(codec="utf-8"), max_size=60)
params = st.lists(
    st.tuples(st.sampled_from(["code", "state", "iss", "error", "error_description", "next", "x"]) | junk, junk),
    max_size=6,
)


@pytest.fixture(scope="module")
def signed_in_session(stack: Stack) -> requests.Session:
    http = requests.Session()
    assert sign_in(stack, http, "formfuzz").status_code == 302
    return http


def assert_answer_is_safe(stack: Stack, response: requests.Response) -> None:
    assert response.status_code < 500, response.text[:300]
    location = response.headers.get("Location")
    if location is not None:
        target = urlsplit(location)
        to_logto = f"{target.scheme}://{target.netloc}" == stack.provider.endpoint
        assert to_logto or (not target.scheme and not target.netloc and location.startswith("/")), location


@FUZZ
@given(query=params)
def test_callback_junk_without_sign_in(stack: Stack, query):
    response = requests.get(f"{stack.base_url}/callback?{urlencode(query)}", allow_redirects=False, timeout=10)
    assert_answer_is_safe(stack, response)
    assert response.status_code == 400


@FUZZ
@given(query=params, keep_state=st.booleans())
def test_callback_junk_during_a_sign_in(stack: Stack, query, keep_state):
    http = requests.Session()
    authorize_url = start_sign_in(stack, http)
    state = dict(pair.split("=", 1) for pair in urlsplit(authorize_url).query.split("&"))["state"]
    if keep_state:
        query = [(k, v) for k, v in query if k != "state"] + [("state", state)]
    response = http.get(f"{stack.base_url}/callback?{urlencode(query)}", allow_redirects=False, timeout=10)
    assert_answer_is_safe(stack, response)
    assert 400 <= response.status_code < 500
    assert http.get(stack.base_url + "/profile", allow_redirects=False, timeout=10).status_code == 302


@FUZZ
@given(raw=st.text(st.characters(codec="ascii"), max_size=80))
def test_raw_query_strings(stack: Stack, raw):
    for path in ("/callback", "/sign-in", "/sign-up", "/", "/profile"):
        response = requests.get(f"{stack.base_url}{path}?{raw}", allow_redirects=False, timeout=10)
        assert_answer_is_safe(stack, response)


@FUZZ
@given(target=junk | st.sampled_from(["//evil.example", "/\\evil.example", "https://evil.example", "/\t/x"]))
def test_next_is_always_a_local_path(target):
    cleaned = safe_next(target)
    parts = urlsplit(cleaned)
    assert cleaned.startswith("/") and not cleaned.startswith("//") and "\\" not in cleaned
    assert not parts.scheme and not parts.netloc
    assert cleaned == target or cleaned == "/"


@settings(max_examples=15, deadline=None)
@given(target=junk)
def test_next_after_a_whole_sign_in(stack: Stack, target):
    http = requests.Session()
    response = http.get(f"{stack.base_url}/sign-in?{urlencode({'next': target})}", allow_redirects=False, timeout=10)
    assert_answer_is_safe(stack, response)
    callback_url = follow_to_callback(http, response.headers["Location"], stack.base_url, username="fuzzy")
    landing = http.get(callback_url, allow_redirects=False, timeout=10)
    assert_answer_is_safe(stack, landing)
    location = landing.headers["Location"]
    assert location in (target, "/") and not location.startswith("//") and "\\" not in location


@FUZZ
@given(form=st.dictionaries(junk, junk, max_size=5), signed_in=st.booleans())
def test_sign_out_with_arbitrary_forms(stack: Stack, signed_in_session, form, signed_in):
    http = signed_in_session if signed_in else requests.Session()
    response = http.post(stack.base_url + "/sign-out", data=form, allow_redirects=False, timeout=10)
    assert_answer_is_safe(stack, response)
    assert response.status_code == 400  # no valid CSRF token in a random form
    if signed_in:
        assert http.get(stack.base_url + "/profile", allow_redirects=False, timeout=10).status_code == 200
