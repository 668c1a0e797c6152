"""What `flask logto setup` and `flask logto doctor` share: their settings, Logto's Management API, one-line errors.

Here live: `AdminEnv`, the settings of those commands, built from the site's own reader (`settings.site_config`,
so that every default — SPACE_HOST, an empty APP_BASE_URL or APP_DATA_DIR — is the site's), the Management API
resource detection, a small client that gets a token by client credentials and calls `{endpoint}/api/...`,
`LogtoApiError`, whose text is the one readable line (status, Logto's `code` and `message`) shown instead of a
traceback, and `one_line_errors`, which turns a setting mistake or a Logto error into that line and an exit code.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import click
import requests

from flask_logto.config import (
    DEFAULT_DIRECT_SIGN_IN,
    DEFAULT_SCOPES,
    backchannel_logout_uri,
    check_endpoint,
    issuer,
    post_sign_out_uri,
    redirect_uri,
)
from flask_logto.errors import ConfigError
from website.settings import site_config

TIMEOUT = 10.0
HF_CONNECTOR_ID = "huggingface-universal"  # the dedicated connector's factory id (it cannot store tokens)
HF_APPS_PAGE = "https://huggingface.co/settings/connected-applications"  # where a Hugging Face OAuth app is set up
READ_MEMBERSHIPS = "read-memberships"  # the Hugging Face scope for the person's organisations
OIDC_CONNECTOR_ID = "oidc"  # the standard OIDC connector's factory id (token storage, with target huggingface)
HF_TARGET = "huggingface"
DEFAULT_RESOURCE = "https://default.logto.app/api"  # self-hosted Logto
M2M_ROLE = "Logto Management API access"
SECRET_VAULT_FIX = (
    "Logto's Secret Vault is off: start Logto (OSS) with SECRET_VAULT_KEK set to a base64 key (e.g. "
    "`openssl rand -base64 32`), then run the command again; on Logto Cloud it is always on"
)
_STAND_IN_KEY = secrets.token_hex(32)  # what the site reader is given instead of FLASK_SECRET_KEY

Json = Any


@dataclass(frozen=True)
class AdminEnv:
    """The settings of the Logto commands: the site's, as `settings.site_config` reads them (see `admin_env`)."""

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
    scopes: tuple[str, ...] = tuple(DEFAULT_SCOPES.split())  # LOGTO_SCOPES, as the site asks Logto for them
    hf_allowed_orgs: tuple[str, ...] = ()  # HF_ALLOWED_ORGS

    @property
    def redirect_uri(self) -> str:
        return redirect_uri(self.base_url)

    @property
    def post_sign_out_uri(self) -> str:
        return post_sign_out_uri(self.base_url)

    @property
    def backchannel_logout_uri(self) -> str:
        return backchannel_logout_uri(self.base_url)

    @property
    def issuer(self) -> str:
        return issuer(self.endpoint)

    @property
    def has_m2m(self) -> bool:
        return bool(self.m2m_app_id and self.m2m_app_secret)

    def connector_callback(self, connector_id: str) -> str:
        """The redirect URI to register on the Hugging Face OAuth app."""
        return f"{self.endpoint}/callback/{connector_id}"


def read_site_config(environ: Mapping[str, str]) -> dict[str, Any]:
    """The site's settings (`settings.site_config`), or `ConfigError` with the line the site would stop with.

    FLASK_SECRET_KEY is set aside: the commands sign no sessions, so a missing or weak key must not stop setup,
    and doctor checks it with the site's own `settings.secret_key` (so it is reported next to the other checks).
    """
    try:
        return site_config({**environ, "FLASK_SECRET_KEY": _STAND_IN_KEY})
    except OSError as exc:  # the site keeps generated secrets under APP_DATA_DIR
        raise ConfigError(
            f"APP_DATA_DIR: cannot write {exc.filename} ({exc.strerror}): set APP_DATA_DIR to a directory "
            "this user can write"
        ) from None


