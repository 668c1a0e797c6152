"""The sign-in unit as another Flask app uses it: `LogtoAuth`, `current_user()`, `login_required`, `auth.userinfo()`."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import requests
from cachelib import SimpleCache
from flask import Flask, render_template_string, session
from flask.sessions import SecureCookieSessionInterface
from flask_session.base import ServerSideSessionInterface

from client import ConfigError, LogtoAuth, current_user, login_required
from flask_logto import connection
from tests.conftest import Stack, csrf_token_in, follow_to_callback, page_text, sign_in, start_sign_in
from website.settings import site_config

SECRET = "unit-test-key-" + "0123456789abcdef" * 2
CONFIG = {
    "SECRET_KEY": SECRET, "LOGTO_ENDPOINT": "http://127.0.0.1:9", "LOGTO_APP_ID": "app",
    "LOGTO_APP_SECRET": "secret", "LOGTO_BASE_URL": "http://localhost:3000",
}


def small_app(tmp_path: Path, **config: Any) -> tuple[Flask, LogtoAuth]:
    app = Flask("small", root_path=str(tmp_path))  # no templates of its own
    app.config.update(CONFIG, LOGTO_DATA_DIR=str(tmp_path), **config)
    auth = LogtoAuth()
    auth.init_app(app)

    @app.get("/private")
    @login_required
    def private() -> str:
        return f"Hello {current_user().hf_username}"

    @app.get("/private-async")
    @login_required
    async def private_async() -> str:
        return f"Async hello {current_user().sub}"

    return app, auth


def signed_in(client: Any, **user: Any) -> None:
    with client.session_transaction() as stored:
        stored["logto.idToken"] = "an-id-token"
        stored["auth.user"] = {"sub": "u1", "hf_username": "alice", **user}


@pytest.mark.parametrize(
    "change, named",
    [
        ({"LOGTO_ENDPOINT": ""}, "LOGTO_ENDPOINT is missing"),
        ({"LOGTO_ENDPOINT": "https://t.logto.app/oidc"}, "LOGTO_ENDPOINT"),
        ({"LOGTO_APP_ID": None}, "LOGTO_APP_ID"),
        ({"LOGTO_APP_SECRET": ""}, "LOGTO_APP_SECRET"),
        ({"LOGTO_BASE_URL": "http://example.com"}, "LOGTO_BASE_URL"),
        ({"SECRET_KEY": "short"}, "SECRET_KEY is too short"),
        ({"SECRET_KEY": None}, "SECRET_KEY is missing"),
        ({"LOGTO_TIMEOUT": "soon"}, "LOGTO_TIMEOUT"),
        ({"LOGTO_SESSION_LIFETIME": 5}, "LOGTO_SESSION_LIFETIME"),
    ],
)
def test_a_mistake_stops_init_app_with_one_line_naming_the_key(tmp_path, change, named):
    app = Flask("small", root_path=str(tmp_path))
    app.config.update({**CONFIG, **change})
    with pytest.raises(ConfigError) as caught:
        LogtoAuth(app)
    assert named in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("old, new", [
    ("APP_BASE_URL", "LOGTO_BASE_URL"), ("APP_DATA_DIR", "LOGTO_DATA_DIR"),
    ("SESSION_LIFETIME", "LOGTO_SESSION_LIFETIME"), ("SESSION_REDIS_URL", "LOGTO_REDIS_URL"),
])
def test_an_old_setting_name_without_its_new_one_stops_init_app_naming_the_new_one(tmp_path, old, new):
    app = Flask("renamed", root_path=str(tmp_path))
    app.config.update({key: value for key, value in CONFIG.items() if key != new}, **{old: "x"})
    with pytest.raises(ConfigError) as caught:
        LogtoAuth(app)
    assert str(caught.value) == f"{old} is now called {new}: rename it in app.config"


def test_the_extension_is_in_app_extensions_and_one_object_serves_several_apps(tmp_path):
    auth = LogtoAuth()
    first, second = Flask("first", root_path=str(tmp_path)), Flask("second", root_path=str(tmp_path))
    first.config.update(CONFIG, LOGTO_DATA_DIR=str(tmp_path / "first"))
    second.config.update(CONFIG, LOGTO_DATA_DIR=str(tmp_path / "second"), LOGTO_BASE_URL="http://localhost:4000")
    auth.init_app(first)
    auth.init_app(second)
    assert first.extensions["logto"] is auth and second.extensions["logto"] is auth
    with second.app_context():
        assert auth.settings.app_base_url == "http://localhost:4000"
    with first.app_context():
        assert auth.settings.app_base_url == "http://localhost:3000"
        assert auth.connection().store is not auth.connection(second).store


def test_init_app_sets_up_server_side_sessions_and_csrf_when_the_app_has_none(tmp_path):
    app, _ = small_app(tmp_path)
    assert isinstance(app.session_interface, ServerSideSessionInterface)
    assert "csrf" in app.extensions
    client = app.test_client()
    signed_in(client)
    cookie = client.get_cookie("session")
    assert cookie is not None and "an-id-token" not in cookie.value and cookie.http_only and cookie.same_site == "Lax"
    assert any((tmp_path / "sessions").iterdir())


def test_an_apps_own_server_side_store_is_kept(tmp_path):
    from flask_session import Session

    app = Flask("small", root_path=str(tmp_path))
    app.config.update(CONFIG, SESSION_TYPE="cachelib", SESSION_CACHELIB=SimpleCache())
    Session(app)
    chosen = app.session_interface
    LogtoAuth(app)
    assert app.session_interface is chosen and not (tmp_path / "sessions").exists()


def test_a_cookie_session_interface_of_the_apps_own_is_refused(tmp_path):
    class CookieSessions(SecureCookieSessionInterface):
        pass

    app = Flask("small", root_path=str(tmp_path))
    app.config.update(CONFIG)
    app.session_interface = CookieSessions()
    with pytest.raises(ConfigError, match="Flask-Session"):
        LogtoAuth(app)


def test_current_user_reads_the_session_only(tmp_path, monkeypatch):
    def no_client(*args: object, **kwargs: object) -> None:
        raise AssertionError("an SDK client was built")

    monkeypatch.setattr(connection.SiteLogtoClient, "__init__", no_client)
    app, _ = small_app(tmp_path)  # LOGTO_ENDPOINT points at a closed port: any call to Logto would fail
    client = app.test_client()
    signed_in(client, name="Alice")
    assert client.get("/private").text == "Hello alice"
    assert client.get("/private-async").text == "Async hello u1"
    with app.test_request_context():
        assert current_user() is None


@pytest.mark.parametrize("path", ["/private", "/private-async", "/private?tab=2&x=%2F"])
def test_login_required_sends_a_signed_out_visitor_to_sign_in_with_next(tmp_path, path):
    app, _ = small_app(tmp_path)
    answer = app.test_client().get(path)
    assert answer.status_code == 302
    assert answer.location.startswith("/sign-in?next=")
    from urllib.parse import parse_qs, urlsplit

    assert parse_qs(urlsplit(answer.location).query)["next"] == [path]


def test_a_user_without_tokens_is_not_signed_in(tmp_path):
    app, _ = small_app(tmp_path)
    client = app.test_client()
    with client.session_transaction() as stored:
        stored["auth.user"] = {"sub": "u1"}  # left over, no ID token
    assert client.get("/private").status_code == 302


def test_the_units_pages_work_without_the_apps_templates_and_can_be_overridden(tmp_path):
    app, _ = small_app(tmp_path)
    answer = app.test_client().get("/callback?state=x&code=y")
    assert answer.status_code == 400 and "no sign-in in progress" in answer.text and "<h1>" in answer.text

    (tmp_path / "templates" / "auth").mkdir(parents=True)
    (tmp_path / "templates" / "auth" / "error.html").write_text("Our own page: {{ title }} / {{ message }}")
    app, _ = small_app(tmp_path)
    answer = app.test_client().get("/callback?state=x&code=y")
    assert answer.status_code == 400 and answer.text.startswith("Our own page: Sign-in link not valid")


def test_sign_out_needs_the_csrf_token_and_the_form_renders_it(tmp_path):
    app, _ = small_app(tmp_path)

    @app.get("/form")
    def form() -> str:
        return render_template_string('<form><input name="csrf_token" value="{{ csrf_token() }}"></form>')

    client = app.test_client()
    signed_in(client)
    assert client.post("/sign-out").status_code == 400
    token = csrf_token_in(client.get("/form").text)
    assert client.post("/sign-out", data={"csrf_token": token}).status_code in (302, 503)
    assert client.get("/private").status_code == 302  # signed out locally either way


def test_userinfo_without_a_signed_in_user_is_a_clear_401(tmp_path):
    app, auth = small_app(tmp_path)

    @app.get("/info")
    def info() -> Any:
        return auth.userinfo()

    answer = app.test_client().get("/info")
    assert answer.status_code == 401 and "Please sign in" in answer.text


# With the embedded provider: a small app of its own, signing in for real.


def small_site(env: dict[str, str]) -> Flask:
    """An app that is not the site: its own routes and session keys, the unit's sign-in."""
    app = Flask("small_site", root_path=env["APP_DATA_DIR"])
    app.config.update(site_config(env))
    auth = LogtoAuth(app)

    @app.get("/")
    def home() -> str:
        return render_template_string(
            "{% if current_user() %}Hi {{ current_user().hf_username }}"
            "<form method=post action=/sign-out><input name=csrf_token value='{{ csrf_token() }}'></form>"
            "{% else %}signed out{% endif %}"
        )

    @app.get("/remember/<word>")
    def remember(word: str) -> str:
        session["mine"] = word
        return "ok"

    @app.get("/recall")
    def recall() -> str:
        return session.get("mine", "-")

    @app.get("/info")
    @login_required
    def info() -> Any:
        return {"sub": auth.userinfo()["sub"], "user": current_user().sub}

    return app


