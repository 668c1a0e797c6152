"""Who may do what: Hugging Face organisations and roles (`current_user().hf_orgs`, `hf_org_required`,
`LOGTO_HF_ALLOWED_ORGS`) and a recent sign-in for dangerous actions (`recent_sign_in_required`).

Unit tests on the parsing and the decorators (a session written by the test), then the whole thing against the
embedded provider: its simulated Hugging Face page shares organisations, its Hub lists them, and it honours
`max_age` and `prompt=login` as Logto does.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from flask import Flask

from client import LogtoAuth, current_user
from flask_app import create_app
from flask_logto import HfOrg, hf_org_required, recent_sign_in_required
from flask_logto.config import read_auth_settings
from flask_logto.errors import ConfigError
from flask_logto.user import SignedInUser, orgs_in_userinfo, orgs_in_whoami, signed_in_within
from tests.conftest import Stack, csrf_token_in, follow_to_callback, forms_in, page_text, sign_in, start_stack
from tests.test_session_life import stored_session
from tests.test_unit import CONFIG

ACME_ADMIN = {"acme": "admin", "beta-lab": "read"}


def rawdata(orgs: Any) -> dict[str, Any]:
    return {"identities": {"huggingface": {"details": {"rawData": {"orgs": orgs}}}}}


# ---------------------------------------------------------------- parsing and roles (unit)


def test_roles_go_read_contributor_write_admin():
    assert [role for role in ("read", "contributor", "write", "admin") if HfOrg("acme", role="write").has_role(role)] == [
        "read", "contributor", "write",
    ]
    assert HfOrg("acme", role="admin").has_role("admin") and not HfOrg("acme", role="read").has_role("contributor")
    unsaid = HfOrg("acme", role=None)
    assert unsaid.has_role("read") and not unsaid.has_role("contributor")


def test_orgs_come_from_rawdata_as_hugging_face_describes_them():
    orgs = orgs_in_userinfo(rawdata([
        {"sub": "1", "name": "Acme Inc", "preferred_username": "acme", "picture": "https://hf.co/a.svg",
         "isEnterprise": True, "roleInOrg": "admin", "canPay": True},
        {"name": "Beta Lab", "preferred_username": "beta-lab", "roleInOrg": "contributor"},
    ]))
    assert orgs == (
        HfOrg("acme", "Acme Inc", "admin", True, "https://hf.co/a.svg"),
        HfOrg("beta-lab", "Beta Lab", "contributor", False, None),
    )


def test_orgs_come_from_whoami_as_the_hub_describes_them():
    whoami = {"name": "alice", "orgs": [
        {"type": "org", "name": "acme", "fullname": "Acme Inc", "avatarUrl": "https://hf.co/a.svg",
         "isEnterprise": True, "roleInOrg": "write"},
    ]}
    assert orgs_in_whoami(whoami) == (HfOrg("acme", "Acme Inc", "write", True, "https://hf.co/a.svg"),)
    assert orgs_in_whoami({"name": "alice", "orgs": []}) == () and orgs_in_whoami(None) == ()


@pytest.mark.parametrize("orgs", [
    "acme", 42, None, {"acme": "admin"}, [None, 1, "acme", [], {}],
    [{"name": "no hub name"}], [{"preferred_username": "bad name!"}], [{"preferred_username": ["acme"]}],
])
def test_malformed_orgs_are_dropped_never_an_error(orgs: Any):
    assert orgs_in_userinfo(rawdata(orgs)) == ()


def test_unknown_roles_count_as_unsaid_and_junk_fields_are_dropped():
    orgs = orgs_in_userinfo(rawdata([
        {"preferred_username": "acme", "roleInOrg": "owner", "isEnterprise": "yes", "picture": "javascript:alert(1)"},
        {"preferred_username": "beta", "roleInOrg": ["admin"], "name": {"x": 1}},
        {"preferred_username": "ACME", "roleInOrg": "admin"},  # the same organisation again
    ]))
    assert orgs == (HfOrg("acme"), HfOrg("beta"))


def test_userinfo_without_orgs_says_so():
    assert orgs_in_userinfo({"identities": {"huggingface": {"details": {"rawData": {"name": "x"}}}}}) is None
    assert orgs_in_userinfo({}) is None and orgs_in_userinfo({"identities": "junk"}) is None


def test_the_session_keeps_the_orgs_and_auth_time():
    user = SignedInUser.from_claims({"sub": "u1", "auth_time": 1700000000}, rawdata([]), (HfOrg("acme", role="write"),))
    again = SignedInUser.from_session(asdict(user))
    assert again == user and again.hf_orgs == (HfOrg("acme", role="write"),) and again.auth_time == 1700000000
    assert again.hf_org("ACME") == HfOrg("acme", role="write") and again.hf_org("beta") is None
    assert SignedInUser.from_claims({"sub": "u1", "auth_time": True}, {}).auth_time is None


@pytest.mark.parametrize(("auth_time", "recent"), [
    (1000, True), (1000 - 300, True), (1000 - 301, False), (None, False), ("999", False), (True, False),
    (1000 + 30, True), (1000 + 61, False),  # Logto's clock a little ahead is fine; a minute is not
])
def test_a_sign_in_is_recent_within_max_age(auth_time: Any, recent: bool):
    assert signed_in_within(auth_time, 300, now=1000) is recent


@pytest.mark.parametrize(("value", "expected"), [
    ("", ()), (" acme , beta-lab ", ("acme", "beta-lab")), (["acme"], ("acme",)), (None, ()),
])
def test_allowed_orgs_setting(tmp_path: Path, value: Any, expected: tuple[str, ...]):
    settings = read_auth_settings({**CONFIG, "LOGTO_DATA_DIR": str(tmp_path), "LOGTO_HF_ALLOWED_ORGS": value})
    assert settings.hf_allowed_orgs == expected


def test_a_bad_allowed_org_stops_the_app(tmp_path: Path):
    with pytest.raises(ConfigError, match="LOGTO_HF_ALLOWED_ORGS has 'not an org'"):
        read_auth_settings({**CONFIG, "LOGTO_DATA_DIR": str(tmp_path), "LOGTO_HF_ALLOWED_ORGS": "acme,not an org"})


def test_the_decorators_refuse_bad_arguments():
    with pytest.raises(ValueError, match="role must be one of"):
        hf_org_required("acme", role="owner")
    with pytest.raises(ValueError, match="not a Hugging Face organisation name"):
        hf_org_required("bad name")
    for max_age in (-1, 0, 10**8, True, 1.5):
        with pytest.raises(ValueError, match="max_age"):
            recent_sign_in_required(max_age=max_age)  # type: ignore[arg-type]


def test_the_session_checks_the_orgs_it_keeps_again():
    stored = {"sub": "u1", "hf_orgs": [
        {"name": "acme", "role": "owner"}, {"name": 7}, "junk", {"name": "bad name"},
        {"name": "beta", "role": "write", "is_enterprise": "yes", "avatar": "http://x"},
    ]}
    user = SignedInUser.from_session(stored)
    assert user is not None and user.hf_orgs == (HfOrg("acme"), HfOrg("beta", role="write"))
    assert SignedInUser.from_session({"sub": "u1", "hf_orgs": "acme"}).hf_orgs == ()
    assert HfOrg("acme", role="owner").has_role("read") and not HfOrg("acme", role="owner").has_role("write")


@pytest.mark.parametrize("value", [7, b"acme", [1], {"acme": 1}])
def test_allowed_orgs_of_another_type_stop_the_app(tmp_path: Path, value: Any):
    with pytest.raises(ConfigError, match="LOGTO_HF_ALLOWED_ORGS must be"):
        read_auth_settings({**CONFIG, "LOGTO_DATA_DIR": str(tmp_path), "LOGTO_HF_ALLOWED_ORGS": value})


# ---------------------------------------------------------------- the decorators on a small app (unit)


def guarded_app(tmp_path: Path) -> Flask:
    app = Flask("guarded", root_path=str(tmp_path))
    app.config.update(CONFIG, LOGTO_DATA_DIR=str(tmp_path), WTF_CSRF_ENABLED=False)
    LogtoAuth(app)

    @app.get("/acme")
    @hf_org_required("acme")
    def acme() -> str:
        return f"acme member {current_user().sub}"

    @app.get("/acme-writers")
    @hf_org_required("acme", role="write")
    async def acme_writers() -> str:
        return "acme writer"

    @app.get("/danger")
    @recent_sign_in_required(max_age=300)
    def danger() -> str:
        return "dangerous"

    @app.post("/danger")
    @recent_sign_in_required(max_age=300)
    async def danger_post() -> str:
        return "done"

    return app


def signed_in(client: Any, *, orgs: tuple[HfOrg, ...] = (), auth_time: int | None = None) -> None:
    user = SignedInUser("u1", None, None, "alice", None, None, None, None, orgs, auth_time)
    not_due = int(time.time()) + 3600
    with client.session_transaction() as stored:
        stored["logto.idToken"] = "an-id-token"
        stored["logto.accessTokenMap"] = json.dumps({"x": {"": {"token": "an-access-token", "expiresAt": not_due}}})
        stored["auth.user"] = asdict(user)


@pytest.mark.parametrize(("orgs", "path", "status"), [
    ((HfOrg("acme", role="read"),), "/acme", 200),
    ((HfOrg("acme", role=None),), "/acme", 200),  # a role Hugging Face did not say passes "read" only
    ((HfOrg("acme", role=None),), "/acme-writers", 403),
    ((HfOrg("acme", role="contributor"),), "/acme-writers", 403),
    ((HfOrg("acme", role="write"),), "/acme-writers", 200),
    ((HfOrg("ACME", role="admin"),), "/acme-writers", 200),
    ((HfOrg("beta-lab", role="admin"),), "/acme", 403),  # a member of another organisation
    ((), "/acme", 403),  # none shared
])
def test_hf_org_required_lets_members_with_the_role_in(tmp_path: Path, orgs, path: str, status: int):
    client = guarded_app(tmp_path).test_client()
    signed_in(client, orgs=orgs)
    answer = client.get(path)
    assert answer.status_code == status
    if status == 403:
        text = page_text(answer.text)
        assert "acme" in text and ("write" if path == "/acme-writers" else "read") in text
        assert "sign out, sign in again, and tick acme" in text
        assert client.get("/acme").status_code in (200, 403)  # still signed in: a refusal ends nothing


def test_hf_org_required_sends_a_signed_out_visitor_to_sign_in_and_back(tmp_path: Path):
    answer = guarded_app(tmp_path).test_client().get("/acme-writers?tab=1")
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.location).query) == {"next": ["/acme-writers?tab=1"]}


@pytest.mark.parametrize(("auth_time", "recent"), [(None, False), (-1000, False), (-10, True)])
def test_recent_sign_in_required_on_a_get(tmp_path: Path, auth_time: int | None, recent: bool):
    client = guarded_app(tmp_path).test_client()
    signed_in(client, auth_time=None if auth_time is None else int(time.time()) + auth_time)
    answer = client.get("/danger?x=1")
    if recent:
        assert answer.status_code == 200 and answer.text == "dangerous"
    else:
        assert answer.status_code == 302
        assert parse_qs(urlsplit(answer.location).query) == {"next": ["/danger?x=1"], "max_age": ["300"]}


@pytest.mark.parametrize(("referrer", "back_to"), [
    ("http://localhost:3000/notes?page=2", "/notes?page=2"),
    ("http://localhost/settings", "/settings"),  # the test client's own host
    ("https://evil.example/notes", "/"),
    (None, "/"),
    ("http://localhost:3000/callback", "/"),  # never back into the sign-in routes
    ("http://[oops/x", "/"),  # not a URL at all
    ("//evil.example/notes", "/"),
])
def test_a_post_comes_back_to_the_page_that_held_the_form(tmp_path: Path, referrer: str | None, back_to: str):
    client = guarded_app(tmp_path).test_client()
    signed_in(client, auth_time=int(time.time()) - 1000)
    answer = client.post("/danger", headers={"Referer": referrer} if referrer else {})
    assert answer.status_code == 303
    assert parse_qs(urlsplit(answer.location).query) == {"next": [back_to], "max_age": ["300"]}


def test_a_recent_post_is_done(tmp_path: Path):
    client = guarded_app(tmp_path).test_client()
    signed_in(client, auth_time=int(time.time()) - 5)
    assert client.post("/danger").text == "done"


# ---------------------------------------------------------------- against the embedded provider


def org_app(env: dict[str, str]) -> Flask:
    """The site, plus pages only some organisations' members may open."""
    app = create_app(env)

    @app.get("/acme")
    @hf_org_required("acme")
    def acme() -> str:
        return "acme: " + ",".join(f"{org.name}={org.role}" for org in current_user().hf_orgs)

    @app.get("/beta-writers")
    @hf_org_required("beta-lab", role="write")
    async def beta_writers() -> str:
        return "beta writer"

    return app


