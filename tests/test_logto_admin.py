"""`flask logto setup` / `flask logto doctor` against a local stand-in for Logto's Management API.

The stand-in (`FakeLogto`) keeps a little state (apps, connectors, sign-in experience) so that a second run really
sees what the first one made, and answers with the replies recorded from a real Logto OSS 1.42
(`tests/fixtures/logto/*.json`, trimmed copies: long connector texts and logos dropped; the M2M token's values are
made up, only its keys were recorded). Every request is logged, and the tests assert the exact calls.
"""

from __future__ import annotations

import copy
import json
import re
import stat
import time
from collections.abc import Iterator
from email.utils import formatdate
from pathlib import Path
from typing import Any

import pytest
import werkzeug.serving
from click.testing import CliRunner, Result
from dotenv import dotenv_values
from flask import Flask
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from flask_logto import hf_org_required
from flask_logto.access import hf_org_pages
from flask_logto.errors import ConfigError
from tools.logto_cli import logto_cli
from tools.logto_cli.api import management_resource, read_admin_env
from tools.logto_cli.doctor import check_backchannel_logout, check_direct_sign_in, run_doctor
from tools.logto_cli.setup import env_file_changes, wanted_scope, write_env_file
from website.settings import site_config

FIXTURES = Path(__file__).parent / "fixtures" / "logto"
RECORDED_ENDPOINT = "http://localhost:3001"
M2M_ID, M2M_SECRET = "m2m-app-id", "m2m-app-secret-value"
APP_SECRET = "new-app-secret-0123456789abcdef"  # the fake's value for the recorded "<app-secret>"
HF_ID, HF_SECRET = "hf-client-id", "hf-client-secret-value"
STRONG_KEY = "0123456789abcdef" * 4
SETTINGS = (
    "LOGTO_ENDPOINT", "LOGTO_APP_ID", "LOGTO_APP_SECRET", "LOGTO_M2M_APP_ID", "LOGTO_M2M_APP_SECRET",
    "LOGTO_MANAGEMENT_RESOURCE", "APP_BASE_URL", "FLASK_SECRET_KEY", "APP_DATA_DIR", "LOGTO_DIRECT_SIGN_IN",
    "HF_CLIENT_ID", "HF_CLIENT_SECRET", "SPACE_HOST", "SPACE_ID", "DEVIDP_PORT", "APP_NAME", "HF_ALLOWED_ORGS",
)


def recorded(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / f"{name}.json").read_text())


def body(name: str) -> Any:
    return copy.deepcopy(recorded(name)["body"])


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json", headers=headers)


class FakeLogto:
    """Logto's token endpoint, discovery, authorize check and the Management API calls setup/doctor make."""

    def __init__(self, server: HTTPServer) -> None:
        self.server = server
        self.endpoint = server.url_for("").rstrip("/")
        self.token = body("m2m-token")["access_token"]
        self.apps: dict[str, dict] = {}
        self.secrets: dict[str, list[dict]] = {}
        self.connectors: list[dict] = []
        self.experience: dict = body("sign-in-exp")
        self.account_center: dict = body("account-center")
        self.secret_vault = True  # False: Logto runs without SECRET_VAULT_KEK
        self.fail_next: dict[tuple[str, str], tuple[int, Any]] = {}  # (method, path) → (status, body)
        self.discovery_changes: dict[str, Any] = {}  # fields that replace the recorded discovery document's
        server.expect_request(re.compile(".*")).respond_with_handler(self.handle)

    # Tenant contents taken from the recordings.
    def add_recorded_app(self, **changes: Any) -> dict:
        app = {**body("application"), **changes}
        self.store_app(app)
        return app

    def store_app(self, app: dict) -> None:
        self.apps[app["id"]] = app
        secrets = body("application-secrets")
        self.secrets[app["id"]] = [{**s, "applicationId": app["id"], "value": APP_SECRET} for s in secrets]

    def add_recorded_connector(self, **config: str) -> dict:
        connector = body("connectors")[0]
        connector["config"].update(config)
        self.connectors.append(connector)
        return connector

    @property
    def calls(self) -> list[tuple[str, str, Any]]:
        """Every request as (method, path?query, JSON or form body)."""
        result = []
        for request, _ in self.server.log:
            query = request.query_string.decode()
            path = request.path + (f"?{query}" if query else "")
            data = request.get_json(silent=True) if request.is_json else (dict(request.form) or None)
            result.append((request.method, path, data))
        return result

    def api_calls(self) -> list[tuple[str, str, Any]]:
        return [call for call in self.calls if call[1].startswith("/api/")]

    def handle(self, request: Request) -> Response:
        if request.path.endswith("/oidc/.well-known/openid-configuration"):
            document = json.loads(json.dumps(body("discovery")).replace(RECORDED_ENDPOINT, self.endpoint))
            return json_response(200, {**document, **self.discovery_changes})
        if request.path == "/oidc/token":
            return self.token_endpoint(request)
        if request.path == "/oidc/auth":
            return self.authorize(request)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return json_response(401, body("error-401-bad-token"))
        failure = self.fail_next.pop((request.method, request.path), None)
        if failure:
            return json_response(*failure)
        return self.management_api(request)

    def token_endpoint(self, request: Request) -> Response:
        auth = request.authorization
        good = (
            auth is not None and (auth.username, auth.password) == (M2M_ID, M2M_SECRET)
            and request.form.get("grant_type") == "client_credentials" and request.form.get("scope") == "all"
        )
        return json_response(200, body("m2m-token")) if good else json_response(401, body("error-401-invalid-client"))

    def authorize(self, request: Request) -> Response:
        app = self.apps.get(request.args.get("client_id", ""))
        if app is None:
            error = {"code": "oidc.invalid_client", "message": "client is invalid", "error": "invalid_client"}
            return json_response(400, error)
        if request.args.get("redirect_uri") not in app["oidcClientMetadata"]["redirectUris"]:
            return json_response(400, body("error-400-invalid-redirect-uri"))
        return Response("", status=303, headers={"Location": f"/sign-in?app_id={app['id']}"})

    def management_api(self, request: Request) -> Response:  # noqa: C901 - one branch per route
        method, path = request.method, request.path
        data: Any = request.get_json(silent=True)
        parts = path.strip("/").split("/")[1:]  # after "api"
        if parts == ["applications"] and method == "GET":
            kind = request.args.get("types")
            return json_response(200, [a for a in self.apps.values() if kind in (None, a["type"])])
        if parts == ["applications"] and method == "POST":
            app = {**body("application-created"), "name": data["name"], "type": data["type"]}
            app["oidcClientMetadata"] = data["oidcClientMetadata"]
            self.store_app(app)
            return json_response(200, app)
        if parts[:1] == ["applications"] and parts[1] not in self.apps:
            error = body("error-404-application")
            error["message"] = error["message"].replace("does-not-exist", parts[1])
            return json_response(404, error)
        if parts[:1] == ["applications"] and len(parts) == 3 and parts[2] == "secrets":
            return json_response(200, self.secrets[parts[1]])
        if parts[:1] == ["applications"] and method == "PATCH":
            app = self.apps[parts[1]]
            app["oidcClientMetadata"] = data["oidcClientMetadata"]  # Logto replaces it as a whole
            return json_response(200, app)
        if parts[:1] == ["applications"]:
            return json_response(200, self.apps[parts[1]])
        if parts == ["connectors"] and method == "GET":
            return json_response(200, self.connectors)
        if parts == ["connectors"] and method == "POST":
            return self.create_connector(data)
        if parts[:1] == ["connectors"] and method == "DELETE":
            self.connectors = [c for c in self.connectors if c["id"] != parts[1]]
            kept = {c["target"] for c in self.connectors}  # as Logto: the deleted connector's target leaves sign-in
            targets = self.experience["socialSignInConnectorTargets"]
            self.experience["socialSignInConnectorTargets"] = [target for target in targets if target in kept]
            return Response("", status=204)
        if parts[:1] == ["connectors"] and method == "PATCH":
            connector = next(c for c in self.connectors if c["id"] == parts[1])
            if data.get("enableTokenStorage") and not self.secret_vault:
                return json_response(422, body("error-422-feature-not-supported"))
            if data.get("enableTokenStorage") and connector["connectorId"] == "huggingface-universal":
                return json_response(422, body("error-422-token-storage-not-supported"))
            connector.update({key: data[key] for key in ("config", "enableTokenStorage") if key in data})
            return json_response(200, connector)
        if parts == ["account-center"]:
            self.account_center.update(data if method == "PATCH" else {})
            return json_response(200, self.account_center)
        if parts == ["sign-in-exp"] and method == "PATCH":
            self.experience.update(data)
        if parts == ["sign-in-exp"]:
            return json_response(200, self.experience)
        return json_response(404, {"code": "test.not_faked", "message": f"{method} {path} is not faked"})

    def create_connector(self, data: dict) -> Response:
        """`POST /api/connectors`, with Logto's checks in Logto's order (recorded replies)."""
        standard = data["connectorId"] == "oidc"
        if not standard and any(c["connectorId"] == data["connectorId"] for c in self.connectors):
            return json_response(422, body("error-422-duplicate-connector"))
        target = data["metadata"]["target"] if standard else "huggingface"
        if any(c["target"] == target for c in self.connectors):
            return json_response(422, body("error-422-multiple-target"))
        if data.get("enableTokenStorage") and not self.secret_vault:
            return json_response(422, body("error-422-feature-not-supported"))
        connector = body("connector-oidc-created") if standard else body("connectors")[0]
        connector.update(config=data["config"], enableTokenStorage=bool(data.get("enableTokenStorage")))
        connector.update({key: data[key] for key in ("id", "metadata", "syncProfile") if key in data})
        self.connectors.append(connector)
        return json_response(200, connector)


