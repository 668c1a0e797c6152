"""Logto's Management API, as `flask logto setup` and `flask logto doctor` use it.

Here live: the settings those commands read straight from the environment (`AdminEnv`; they run even when
the site's own settings are incomplete), the Management API resource detection, a small client that gets
a token by client credentials and calls `{endpoint}/api/...`, and `LogtoApiError`, whose text is the one
readable line (status, Logto's `code` and `message`) shown instead of a traceback.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping
from urllib.parse import urlsplit

import requests

from settings import DEFAULT_BASE_URL, DEFAULT_DIRECT_SIGN_IN, ConfigError, check_endpoint

TIMEOUT = 10.0
HF_CONNECTOR_ID = "huggingface-universal"  # the connector factory's id
HF_TARGET = "huggingface"
DEFAULT_RESOURCE = "https://default.logto.app/api"  # self-hosted Logto
M2M_ROLE = "Logto Management API access"

Json = Any


@dataclass(frozen=True)
class AdminEnv:
    """What the Logto commands read from the environment (Flask's CLI has loaded `.env` into it)."""

    endpoint: str
    app_id: str
    app_secret: str
    m2m_app_id: str
    m2m_app_secret: str
    resource: str
    base_url: str
    secret_key: str
    data_dir: Path
    direct_sign_in: str
    hf_client_id: str
    hf_client_secret: str

    @property
    def redirect_uri(self) -> str:
        return f"{self.base_url}/callback"

    @property
    def post_sign_out_uri(self) -> str:
        return f"{self.base_url}/"

    @property
    def issuer(self) -> str:
        return f"{self.endpoint}/oidc"

    @property
    def has_m2m(self) -> bool:
        return bool(self.m2m_app_id and self.m2m_app_secret)

    def connector_callback(self, connector_id: str) -> str:
        """The redirect URI to register on the Hugging Face OAuth app."""
        return f"{self.endpoint}/callback/{connector_id}"


def read_env(env: Mapping[str, str] = os.environ) -> AdminEnv:
    """Read the settings; raise `ConfigError` if LOGTO_ENDPOINT is missing or malformed."""

    def get(name: str, default: str = "") -> str:  # as in settings.py: set-but-empty stays empty
        return env.get(name, default).strip()

    raw_endpoint = get("LOGTO_ENDPOINT")
    if not raw_endpoint:
        raise ConfigError(
            "LOGTO_ENDPOINT is missing: set it to your Logto endpoint (e.g. https://abc123.logto.app) in .env"
        )
    endpoint = check_endpoint(raw_endpoint)
    return AdminEnv(
        endpoint=endpoint,
        app_id=get("LOGTO_APP_ID"),
        app_secret=get("LOGTO_APP_SECRET"),
        m2m_app_id=get("LOGTO_M2M_APP_ID"),
        m2m_app_secret=get("LOGTO_M2M_APP_SECRET"),
        resource=management_resource(endpoint, get("LOGTO_MANAGEMENT_RESOURCE")),
        base_url=get("APP_BASE_URL", DEFAULT_BASE_URL).rstrip("/"),
        secret_key=get("FLASK_SECRET_KEY"),
        data_dir=Path(get("APP_DATA_DIR", "instance")),
        direct_sign_in=get("LOGTO_DIRECT_SIGN_IN", DEFAULT_DIRECT_SIGN_IN),
        hf_client_id=get("HF_CLIENT_ID"),
        hf_client_secret=get("HF_CLIENT_SECRET"),
    )


def management_resource(endpoint: str, override: str = "") -> str:
    """The Management API resource indicator: Logto Cloud `https://<tenant>.logto.app/api`, else the default."""
    if override:
        return override.rstrip("/")
    host = urlsplit(endpoint).hostname or ""
    labels = host.split(".")
    if len(labels) == 3 and host.endswith(".logto.app"):
        return f"https://{labels[0]}.logto.app/api"
    return DEFAULT_RESOURCE


class LogtoApiError(Exception):
    """A failed call; `str()` is one line: what was called, the status, Logto's code and message, a fix."""

    def __init__(self, what: str, status: int | None, code: str, message: str, fix: str = "") -> None:
        self.what, self.status, self.code, self.message, self.fix = what, status, code, message, fix
        super().__init__(self.line())

    @property
    def summary(self) -> str:
        """The line without the fix."""
        head = " ".join(part for part in (str(self.status or ""), self.code) if part)
        return f"{self.what} failed: " + (f"{head}: {self.message}" if head else self.message)

    def line(self) -> str:
        return f"{self.summary} (fix: {self.fix})" if self.fix else self.summary


def error_from_response(what: str, response: requests.Response) -> LogtoApiError:
    """Turn a Logto error reply (`{code, message, error?, error_description?}`) into a `LogtoApiError`."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        code = str(body.get("code") or body.get("error") or "")
        message = str(body.get("message") or body.get("error_description") or "")
    else:
        code, message = "", " ".join(response.text.split())[:200] or response.reason or ""
    return LogtoApiError(what, response.status_code, code, message, _fix_for(code))


def _fix_for(code: str) -> str:
    fixes = {
        "oidc.invalid_client": "check LOGTO_M2M_APP_ID and LOGTO_M2M_APP_SECRET",
        "oidc.invalid_target": "set LOGTO_MANAGEMENT_RESOURCE (Logto Cloud: https://<tenant-id>.logto.app/api)",
        "oidc.invalid_scope": f"assign the role '{M2M_ROLE}' to the machine-to-machine app",
        "auth.unauthorized": f"check the M2M app's credentials and that it has the role '{M2M_ROLE}'",
        "auth.forbidden": f"assign the role '{M2M_ROLE}' to the machine-to-machine app",
    }
    return fixes.get(code, "")


def unreachable(what: str, url: str, exc: requests.RequestException) -> LogtoApiError:
    reason = type(exc).__name__
    return LogtoApiError(what, None, "unreachable", f"cannot reach {url} ({reason})", "check LOGTO_ENDPOINT")


class ManagementApi:
    """Calls `{endpoint}/api/...` with a token from the machine-to-machine app (fetched once, on first use)."""

    def __init__(self, env: AdminEnv) -> None:
        self.env = env
        self._token = ""

    def token(self) -> str:
        if not self._token:
            self._token = self._fetch_token()
        return self._token

    def _fetch_token(self) -> str:
        url = f"{self.env.endpoint}/oidc/token"
        form = {"grant_type": "client_credentials", "resource": self.env.resource, "scope": "all"}
        what = "Management API token (POST /oidc/token)"
        try:
            response = requests.post(
                url, data=form, auth=(self.env.m2m_app_id, self.env.m2m_app_secret), timeout=TIMEOUT
            )
        except requests.RequestException as exc:
            raise unreachable(what, url, exc) from None
        if not response.ok:
            raise error_from_response(what, response)
        reply = _json(what, response)
        if not isinstance(reply, dict) or not reply.get("access_token"):
            raise LogtoApiError(what, response.status_code, "no_token", "the reply has no access_token")
        return str(reply["access_token"])

    def call(self, method: str, path: str, body: Json = None) -> Json:
        """One Management API call; returns the decoded JSON reply (None for an empty one)."""
        url = f"{self.env.endpoint}{path}"
        headers = {"Authorization": f"Bearer {self.token()}"}
        try:
            response = requests.request(method, url, json=body, headers=headers, timeout=TIMEOUT)
        except requests.RequestException as exc:
            raise unreachable(f"{method} {path}", url, exc) from None
        if not response.ok:
            raise error_from_response(f"{method} {path}", response)
        return _json(f"{method} {path}", response) if response.content else None

    def get(self, path: str) -> Json:
        return self.call("GET", path)

    # The calls setup and doctor make.
    def application(self, app_id: str) -> dict:
        return self.get(f"/api/applications/{app_id}")

    def traditional_apps(self) -> list[dict]:
        return self.get("/api/applications?types=Traditional")

    def app_secrets(self, app_id: str) -> list[dict]:
        return self.get(f"/api/applications/{app_id}/secrets")

    def connectors(self) -> list[dict]:
        return self.get("/api/connectors")

    def sign_in_experience(self) -> dict:
        return self.get("/api/sign-in-exp")


def _json(what: str, response: requests.Response) -> Json:
    try:
        return response.json()
    except ValueError:
        fix = "check that LOGTO_ENDPOINT is your Logto endpoint"
        raise LogtoApiError(what, response.status_code, "not_json", "the reply is not JSON", fix) from None


def find_hf_connector(connectors: list[dict]) -> dict | None:
    return next((c for c in connectors if c.get("connectorId") == HF_CONNECTOR_ID), None)


def current_secret(secrets: list[dict], now_ms: int) -> str:
    """The value of the app's first secret that has not expired ('' if none)."""
    for secret in secrets:
        expires = secret.get("expiresAt")
        if expires is None or expires > now_ms:
            return str(secret.get("value") or "")
    return ""