@pytest.fixture(scope="module")
def orgs_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("orgs"), make_app=org_app)
    yield running
    running.stop()


def test_the_shared_orgs_reach_the_session_and_the_profile(orgs_stack: Stack):
    http = requests.Session()
    assert sign_in(orgs_stack, http, "org-alice", orgs=ACME_ADMIN).status_code == 302
    assert http.get(orgs_stack.base_url + "/acme", timeout=10).text == "acme: acme=admin,beta-lab=read"
    denied = http.get(orgs_stack.base_url + "/beta-writers", timeout=10)
    assert denied.status_code == 403 and "beta-lab" in page_text(denied.text) and "write" in page_text(denied.text)
    profile = page_text(http.get(orgs_stack.base_url + "/profile", timeout=10).text)
    assert "Acme Inc" in profile and "admin" in profile and "Beta Lab" in profile
    kept = [(org["name"], org["role"], org["is_enterprise"]) for org in stored_session(orgs_stack, http)["auth.user"]["hf_orgs"]]
    assert kept == [("acme", "admin", True), ("beta-lab", "read", False)]


def test_a_person_who_shares_no_org_is_refused_politely(orgs_stack: Stack):
    http = requests.Session()
    assert sign_in(orgs_stack, http, "org-bob").status_code == 302
    denied = http.get(orgs_stack.base_url + "/acme", timeout=10)
    assert denied.status_code == 403 and "Organisation members only" in denied.text
    assert "none" in page_text(http.get(orgs_stack.base_url + "/profile", timeout=10).text).lower()