@pytest.fixture(scope="module")
def server() -> Iterator[HTTPServer]:
    http = HTTPServer(host="127.0.0.1", port=0)
    http.start()
    yield http
    http.stop()


@pytest.fixture
def fake(server: HTTPServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeLogto]:
    server.clear()
    monkeypatch.chdir(tmp_path)  # --write-env edits ./.env
    yield FakeLogto(server)
    server.clear()


def make_env(fake: FakeLogto, tmp_path: Path, **settings: str | None) -> dict[str, str | None]:
    """Every setting the commands read, explicitly (None unsets it, whatever the outer environment holds)."""
    env: dict[str, str | None] = dict.fromkeys(SETTINGS)
    env.update(
        LOGTO_ENDPOINT=fake.endpoint,
        LOGTO_M2M_APP_ID=M2M_ID,
        LOGTO_M2M_APP_SECRET=M2M_SECRET,
        APP_DATA_DIR=str(tmp_path / "data"),
    )
    env.update(settings)
    return env


def run(args: list[str], env: dict[str, str | None]) -> Result:
    return CliRunner().invoke(logto_cli, args, env=env)


def token_call(resource: str = "https://default.logto.app/api") -> tuple[str, str, Any]:
    return ("POST", "/oidc/token", {"grant_type": "client_credentials", "resource": resource, "scope": "all"})


SETUP_ARGS = ["setup", "--hf-client-id", HF_ID, "--hf-client-secret", HF_SECRET]
NEW_APP_ID = recorded("application-created")["body"]["id"]
CONNECTOR_ID = recorded("connectors")["body"][0]["id"]
SOCIAL_ONLY = {"identifiers": [], "password": False, "verify": False}


def set_up_metadata(base_url: str = "http://localhost:3000") -> dict[str, Any]:
    """An app's oidcClientMetadata as `setup` leaves it for a site at `base_url`."""
    return {
        "redirectUris": [f"{base_url}/callback"], "postLogoutRedirectUris": [f"{base_url}/"],
        "backchannelLogoutUri": f"{base_url}/backchannel-logout", "backchannelLogoutSessionRequired": True,
    }


# setup


def test_first_run_creates_everything_and_second_run_changes_nothing(fake: FakeLogto, tmp_path: Path) -> None:
    fake.experience["socialSignInConnectorTargets"] = ["github"]
    env = make_env(fake, tmp_path)
    Path(".env").write_text("# my settings\nexport SOME_SETTING=keep-me\nLOGTO_APP_ID=\n")

    first = run([*SETUP_ARGS, "--social-only-sign-up", "--write-env"], env)

    assert first.exit_code == 0, first.output
    metadata = set_up_metadata()
    hf_config = {"clientId": HF_ID, "clientSecret": HF_SECRET, "scope": "profile email"}
    assert fake.calls == [
        token_call(),
        ("GET", "/api/applications?types=Traditional", None),
        ("GET", "/api/connectors", None),
        ("GET", "/api/sign-in-exp", None),
        ("POST", "/api/applications", {"name": "Flask site", "type": "Traditional", "oidcClientMetadata": metadata}),
        ("POST", "/api/connectors", {"connectorId": "huggingface-universal", "config": hf_config}),
        ("PATCH", "/api/sign-in-exp", {
            "socialSignInConnectorTargets": ["github", "huggingface"], "signUp": SOCIAL_ONLY,
        }),
        ("GET", f"/api/applications/{NEW_APP_ID}/secrets", None),
    ]
    assert '✓ create Traditional web app "Flask site"' in first.output
    assert f"→ id {NEW_APP_ID}\n" in first.output and f"→ id {CONNECTOR_ID}\n" in first.output
    assert f"App id: {NEW_APP_ID}" in first.output
    assert f"{fake.endpoint}/callback/{CONNECTOR_ID}" in first.output
    assert APP_SECRET not in first.output and HF_SECRET not in first.output and M2M_SECRET not in first.output
    dotenv = Path(".env")
    assert dotenv_values(dotenv) == {
        "SOME_SETTING": "keep-me", "LOGTO_APP_ID": NEW_APP_ID, "LOGTO_APP_SECRET": APP_SECRET,
    }
    assert dotenv.read_text() == (
        f"# my settings\nexport SOME_SETTING=keep-me\nLOGTO_APP_ID={NEW_APP_ID}\nLOGTO_APP_SECRET={APP_SECRET}\n"
    )
    assert stat.S_IMODE(dotenv.stat().st_mode) == 0o600

    fake.server.clear_log()
    second = run([*SETUP_ARGS, "--social-only-sign-up", "--write-env"], {**env, **dotenv_values(dotenv)})

    assert second.exit_code == 0, second.output
    assert fake.calls == [
        token_call(),
        ("GET", f"/api/applications/{NEW_APP_ID}", None),
        ("GET", "/api/connectors", None),
        ("GET", "/api/sign-in-exp", None),
        ("GET", f"/api/applications/{NEW_APP_ID}/secrets", None),
    ]
    assert "Nothing to change" in second.output
    assert ".env already has" in second.output


