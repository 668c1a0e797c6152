"""The embedded identity provider (devidp) on its own: does it answer like Logto, driven by the real `logto` SDK?

No site here: a `LogtoClient` with a dict storage plays the site and a `requests.Session` plays the browser.
What the site's own tests already show through the site (sign-in and sign-out, cancel, the fault modes, a key
rotation between two sign-ins, a revoked sign-in, short access tokens) is not repeated here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit

import jwt
import pytest
import requests
from logto import LogtoClient, LogtoConfig, LogtoException

from flask_logto.connection import DictStorage
from tests.harness import follow_to_callback, forms_in
from tools.devidp import DEVIDP_DIR, RunningProvider, ensure_installed, start_provider

CLIENT_ID = "devidp-test-app"
CLIENT_SECRET = "devidp-test-secret"
SITE = "http://localhost:5000"  # nothing listens there: the SDK reads the callback URL without fetching it
REDIRECT_URI = f"{SITE}/callback"
POST_LOGOUT_URI = f"{SITE}/"
LOGTO_ENDPOINT_PATHS = {
    "authorization_endpoint": "/auth", "token_endpoint": "/token", "userinfo_endpoint": "/me",
    "jwks_uri": "/jwks", "end_session_endpoint": "/session/end", "revocation_endpoint": "/token/revocation",
}
LOGTO_ID_TOKEN_KEYS = {
    "sub", "name", "preferred_username", "picture", "updated_at", "username", "created_at",
    "email", "email_verified", "roles", "nonce", "aud", "exp", "iat", "iss",
}
HF_USERINFO_KEYS = {  # with token storage (the default): no `orgs` (the dedicated connector: tests/test_hf_orgs.py)
    "sub", "name", "preferred_username", "picture", "email", "email_verified", "profile", "website",
    "isPro", "canPay",
}


# --- fixtures -----------------------------------------------------------------------------------


def launch(data_dir: Path, *, test_controls: bool = True) -> RunningProvider:
    ensure_installed()
    return start_provider(
        port=0, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT_URI],
        post_logout_redirect_uris=[POST_LOGOUT_URI], data_dir=data_dir, test_controls=test_controls,
    )


@pytest.fixture(scope="module")
def idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningProvider]:
    with launch(tmp_path_factory.mktemp("devidp")) as provider:
        yield provider


@pytest.fixture
def own_idp(tmp_path: Path) -> Iterator[RunningProvider]:
    """A private provider, for tests that restart it, rotate its key or stop it."""
    with launch(tmp_path / "devidp") as provider:
        yield provider


# --- helpers ------------------------------------------------------------------------------------


@dataclass
class SignedIn:
    client: LogtoClient
    storage: DictStorage
    nonce: str
    callback: str


def new_client(idp: RunningProvider, storage: DictStorage | None = None) -> LogtoClient:
    config = LogtoConfig(endpoint=idp.endpoint, appId=CLIENT_ID, appSecret=CLIENT_SECRET,
                         scopes=["email", "identities", "custom_data", "roles"])
    return LogtoClient(config, storage=storage if storage is not None else DictStorage())


def authorize_url(client: LogtoClient, nonce: str = "n", **extra: str) -> str:
    """What the site sends the browser to: the SDK's URL plus a nonce and Logto's direct sign-in ("" drops one)."""
    url = asyncio.run(client.signIn(REDIRECT_URI))
    params = {"nonce": nonce, "direct_sign_in": "social:huggingface", **extra}
    return url + "&" + urlencode({key: value for key, value in params.items() if value})


def sign_in(idp: RunningProvider, browser: requests.Session, username: str) -> SignedIn:
    """A whole sign-in through the simulated Hugging Face page (full name typed: username.title())."""
    storage = DictStorage()
    client = new_client(idp, storage)
    nonce = secrets.token_urlsafe(12)
    callback = follow_to_callback(browser, authorize_url(client, nonce), SITE, username=username)
    asyncio.run(client.handleSignInCallback(callback))
    return SignedIn(client, storage, nonce, callback)


def silent_sign_in(idp: RunningProvider, browser: requests.Session) -> tuple[SignedIn, int]:
    """A sign-in in a browser the provider knows: redirects only, no page. Also returns how many redirects."""
    storage = DictStorage()
    client = new_client(idp, storage)
    nonce = secrets.token_urlsafe(12)
    url, redirects = authorize_url(client, nonce), 0
    while not url.startswith(REDIRECT_URI):
        answer = browser.get(url, allow_redirects=False, timeout=5)
        assert answer.status_code == 303 and redirects < 10, (answer.status_code, answer.text[:300])
        url, redirects = urljoin(url, answer.headers["Location"]), redirects + 1
    asyncio.run(client.handleSignInCallback(url))
    return SignedIn(client, storage, nonce, url), redirects


def force_refresh(client: LogtoClient, storage: DictStorage) -> str | None:
    """Make the SDK believe its access token expired, so getAccessToken() runs a refresh grant."""
    token_map = json.loads(storage.data["accessTokenMap"])
    for entry in token_map["x"].values():
        entry["expiresAt"] = 0
    storage.set("accessTokenMap", json.dumps(token_map))
    return asyncio.run(client.getAccessToken())


def id_token_claims(client: LogtoClient) -> dict[str, Any]:
    return jwt.decode(client.getIdToken() or "", options={"verify_signature": False})


def id_token_kid(client: LogtoClient) -> str:
    return jwt.get_unverified_header(client.getIdToken() or "")["kid"]


def jwks(idp: RunningProvider) -> list[dict[str, Any]]:
    return requests.get(f"{idp.endpoint}/oidc/jwks", timeout=5).json()["keys"]


def rfc7638_thumbprint(key: dict[str, Any]) -> str:
    canonical = json.dumps({"crv": key["crv"], "kty": key["kty"], "x": key["x"], "y": key["y"]}, separators=(",", ":"))
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def hugging_face_page(idp: RunningProvider, browser: requests.Session) -> requests.Response:
    page = browser.get(authorize_url(new_client(idp)), timeout=5)
    assert page.status_code == 200 and page.url.endswith("/huggingface"), (page.status_code, page.url)
    return page


def post_form(browser: requests.Session, page: requests.Response, **fields: str) -> requests.Response:
    form = forms_in(page.text)[0]
    shown: dict[str, str] = form["fields"]  # type: ignore[assignment]
    return browser.post(urljoin(page.url, str(form["action"])), data={**shown, **fields}, allow_redirects=False, timeout=5)


def run_server(data_dir: Path, **changes: str) -> subprocess.CompletedProcess[str]:
    """`node server.js` with a good configuration but for `changes`, without the launcher."""
    env = {"PATH": os.environ["PATH"], "DEVIDP_CLIENT_ID": CLIENT_ID, "DEVIDP_CLIENT_SECRET": CLIENT_SECRET,
           "DEVIDP_REDIRECT_URIS": REDIRECT_URI, "DEVIDP_DATA_DIR": str(data_dir), "DEVIDP_PORT": "0"}
    return subprocess.run(["node", "server.js"], cwd=DEVIDP_DIR, env={**env, **changes},
                          capture_output=True, text=True, timeout=10)


# --- discovery and keys -------------------------------------------------------------------------


def test_discovery_has_logtos_issuer_and_endpoints(idp: RunningProvider):
    meta = requests.get(f"{idp.endpoint}/oidc/.well-known/openid-configuration", timeout=5).json()
    issuer = f"{idp.endpoint}/oidc"
    assert meta["issuer"] == issuer
    assert {key: meta.get(key) for key in LOGTO_ENDPOINT_PATHS} == {
        key: issuer + path for key, path in LOGTO_ENDPOINT_PATHS.items()
    }
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["id_token_signing_alg_values_supported"] == ["ES384"]
    assert {"openid", "offline_access", "profile", "email", "identities", "custom_data", "roles"} <= set(
        meta["scopes_supported"]
    )


def test_jwks_is_one_public_p384_key_named_by_its_thumbprint(idp: RunningProvider):
    [key] = jwks(idp)
    assert set(key) == {"kty", "use", "kid", "alg", "crv", "x", "y"}  # Logto's shape; no private "d"
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-384", "ES384", "sig")
    assert key["kid"] == rfc7638_thumbprint(key)


# --- sign-in, tokens, userinfo ------------------------------------------------------------------


def test_callback_carries_code_state_and_iss(idp: RunningProvider):
    callback = sign_in(idp, requests.Session(), "callback-check").callback
    query = parse_qs(urlsplit(callback).query)
    assert set(query) == {"code", "state", "iss"} and query["iss"] == [f"{idp.endpoint}/oidc"], query


def test_id_token_carries_exactly_logtos_claims(idp: RunningProvider):
    signed = sign_in(idp, requests.Session(), "alice-hf")
    header = jwt.get_unverified_header(signed.client.getIdToken() or "")
    assert header["alg"] == "ES384" and header["kid"] == jwks(idp)[0]["kid"]
    claims = id_token_claims(signed.client)
    assert set(claims) == LOGTO_ID_TOKEN_KEYS, sorted(set(claims) ^ LOGTO_ID_TOKEN_KEYS)  # no at_hash, sid, identities...
    assert claims["iss"] == f"{idp.endpoint}/oidc" and claims["aud"] == CLIENT_ID and claims["nonce"] == signed.nonce
    sub = claims["sub"]
    assert len(sub) == 12 and sub.isalnum() and sub.islower()  # a Logto user id
    assert claims["name"] == "Alice-Hf"
    assert claims["username"] is None and claims["preferred_username"] is None and claims["picture"] is None
    assert claims["email"] == "alice-hf@users.noreply.huggingface.co" and claims["email_verified"] is True
    assert claims["roles"] == []


def test_userinfo_has_logtos_shape_with_the_hugging_face_identity(idp: RunningProvider):
    signed = sign_in(idp, requests.Session(), "bob-hf")
    info = asyncio.run(signed.client.fetchUserInfo())
    assert info.sub == id_token_claims(signed.client)["sub"]
    assert info.identities is not None and info.identities["huggingface"].details is not None
    hf = info.identities["huggingface"]
    assert hf.details["rawData"]["preferred_username"] == "bob-hf"
    assert hf.details["id"] == hf.userId == hf.details["rawData"]["sub"]
    assert hf.details["name"] == "Bob-Hf" and hf.details["avatar"] is None

    access_token = asyncio.run(signed.client.getAccessToken())
    raw = requests.get(f"{idp.endpoint}/oidc/me", headers={"Authorization": f"Bearer {access_token}"}, timeout=5).json()
    assert raw["sso_identities"] == [] and raw["custom_data"] == {} and raw["roles"] == []
    assert set(raw["identities"]["huggingface"]["details"]["rawData"]) == HF_USERINFO_KEYS


def test_repeat_sign_in_is_one_redirect(idp: RunningProvider):
    browser = requests.Session()
    first = sign_in(idp, browser, "carol-hf")
    cookies = {cookie.name for cookie in browser.cookies}
    assert {"_session", "_session.sig"} <= cookies, cookies  # the provider session, under Logto's cookie names
    again, redirects = silent_sign_in(idp, browser)
    assert redirects == 1
    claims = id_token_claims(again.client)
    assert claims["sub"] == id_token_claims(first.client)["sub"] and claims["nonce"] == again.nonce


def test_refresh_rotates_the_refresh_token_and_keeps_the_nonce(idp: RunningProvider):
    signed = sign_in(idp, requests.Session(), "dave-hf")
    old_access, old_refresh = asyncio.run(signed.client.getAccessToken()), signed.client.getRefreshToken()
    assert old_refresh
    new_access = force_refresh(signed.client, signed.storage)
    assert new_access and new_access != old_access
    assert signed.client.getRefreshToken() not in (None, old_refresh)
    assert id_token_claims(signed.client)["nonce"] == signed.nonce


def test_refresh_token_outlives_sign_out(idp: RunningProvider):
    browser = requests.Session()
    signed = sign_in(idp, browser, "erin-hf")
    sign_out_url = asyncio.run(new_client(idp).signOut(POST_LOGOUT_URI))  # (signOut() also empties its storage)
    done = post_form(browser, browser.get(sign_out_url, timeout=5))  # the page's auto-submitted form
    assert done.status_code == 303 and done.headers["Location"] == POST_LOGOUT_URI
    assert force_refresh(signed.client, signed.storage)  # offline access, as in Logto


def test_restart_keeps_users_refresh_tokens_and_keys(own_idp: RunningProvider):
    browser = requests.Session()
    signed = sign_in(own_idp, browser, "frank-hf")
    sub, kids = id_token_claims(signed.client)["sub"], [key["kid"] for key in jwks(own_idp)]

    own_idp.restart()

    assert [key["kid"] for key in jwks(own_idp)] == kids
    assert force_refresh(signed.client, signed.storage)
    assert asyncio.run(signed.client.fetchUserInfo()).sub == sub
    again, redirects = silent_sign_in(own_idp, browser)  # the browser session survived
    assert redirects == 1 and id_token_claims(again.client)["sub"] == sub
    assert id_token_claims(sign_in(own_idp, requests.Session(), "frank-hf").client)["sub"] == sub  # same user


def test_rotated_key_goes_first_and_old_refresh_tokens_still_work(own_idp: RunningProvider):
    signed = sign_in(own_idp, requests.Session(), "grace-hf")
    [old] = jwks(own_idp)

    kept = own_idp.rotate_key(keep_old=True)
    assert [key["kid"] for key in jwks(own_idp)] == kept["kids"] and kept["kids"][1:] == [old["kid"]]
    dropped = own_idp.rotate_key(keep_old=False)
    [new] = jwks(own_idp)
    assert dropped["kids"] == [new["kid"]] and new["kid"] not in kept["kids"]

    site_request = new_client(own_idp, signed.storage)  # a fresh client: PyJWKClient caches the old JWKS
    assert force_refresh(site_request, signed.storage)
    assert id_token_kid(site_request) == new["kid"]


def test_revoke_drops_the_tokens_but_keeps_the_browser_session(idp: RunningProvider):
    browser = requests.Session()
    signed = sign_in(idp, browser, "heidi-hf")
    sub = id_token_claims(signed.client)["sub"]
    assert idp.revoke(sub)["revoked_grants"] >= 1
    with pytest.raises(LogtoException, match="invalid_grant"):
        force_refresh(signed.client, signed.storage)
    again, _ = silent_sign_in(idp, browser)  # consent is given again without a page
    assert id_token_claims(again.client)["sub"] == sub and force_refresh(again.client, again.storage)


# --- sign-in pages ------------------------------------------------------------------------------


def test_bad_username_shows_the_form_again_with_an_error(idp: RunningProvider):
    browser = requests.Session()
    page = hugging_face_page(idp, browser)
    bad = post_form(browser, page, username="-bad name<script>", full_name="Ivan")
    assert bad.status_code == 400 and "valid Hugging Face username" in bad.text
    assert "<script" not in bad.text  # escaped
    fields = forms_in(bad.text)[0]["fields"]
    assert fields == {"username": "-bad name<script>", "full_name": "Ivan"}  # kept for the second try
    retry = post_form(browser, bad, username="ivan-hf")
    assert retry.status_code == 303, retry.text[:300]


@pytest.mark.parametrize(
    "extra, shown, not_shown",
    [
        ({"direct_sign_in": "", "interaction_mode": "signUp"}, "Create your account", "Sign in to"),
        ({"direct_sign_in": "social:github"}, "Sign in to", "Create your account"),
    ],
    ids=["deprecated-sign-up-mode", "unknown-direct-sign-in-target"],
)
def test_first_screen_follows_logtos_parameters(idp: RunningProvider, extra: dict[str, str], shown: str, not_shown: str):
    page = requests.get(authorize_url(new_client(idp), **extra), timeout=5)
    assert page.status_code == 200 and page.url.split("/")[-2] == "interaction"  # the first screen, not Hugging Face
    assert shown in page.text and not_shown not in page.text


def test_first_screen_button_leads_to_the_simulated_hugging_face_page(idp: RunningProvider):
    browser = requests.Session()
    first = browser.get(authorize_url(new_client(idp), direct_sign_in=""), timeout=5)
    assert "Continue with Hugging Face (simulated)" in first.text and "not Logto, no real Hugging Face" in first.text
    button = re.search(r'id="continue-huggingface" href="([^"]+)"', first.text)
    assert button
    page = browser.get(urljoin(first.url, button.group(1)), timeout=5)
    assert page.url == first.url + "/huggingface" and 'name="username"' in page.text


def test_sign_in_page_without_its_cookie_is_a_plain_error(idp: RunningProvider):
    page = hugging_face_page(idp, requests.Session())
    stray = requests.get(page.url, timeout=5)  # another browser
    assert stray.status_code == 400 and "expired" in stray.text and " at " not in stray.text  # no stack trace


# --- process and configuration ------------------------------------------------------------------


def test_test_controls_are_404_when_off(tmp_path: Path):
    with launch(tmp_path / "devidp", test_controls=False) as plain:
        assert requests.post(f"{plain.endpoint}/__devidp__/fault", json={"mode": "html"}, timeout=5).status_code == 404
        assert requests.get(f"{plain.endpoint}/__devidp__/state", timeout=5).status_code == 404
        assert requests.get(f"{plain.endpoint}/oidc/jwks", timeout=5).status_code == 200


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_exits_0(own_idp: RunningProvider, stop_signal: signal.Signals):
    own_idp.process.send_signal(stop_signal)
    assert own_idp.process.wait(timeout=5) == 0


@pytest.mark.parametrize(
    "change, named",
    [
        ({"DEVIDP_CLIENT_ID": ""}, "DEVIDP_CLIENT_ID"),
        ({"DEVIDP_REDIRECT_URIS": "callback"}, "DEVIDP_REDIRECT_URIS"),
        ({"DEVIDP_PORT": "70000"}, "DEVIDP_PORT"),
        ({"DEVIDP_ACCESS_TOKEN_TTL": "0"}, "DEVIDP_ACCESS_TOKEN_TTL"),
        ({"DEVIDP_HOST_NAME": "evil.example/x"}, "DEVIDP_HOST_NAME"),
    ],
)
def test_bad_config_exits_2_with_one_line_on_stderr(tmp_path: Path, change: dict[str, str], named: str):
    result = run_server(tmp_path, **change)
    assert result.returncode == 2, result
    [line] = result.stderr.splitlines()
    assert line.startswith("devidp: config error: ") and named in line


def test_busy_port_exits_2_with_one_line_on_stderr(idp: RunningProvider, tmp_path: Path):
    result = run_server(tmp_path, DEVIDP_PORT=str(idp.port))
    assert result.returncode == 2, result
    [line] = result.stderr.splitlines()
    assert line.startswith("devidp: ") and "address in use" in line