@pytest.mark.parametrize(("language", "words"), [
    ("en", "Organisation members only"), ("ja", "組織のメンバー専用"), ("zh-CN", "仅限组织成员"),
])
def test_the_403_page_speaks_the_visitors_language(orgs_stack: Stack, language: str, words: str):
    http = requests.Session()
    http.headers["Accept-Language"] = language
    assert sign_in(orgs_stack, http, f"org-{language.lower()}").status_code == 302
    denied = http.get(orgs_stack.base_url + "/beta-writers", timeout=10)
    assert denied.status_code == 403 and words in denied.text and "beta-lab" in denied.text


def test_without_read_memberships_no_org_is_offered_or_sent(make_stack):
    stack = make_stack(make_app=org_app, provider_options={"hf_scopes": "profile email"})
    http = requests.Session()
    authorize = http.get(stack.base_url + "/sign-in", allow_redirects=False, timeout=10).headers["Location"]
    page = http.get(authorize, timeout=10)  # follows to the simulated Hugging Face page
    assert 'name="username"' in page.text and 'name="org"' not in page.text
    assert sign_in(stack, http, "no-scope", orgs=ACME_ADMIN).status_code == 302  # the form's orgs are ignored
    assert http.get(stack.base_url + "/acme", timeout=10).status_code == 403