def admin_env(config: Mapping[str, Any], environ: Mapping[str, str]) -> AdminEnv:
    """`AdminEnv` from the site's settings; `ConfigError` when LOGTO_ENDPOINT is missing or malformed."""
    if config["USES_DEV_PROVIDER"]:
        raise ConfigError(
            "LOGTO_ENDPOINT is missing: set it to your Logto endpoint (e.g. https://abc123.logto.app) in .env"
        )
    endpoint = check_endpoint(config["LOGTO_ENDPOINT"])
    direct_sign_in = config["LOGTO_DIRECT_SIGN_IN"]  # None: unset; "": Logto's own sign-in page
    return AdminEnv(
        endpoint=endpoint,
        app_id=config["LOGTO_APP_ID"],
        app_secret=config["LOGTO_APP_SECRET"],
        m2m_app_id=config["LOGTO_M2M_APP_ID"],
        m2m_app_secret=config["LOGTO_M2M_APP_SECRET"],
        resource=management_resource(endpoint, config["LOGTO_MANAGEMENT_RESOURCE"]),
        base_url=config["LOGTO_BASE_URL"],
        secret_key=environ.get("FLASK_SECRET_KEY", "").strip(),  # as the site reads it; see read_site_config
        data_dir=Path(config["LOGTO_DATA_DIR"]),
        direct_sign_in=DEFAULT_DIRECT_SIGN_IN if direct_sign_in is None else direct_sign_in,
        scopes=tuple((config["LOGTO_SCOPES"] or DEFAULT_SCOPES).split()),
        hf_allowed_orgs=tuple(config["LOGTO_HF_ALLOWED_ORGS"]),
    )


def read_admin_env(environ: Mapping[str, str]) -> AdminEnv:
    """`AdminEnv` from an environment mapping (Flask's CLI has loaded `.env` into `os.environ`); `ConfigError`."""
    return admin_env(read_site_config(environ), environ)


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
        "request.feature_not_supported": SECRET_VAULT_FIX,
        "connector.token_storage_not_supported": (
            "the dedicated Hugging Face connector cannot store tokens: run flask --app flask_app logto setup "
            "--hf-token-storage (it switches to the standard OIDC connector)"
        ),
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

    def account_center(self) -> dict:
        return self.get("/api/account-center")


def _json(what: str, response: requests.Response) -> Json:
    try:
        return response.json()
    except ValueError:
        fix = "check that LOGTO_ENDPOINT is your Logto endpoint"
        raise LogtoApiError(what, response.status_code, "not_json", "the reply is not JSON", fix) from None


def find_hf_connector(connectors: list[dict]) -> dict | None:
    """The Hugging Face connector: the dedicated one, or the standard OIDC one with target `huggingface`."""
    return next(
        (c for c in connectors if c.get("target") == HF_TARGET or c.get("connectorId") == HF_CONNECTOR_ID), None
    )


def stores_tokens(connector: dict) -> bool:
    """Whether Logto keeps the Hugging Face tokens this connector receives (its Secret Vault)."""
    return connector.get("connectorId") != HF_CONNECTOR_ID and connector.get("enableTokenStorage") is True


def current_secret(secrets: list[dict], now_ms: int) -> str:
    """The value of the app's first secret that has not expired ('' if none)."""
    for secret in secrets:
        expires = secret.get("expiresAt")
        if expires is None or expires > now_ms:
            return str(secret.get("value") or "")
    return ""


def fail(message: str, code: int) -> NoReturn:
    click.secho(f"Error: {message}", fg="red", err=True)
    raise click.exceptions.Exit(code)


def one_line_errors(command: Callable[..., None]) -> Callable[..., None]:
    """A setting mistake exits 2, a Logto error exits 1; each as one red line on stderr, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        try:
            command(*args, **kwargs)
        except ConfigError as exc:
            fail(str(exc), 2)
        except LogtoApiError as exc:
            fail(exc.line(), 1)
        except (AttributeError, TypeError, KeyError, ValueError) as exc:
            fail(f"Logto answered in a shape this command does not understand ({type(exc).__name__}): "
                 "is LOGTO_ENDPOINT a Logto server?", 1)

    return wrapper