def test_without_app_id_a_second_run_finds_the_app_by_name(fake: FakeLogto, tmp_path: Path) -> None:
    env = make_env(fake, tmp_path)
    assert run(SETUP_ARGS, env).exit_code == 0
    fake.server.clear_log()

    again = run(SETUP_ARGS, env)

    assert again.exit_code == 0, again.output
    assert [call for call in fake.api_calls() if call[0] != "GET"] == []
    assert "Nothing to change" in again.output
    assert f"Set LOGTO_APP_ID={NEW_APP_ID}" in again.output
    assert len(fake.apps) == 1


def test_existing_uris_targets_and_scopes_survive(fake: FakeLogto, tmp_path: Path) -> None:
    app = fake.add_recorded_app()
    fake.add_recorded_connector(clientSecret="old-secret", scope="openid")
    fake.experience["socialSignInConnectorTargets"] = ["github", "google"]
    env = make_env(fake, tmp_path, LOGTO_APP_ID=app["id"], APP_BASE_URL="https://me-site.hf.space")

    result = run(SETUP_ARGS, env)

    assert result.exit_code == 0, result.output
    assert fake.api_calls() == [
        ("GET", f"/api/applications/{app['id']}", None),
        ("GET", "/api/connectors", None),
        ("GET", "/api/sign-in-exp", None),
        ("PATCH", f"/api/applications/{app['id']}", {"oidcClientMetadata": {
            "redirectUris": ["http://localhost:3000/callback", "https://me-site.hf.space/callback"],
            "postLogoutRedirectUris": ["http://localhost:3000/", "https://me-site.hf.space/"],
            "backchannelLogoutUri": "https://me-site.hf.space/backchannel-logout",
            "backchannelLogoutSessionRequired": True,
        }}),
        ("PATCH", f"/api/connectors/{CONNECTOR_ID}", {"config": {
            "scope": "openid profile email", "clientId": HF_ID, "clientSecret": HF_SECRET,
        }}),
        ("PATCH", "/api/sign-in-exp", {"socialSignInConnectorTargets": ["github", "google", "huggingface"]}),
    ]
    assert "new clientSecret" in result.output and HF_SECRET not in result.output and "old-secret" not in result.output
    assert fake.experience["signUp"] == {"identifiers": ["username"], "password": True, "verify": False}


def test_dry_run_sends_no_writes(fake: FakeLogto, tmp_path: Path) -> None:
    fake.add_recorded_app(oidcClientMetadata={"redirectUris": [], "postLogoutRedirectUris": []})
    fake.experience["socialSignInConnectorTargets"] = []
    env = make_env(fake, tmp_path, LOGTO_APP_ID="o9qlze1wvcp8lf0ua2f2j")

    result = run([*SETUP_ARGS, "--social-only-sign-up", "--write-env", "--dry-run"], env)

    assert result.exit_code == 0, result.output
    assert {method for method, _, _ in fake.api_calls()} == {"GET"}
    assert "+ create Hugging Face connector" in result.output
    assert '~ sign-in experience: add "huggingface" to social sign-in; sign-up identifiers: none' in result.output
    assert "Dry run: nothing was changed" in result.output
    assert not Path(".env").exists()
    assert fake.connectors == [] and fake.experience["socialSignInConnectorTargets"] == []


def test_bad_token_is_one_line_with_status_code_and_message(fake: FakeLogto, tmp_path: Path) -> None:
    fake.token = "a-token-logto-does-not-accept"  # the fake now hands out a token it does not accept
    env = make_env(fake, tmp_path)

    result = run(SETUP_ARGS, env)

    assert result.exit_code == 1
    assert result.stdout.count("\n") == 2  # the two header lines; nothing after the failure
    error_lines = result.stderr.strip().splitlines()
    assert len(error_lines) == 1
    assert "401" in error_lines[0] and "auth.unauthorized" in error_lines[0]
    assert "Unauthorized. Please check credentials and its scope." in error_lines[0]
    assert "Traceback" not in result.output


def test_wrong_m2m_secret_is_one_line(fake: FakeLogto, tmp_path: Path) -> None:
    result = run(SETUP_ARGS, make_env(fake, tmp_path, LOGTO_M2M_APP_SECRET="wrong"))

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: Management API token (POST /oidc/token) failed: 401 oidc.invalid_client: "
        "An OIDC error occurred: oidc.invalid_client. (fix: check LOGTO_M2M_APP_ID and LOGTO_M2M_APP_SECRET)"
    ]
    assert "wrong" not in result.output


def test_duplicate_connector_422_is_one_line(fake: FakeLogto, tmp_path: Path) -> None:
    fake.fail_next[("POST", "/api/connectors")] = (422, body("error-422-duplicate-connector"))

    result = run(SETUP_ARGS, make_env(fake, tmp_path))

    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        "Error: POST /api/connectors failed: 422 connector.multiple_instances_not_supported: "
        "Can not create multiple instance with picked standard connector."
    ]
    assert f"→ id {NEW_APP_ID}" in result.stdout  # what was made before the failure is shown
    assert "Traceback" not in result.output


def test_unknown_app_id_names_the_setting(fake: FakeLogto, tmp_path: Path) -> None:
    result = run(SETUP_ARGS, make_env(fake, tmp_path, LOGTO_APP_ID="does-not-exist"))

    assert result.exit_code == 1
    line = result.stderr.strip()
    assert "404 entity.not_exists_with_id" in line and "LOGTO_APP_ID=does-not-exist" in line
    assert "\n" not in line


def test_missing_hf_credentials_stop_before_any_write(fake: FakeLogto, tmp_path: Path) -> None:
    result = run(["setup"], make_env(fake, tmp_path))

    assert result.exit_code == 2
    assert "--hf-client-id" in result.stderr and "HF_CLIENT_ID" in result.stderr
    assert {method for method, _, _ in fake.api_calls()} == {"GET"}


def test_hf_credentials_from_the_environment(fake: FakeLogto, tmp_path: Path) -> None:
    result = run(["setup"], make_env(fake, tmp_path, HF_CLIENT_ID=HF_ID, HF_CLIENT_SECRET=HF_SECRET))

    assert result.exit_code == 0, result.output
    assert fake.connectors[0]["config"] == {"clientId": HF_ID, "clientSecret": HF_SECRET, "scope": "profile email"}


def test_show_secret_prints_the_app_secret_only_when_asked(fake: FakeLogto, tmp_path: Path) -> None:
    env = make_env(fake, tmp_path)
    assert APP_SECRET not in run(SETUP_ARGS, env).output
    assert f"App secret: {APP_SECRET}" in run([*SETUP_ARGS, "--show-secret"], env).output


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"LOGTO_ENDPOINT": None}, "LOGTO_ENDPOINT is missing"),
        ({"LOGTO_ENDPOINT": "https://abc123.logto.app/oidc"}, "ends with /oidc"),
        ({"LOGTO_M2M_APP_SECRET": None}, "LOGTO_M2M_APP_ID and LOGTO_M2M_APP_SECRET are needed"),
        ({"APP_BASE_URL": "http://me-site.hf.space"}, "must use https"),
    ],
)
def test_setting_mistakes_exit_2_with_one_line(
    fake: FakeLogto, tmp_path: Path, settings: dict[str, str | None], message: str
) -> None:
    result = run(SETUP_ARGS, make_env(fake, tmp_path, **settings))

    assert result.exit_code == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert fake.calls == []


