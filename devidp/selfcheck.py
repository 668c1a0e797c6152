#!/usr/bin/env python3
"""End-to-end check of devidp driven by the real `logto` SDK (0.2.1). Exit code 0 = all good.

    /tmp/venv/bin/python devidp/selfcheck.py      # needs node/npm, logto, requests, PyJWT

Each check_* function is one scenario (and a candidate pytest test). The "browser" is a
requests.Session; the site's part is played by LogtoClient with a dict-backed Storage.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import secrets
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
from collections.abc import Awaitable, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import jwt
import requests
from logto import LogtoClient, LogtoConfig, LogtoException, Storage
from logto.models.oidc import Scope

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from devidp import DEVIDP_DIR, RunningProvider, ensure_installed, start_provider  # noqa: E402

CLIENT_ID = "selfcheck-app"
CLIENT_SECRET = "selfcheck-secret"
REDIRECT_URI = "http://localhost:5000/callback"
POST_LOGOUT_URI = "http://localhost:5000/"
SCOPES: list[str | Scope] = ["email", "identities", "custom_data", "roles"]
ID_TOKEN_KEYS = {
    "sub", "name", "preferred_username", "picture", "updated_at", "username", "created_at",
    "email", "email_verified", "roles", "nonce", "aud", "exp", "iat", "iss",
}  # exactly Logto's (see /work/shared/logto/sign-in-flow.json)


# ------------------------------------------------------------------------------- helpers


class DictStorage(Storage):
    """Per-session storage (LogtoClient's default MemoryStorage is shared by all instances)."""

    def __init__(self) -> None:
        self.data: dict[str, str | None] = {}

    def get(self, key: str) -> str | None:
        return self.data.get(key)

    def set(self, key: str, value: str | None) -> None:
        self.data[key] = value

    def delete(self, key: str) -> None:
        self.data.pop(key, None)


class Forms(HTMLParser):
    """Collects <form> action/method and the named inputs of an HTML page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action"), "method": a.get("method"), "id": a.get("id"), "inputs": {}})
        elif tag == "input" and self.forms and a.get("name"):
            self.forms[-1]["inputs"][a["name"]] = a.get("value") or ""


def new_client(idp: RunningProvider, storage: DictStorage | None = None) -> LogtoClient:
    config = LogtoConfig(endpoint=idp.endpoint, appId=CLIENT_ID, appSecret=CLIENT_SECRET, scopes=SCOPES)
    return LogtoClient(config, storage=storage or DictStorage())


def sdk_storage(client: LogtoClient) -> DictStorage:
    storage = client._storage  # noqa: SLF001 - the storage we passed in
    assert isinstance(storage, DictStorage)
    return storage


async def authorize_url(client: LogtoClient, nonce: str, **extra: str) -> str:
    """What the site does: the SDK's sign-in URL plus a nonce (and Logto's direct sign-in)."""
    url = await client.signIn(REDIRECT_URI)
    params = {"nonce": nonce, "direct_sign_in": "social:huggingface", **extra}
    params = {k: v for k, v in params.items() if v}
    return url + "&" + urllib.parse.urlencode(params)


def follow_to_callback(browser: requests.Session, response: requests.Response) -> str:
    """Follow redirects by hand until one points at the site's redirect URI; return that URL."""
    for _ in range(10):
        assert response.status_code in (302, 303), f"expected a redirect, got {response.status_code}: {response.text[:300]}"
        location = urllib.parse.urljoin(response.url, response.headers["location"])
        if location.startswith(REDIRECT_URI):
            return location
        response = browser.get(location, allow_redirects=False)
    raise AssertionError("too many redirects")


def hf_page(browser: requests.Session, url: str) -> requests.Response:
    page = browser.get(url)
    assert page.status_code == 200, page.text
    assert page.url.endswith("/huggingface"), page.url
    assert "Hugging Face username" in page.text and "Authorize" in page.text
    return page


def submit_hf_form(browser: requests.Session, page: requests.Response, **fields: str) -> requests.Response:
    form = Forms(page.text).forms[0]
    action = urllib.parse.urljoin(page.url, form["action"])
    return browser.post(action, data={**form["inputs"], **fields}, allow_redirects=False)


