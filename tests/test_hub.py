"""`/hf`: the real huggingface_hub, through the real site, with the token Logto keeps for the user.

The local provider plays Logto's Account API (the user's stored Hugging Face token) and a simulated Hub; its
test controls make each failure happen: no token stored, expired, Account Center off, no `identities` scope,
the sign-in revoked, Logto down, the Hub answering 500 or slower than HF_TIMEOUT. Each gets its page and
status; none is a 500. The Account API's replies are Logto's, recorded (tests/fixtures/logto/account-api.json).
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from pytest_httpserver import HTTPServer
from werkzeug import Response

from flask_logto.connection import Logto
from flask_logto.errors import HfTokenExpired, HfTokenNotSetUp, HfTokenNotStored, LogtoUnavailable, SessionEnded
from flask_logto.hub_token import current_access_token, fetch_hf_token, kept_token, refusal
from flask_logto.oidc_core import MAX_BODY_BYTES
from flask_logto.session_keys import HF_TOKEN as HF_TOKEN_KEY
from flask_logto.user import SignedInUser
from tests.conftest import Stack, forms_in, page_text, sign_in, start_stack
from tests.harness import auth_settings
from tests.test_session_life import stored_session, token_values

FIXTURES = json.loads((Path(__file__).parent / "fixtures" / "logto" / "account-api.json").read_text())
REPLIES = FIXTURES["replies"]
HF_TIMEOUT = 1  # seconds, for this module's site
SLOWER_THAN_HF_TIMEOUT_MS = 4000
CLIENT_PATIENCE = 3  # seconds: fails the test if the site waited for the slow Hub
SETUP_COMMAND = "flask --app flask_app logto setup --hf-token-storage"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("hub"), HF_TIMEOUT=str(HF_TIMEOUT), LOGTO_TIMEOUT="2")
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def no_faults_left(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "hub" in request.fixturenames:
        stack: Stack = request.getfixturevalue("hub")
        stack.provider.set_fault("none")
        stack.provider.set_account_api("none")
        stack.provider.set_hub_fault("none")


def signed_in(stack: Stack, username: str) -> tuple[requests.Session, str]:
    http = requests.Session()
    assert sign_in(stack, http, username).status_code == 302
    return http, stored_session(stack, http)["auth.user"]["sub"]


def hf_page(stack: Stack, http: requests.Session, **options: Any) -> requests.Response:
    return http.get(stack.base_url + "/hf", allow_redirects=False, timeout=options.get("timeout", 10))


def main_text(response: requests.Response) -> str:
    return html.unescape(page_text(response.text.split("<main>", 1)[-1]))


def account_api_calls(stack: Stack) -> int:
    return stack.provider.output().count("GET /api/my-account/identities/huggingface/access-token")


# The page


def test_the_page_shows_the_user_on_the_hub_with_links(hub: Stack):
    http, _ = signed_in(hub, "hubert")

    response = hf_page(hub, http)

    assert response.status_code == 200, main_text(response)
    endpoint = hub.app.config["HF_ENDPOINT"]
    assert endpoint == f"{hub.provider.endpoint}/hub"
    text = main_text(response)
    assert "On Hugging Face as @hubert" in text
    assert "hubert/demo-model" in text and "hubert/tiny-llm" in text and "hubert/demo-space" in text
    for link in (f"{endpoint}/hubert", f"{endpoint}/hubert/demo-model", f"{endpoint}/spaces/hubert/demo-space"):
        assert f'href="{link}"' in response.text
        assert requests.get(link, timeout=10).status_code == 200  # the simulated Hub serves those pages
    home = http.get(hub.base_url + "/", timeout=10)
    assert '<a href="/hf">Hugging Face</a>' in home.text


def test_the_page_needs_a_signed_in_user(hub: Stack):
    response = requests.get(hub.base_url + "/hf", allow_redirects=False, timeout=10)

    assert response.status_code == 302 and response.headers["Location"] == "/sign-in?next=/hf"


def test_the_token_is_kept_in_the_session_only_until_it_expires(hub: Stack):
    http, _ = signed_in(hub, "keeper")
    calls = account_api_calls(hub)
    assert hf_page(hub, http).status_code == 200
    kept = stored_session(hub, http)[HF_TOKEN_KEY]
    assert kept["token"].startswith("hf_oauth_") and abs(kept["expires_at"] - (time.time() + 8 * 3600)) < 60
    assert hf_page(hub, http).status_code == 200
    assert account_api_calls(hub) == calls + 1  # the second visit used the kept token

    interface = hub.app.session_interface
    key = interface.key_prefix + http.cookies["site_session"]
    interface.cache.set(key, {**stored_session(hub, http), HF_TOKEN_KEY: {**kept, "expires_at": int(time.time()) + 30}})
    assert http.get(hub.base_url + "/", timeout=10).status_code == 200
    assert HF_TOKEN_KEY not in stored_session(hub, http)  # any page drops it once (nearly) expired
    assert hf_page(hub, http).status_code == 200 and account_api_calls(hub) == calls + 2


def test_a_due_access_token_is_refreshed_before_logto_is_asked(make_stack):
    stack = make_stack(access_token_ttl=30)  # the SDK counts it as expired at once: every Logto call refreshes first
    http, _ = signed_in(stack, "refresher")
    before = stored_session(stack, http)["logto.accessTokenMap"]
    token_calls = stack.provider.output().count("POST /oidc/token")

    assert hf_page(stack, http).status_code == 200

    assert stored_session(stack, http)["logto.accessTokenMap"] != before
    assert stack.provider.output().count("POST /oidc/token") > token_calls  # refreshed, then asked the Account API
    assert HF_TOKEN_KEY in stored_session(stack, http)


def test_the_hub_refusing_the_kept_token_asks_logto_again_next_time(hub: Stack):
    http, sub = signed_in(hub, "revoked-at-hf")
    assert hf_page(hub, http).status_code == 200
    hub.provider.set_hf_token(sub, "valid")  # a new token: the Hub no longer knows the kept one

    refused = hf_page(hub, http)

    assert refused.status_code == 401
    assert "Hugging Face did not accept the token" in main_text(refused) and "sign out" in main_text(refused)
    assert HF_TOKEN_KEY not in stored_session(hub, http)
    assert hf_page(hub, http).status_code == 200


# No token to be had: each failure has its page, saying what to do


def test_no_stored_token_asks_to_sign_in_again_and_signing_in_again_fixes_it(hub: Stack):
    http, sub = signed_in(hub, "nostore")
    hub.provider.set_hf_token(sub, "missing")  # as for a user who signed in through the dedicated connector

    response = hf_page(hub, http)

    assert response.status_code == 401
    text = main_text(response)
    assert "No Hugging Face token yet" in text and "Logto holds no Hugging Face token for you" in text
    assert "What to do: sign out below, then sign in with Hugging Face again" in text
    assert SETUP_COMMAND in text  # in case the tenant does not store tokens at all
    sign_out = next(form for form in forms_in(response.text) if form["action"] == "/sign-out")
    ended = http.post(hub.base_url + "/sign-out", data=sign_out["fields"], allow_redirects=False, timeout=10)
    page = http.get(ended.headers["Location"], timeout=10)  # the provider's page; a browser submits it by itself
    form = forms_in(page.text)[0]
    http.post(requests.compat.urljoin(page.url, form["action"]), data=form["fields"], timeout=10)
    assert sign_in(hub, http, "nostore").status_code == 302  # through the (simulated) Hugging Face page again
    assert hf_page(hub, http).status_code == 200


def test_an_expired_token_asks_to_sign_in_again(hub: Stack):
    http, sub = signed_in(hub, "expiry")
    hub.provider.set_hf_token(sub, "expired")

    response = hf_page(hub, http)

    assert response.status_code == 401
    assert "Hugging Face token expired" in main_text(response) and "has expired" in main_text(response)
    assert "sign out below, then sign in with Hugging Face again" in main_text(response)
    assert HF_TOKEN_KEY not in stored_session(hub, http)


@pytest.mark.parametrize(
    ("mode", "says"),
    [("not-enabled", "its Account Center is off"), ("forbidden", "does not ask Logto for the identities scope")],
)
def test_a_tenant_not_set_up_names_the_admin_command(hub: Stack, mode: str, says: str):
    http, _ = signed_in(hub, f"tenant-{mode}")
    hub.provider.set_account_api(mode)

    response = hf_page(hub, http)

    assert response.status_code == 403
    text = main_text(response)
    assert "Hugging Face access not set up" in text and says in text
    assert f"an administrator of this site runs {SETUP_COMMAND}" in text
    assert ("LOGTO_SCOPES includes identities" in text) is (mode == "forbidden")


def test_without_the_identities_scope_logto_refuses_the_token(make_stack):
    stack = make_stack(LOGTO_SCOPES="email")  # the provider honours the access token's scopes
    http, _ = signed_in(stack, "noscope")

    response = hf_page(stack, http)

    assert response.status_code == 403 and "does not ask Logto for the identities scope" in main_text(response)


def test_a_revoked_sign_in_ends_the_session(hub: Stack):
    http, sub = signed_in(hub, "revokee")
    hub.provider.revoke(sub)  # Logto no longer knows the access token: auth.unauthorized

    response = hf_page(hub, http)

    assert response.status_code == 401 and "Your session ended" in response.text
    left = stored_session(hub, http)
    assert "auth.user" not in left and token_values(left) == set() and HF_TOKEN_KEY not in left
    assert hf_page(hub, http).status_code == 302  # to the sign-in


def test_logto_down_is_503_and_the_rest_of_the_site_keeps_serving(hub: Stack):
    http, _ = signed_in(hub, "logto-down")
    hub.provider.set_fault("error500")

    response = hf_page(hub, http)

    assert response.status_code == 503 and "Identity service unavailable" in response.text
    assert http.get(hub.base_url + "/", timeout=10).status_code == 200


# The Hub down or slow: this page only


def test_the_hub_answering_500_is_a_503_page(hub: Stack):
    http, _ = signed_in(hub, "hub-down")
    hub.provider.set_hub_fault("error500")
    started = time.monotonic()

    response = hf_page(hub, http)

    assert response.status_code == 503 and "We could not get an answer from Hugging Face" in main_text(response)
    assert time.monotonic() - started < CLIENT_PATIENCE  # huggingface_hub's retries (up to ~30 s) do not happen
    assert http.get(hub.base_url + "/profile", timeout=10).status_code == 200


def test_the_hub_slower_than_the_timeout_is_a_504_page(hub: Stack):
    http, _ = signed_in(hub, "hub-slow")
    hub.provider.set_hub_fault("slow", SLOWER_THAN_HF_TIMEOUT_MS)

    response = hf_page(hub, http, timeout=CLIENT_PATIENCE)

    assert response.status_code == 504
    assert f"Hugging Face did not answer within {HF_TIMEOUT} seconds" in main_text(response)
    hub.provider.set_hub_fault("none")
    assert hf_page(hub, http).status_code == 200


def test_a_hub_answering_oddly_gets_a_clear_page(make_stack, httpserver: HTTPServer):
    stack = make_stack(HF_ENDPOINT=httpserver.url_for("/").rstrip("/"))  # tokens from the provider, a Hub of ours
    http, _ = signed_in(stack, "oddity")
    whoami = {"type": "user", "name": "oddity", "fullname": "Odd", "avatarUrl": "javascript:alert(1)"}
    cases = [
        ({"/api/whoami-v2": Response(status=403)}, 502, "answered in a way this page does not expect"),
        ({"/api/whoami-v2": Response("<html>", content_type="text/html")}, 503, "could not get an answer"),
        ({"/api/whoami-v2": Response(json.dumps({**whoami, "name": "../../etc"}))}, 503, "could not get an answer"),
        ({"/api/whoami-v2": Response(json.dumps(whoami)), "/api/models": Response(json.dumps([{"no": "id"}]))},
         503, "could not get an answer"),
        ({"/api/whoami-v2": Response(status=302, headers={"Location": "/api/whoami-v2"})}, 503, "could not get"),
    ]
    for answers, status, says in cases:
        httpserver.clear()
        for path, answer in answers.items():
            httpserver.expect_request(path).respond_with_response(answer)

        response = hf_page(stack, http)

        assert (response.status_code, says in main_text(response)) == (status, True), answers
    httpserver.clear()
    for path, answer in {"/api/whoami-v2": whoami, "/api/models": [{"id": "oddity/m"}], "/api/spaces": []}.items():
        httpserver.expect_request(path).respond_with_json(answer)
    shown = hf_page(stack, http)
    assert shown.status_code == 200 and "oddity/m" in shown.text and "javascript:" not in shown.text


# The token is a secret


def test_the_hf_token_never_reaches_pages_cookies_or_logs(hub: Stack, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    http, sub = signed_in(hub, "secretive")
    pages = [hf_page(hub, http).text]
    token = stored_session(hub, http)[HF_TOKEN_KEY]["token"]
    for path in ["/", "/profile", "/hf"]:
        pages.append(http.get(hub.base_url + path, timeout=10).text)
    hub.provider.set_hub_fault("error500")
    pages.append(hf_page(hub, http).text)
    hub.provider.set_hub_fault("none")
    hub.provider.set_hf_token(sub, "valid")  # the Hub refuses the kept one now, then the site asks Logto again
    pages += [hf_page(hub, http).text, hf_page(hub, http).text]
    second_token = stored_session(hub, http)[HF_TOKEN_KEY]["token"]
    hub.provider.set_hf_token(sub, "expired")
    http.cookies.clear()
    pages.append(requests.get(hub.base_url + "/hf", timeout=10).text)

    logs = "\n".join(f"{r.name} {r.getMessage()}" for r in caplog.records if not r.name.startswith("urllib3"))
    assert "GET /hub/api/whoami-v2" in hub.provider.output() and "event=hub-token-refused" in logs
    for secret in (token, second_token):
        assert secret.startswith("hf_oauth_")
        assert not any(secret in page for page in pages)
        assert secret not in logs and secret not in hub.provider.output()
        assert not any(secret in cookie.value for cookie in http.cookies)
        assert secret not in token_values(stored_session(hub, http))  # not among the SDK's tokens either


# The Account API as the provider plays it: Logto's recorded replies


def account_api(stack: Stack, token: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = f"{stack.provider.endpoint}/api/my-account/identities/huggingface/access-token"
    return requests.get(url, headers=headers, timeout=10)


def session_access_token(stack: Stack, http: requests.Session) -> str:
    token = current_access_token(stored_session(stack, http)["logto.accessTokenMap"])
    assert token is not None
    return token


def test_the_providers_account_api_answers_as_logto(hub: Stack):
    http, sub = signed_in(hub, "recorded")
    access_token = session_access_token(hub, http)

    def reply(name: str, token: str | None = access_token) -> None:
        answer = account_api(hub, token)
        assert (answer.status_code, answer.json()) == (REPLIES[name]["status"], REPLIES[name]["body"]), name

    ok = account_api(hub, access_token)
    assert ok.status_code == 200 and set(ok.json()) == set(REPLIES["token"]["body"])
    assert {key: ok.json()[key] for key in ("scope", "token_type")} == {"scope": "openid profile email read-repos",
                                                                        "token_type": "bearer"}
    assert ok.json()["access_token"].startswith("hf_oauth_") and 0 < ok.json()["expires_in"] <= 8 * 3600
    reply("header-missing", None)
    reply("unauthorized", "not-a-token-logto-issued")
    hub.provider.set_account_api("not-enabled")
    reply("not-enabled")
    hub.provider.set_account_api("forbidden")
    reply("forbidden")
    hub.provider.set_account_api("none")
    hub.provider.set_hf_token(sub, "expired")
    reply("expired")
    hub.provider.set_hf_token(sub, "missing")
    reply("not-found")


# The unit's pieces


@pytest.mark.parametrize(
    ("name", "kind"),
    [("not-found", HfTokenNotStored), ("expired", HfTokenExpired), ("not-enabled", HfTokenNotSetUp),
     ("forbidden", HfTokenNotSetUp), ("unauthorized", SessionEnded), ("header-missing", LogtoUnavailable)],
)
def test_each_recorded_refusal_is_its_failure(name: str, kind: type):
    failure = refusal(json.dumps(REPLIES[name]["body"]))

    assert type(failure) is kind
    assert failure.cause == f"hf-token: {REPLIES[name]['body']['code']}" or kind is LogtoUnavailable
    assert 400 <= failure.status < 600


@pytest.fixture
def logto(httpserver: HTTPServer, tmp_path: Path) -> Logto:
    return Logto(auth_settings({"LOGTO_ENDPOINT": httpserver.url_for("").rstrip("/"), "LOGTO_APP_ID": "a",
                                "LOGTO_APP_SECRET": "s", "APP_DATA_DIR": str(tmp_path), "LOGTO_TIMEOUT": "1"}))


ROUTE = "/api/my-account/identities/huggingface/access-token"


def test_fetch_sends_the_access_token_and_reads_the_reply(httpserver: HTTPServer, logto: Logto):
    httpserver.expect_request(ROUTE, headers={"Authorization": "Bearer at-1"}).respond_with_json(
        {**REPLIES["token"]["body"], "access_token": "hf_oauth_abc", "expires_in": 100}
    )

    token, expires_at = asyncio.run(fetch_hf_token(logto, "at-1"))

    assert token == "hf_oauth_abc" and abs(expires_at - (time.time() + 100)) < 5


@pytest.mark.parametrize(
    "answer",
    [
        Response(status=302, headers={"Location": "https://elsewhere.example/steal"}),  # not followed
        Response(b"{}" + b" " * MAX_BODY_BYTES, content_type="application/json"),  # over 1 MiB
        Response(b"<html>not json</html>", content_type="text/html"),
        Response(json.dumps({"access_token": "has spaces in it"}), content_type="application/json"),
        Response(json.dumps({"access_token": 42}), content_type="application/json"),
        Response(json.dumps({"code": "internal", "message": "boom"}), status=500, content_type="application/json"),
    ],
)
def test_anything_but_a_token_is_logto_unavailable(httpserver: HTTPServer, logto: Logto, answer: Response):
    httpserver.expect_request(ROUTE).respond_with_response(answer)

    with pytest.raises(LogtoUnavailable) as failure:
        asyncio.run(fetch_hf_token(logto, "at-1"))

    assert "hf-token" in failure.value.cause


def test_a_slow_account_api_times_out(httpserver: HTTPServer, logto: Logto):
    httpserver.expect_request(ROUTE).respond_with_handler(lambda request: time.sleep(3) or Response("{}"))
    started = time.monotonic()

    with pytest.raises(LogtoUnavailable, match="no answer within 1s"):
        asyncio.run(fetch_hf_token(logto, "at-1"))

    assert time.monotonic() - started < 2.5


def test_kept_token_and_access_token_readers():
    now = 1_000_000
    assert kept_token({"token": "hf_x", "expires_at": now + 61}, now) == "hf_x"
    assert kept_token({"token": "hf_x", "expires_at": now + 59}, now) is None  # too close to expiring
    assert kept_token({"token": "hf_x"}, now) is None and kept_token("hf_x", now) is None
    assert current_access_token('{"x": {"": {"token": "at", "expiresAt": 4102444800}}}') == "at"
    assert current_access_token('{"x": {"": {"token": "at", "expiresAt": 1}}}') is None
    assert current_access_token('{"x": {"": {"token": "at", "expiresAt": 1}}}', check_expiry=False) == "at"
    assert current_access_token("junk") is None and current_access_token(None) is None


@pytest.mark.parametrize(("shape", "username"), [("oidc-connector", "carol-hf"), ("dedicated-connector", "alice-hf")])
def test_the_hf_username_from_either_recorded_identity_shape(shape: str, username: str):
    (identities,) = [value for key, value in FIXTURES["identities"].items() if key.startswith(shape)]

    user = SignedInUser.from_claims({"sub": "logto-user"}, {"sub": "logto-user", "identities": identities})

    assert user.hf_username == username
    assert user.hf_id == identities["huggingface"]["userId"]
    assert user.avatar and user.avatar.startswith("https://huggingface.co/avatars/")
    assert re.fullmatch(r"[\w.-]+@example\.com", user.email or "")


def test_hf_endpoint_and_timeout_settings(tmp_path: Path):
    from flask_logto.errors import ConfigError
    from website.settings import site_config

    local = {"APP_DATA_DIR": str(tmp_path)}
    tenant = {**local, "LOGTO_ENDPOINT": "https://t.logto.app", "LOGTO_APP_ID": "a", "LOGTO_APP_SECRET": "s"}
    assert site_config(local)["HF_ENDPOINT"] == "http://localhost:3001/hub"  # the local provider's simulated Hub
    assert site_config({**local, "DEVIDP_PORT": "4001"})["HF_ENDPOINT"] == "http://localhost:4001/hub"
    assert site_config(tenant)["HF_ENDPOINT"] == "https://huggingface.co"
    assert site_config({**tenant, "HF_ENDPOINT": "https://hub.example/"})["HF_ENDPOINT"] == "https://hub.example"
    assert site_config(tenant)["HF_TIMEOUT"] == 10 and site_config({**tenant, "HF_TIMEOUT": "3"})["HF_TIMEOUT"] == 3
    with pytest.raises(ConfigError, match=r"HF_ENDPOINT='http://hub.example' must use https"):
        site_config({**tenant, "HF_ENDPOINT": "http://hub.example"})
    with pytest.raises(ConfigError, match="HF_ENDPOINT='huggingface.co' is not a base URL"):
        site_config({**tenant, "HF_ENDPOINT": "huggingface.co"})
    with pytest.raises(ConfigError, match="HF_TIMEOUT=0 is too small"):
        site_config({**tenant, "HF_TIMEOUT": "0"})