@pytest.fixture(scope="module")
def small(tmp_path_factory: pytest.TempPathFactory):
    from tests.conftest import start_stack

    running = start_stack(tmp_path_factory.mktemp("small"), make_app=small_site)
    yield running
    running.stop()


def test_another_app_signs_in_and_out_through_the_unit(small: Stack):
    http = requests.Session()
    assert sign_in(small, http, "alice").status_code == 302
    home = http.get(small.base_url + "/", timeout=10)
    assert "Hi alice" in home.text
    info = http.get(small.base_url + "/info", timeout=10).json()
    assert info["sub"] == info["user"]
    token = csrf_token_in(home.text)
    out = http.post(small.base_url + "/sign-out", data={"csrf_token": token}, allow_redirects=False, timeout=10)
    assert out.status_code == 302 and "/oidc/session/end" in out.headers["Location"]
    assert http.get(small.base_url + "/", timeout=10).text == "signed out"


def test_the_apps_own_keys_survive_between_sign_in_and_sign_out_only(small: Stack):
    http = requests.Session()
    http.get(small.base_url + "/remember/before", timeout=10)
    authorize = start_sign_in(small, http)
    assert http.get(small.base_url + "/recall", timeout=10).text == "before"  # starting a sign-in clears nothing
    callback = follow_to_callback(http, authorize, small.base_url, username="keys")
    assert http.get(callback, allow_redirects=False, timeout=10).status_code == 302
    assert http.get(small.base_url + "/recall", timeout=10).text == "-"  # signing in cleared the session
    http.get(small.base_url + "/remember/during", timeout=10)
    http.get(small.base_url + "/info", timeout=10)
    assert http.get(small.base_url + "/recall", timeout=10).text == "during"  # the unit left it alone
    token = csrf_token_in(http.get(small.base_url + "/", timeout=10).text)
    http.post(small.base_url + "/sign-out", data={"csrf_token": token}, allow_redirects=False, timeout=10)
    assert http.get(small.base_url + "/recall", timeout=10).text == "-"