def test_management_resource_detection() -> None:
    assert management_resource("https://abc123.logto.app") == "https://abc123.logto.app/api"
    assert management_resource("https://auth.example.com") == "https://default.logto.app/api"
    assert management_resource("http://localhost:3001") == "https://default.logto.app/api"
    override = "https://abc123.logto.app/api/"
    assert management_resource("https://auth.example.com", override) == "https://abc123.logto.app/api"


def test_cloud_resource_override_is_sent(fake: FakeLogto, tmp_path: Path) -> None:
    run(SETUP_ARGS, make_env(fake, tmp_path, LOGTO_MANAGEMENT_RESOURCE="https://abc123.logto.app/api"))

    assert fake.calls[0] == token_call("https://abc123.logto.app/api")


def test_wanted_scope_adds_only_what_is_missing() -> None:
    assert wanted_scope("") == "profile email"
    assert wanted_scope("openid profile email") == "openid profile email"
    assert wanted_scope("profile") == "profile email"


def test_write_env_file_updates_in_place(tmp_path: Path) -> None:
    path = tmp_path / ".env"
    path.write_text('A=1\nLOGTO_APP_ID=old\n# comment\nexport LOGTO_APP_SECRET="old secret"\n')
    path.chmod(0o644)
    values = {"LOGTO_APP_ID": "new", "LOGTO_APP_SECRET": "has space", "EXTRA": "e"}

    assert env_file_changes(path, values) == ["LOGTO_APP_ID", "LOGTO_APP_SECRET", "EXTRA"]
    write_env_file(path, values)

    assert path.read_text() == 'A=1\nLOGTO_APP_ID=new\n# comment\nexport LOGTO_APP_SECRET="has space"\nEXTRA=e\n'
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert env_file_changes(path, values) == []


# doctor


def healthy_tenant(fake: FakeLogto, tmp_path: Path, **settings: str | None) -> dict[str, str | None]:
    app = fake.add_recorded_app(oidcClientMetadata=set_up_metadata())
    fake.add_recorded_connector()
    fake.experience["signUp"] = dict(SOCIAL_ONLY)
    return make_env(fake, tmp_path, **{"LOGTO_APP_ID": app["id"], "LOGTO_APP_SECRET": APP_SECRET, **settings})


def failures(output: str) -> list[tuple[str, str]]:
    """Each ✗ line with the line after it (which must be its fix)."""
    lines = output.splitlines()
    lines.append("")
    return [(line, lines[i + 1]) for i, line in enumerate(lines) if line.startswith("✗")]


def test_doctor_all_good(fake: FakeLogto, tmp_path: Path) -> None:
    result = run(["doctor"], healthy_tenant(fake, tmp_path))

    assert result.exit_code == 0, result.output
    assert failures(result.output) == []
    assert f"✓ Logto endpoint {fake.endpoint} reachable, issuer {fake.endpoint}/oidc" in result.output
    assert "✓ redirect URI http://localhost:3000/callback is registered" in result.output
    assert "✓ LOGTO_APP_SECRET is one of the app's current secrets" in result.output
    assert "✓ LOGTO_DIRECT_SIGN_IN=social:huggingface names an existing connector" in result.output
    assert "No problems found" in result.output
    assert {method for method, _, _ in fake.api_calls()} == {"GET"}


def test_doctor_reports_each_problem_with_its_fix(fake: FakeLogto, tmp_path: Path) -> None:
    env = healthy_tenant(
        fake, tmp_path,
        APP_BASE_URL="https://me-site.hf.space", FLASK_SECRET_KEY="short",
        LOGTO_DIRECT_SIGN_IN="social:github", LOGTO_APP_SECRET="stale-secret",
    )
    fake.experience["socialSignInConnectorTargets"] = []
    fake.experience["signUp"] = {"identifiers": ["username"], "password": True, "verify": False}
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sessions").write_text("not a directory")

    result = run(["doctor"], env)

    assert result.exit_code == 1
    found = failures(result.output)
    expected = [
        ("FLASK_SECRET_KEY is too short", "make one with: python -c"),
        ("session store", "set APP_DATA_DIR"),
        ("redirect URI https://me-site.hf.space/callback is not registered", "logto setup"),
        ("post sign-out URI https://me-site.hf.space/ is not registered", "Post sign-out redirect URIs"),
        ("LOGTO_APP_SECRET is not one of the app's current secrets", "App secrets"),
        ('"huggingface" is not in the sign-in experience', "Social sign-in"),
        ("LOGTO_DIRECT_SIGN_IN=social:github: no connector has target 'github'", "=social:huggingface"),
    ]
    assert len(found) == len(expected), result.output
    for (line, fix), (problem, hint) in zip(found, expected, strict=False):
        assert problem in line
        assert fix.startswith("    fix: ") and hint in fix
    assert "! sign-up asks for a username" in result.output
    assert "--social-only-sign-up" in result.output
    assert "stale-secret" not in result.output and APP_SECRET not in result.output


def test_doctor_points_at_a_near_miss_redirect_uri(fake: FakeLogto, tmp_path: Path) -> None:
    env = healthy_tenant(fake, tmp_path)
    fake.apps["o9qlze1wvcp8lf0ua2f2j"]["oidcClientMetadata"]["redirectUris"] = ["http://localhost:3000/callback/"]

    result = run(["doctor"], env)

    (line, _), = failures(result.output)
    assert line.endswith("; http://localhost:3000/callback/ is close but Logto compares URIs exactly")


def test_doctor_wrong_issuer(fake: FakeLogto, tmp_path: Path) -> None:
    env = make_env(fake, tmp_path, LOGTO_ENDPOINT=f"{fake.endpoint}/tenant", LOGTO_M2M_APP_ID=None)

    result = run(["doctor"], env)

    assert result.exit_code == 1
    found = dict(failures(result.output))
    issuer_line = f"✗ discovery issuer is {fake.endpoint}/oidc, expected {fake.endpoint}/tenant/oidc"
    assert found[issuer_line] == f"    fix: set LOGTO_ENDPOINT={fake.endpoint}"


def test_doctor_unknown_app_id(fake: FakeLogto, tmp_path: Path) -> None:
    fake.add_recorded_connector()

    result = run(["doctor"], make_env(fake, tmp_path, LOGTO_APP_ID="does-not-exist"))

    assert result.exit_code == 1
    line, fix = failures(result.output)[0]
    assert line == (
        "✗ LOGTO_APP_ID=does-not-exist does not exist in this tenant "
        "(The applications with ID `does-not-exist` does not exist.)"
    )
    assert "--write-env" in fix