def test_with_the_dedicated_connector_the_orgs_are_as_of_the_first_sign_in(make_stack):
    stack = make_stack(make_app=org_app, provider_options={"hf_connector": "dedicated"})
    first = requests.Session()
    assert sign_in(stack, first, "dedicated", orgs={"acme": "write"}).status_code == 302
    assert first.get(stack.base_url + "/acme", timeout=10).text == "acme: acme=write"
    later = requests.Session()  # a new browser; the person now shares nothing
    assert sign_in(stack, later, "dedicated", orgs={}).status_code == 302
    assert later.get(stack.base_url + "/acme", timeout=10).text == "acme: acme=write"  # what Logto 1.42 keeps


@pytest.fixture(scope="module")
def allowed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    # Access tokens the SDK always counts as due: every /profile refreshes (and checks the organisations again).
    running = start_stack(
        tmp_path_factory.mktemp("allowed"), access_token_ttl=30, make_app=org_app, HF_ALLOWED_ORGS="acme,open-research",
    )
    yield running
    running.stop()


def test_only_members_of_an_allowed_org_may_sign_in(allowed_stack: Stack, caplog: pytest.LogCaptureFixture):
    outsider = requests.Session()
    with caplog.at_level(logging.WARNING, logger="auth"):
        refused = sign_in(allowed_stack, outsider, "outsider", orgs={"beta-lab": "admin"})
    assert refused.status_code == 403
    text = page_text(refused.text)
    assert "acme, open-research" in text and "consent page" in text
    assert "logto.idToken" not in stored_session(allowed_stack, outsider)
    assert outsider.get(allowed_stack.base_url + "/profile", allow_redirects=False, timeout=10).status_code == 302
    line = next(record.getMessage() for record in caplog.records if "event=auth-failure" in record.getMessage())
    assert "status=403" in line and "not a member of an allowed organisation" in line
    assert "user=-" not in line  # the refused person's Logto id, though nobody is signed in in this browser

    member = requests.Session()
    assert sign_in(allowed_stack, member, "insider", orgs={"open-research": "read"}).status_code == 302
    assert member.get(allowed_stack.base_url + "/profile", timeout=10).status_code == 200