def test_two_tabs_signing_in_whichever_comes_back_first_wins(small: Stack):
    http = requests.Session()
    first_tab = start_sign_in(small, http)
    second_tab = start_sign_in(small, http)
    second_callback = follow_to_callback(http, second_tab, small.base_url, username="tabby")
    first_callback = follow_to_callback(http, first_tab, small.base_url, username="tabby")
    assert http.get(second_callback, allow_redirects=False, timeout=10).status_code == 302
    assert "Hi tabby" in http.get(small.base_url + "/", timeout=10).text
    late = http.get(first_callback, allow_redirects=False, timeout=10)
    assert late.status_code == 400 and "no sign-in in progress" in page_text(late.text)
    assert "Hi tabby" in http.get(small.base_url + "/", timeout=10).text  # the late tab signed nobody out


def test_the_first_tab_may_come_back_first_too(small: Stack):
    http = requests.Session()
    first_tab, second_tab = start_sign_in(small, http), start_sign_in(small, http)
    callback = follow_to_callback(http, first_tab, small.base_url, username="early")
    assert http.get(callback, allow_redirects=False, timeout=10).status_code == 302
    assert "Hi early" in http.get(small.base_url + "/", timeout=10).text
    assert second_tab  # its callback would now get the 400 above


def test_past_a_few_pending_sign_ins_the_oldest_is_dropped(small: Stack):
    http = requests.Session()
    tabs = [start_sign_in(small, http) for _ in range(connection.MAX_PENDING_SIGN_INS + 1)]
    oldest = http.get(follow_to_callback(http, tabs[0], small.base_url, username="many"), allow_redirects=False, timeout=10)
    assert oldest.status_code == 400 and "did not match" in page_text(oldest.text)
    newest = http.get(follow_to_callback(http, tabs[-1], small.base_url, username="many"), allow_redirects=False, timeout=10)
    assert newest.status_code == 302