def test_doctor_without_m2m_says_what_it_skipped(fake: FakeLogto, tmp_path: Path) -> None:
    app = fake.add_recorded_app()
    env = make_env(
        fake, tmp_path, LOGTO_M2M_APP_ID=None, LOGTO_M2M_APP_SECRET=None,
        LOGTO_APP_ID=app["id"], APP_BASE_URL="https://me-site.hf.space", FLASK_SECRET_KEY=STRONG_KEY,
    )

    result = run(["doctor"], env)

    assert fake.api_calls() == []
    assert "- skipped: LOGTO_APP_ID exists and is a Traditional web app (needs LOGTO_M2M_APP_ID" in result.output
    assert "- skipped: the Hugging Face connector exists and is in the sign-in experience" in result.output
    assert "- skipped: sign-up does not ask Hugging Face users for a username" in result.output
    assert "- skipped: LOGTO_DIRECT_SIGN_IN=social:huggingface: whether that connector target exists" in result.output
    assert "Set LOGTO_M2M_APP_ID and LOGTO_M2M_APP_SECRET to run the skipped checks" in result.output
    # what it can check without them: the authorize endpoint rejects our redirect URI
    (line, fix), = failures(result.output)
    assert line.startswith(f"✗ Logto rejects redirect URI https://me-site.hf.space/callback for app {app['id']}")
    assert "Redirect URIs" in fix
    assert result.exit_code == 1


def test_doctor_warns_about_clock_skew(fake: FakeLogto, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    two_minutes_ahead = formatdate(time.time() + 120, usegmt=True)
    monkeypatch.setattr(werkzeug.serving.WSGIRequestHandler, "date_time_string", lambda self, *a: two_minutes_ahead)

    result = run(["doctor"], healthy_tenant(fake, tmp_path))

    warning = next(line for line in result.output.splitlines() if line.startswith("!"))
    assert re.fullmatch(r"! this machine's clock is 1(19|20|21) s behind Logto's .*", warning), warning
    assert "fix: sync the clock" in result.output
    assert result.exit_code == 0, result.output  # a warning, not a failure


def test_doctor_clock_in_sync(fake: FakeLogto, tmp_path: Path) -> None:
    result = run(["doctor"], healthy_tenant(fake, tmp_path))

    in_sync = re.compile(r"^✓ clock within 30 s of Logto's \(([+-]1|\+0) s\)$", re.MULTILINE)
    assert in_sync.search(result.output), result.output


def test_doctor_unreachable_endpoint(tmp_path: Path) -> None:
    env: dict[str, str | None] = dict.fromkeys(SETTINGS)
    env.update(LOGTO_ENDPOINT="http://127.0.0.1:9", APP_DATA_DIR=str(tmp_path))

    result = run(["doctor"], env)

    assert result.exit_code == 1
    (line, fix), = failures(result.output)
    assert line.startswith("✗ Logto endpoint http://127.0.0.1:9 is not reachable")
    assert "LOGTO_ENDPOINT" in fix
    assert "Traceback" not in result.output


def test_doctor_bad_m2m_credentials_skip_the_tenant_checks(fake: FakeLogto, tmp_path: Path) -> None:
    env = healthy_tenant(fake, tmp_path, LOGTO_M2M_APP_SECRET="wrong")

    result = run(["doctor"], env)

    assert result.exit_code == 1
    (line, fix), = failures(result.output)
    assert "401 oidc.invalid_client" in line
    assert "LOGTO_M2M_APP_ID and LOGTO_M2M_APP_SECRET" in fix
    skipped = "- skipped: the Hugging Face connector exists and is in the sign-in experience (the Management API is not"
    assert skipped in result.output


@pytest.mark.parametrize(
    ("value", "status"),
    [("", "ok"), ("social:huggingface", "ok"), ("sso:abc", "skip"), ("huggingface", "fail"), ("social:", "fail")],
)
def test_direct_sign_in_values(value: str, status: str) -> None:
    connectors = body("connectors")
    assert check_direct_sign_in(value, connectors).status == status


def test_setup_refuses_an_app_that_is_not_traditional(fake: FakeLogto, tmp_path: Path) -> None:
    app = fake.add_recorded_app(type="SPA")

    result = run(SETUP_ARGS, make_env(fake, tmp_path, LOGTO_APP_ID=app["id"]))

    assert result.exit_code == 2
    assert f"LOGTO_APP_ID={app['id']} is a SPA app, not a Traditional web app" in result.stderr
    assert {method for method, _, _ in fake.api_calls()} == {"GET"}


# The commands read the settings as the site does (settings.site_config)


def test_on_a_space_setup_registers_and_doctor_checks_the_space_callback(fake: FakeLogto, tmp_path: Path) -> None:
    env = make_env(fake, tmp_path, SPACE_HOST="me-site.hf.space", FLASK_SECRET_KEY=STRONG_KEY)

    result = run(SETUP_ARGS, env)

    assert result.exit_code == 0, result.output
    assert "Site:  https://me-site.hf.space (redirect URI https://me-site.hf.space/callback)" in result.output
    (app,) = fake.apps.values()
    assert app["oidcClientMetadata"] == set_up_metadata("https://me-site.hf.space")
    doctor = run(["doctor"], {**env, "LOGTO_APP_ID": app["id"], "LOGTO_APP_SECRET": APP_SECRET})
    assert "✓ redirect URI https://me-site.hf.space/callback is registered" in doctor.output
    assert failures(doctor.output) == [], doctor.output


def test_empty_base_url_and_data_dir_mean_the_sites_defaults(fake: FakeLogto, tmp_path: Path) -> None:
    env = make_env(fake, tmp_path, APP_BASE_URL="", APP_DATA_DIR="")

    result = run(SETUP_ARGS, env)

    assert result.exit_code == 0, result.output
    (app,) = fake.apps.values()
    assert app["oidcClientMetadata"]["redirectUris"] == ["http://localhost:3000/callback"]
    doctor = run(["doctor"], {**env, "LOGTO_APP_ID": app["id"], "LOGTO_APP_SECRET": APP_SECRET})
    assert "✓ APP_BASE_URL http://localhost:3000 (loopback: http allowed)" in doctor.output
    assert f"✓ session store {tmp_path / 'instance' / 'sessions'} is writable" in doctor.output  # cwd: tmp_path
    assert failures(doctor.output) == [], doctor.output


def test_doctor_refuses_a_short_secret_key_as_the_site_does(fake: FakeLogto, tmp_path: Path) -> None:
    env = healthy_tenant(fake, tmp_path, FLASK_SECRET_KEY="short")  # APP_BASE_URL: http://localhost:3000
    with pytest.raises(ConfigError) as refused:
        site_config({key: value for key, value in env.items() if value is not None})

    result = run(["doctor"], env)

    assert result.exit_code == 1
    (line, fix), = failures(result.output)
    assert f"{line.removeprefix('✗ ')}: {fix.removeprefix('    fix: ')}" == str(refused.value)
    assert "fine only for local use" not in result.output


def test_doctor_refuses_a_discovery_endpoint_on_another_origin(fake: FakeLogto, tmp_path: Path) -> None:
    fake.discovery_changes["token_endpoint"] = "https://elsewhere.example/oidc/token"

    result = run(["doctor"], healthy_tenant(fake, tmp_path))

    assert result.exit_code == 1
    (line, fix), = failures(result.output)
    assert line == f"✗ discovery endpoint 'https://elsewhere.example/oidc/token' is not on '{fake.endpoint}/oidc'"
    assert "LOGTO_ENDPOINT" in fix


def test_doctor_reports_a_setting_the_site_refuses(fake: FakeLogto, tmp_path: Path) -> None:
    result = run(["doctor"], make_env(fake, tmp_path, APP_BASE_URL="http://me-site.hf.space"))

    assert result.exit_code == 1
    (line, _), = failures(result.output)
    assert line == "✗ APP_BASE_URL='http://me-site.hf.space' must use https unless the host is localhost or 127.0.0.1"
    assert fake.calls == []


def test_doctor_without_endpoint_is_a_one_line_error(fake: FakeLogto, tmp_path: Path) -> None:
    result = run(["doctor"], make_env(fake, tmp_path, LOGTO_ENDPOINT=""))

    assert result.exit_code == 2
    assert result.stderr.startswith("Error: LOGTO_ENDPOINT is missing") and result.stderr.count("\n") == 1


# setup --hf-token-storage: Logto keeps each user's Hugging Face token (the replies recorded for the switch)

DEDICATED_ID = "keh0t4xwj51b"  # the recorded dedicated connector (beside a GitHub one)
OIDC_REQUEST = recorded("connector-oidc-created")["request_body"]  # what the recorded switch sent
STORAGE_ARGS = ["setup", "--hf-token-storage"]


def dedicated_tenant(fake: FakeLogto, tmp_path: Path, **settings: str | None) -> dict[str, str | None]:
    """The recorded tenant before the switch: GitHub + the dedicated connector, Hugging Face first in sign-in."""
    app = fake.add_recorded_app(oidcClientMetadata=set_up_metadata())
    fake.connectors = body("connectors-before-switch")
    fake.experience["socialSignInConnectorTargets"] = ["huggingface", "github"]
    fake.account_center["enabled"] = False
    return make_env(fake, tmp_path, **{"LOGTO_APP_ID": app["id"], "LOGTO_APP_SECRET": APP_SECRET, **settings})


def writes(fake: FakeLogto) -> list[tuple[str, str, Any]]:
    return [call for call in fake.api_calls() if call[0] != "GET"]


def test_token_storage_switch_keeps_the_connector_id_and_second_run_changes_nothing(
    fake: FakeLogto, tmp_path: Path
) -> None:
    env = dedicated_tenant(fake, tmp_path)

    first = run([*STORAGE_ARGS, "--yes"], env)

    assert first.exit_code == 0, first.output
    probe = ("PATCH", f"/api/connectors/{DEDICATED_ID}", {"enableTokenStorage": True})  # refused: changes nothing
    assert writes(fake) == [
        probe,
        ("PATCH", "/api/account-center", {"enabled": True}),
        ("DELETE", f"/api/connectors/{DEDICATED_ID}", None),
        ("POST", "/api/connectors", {"id": DEDICATED_ID, **OIDC_REQUEST}),  # the client id/secret it had
        ("PATCH", "/api/sign-in-exp", {"socialSignInConnectorTargets": ["huggingface", "github"]}),
    ]
    assert [(c["id"], c["connectorId"], c["enableTokenStorage"]) for c in fake.connectors] == [
        ("02umumoifuoa", "github-universal", False), (DEDICATED_ID, "oidc", True),
    ]
    assert fake.experience["socialSignInConnectorTargets"] == ["huggingface", "github"]  # back in first place
    assert fake.account_center["enabled"] is True
    assert f"- delete the dedicated Hugging Face connector {DEDICATED_ID}" in first.output
    assert "Logto's Secret Vault is available" in first.output
    assert f"Hugging Face OAuth app redirect URI: {fake.endpoint}/callback/{DEDICATED_ID}\n" in first.output
    assert "that redirect URI does not change" in first.output
    assert "Hugging Face OAuth app scopes: openid profile email read-repos" in first.output
    assert "<hf-client-secret>" not in first.output

    for args in (STORAGE_ARGS, ["setup"]):  # the plain setup leaves the new connector alone too
        fake.server.clear_log()
        again = run(args, env)
        assert again.exit_code == 0, again.output
        assert writes(fake) == [] and "Nothing to change" in again.output
    assert "(token storage on), Account Center and the sign-in experience are set up" in run(STORAGE_ARGS, env).output


@pytest.mark.parametrize(("answer", "deleted"), [("n\n", False), ("", False), ("y\n", True)])
def test_token_storage_asks_before_deleting_the_dedicated_connector(
    fake: FakeLogto, tmp_path: Path, answer: str, deleted: bool
) -> None:
    env = dedicated_tenant(fake, tmp_path)

    result = CliRunner().invoke(logto_cli, STORAGE_ARGS, env=env, input=answer)

    assert f"Delete the dedicated Hugging Face connector {DEDICATED_ID}" in result.output
    assert any(method == "DELETE" for method, _, _ in fake.api_calls()) is deleted
    if not deleted:
        assert result.exit_code == 1 and "Nothing was changed." in result.output
        assert [c["id"] for c in fake.connectors] == ["02umumoifuoa", DEDICATED_ID]
        assert fake.account_center["enabled"] is False


def test_token_storage_without_secret_vault_stops_before_deleting(fake: FakeLogto, tmp_path: Path) -> None:
    fake.secret_vault = False  # Logto started without SECRET_VAULT_KEK
    env = dedicated_tenant(fake, tmp_path)

    result = run([*STORAGE_ARGS, "--yes"], env)

    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: Secret Vault check failed: 422 request.feature_not_supported: Logto reports its "
                           "Secret Vault unavailable, so it cannot store tokens; nothing was changed (fix: ")
    assert "SECRET_VAULT_KEK" in line
    assert writes(fake) == [("PATCH", f"/api/connectors/{DEDICATED_ID}", {"enableTokenStorage": True})]
    assert [c["id"] for c in fake.connectors] == ["02umumoifuoa", DEDICATED_ID]


