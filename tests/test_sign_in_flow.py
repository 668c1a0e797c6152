"""Sign-in, profile and sign-out over real HTTP against the embedded identity provider process."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit

import pytest
import requests

from tests.conftest import Stack, csrf_token_in, follow_to_callback, forms_in, page_text, sign_in, start_sign_in


def csrf_token(http: requests.Session, stack: Stack) -> str:
    return csrf_token_in(http.get(stack.base_url + "/", timeout=10).text)  # type: ignore[index,return-value]


def with_query(url: str, **changes: str) -> str:
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def test_sign_in_shows_the_hugging_face_identity(stack: Stack):
    http = requests.Session()
    http.get(stack.base_url + "/", timeout=10)
    response = sign_in(stack, http, "alice")
    assert response.status_code == 302 and response.headers["Location"] == "/"

    home = page_text(http.get(stack.base_url + "/", timeout=10).text)
    assert "Hello, Alice" in home and "@alice" in home and "Sign out" in home

    profile = http.get(stack.base_url + "/profile", timeout=10)
    assert profile.status_code == 200
    text = page_text(profile.text)
    assert 'href="https://huggingface.co/alice"' in profile.text
    assert "Username alice" in text and "Name Alice" in text
    assert "alice@" in text  # the Hugging Face email
    assert profile.headers["Cache-Control"] == "no-store"


def test_session_id_changes_at_sign_in(stack: Stack):
    http = requests.Session()
    authorize_url = start_sign_in(stack, http)
    before = http.cookies.get("site_session", domain="localhost.local") or http.cookies.get("site_session")
    callback_url = follow_to_callback(http, authorize_url, stack.base_url, username="fixation")
    http.get(callback_url, allow_redirects=False, timeout=10)
    after = http.cookies.get("site_session")
    assert before and after and before != after


def test_return_to_the_page_that_asked_for_sign_in(stack: Stack):
    http = requests.Session()
    response = http.get(stack.base_url + "/profile?tab=hf", allow_redirects=False, timeout=10)
    assert response.status_code == 302
    assert response.headers["Location"] == "/sign-in?next=/profile?tab%3Dhf"
    callback = sign_in(stack, http, "bob", path=response.headers["Location"])
    assert callback.headers["Location"] == "/profile?tab=hf"


@pytest.mark.parametrize("next_path", ["//evil.example/", "https://evil.example/", "/\\evil.example", "/\t/evil.example"])
def test_unsafe_next_lands_home(stack: Stack, next_path: str):
    http = requests.Session()
    callback = sign_in(stack, http, "carol", path="/sign-in?" + urlencode({"next": next_path}))
    assert callback.status_code == 302 and callback.headers["Location"] == "/"


def test_sign_out_ends_both_sessions(stack: Stack):
    http = requests.Session()
    sign_in(stack, http, "dave")
    token = csrf_token(http, stack)

    response = http.post(stack.base_url + "/sign-out", data={"csrf_token": token}, allow_redirects=False, timeout=10)
    assert response.status_code == 302
    end_session = urlsplit(response.headers["Location"])
    assert f"{end_session.scheme}://{end_session.netloc}{end_session.path}" == f"{stack.provider.endpoint}/oidc/session/end"
    assert parse_qs(end_session.query) == {
        "client_id": ["local-dev-site"], "post_logout_redirect_uri": [f"{stack.base_url}/"],
    }
    # The provider's page submits a form (a browser runs its script; here we submit it).
    page = http.get(response.headers["Location"], timeout=10)
    form = forms_in(page.text)[0]
    back = http.post(requests.compat.urljoin(page.url, form["action"]), data=form["fields"], timeout=10)
    assert back.url == f"{stack.base_url}/" and "Sign in with Hugging Face" in back.text
    assert http.get(stack.base_url + "/profile", allow_redirects=False, timeout=10).status_code == 302
    # The provider session is gone too: a new sign-in asks for the Hugging Face account again.
    authorize_url = start_sign_in(stack, http)
    assert 'name="username"' in http.get(authorize_url, timeout=10).text


def test_sign_out_needs_the_csrf_token(stack: Stack):
    http = requests.Session()
    sign_in(stack, http, "erin")
    response = http.post(stack.base_url + "/sign-out", data={}, allow_redirects=False, timeout=10)
    assert response.status_code == 400 and "Form expired" in response.text
    assert http.get(stack.base_url + "/profile", allow_redirects=False, timeout=10).status_code == 200


def test_sign_up_asks_logto_for_the_register_screen(make_stack):
    stack = make_stack(LOGTO_DIRECT_SIGN_IN="")
    http = requests.Session()
    sign_up_page = http.get(start_sign_in(stack, http, "/sign-up"), timeout=10)
    assert "Create your account" in sign_up_page.text
    sign_in_page = http.get(start_sign_in(stack, http, "/sign-in"), timeout=10)
    assert "Sign in to" in sign_in_page.text and "Create your account" not in sign_in_page.text


# --- bad input: each gets a clear page, never a 500, and nobody is signed in half-way -----------------


def assert_signed_out(stack: Stack, http: requests.Session) -> None:
    assert http.get(stack.base_url + "/profile", allow_redirects=False, timeout=10).status_code == 302


def test_forged_state_is_refused(stack: Stack):
    http = requests.Session()
    callback_url = follow_to_callback(http, start_sign_in(stack, http), stack.base_url, username="mallory")
    response = http.get(with_query(callback_url, state="forged"), timeout=10)
    assert response.status_code == 400 and "did not match" in response.text
    assert_signed_out(stack, http)
    # A forged link cannot cancel the sign-in in progress: the real answer still completes it.
    assert http.get(callback_url, allow_redirects=False, timeout=10).status_code == 302


def test_wrong_nonce_is_refused(stack: Stack):
    http = requests.Session()
    response = sign_in(stack, http, "nonce-victim", tamper=lambda url: with_query(url, nonce="attacker-nonce"))
    assert response.status_code == 401 and "could not be verified" in response.text
    assert_signed_out(stack, http)


def test_denied_consent(stack: Stack):
    http = requests.Session()
    response = sign_in(stack, http, "frank", action="cancel")
    assert response.status_code == 401 and "cancelled" in response.text
    assert_signed_out(stack, http)


def test_replayed_callback_is_refused_and_keeps_the_user_signed_in(stack: Stack):
    http = requests.Session()
    callback_url = follow_to_callback(http, start_sign_in(stack, http), stack.base_url, username="grace")
    assert http.get(callback_url, allow_redirects=False, timeout=10).status_code == 302
    replay = http.get(callback_url, allow_redirects=False, timeout=10)
    assert replay.status_code == 400 and "no sign-in in progress" in replay.text
    assert http.get(stack.base_url + "/profile", allow_redirects=False, timeout=10).status_code == 200
    # Someone else replaying it gets nothing either.
    assert requests.get(callback_url, allow_redirects=False, timeout=10).status_code == 400


def test_bogus_code_is_rejected_by_the_token_endpoint(stack: Stack):
    http = requests.Session()
    callback_url = follow_to_callback(http, start_sign_in(stack, http), stack.base_url, username="heidi")
    response = http.get(with_query(callback_url, code="x" * 43), timeout=10)
    assert response.status_code == 401 and "did not accept" in response.text
    assert_signed_out(stack, http)


def test_callback_from_another_issuer_is_refused(stack: Stack):
    http = requests.Session()
    callback_url = follow_to_callback(http, start_sign_in(stack, http), stack.base_url, username="ivan")
    response = http.get(with_query(callback_url, iss="https://evil.example/oidc"), timeout=10)
    assert response.status_code == 400 and "unexpected issuer" in response.text
    assert_signed_out(stack, http)


@pytest.mark.parametrize(
    "query",
    ["", "code=abc", "state=", "error=access_denied", "code=a&code=b&state=s", "state=%00%ff&code=%zz", "a" * 5000],
)
def test_callback_without_a_sign_in_in_progress(stack: Stack, query: str):
    response = requests.get(f"{stack.base_url}/callback?{query}", allow_redirects=False, timeout=10)
    assert response.status_code == 400 and "no sign-in in progress" in response.text


def test_callback_with_state_but_no_code(stack: Stack):
    http = requests.Session()
    callback_url = follow_to_callback(http, start_sign_in(stack, http), stack.base_url, username="judy")
    query = parse_qs(urlsplit(callback_url).query)
    no_code = urlencode({"state": query["state"][0], "iss": query["iss"][0]})
    response = http.get(f"{stack.base_url}/callback?" + no_code, timeout=10)
    assert response.status_code == 400 and "no authorization code" in response.text


def test_callback_without_iss_is_refused(stack: Stack):
    """Logto always names itself in the callback (RFC 9207); an answer that does not may come from elsewhere."""
    http = requests.Session()
    callback_url = follow_to_callback(http, start_sign_in(stack, http), stack.base_url, username="olga")
    query = {key: values[0] for key, values in parse_qs(urlsplit(callback_url).query).items() if key != "iss"}
    response = http.get(f"{stack.base_url}/callback?{urlencode(query)}", timeout=10)
    assert response.status_code == 400 and "unexpected issuer" in response.text
    assert_signed_out(stack, http)


def test_provider_stopped_mid_flow(make_stack):
    stack = make_stack()
    http = requests.Session()
    callback_url = follow_to_callback(http, start_sign_in(stack, http), stack.base_url, username="kim")
    stack.provider.stop()
    response = http.get(callback_url, timeout=10)
    assert response.status_code == 503 and "Identity service unavailable" in response.text
    assert http.get(stack.base_url + "/", timeout=10).status_code == 200  # the rest of the site serves
    stack.provider.restart()
    assert sign_in(stack, http, "kim").status_code == 302


def test_provider_down_before_discovery(make_stack):
    stack = make_stack()
    stack.provider.stop()
    http = requests.Session()
    response = http.get(stack.base_url + "/sign-in", allow_redirects=False, timeout=10)
    assert response.status_code == 503 and "Identity service unavailable" in response.text
    assert http.get(stack.base_url + "/healthz", timeout=10).text == "ok\n"


def test_id_token_with_a_bad_signature_is_refused(make_stack):
    stack = make_stack()
    stack.provider.set_fault("bad-jwks")
    http = requests.Session()
    callback_url = follow_to_callback(http, start_sign_in(stack, http), stack.base_url, username="leo")
    response = http.get(callback_url, timeout=10)
    assert response.status_code == 401 and "could not be verified" in response.text
    assert_signed_out(stack, http)


def test_provider_answering_html_instead_of_json(make_stack):
    stack = make_stack()
    stack.provider.set_fault("html")
    http = requests.Session()
    response = http.get(stack.base_url + "/sign-in", allow_redirects=False, timeout=10)
    assert response.status_code == 503
    stack.provider.set_fault("none")
    assert sign_in(stack, http, "mia").status_code == 302