async def sign_in(idp: RunningProvider, browser: requests.Session, username: str, full_name: str = "",
                  client: LogtoClient | None = None) -> tuple[LogtoClient, str, str]:
    """A whole first-time sign-in. Returns (client, nonce, callback URL)."""
    client = client or new_client(idp)
    nonce = secrets.token_urlsafe(12)
    page = hf_page(browser, await authorize_url(client, nonce))
    callback = follow_to_callback(browser, submit_hf_form(browser, page, username=username, full_name=full_name))
    await client.handleSignInCallback(callback)
    return client, nonce, callback


def expire_access_token(client: LogtoClient) -> None:
    storage = sdk_storage(client)
    token_map = json.loads(storage.data["accessTokenMap"] or "{}")
    for entry in token_map["x"].values():
        entry["expiresAt"] = 0
    storage.set("accessTokenMap", json.dumps(token_map))


def id_token_header(client: LogtoClient) -> dict[str, Any]:
    token = client.getIdToken()
    assert token
    return jwt.get_unverified_header(token)


def id_token_claims(client: LogtoClient) -> dict[str, Any]:
    token = client.getIdToken()
    assert token
    return jwt.decode(token, options={"verify_signature": False})


def jwks(idp: RunningProvider) -> list[dict[str, Any]]:
    return requests.get(f"{idp.endpoint}/oidc/jwks", timeout=5).json()["keys"]


async def expect_logto_error(action: Awaitable[Any], fragment: str) -> str:
    try:
        await action
    except LogtoException as err:
        assert fragment in str(err), f"expected {fragment!r} in {err}"
        return str(err)
    raise AssertionError(f"expected LogtoException with {fragment!r}")


# ------------------------------------------------------------------------------- checks


async def check_discovery_and_jwks(idp: RunningProvider) -> None:
    meta = requests.get(f"{idp.endpoint}/oidc/.well-known/openid-configuration", timeout=5).json()
    base = f"{idp.endpoint}/oidc"
    assert meta["issuer"] == base
    for key, path in {
        "authorization_endpoint": "/auth", "token_endpoint": "/token", "userinfo_endpoint": "/me",
        "jwks_uri": "/jwks", "end_session_endpoint": "/session/end", "revocation_endpoint": "/token/revocation",
    }.items():
        assert meta[key] == base + path, (key, meta[key])
    assert meta["authorization_response_iss_parameter_supported"] is True
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["id_token_signing_alg_values_supported"] == ["ES384"]
    assert {"openid", "offline_access", "profile", "email", "identities", "custom_data", "roles"} <= set(meta["scopes_supported"])
    [key] = jwks(idp)
    assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-384", "ES384", "sig"), key
    assert "d" not in key
    canonical = json.dumps({"crv": key["crv"], "kty": "EC", "x": key["x"], "y": key["y"]}, separators=(",", ":"))
    assert key["kid"] == base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