def test_token_storage_dry_run_sends_no_writes(fake: FakeLogto, tmp_path: Path) -> None:
    result = run([*STORAGE_ARGS, "--dry-run"], dedicated_tenant(fake, tmp_path))

    assert result.exit_code == 0, result.output
    assert writes(fake) == []
    plan = [line.strip() for line in result.output.splitlines() if line.startswith("  ")]
    assert [line[:2] for line in plan] == ["~ ", "- ", "+ ", "~ "]
    assert plan[0].startswith("~ turn on Account Center")
    assert plan[2].startswith(f"+ create Hugging Face connector {DEDICATED_ID} again as the standard OIDC connector")
    assert plan[3] == ('~ sign-in experience: put "huggingface" back in social sign-in after the switch '
                       "(position 1 of 2, as before)")
    assert "Dry run: nothing was changed" in result.output


def test_token_storage_puts_the_dedicated_connector_back_when_its_replacement_fails(
    fake: FakeLogto, tmp_path: Path
) -> None:
    env = dedicated_tenant(fake, tmp_path)
    before = copy.deepcopy(fake.connectors)
    fake.fail_next[("POST", "/api/connectors")] = (422, body("error-422-multiple-target"))

    result = run([*STORAGE_ARGS, "--yes"], env)

    assert result.exit_code == 1
    assert "422 connector.multiple_target_with_same_platform" in result.stderr
    restored_line = f"↩ put the dedicated Hugging Face connector {DEDICATED_ID} and the sign-in experience back"
    assert restored_line in result.output
    assert writes(fake)[-2:] == [
        ("POST", "/api/connectors", {"id": DEDICATED_ID, "connectorId": "huggingface-universal",
                                     "config": before[1]["config"], "syncProfile": False}),
        ("PATCH", "/api/sign-in-exp", {"socialSignInConnectorTargets": ["huggingface", "github"]}),
    ]
    restored = fake.connectors[-1]
    assert (restored["id"], restored["connectorId"], restored["config"]) == (DEDICATED_ID, "huggingface-universal",
                                                                             before[1]["config"])
    assert fake.experience["socialSignInConnectorTargets"] == ["huggingface", "github"]