def test_someone_who_left_the_allowed_org_is_signed_out_at_the_next_refresh(allowed_stack: Stack):
    http = requests.Session()
    assert sign_in(allowed_stack, http, "leaver", orgs={"acme": "read"}).status_code == 302
    assert http.get(allowed_stack.base_url + "/profile", timeout=10).status_code == 200  # refreshed: still a member
    sub = stored_session(allowed_stack, http)["auth.user"]["sub"]
    control = f"{allowed_stack.provider.endpoint}/__devidp__/hf-orgs"
    assert requests.post(control, json={"sub": sub, "orgs": [{"name": "beta-lab", "role": "admin"}]}, timeout=10).ok
    ended = http.get(allowed_stack.base_url + "/", timeout=10)  # any page: the access token is due, so it refreshes
    assert ended.status_code == 401 and "Your session ended" in ended.text
    assert http.get(allowed_stack.base_url + "/profile", allow_redirects=False, timeout=10).status_code == 302


def test_a_guarded_page_asks_again_when_the_access_token_is_due(allowed_stack: Stack):
    http = requests.Session()
    assert sign_in(allowed_stack, http, "mover", orgs={"acme": "read", "open-research": "read"}).status_code == 302
    assert http.get(allowed_stack.base_url + "/acme", timeout=10).status_code == 200
    sub = stored_session(allowed_stack, http)["auth.user"]["sub"]
    control = f"{allowed_stack.provider.endpoint}/__devidp__/hf-orgs"
    assert requests.post(control, json={"sub": sub, "orgs": [{"name": "open-research", "role": "read"}]}, timeout=10).ok
    assert http.get(allowed_stack.base_url + "/acme", timeout=10).status_code == 403  # still signed in, not in acme
    assert http.get(allowed_stack.base_url + "/profile", timeout=10).status_code == 200


def test_an_allowed_orgs_site_signs_out_whoever_it_can_no_longer_check(allowed_stack: Stack):
    http = requests.Session()
    assert sign_in(allowed_stack, http, "unchecked", orgs={"acme": "read"}).status_code == 302
    sub = stored_session(allowed_stack, http)["auth.user"]["sub"]
    control = f"{allowed_stack.provider.endpoint}/__devidp__/hf-token"
    assert requests.post(control, json={"sub": sub, "state": "expired"}, timeout=10).ok  # Hugging Face's token ran out
    ended = http.get(allowed_stack.base_url + "/", timeout=10)
    assert ended.status_code == 401 and "Your session ended" in ended.text


def test_any_other_site_keeps_the_orgs_it_knew_when_it_can_no_longer_check(make_stack):
    stack = make_stack(make_app=org_app, access_token_ttl=30)
    http = requests.Session()
    assert sign_in(stack, http, "kept", orgs={"acme": "write"}).status_code == 302
    sub = stored_session(stack, http)["auth.user"]["sub"]
    assert requests.post(f"{stack.provider.endpoint}/__devidp__/hf-token", json={"sub": sub, "state": "missing"}, timeout=10).ok
    assert http.get(stack.base_url + "/profile", timeout=10).status_code == 200  # refreshed
    assert http.get(stack.base_url + "/acme", timeout=10).text == "acme: acme=write"


@pytest.mark.parametrize(("language", "words"), [
    ("en", "Members of certain organisations only"), ("ja", "特定の組織のメンバー専用"), ("zh-CN", "仅限特定组织的成员"),
])
def test_the_allowed_orgs_page_speaks_the_visitors_language(allowed_stack: Stack, language: str, words: str):
    http = requests.Session()
    http.headers["Accept-Language"] = language
    refused = sign_in(allowed_stack, http, f"out-{language.lower()}", orgs={})
    assert refused.status_code == 403 and words in refused.text and "acme, open-research" in refused.text


def test_the_hub_down_at_sign_in_stops_a_site_that_allows_only_some_orgs(allowed_stack: Stack):
    control = f"{allowed_stack.provider.endpoint}/__devidp__/hub-fault"
    assert requests.post(control, json={"mode": "error500"}, timeout=10).ok
    try:
        answer = sign_in(allowed_stack, requests.Session(), "hub-down", orgs={"acme": "admin"})
    finally:
        requests.post(control, json={"mode": "none"}, timeout=10)
    assert answer.status_code == 503 and "Hugging Face unavailable" in answer.text