def test_a_pending_sign_in_expires(small: Stack, monkeypatch):
    http = requests.Session()
    authorize = start_sign_in(small, http)
    callback = follow_to_callback(http, authorize, small.base_url, username="slow")
    monkeypatch.setattr(connection, "SIGN_IN_TIMEOUT_SECONDS", -1)
    answer = http.get(callback, allow_redirects=False, timeout=10)
    assert answer.status_code == 400 and "took too long" in page_text(answer.text)


def test_userinfo_is_kept_with_the_session_and_renewed_when_due(small: Stack, monkeypatch):
    calls: list[str] = []
    original = connection.Logto.refresh

    async def counted(self: connection.Logto, *args: Any) -> Any:
        calls.append("refresh")
        return await original(self, *args)

    monkeypatch.setattr(connection.Logto, "refresh", counted)
    http = requests.Session()
    sign_in(small, http, "steady")
    for _ in range(3):
        assert http.get(small.base_url + "/info", timeout=10).status_code == 200
    assert calls == []
    from flask_logto import views

    monkeypatch.setattr(views, "access_token_due", lambda stored, now=None: True)
    assert http.get(small.base_url + "/info", timeout=10).status_code == 200
    assert calls == ["refresh"]


def test_access_token_due_reads_the_sdks_map():
    import json
    import time

    fresh = json.dumps({"x": {"": {"token": "t", "expiresAt": int(time.time()) + 60}}})
    stale = json.dumps({"x": {"": {"token": "t", "expiresAt": int(time.time()) - 1}}})
    assert not connection.access_token_due(fresh)
    assert connection.access_token_due(stale)
    for junk in (None, "", "[]", "{", '{"x": {"": {"expiresAt": "soon"}}}', '{"x": []}'):
        assert connection.access_token_due(junk)
    assert asyncio.iscoroutinefunction(LogtoAuth.userinfo_async)