def test_token_storage_on_a_fresh_tenant_creates_the_oidc_connector(fake: FakeLogto, tmp_path: Path) -> None:
    fake.experience["socialSignInConnectorTargets"] = []
    args = [*STORAGE_ARGS, "--hf-client-id", HF_ID, "--hf-client-secret", HF_SECRET,
            "--hf-scopes", "read-repos inference-api"]

    result = run(args, make_env(fake, tmp_path))

    assert result.exit_code == 0, result.output
    (created,) = [call for call in writes(fake) if call[1] == "/api/connectors"]
    expected = copy.deepcopy(OIDC_REQUEST)
    scope = "openid profile email read-repos inference-api"
    expected["config"].update(clientId=HF_ID, clientSecret=HF_SECRET, scope=scope)
    assert created == ("POST", "/api/connectors", expected)  # no id: Logto picks one
    new_id = recorded("connector-oidc-created")["body"]["id"]
    assert f"Hugging Face OAuth app redirect URI: {fake.endpoint}/callback/{new_id}\n" in result.output
    assert "Delete the dedicated" not in result.output and HF_SECRET not in result.output


def test_token_storage_turns_storage_on_for_an_existing_oidc_connector(fake: FakeLogto, tmp_path: Path) -> None:
    connector = body("connector-oidc-created")
    connector.update(enableTokenStorage=False, config={**connector["config"], "scope": "openid profile email"})
    fake.connectors = [connector]
    env = make_env(fake, tmp_path)

    fake.secret_vault = False
    refused = run(STORAGE_ARGS, env)
    assert refused.exit_code == 1 and "422 request.feature_not_supported" in refused.stderr
    assert "SECRET_VAULT_KEK" in refused.stderr and connector["enableTokenStorage"] is False

    fake.secret_vault = True
    fake.server.clear_log()
    result = run(STORAGE_ARGS, env)
    assert result.exit_code == 0, result.output
    config = {**connector["config"], "scope": "openid profile email read-repos"}
    assert writes(fake) == [
        ("PATCH", f"/api/connectors/{connector['id']}", {"config": config, "enableTokenStorage": True}),
    ]
    scopes = '"openid profile email" → "openid profile email read-repos"'
    change = f"Hugging Face connector {connector['id']}: scope {scopes}"
    assert f"~ {change}, token storage on" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [(["setup", "--hf-scopes", "read memberships!"], "'memberships!' is not a Hugging Face scope"),
     ([*STORAGE_ARGS, "--hf-scopes", "read repos!"], "'repos!' is not a Hugging Face scope")],
)
def test_hf_scopes_mistakes_exit_2(fake: FakeLogto, tmp_path: Path, args: list[str], message: str) -> None:
    result = run(args, dedicated_tenant(fake, tmp_path))

    assert result.exit_code == 2 and message in result.stderr
    assert writes(fake) == []


def test_hf_scopes_add_read_memberships_to_the_dedicated_connector(fake: FakeLogto, tmp_path: Path) -> None:
    env = dedicated_tenant(fake, tmp_path)
    connector = next(c for c in fake.connectors if c["id"] == DEDICATED_ID)
    old_scope = connector["config"]["scope"]

    result = run(["setup", "--hf-scopes", "read-memberships"], env)

    assert result.exit_code == 0, result.output
    scope = f"{old_scope} read-memberships"
    assert writes(fake) == [
        ("PATCH", f"/api/connectors/{DEDICATED_ID}", {"config": {**connector["config"], "scope": scope}}),
    ]
    assert f'scope "{old_scope}" → "{scope}"' in result.output
    assert "Hugging Face OAuth app scopes: profile email read-memberships (the OAuth app must allow them too" in result.output
    again = run(["setup", "--hf-scopes", "read-memberships"], env)
    assert again.exit_code == 0 and "Nothing to change" in again.output


def test_hf_scopes_add_read_memberships_with_token_storage(fake: FakeLogto, tmp_path: Path) -> None:
    env = token_storage_tenant(fake, tmp_path)
    connector = fake.connectors[0]

    result = run([*STORAGE_ARGS, "--hf-scopes", "read-repos read-memberships"], env)

    assert result.exit_code == 0, result.output
    assert writes(fake)[-1][0:2] == ("PATCH", f"/api/connectors/{connector['id']}")
    assert writes(fake)[-1][2]["config"]["scope"].split()[-1] == "read-memberships"


def token_storage_tenant(fake: FakeLogto, tmp_path: Path, **settings: str | None) -> dict[str, str | None]:
    env = healthy_tenant(fake, tmp_path, **settings)
    fake.connectors = [body("connector-oidc-created")]
    return env


def test_doctor_reports_token_storage_on(fake: FakeLogto, tmp_path: Path) -> None:
    result = run(["doctor"], token_storage_tenant(fake, tmp_path))

    assert result.exit_code == 0, result.output
    assert failures(result.output) == []
    assert ('✓ Hugging Face token storage is on (connector o2k8cub4cs3b, scope "openid profile email read-repos")'
            in result.output)
    assert "✓ Account Center is on" in result.output and "✓ LOGTO_SCOPES includes identities" in result.output
    assert {method for method, _, _ in fake.api_calls()} == {"GET"}


def test_doctor_reports_what_stops_token_storage_with_fixes(fake: FakeLogto, tmp_path: Path) -> None:
    env = token_storage_tenant(fake, tmp_path, LOGTO_SCOPES="email")
    fake.connectors[0]["enableTokenStorage"] = False
    fake.account_center["enabled"] = False

    result = run(["doctor"], env)

    assert result.exit_code == 1
    found = failures(result.output)
    assert [line for line, _ in found] == [
        "✗ Hugging Face connector o2k8cub4cs3b has token storage off",
        "✗ Account Center is off: Logto refuses every user's Hugging Face token (account_center.not_enabled)",
        "✗ LOGTO_SCOPES=email lacks identities: Logto refuses the token (auth.forbidden)",
    ]
    assert all("--hf-token-storage" in fix for _, fix in found[:2]) and "LOGTO_SCOPES" in found[2][1]


def test_doctor_warns_that_the_dedicated_connector_stores_no_tokens(fake: FakeLogto, tmp_path: Path) -> None:
    result = run(["doctor"], healthy_tenant(fake, tmp_path))

    assert result.exit_code == 0, result.output
    assert "! Hugging Face token storage is off: the dedicated connector cannot store" in result.output
    assert "fix: run: flask --app flask_app logto setup --hf-token-storage" in result.output