async def check_full_sign_in(idp: RunningProvider) -> None:
    browser = requests.Session()
    client, nonce, callback = await sign_in(idp, browser, "alice-hf", "Alice Example")
    query = urllib.parse.parse_qs(urllib.parse.urlparse(callback).query)
    assert query["iss"] == [f"{idp.endpoint}/oidc"] and "code" in query and "state" in query, query
    assert {c.name for c in browser.cookies} >= {"_session", "_session.sig"}, browser.cookies.keys()
    assert not any(c.name.startswith("session") for c in browser.cookies)

    header, claims = id_token_header(client), id_token_claims(client)
    assert header["alg"] == "ES384" and header["kid"] == jwks(idp)[0]["kid"], header
    assert set(claims) == ID_TOKEN_KEYS, sorted(set(claims) ^ ID_TOKEN_KEYS)
    assert claims["nonce"] == nonce
    assert len(claims["sub"]) == 12 and claims["sub"].isalnum() and claims["sub"].islower()
    assert claims["name"] == "Alice Example" and claims["username"] is None and claims["preferred_username"] is None
    assert claims["picture"] is None and claims["email_verified"] is True and claims["roles"] == []
    assert claims["email"] == "alice-hf@users.noreply.huggingface.co"

    info = await client.fetchUserInfo()
    assert info.sub == claims["sub"]
    assert info.identities is not None
    hf = info.identities["huggingface"]
    assert hf.details is not None
    assert hf.details["rawData"]["preferred_username"] == "alice-hf"
    assert hf.details["id"] == hf.userId == hf.details["rawData"]["sub"]
    assert hf.details["name"] == "Alice Example" and hf.details["avatar"] is None
    raw = requests.get(f"{idp.endpoint}/oidc/me", timeout=5,
                       headers={"authorization": f"Bearer {await client.getAccessToken()}"}).json()
    assert raw["sso_identities"] == [] and raw["custom_data"] == {} and raw["roles"] == []
    assert set(raw["identities"]["huggingface"]["details"]["rawData"]) == {
        "sub", "name", "preferred_username", "picture", "email", "email_verified", "profile", "website",
        "isPro", "canPay", "orgs"}

    # Refresh: force the SDK to think the access token expired; the refresh token must rotate.
    old_access, old_refresh = await client.getAccessToken(), client.getRefreshToken()
    assert old_refresh
    expire_access_token(client)
    new_access = await client.getAccessToken()
    assert new_access and new_access != old_access
    assert client.getRefreshToken() not in (None, old_refresh), "refresh token did not rotate"
    assert id_token_claims(client)["nonce"] == nonce  # refreshed ID token keeps the nonce

    # Second sign-in in the same browser session: /oidc/auth redirects straight to the callback.
    client2 = new_client(idp)
    nonce2 = secrets.token_urlsafe(12)
    first = browser.get(await authorize_url(client2, nonce2), allow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith(REDIRECT_URI), first.headers
    await client2.handleSignInCallback(first.headers["location"])
    assert id_token_claims(client2)["sub"] == claims["sub"] and id_token_claims(client2)["nonce"] == nonce2

    # Sign-out: end-session page auto-submits its form (with logout=yes), then 303 to the post-logout URI.
    page = browser.get(await client2.signOut(POST_LOGOUT_URI))
    assert page.status_code == 200 and "<script>" in page.text
    [form] = Forms(page.text).forms
    assert form["inputs"].get("logout") == "yes" and form["method"] == "post", form
    done = browser.post(urllib.parse.urljoin(page.url, form["action"]), data=form["inputs"], allow_redirects=False)
    assert done.status_code == 303 and done.headers["location"] == POST_LOGOUT_URI, (done.status_code, done.headers)
    # The provider session is gone: signing in again shows the sign-in page.
    again = browser.get(await authorize_url(new_client(idp), "n", direct_sign_in=""))
    assert again.status_code == 200 and "Sign in to" in again.text and "/interaction/" in again.url
    # Offline access: the first client's refresh token survived the sign-out.
    expire_access_token(client)
    assert await client.getAccessToken()


async def check_pages_and_cancel(idp: RunningProvider) -> None:
    browser = requests.Session()
    first = browser.get(await authorize_url(new_client(idp), "n", direct_sign_in=""))
    assert "Sign in to" in first.text and "Continue with Hugging Face (simulated)" in first.text
    assert "not Logto, no real Hugging Face" in first.text
    for extra in ({"first_screen": "register"}, {"interaction_mode": "signUp"}):
        page = browser.get(await authorize_url(new_client(idp), "n", direct_sign_in="", **extra))
        assert "Create your account" in page.text and "Sign in to" not in page.text
    unknown = browser.get(await authorize_url(new_client(idp), "n", direct_sign_in="social:github"))
    assert "Sign in to" in unknown.text and unknown.url.rstrip("/").split("/")[-2] == "interaction"

    # The first page's button leads to the simulated Hugging Face page.
    client = new_client(idp)
    start = browser.get(await authorize_url(client, "n", direct_sign_in=""))
    link = urllib.parse.urljoin(start.url, start.text.split('href="', 1)[1].split('"', 1)[0])
    page = hf_page(browser, link)

    bad = submit_hf_form(browser, page, username="-bad name<script>")
    assert bad.status_code == 400 and "valid Hugging Face username" in bad.text
    assert "<script>" not in bad.text.split("<main>", 1)[1].replace("<script>document", "")  # escaped

    cancelled = submit_hf_form(browser, page, action="cancel", username="")
    callback = follow_to_callback(browser, cancelled)
    query = urllib.parse.parse_qs(urllib.parse.urlparse(callback).query)
    assert query["error"] == ["access_denied"] and query["iss"] == [f"{idp.endpoint}/oidc"] and "state" in query, query
    await expect_logto_error(client.handleSignInCallback(callback), "access_denied")

    # Without the interaction cookie: a plain error page, no stack trace.
    stray = requests.get(page.url)
    assert stray.status_code == 400 and "expired" in stray.text and " at " not in stray.text


async def check_restart_keeps_state(idp: RunningProvider) -> None:
    browser = requests.Session()
    client, _, _ = await sign_in(idp, browser, "carol")
    sub = id_token_claims(client)["sub"]
    idp.restart()
    expire_access_token(client)
    assert await client.getAccessToken(), "refresh after restart failed"
    assert (await client.fetchUserInfo()).sub == sub
    # The browser session survived too: a new sign-in is a single redirect, same user.
    client2 = new_client(idp)
    first = browser.get(await authorize_url(client2, "n"), allow_redirects=False)
    assert first.status_code == 303 and first.headers["location"].startswith(REDIRECT_URI), first.headers
    await client2.handleSignInCallback(first.headers["location"])
    assert id_token_claims(client2)["sub"] == sub
    # The same Hugging Face username maps to the same Logto user id.
    client3, _, _ = await sign_in(idp, requests.Session(), "carol")
    assert id_token_claims(client3)["sub"] == sub


async def check_faults(idp: RunningProvider) -> None:
    discovery = f"{idp.endpoint}/oidc/.well-known/openid-configuration"
    browser = requests.Session()
    signed_in, _, _ = await sign_in(idp, browser, "dave")

    idp.set_fault("html")
    r = requests.get(discovery, timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and r.text == "<html>not json</html>"
    try:
        await new_client(idp).signIn(REDIRECT_URI)
    except Exception as err:  # aiohttp ContentTypeError: the SDK expects JSON
        assert "json" in str(err).lower() or "content" in type(err).__name__.lower(), repr(err)
    else:
        raise AssertionError("SDK accepted an HTML discovery document")

    idp.set_fault("error500")
    r = requests.get(discovery, timeout=5)
    assert r.status_code == 500 and r.json() == {"code": "internal", "message": "boom"}
    expire_access_token(signed_in)
    await expect_logto_error(signed_in.getAccessToken(), "boom")

    idp.set_fault("slow", delay_ms=400)
    started = time.monotonic()
    assert requests.get(discovery, timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.4

    idp.set_fault("bad-jwks")
    [bad_key] = jwks(idp)
    idp.set_fault("none")
    [good_key] = jwks(idp)
    assert bad_key["kid"] == good_key["kid"] and bad_key["x"] != good_key["x"]
    idp.set_fault("bad-jwks")
    try:
        await sign_in(idp, requests.Session(), "erin")
    except jwt.exceptions.InvalidSignatureError:
        pass
    else:
        raise AssertionError("ID token verified against the bad JWKS")

    state = idp.set_fault("none")
    assert state["fault"]["mode"] == "none"
    assert requests.get(discovery, timeout=5).json()["issuer"] == idp.issuer
    assert await signed_in.getAccessToken(), "refresh after faults cleared"


async def check_rotate_key(idp: RunningProvider) -> None:
    browser = requests.Session()
    client, _, _ = await sign_in(idp, browser, "frank")
    [old] = jwks(idp)

    state = idp.rotate_key(keep_old=True)
    keys = jwks(idp)
    assert [k["kid"] for k in keys] == state["kids"] and len(keys) == 2 and keys[1]["kid"] == old["kid"]

    state = idp.rotate_key(keep_old=False)
    [new] = jwks(idp)
    assert new["kid"] == state["kids"][0] and new["kid"] != old["kid"]

    # A new sign-in (same browser session: one redirect) gets an ID token from the new key.
    fresh = new_client(idp)
    first = browser.get(await authorize_url(fresh, "n"), allow_redirects=False)
    assert first.status_code == 303, first.status_code
    await fresh.handleSignInCallback(first.headers["location"])  # verifies the signature
    assert id_token_header(fresh)["kid"] == new["kid"]

    # The old refresh token still works (a new LogtoClient, as a site makes per request).
    again = new_client(idp, sdk_storage(client))
    expire_access_token(again)
    assert await again.getAccessToken()
    assert id_token_header(again)["kid"] == new["kid"]


async def check_revoke(idp: RunningProvider) -> None:
    browser = requests.Session()
    client, _, _ = await sign_in(idp, browser, "grace")
    sub = id_token_claims(client)["sub"]
    reply = idp.revoke(sub)
    assert reply["revoked_grants"] >= 1, reply
    expire_access_token(client)
    await expect_logto_error(client.getAccessToken(), "invalid_grant")
    # The browser session is still signed in: signing in again consents silently (no page shown).
    client2 = new_client(idp)
    callback = follow_to_callback(browser, browser.get(await authorize_url(client2, "n"), allow_redirects=False))
    await client2.handleSignInCallback(callback)
    assert id_token_claims(client2)["sub"] == sub and client2.getRefreshToken()
    expire_access_token(client2)
    assert await client2.getAccessToken()


async def check_test_controls_off_and_bad_config(data_dir: Path) -> None:
    with start_provider(port=0, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=[REDIRECT_URI],
                        post_logout_redirect_uris=[POST_LOGOUT_URI], data_dir=data_dir / "plain",
                        access_token_ttl=120) as plain:
        assert requests.post(f"{plain.endpoint}/__devidp__/fault", json={"mode": "html"}, timeout=5).status_code == 404
        assert requests.get(f"{plain.endpoint}/__devidp__/state", timeout=5).status_code == 404
        client, _, _ = await sign_in(plain, requests.Session(), "heidi")
        assert json.loads(sdk_storage(client).data["accessTokenMap"] or "")["x"][""]["expiresAt"] - time.time() < 120
    assert plain.process.returncode == 0, "SIGTERM should exit 0"

    result = subprocess.run(["node", "server.js"], cwd=DEVIDP_DIR, capture_output=True, text=True, timeout=15,
                            env={"PATH": os.environ["PATH"], "DEVIDP_DATA_DIR": str(data_dir / "bad")})
    assert result.returncode == 2, result
    assert result.stderr.strip().count("\n") == 0 and "DEVIDP_CLIENT_ID" in result.stderr, result.stderr


# ------------------------------------------------------------------------------- runner


async def main() -> int:
    ensure_installed()
    failures = 0
    with tempfile.TemporaryDirectory(prefix="devidp-selfcheck-") as tmp:
        idp = start_provider(port=0, client_id=CLIENT_ID, client_secret=CLIENT_SECRET,
                             redirect_uris=[REDIRECT_URI], post_logout_redirect_uris=[POST_LOGOUT_URI],
                             data_dir=Path(tmp) / "main", test_controls=True)
        print(f"devidp at {idp.endpoint}")
        checks: list[Callable[[], Awaitable[None]]] = [
            lambda: check_discovery_and_jwks(idp),
            lambda: check_full_sign_in(idp),
            lambda: check_pages_and_cancel(idp),
            lambda: check_restart_keeps_state(idp),
            lambda: check_faults(idp),
            lambda: check_rotate_key(idp),
            lambda: check_revoke(idp),
            lambda: check_test_controls_off_and_bad_config(Path(tmp)),
        ]
        names = ["discovery_and_jwks", "full_sign_in", "pages_and_cancel", "restart_keeps_state", "faults",
                 "rotate_key", "revoke", "test_controls_off_and_bad_config"]
        with idp:
            for name, check in zip(names, checks, strict=True):
                started = time.monotonic()
                try:
                    await check()
                    print(f"ok    {name} ({time.monotonic() - started:.2f} s)")
                except Exception:
                    failures += 1
                    print(f"FAIL  {name}\n{traceback.format_exc()}\n--- devidp output ---\n{idp.output()}\n")
                finally:
                    if idp.process.poll() is None:
                        idp.set_fault("none")
    print("selfcheck passed" if not failures else f"selfcheck: {failures} check(s) failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