def test_the_hub_down_at_sign_in_leaves_others_signed_in_without_orgs(orgs_stack: Stack):
    control = f"{orgs_stack.provider.endpoint}/__devidp__/hub-fault"
    assert requests.post(control, json={"mode": "error500"}, timeout=10).ok
    http = requests.Session()
    try:
        assert sign_in(orgs_stack, http, "hub-down-2", orgs={"acme": "admin"}).status_code == 302
    finally:
        requests.post(control, json={"mode": "none"}, timeout=10)
    assert http.get(orgs_stack.base_url + "/acme", timeout=10).status_code == 403


# ---------------------------------------------------------------- a recent sign-in, for real


def test_delete_all_notes_asks_for_a_recent_sign_in_first(orgs_stack: Stack):
    http = requests.Session()
    assert sign_in(orgs_stack, http, "careful").status_code == 302
    notes = orgs_stack.base_url + "/notes"
    page = http.get(notes, timeout=10)
    http.post(notes, data={"text": "keep me until I am sure", "csrf_token": csrf_token_in(page.text)}, timeout=10)
    page = http.get(notes, timeout=10)
    delete_all = next(form for form in forms_in(page.text) if str(form["action"]).endswith("/notes/delete-all"))
    asked = http.post(orgs_stack.base_url + "/notes/delete-all", data=delete_all["fields"], headers={"Referer": notes},
                      allow_redirects=False, timeout=10)
    assert asked.status_code == 303  # never a 307: the POST is not replayed
    query = parse_qs(urlsplit(asked.headers["Location"]).query)
    assert query == {"next": ["/notes"], "max_age": ["300"]}
    assert "keep me until I am sure" in http.get(notes, timeout=10).text  # nothing deleted yet

    authorize = http.get(orgs_stack.base_url + asked.headers["Location"], allow_redirects=False, timeout=10).headers["Location"]
    authorize_query = parse_qs(urlsplit(authorize).query)
    assert authorize_query["max_age"] == ["300"] and authorize_query["prompt"] == ["login consent"]
    callback = follow_to_callback(http, authorize, orgs_stack.base_url, username="careful")
    back = http.get(callback, allow_redirects=False, timeout=10)
    assert back.status_code == 302 and back.headers["Location"] == "/notes"
    kept = stored_session(orgs_stack, http)
    assert kept.get("logto.refreshToken") and isinstance(kept["auth.user"]["auth_time"], int)  # still able to refresh

    page = http.get(notes, timeout=10)
    assert "keep me until I am sure" in page.text  # landed back on the page, the delete not done
    delete_all = next(form for form in forms_in(page.text) if str(form["action"]).endswith("/notes/delete-all"))
    done = http.post(orgs_stack.base_url + "/notes/delete-all", data=delete_all["fields"], headers={"Referer": notes}, timeout=10)
    assert done.status_code == 200 and "keep me until I am sure" not in done.text


def test_a_provider_that_ignores_max_age_gets_a_401_and_the_old_session_stays(orgs_stack: Stack):
    http = requests.Session()
    assert sign_in(orgs_stack, http, "ignored").status_code == 302
    before = stored_session(orgs_stack, http)
    fault = f"{orgs_stack.provider.endpoint}/__devidp__/fault"
    assert requests.post(fault, json={"mode": "ignore-max-age"}, timeout=10).ok
    try:
        authorize = http.get(orgs_stack.base_url + "/sign-in?next=/notes&max_age=300", allow_redirects=False, timeout=10)
        callback = follow_to_callback(http, authorize.headers["Location"], orgs_stack.base_url, username="ignored")
        answer = http.get(callback, allow_redirects=False, timeout=10)
    finally:
        requests.post(fault, json={"mode": "none"}, timeout=10)
    assert answer.status_code == 401 and "Sign-in not recent enough" in answer.text
    after = stored_session(orgs_stack, http)
    assert {key: after.get(key) for key in before if key != "auth.pending"} == {
        key: value for key, value in before.items() if key != "auth.pending"
    }
    assert http.get(orgs_stack.base_url + "/profile", timeout=10).status_code == 200


@pytest.mark.parametrize("junk", ["abc", "-5", "１２", "9" * 40, ""])
def test_a_junk_max_age_is_an_ordinary_sign_in(orgs_stack: Stack, junk: str):
    answer = requests.get(f"{orgs_stack.base_url}/sign-in?max_age={junk}", allow_redirects=False, timeout=10)
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert "max_age" not in query and query["prompt"] == ["consent"]