# Hugging Face organisations: the scope read-memberships, and token storage to keep them current


def test_doctor_says_nothing_of_organisations_a_site_does_not_use(fake: FakeLogto, tmp_path: Path) -> None:
    result = run(["doctor"], healthy_tenant(fake, tmp_path))
    assert result.exit_code == 0 and "read-memberships" not in result.output


def test_doctor_warns_when_allowed_orgs_lack_the_scope_and_token_storage(fake: FakeLogto, tmp_path: Path) -> None:
    result = run(["doctor"], healthy_tenant(fake, tmp_path, HF_ALLOWED_ORGS="acme,beta-lab"))

    assert result.exit_code == 0, result.output  # warnings, not failures
    lines = result.output.splitlines()
    scope = next(i for i, line in enumerate(lines) if line.startswith("! the site uses Hugging Face organisations"))
    assert "HF_ALLOWED_ORGS=acme,beta-lab" in lines[scope] and "lacks read-memberships" in lines[scope]
    assert lines[scope + 1] == (
        "    fix: run: flask --app flask_app logto setup --hf-scopes read-memberships, and allow read-memberships in "
        "your Hugging Face OAuth app too (https://huggingface.co/settings/connected-applications)"
    )
    assert any(line.startswith("! the site uses Hugging Face organisations") and "without token storage" in line
               for line in lines)


def test_doctor_approves_organisations_with_the_scope_and_token_storage(fake: FakeLogto, tmp_path: Path) -> None:
    env = token_storage_tenant(fake, tmp_path, HF_ALLOWED_ORGS="acme")
    connector = fake.connectors[0]
    connector["config"] = {**connector["config"], "scope": "openid profile email read-repos read-memberships"}
    lines: list[str] = []
    assert run_doctor({k: v for k, v in env.items() if v is not None}, lines.append, org_pages=["admin (acme, admin)"])
    assert "✓ the Hugging Face connector asks for read-memberships (used by HF_ALLOWED_ORGS=acme; hf_org_required on "\
        "admin (acme, admin))" in lines
    assert not [line for line in lines if "organisations" in line and line.startswith("!")]


def test_doctor_finds_the_pages_hf_org_required_guards(fake: FakeLogto, tmp_path: Path) -> None:
    app = Flask("guarded")

    @app.get("/admin")
    @hf_org_required("acme", role="admin")
    def admin() -> str:
        return "admin"

    assert hf_org_pages(app) == ["admin (acme, admin)"]
    lines: list[str] = []
    env = healthy_tenant(fake, tmp_path)
    run_doctor({k: v for k, v in env.items() if v is not None}, lines.append, org_pages=hf_org_pages(app))
    assert any("hf_org_required on admin (acme, admin)" in line and "lacks read-memberships" in line for line in lines)


# Back-channel logout registration (one URI per app; the PATCH replaces oidcClientMetadata as a whole)


@pytest.mark.parametrize(
    ("registered", "base_url", "sent", "note"),
    [
        ({}, "https://me-site.hf.space", "https://me-site.hf.space/backchannel-logout",
         "back-channel logout URI https://me-site.hf.space/backchannel-logout"),
        ({"backchannelLogoutUri": "https://me-site.hf.space/backchannel-logout", "backchannelLogoutSessionRequired": False},
         "https://me-site.hf.space", "https://me-site.hf.space/backchannel-logout",
         "back-channel logout: session required (sid in tokens)"),
        ({"backchannelLogoutUri": "https://old.example/backchannel-logout", "backchannelLogoutSessionRequired": True},
         "https://me-site.hf.space", "https://me-site.hf.space/backchannel-logout",
         "(replacing https://old.example/backchannel-logout: Logto keeps one per app)"),
        ({"backchannelLogoutUri": "https://me-site.hf.space/backchannel-logout", "backchannelLogoutSessionRequired": True},
         "http://localhost:3000", "https://me-site.hf.space/backchannel-logout", ""),  # a public URI stays
    ],
)
def test_setup_registers_the_backchannel_logout_uri_with_the_other_uris(
    fake: FakeLogto, tmp_path: Path, registered: dict, base_url: str, sent: str, note: str
) -> None:
    uris = {"redirectUris": [f"{base_url}/callback"], "postLogoutRedirectUris": [f"{base_url}/"]}
    app = fake.add_recorded_app(oidcClientMetadata={**uris, "extraKey": "kept", **registered})
    fake.add_recorded_connector()
    env = make_env(fake, tmp_path, LOGTO_APP_ID=app["id"], APP_BASE_URL=base_url, FLASK_SECRET_KEY=STRONG_KEY)

    result = run(SETUP_ARGS, env)

    assert result.exit_code == 0, result.output
    patches = [call for call in fake.api_calls() if call[0] == "PATCH" and call[1].startswith("/api/applications/")]
    if not note:
        assert patches == [] and fake.apps[app["id"]]["oidcClientMetadata"]["backchannelLogoutUri"] == sent
        return
    (_, _, patch_body), = patches
    assert patch_body["oidcClientMetadata"] == {
        **uris, "extraKey": "kept", "backchannelLogoutUri": sent, "backchannelLogoutSessionRequired": True,
    }
    assert note in result.output
    fake.server.clear_log()
    assert "Nothing to change" in run(SETUP_ARGS, env).output


@pytest.mark.parametrize(
    ("metadata", "base_url", "status", "words"),
    [
        ({}, "https://me-site.hf.space", "warn", "no back-channel logout URI"),
        ({"backchannelLogoutUri": "https://other.example/backchannel-logout"}, "https://me-site.hf.space", "warn",
         "not this site's https://me-site.hf.space/backchannel-logout"),
        ({"backchannelLogoutUri": "https://me-site.hf.space/backchannel-logout", "backchannelLogoutSessionRequired": False},
         "https://me-site.hf.space", "warn", "backchannelLogoutSessionRequired is off"),
        (set_up_metadata(), "http://localhost:3000", "warn", "is not publicly reachable"),
        (set_up_metadata("http://127.0.0.1:3000"), "http://127.0.0.1:3000", "warn", "is not publicly reachable"),
        (set_up_metadata("https://10.1.2.3"), "https://10.1.2.3", "warn", "OIDC_PROVIDER_SSRF_PROTECTION_DISABLED"),
        (set_up_metadata("https://me-site.hf.space"), "https://me-site.hf.space", "ok", "is registered (session required)"),
    ],
)
def test_doctor_checks_the_backchannel_logout_uri(
    fake: FakeLogto, tmp_path: Path, metadata: dict, base_url: str, status: str, words: str
) -> None:
    env = read_admin_env({"LOGTO_ENDPOINT": fake.endpoint, "APP_BASE_URL": base_url, "APP_DATA_DIR": str(tmp_path)})
    check = check_backchannel_logout(env, metadata)

    assert check.status == status and words in "\n".join(check.lines())
    if status == "warn":
        assert check.fix


def test_doctor_shows_the_backchannel_logout_check(fake: FakeLogto, tmp_path: Path) -> None:
    result = run(["doctor"], healthy_tenant(fake, tmp_path))

    assert result.exit_code == 0, result.output  # a warning, not a failure
    assert "! back-channel logout URI http://localhost:3000/backchannel-logout is not publicly reachable" in result.output
