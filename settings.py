"""Site settings: read once from the environment (or `.env`), checked, and frozen.

Every mistake a person can make in `.env` is reported as one line that names the
variable and the fix (`ConfigError`), before the site serves anything.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

DEFAULT_BASE_URL = "http://localhost:3000"
DEFAULT_SCOPES = "email identities"
DEFAULT_DIRECT_SIGN_IN = "social:huggingface"
DEFAULT_DEV_PROVIDER_PORT = 3001
DEFAULT_SESSION_LIFETIME = timedelta(days=14)  # Logto's refresh-token lifetime
DEV_APP_ID = "local-dev-site"
MIN_SECRET_KEY_LENGTH = 32
MIN_SECRET_KEY_DISTINCT = 8
MAKE_SECRET_HINT = "make one with: python -c 'import secrets; print(secrets.token_hex(32))'"


class ConfigError(Exception):
    """A setting is missing or wrong; the message is one line naming the variable and the fix."""


@dataclass(frozen=True)
class Settings:
    logto_endpoint: str
    logto_app_id: str
    logto_app_secret: str
    app_base_url: str
    secret_key: str
    scopes: tuple[str, ...]
    direct_sign_in: str
    data_dir: Path
    session_lifetime: timedelta
    logto_timeout: float
    uses_dev_provider: bool
    dev_provider_port: int
    on_space: bool

    @property
    def redirect_uri(self) -> str:
        return f"{self.app_base_url}/callback"

    @property
    def post_sign_out_uri(self) -> str:
        return f"{self.app_base_url}/"

    @property
    def is_https(self) -> bool:
        return self.app_base_url.startswith("https://")

    @property
    def is_local(self) -> bool:
        return is_loopback_url(self.app_base_url)

    @property
    def issuer(self) -> str:
        return f"{self.logto_endpoint}/oidc"


def is_loopback_url(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(env: Mapping[str, str]) -> Settings:
    """Build `Settings` from an environment mapping; raise `ConfigError` on the first mistake."""

    def get(name: str, default: str = "") -> str:
        return env.get(name, "").strip() or default

    space_host = get("SPACE_HOST")  # set by Hugging Face Spaces
    base_url = check_base_url(get("APP_BASE_URL", f"https://{space_host}" if space_host else DEFAULT_BASE_URL))
    data_dir = Path(get("APP_DATA_DIR", "instance")).resolve()
    dev_port = _int(get, "DEVIDP_PORT", DEFAULT_DEV_PROVIDER_PORT, minimum=1)
    endpoint = get("LOGTO_ENDPOINT")
    app_id, app_secret = get("LOGTO_APP_ID"), get("LOGTO_APP_SECRET")

    if endpoint:
        endpoint = check_endpoint(endpoint)
        if not app_id:
            raise ConfigError(
                "LOGTO_APP_ID is missing while LOGTO_ENDPOINT is set: copy the App ID of your "
                "Traditional web app from the Logto console (Applications)"
            )
        if not app_secret:
            raise ConfigError(
                "LOGTO_APP_SECRET is missing while LOGTO_ENDPOINT is set: copy an App secret of "
                "your Traditional web app from the Logto console (Applications)"
            )
    else:
        if app_id or app_secret:
            raise ConfigError(
                "LOGTO_APP_ID/LOGTO_APP_SECRET are set but LOGTO_ENDPOINT is not: set LOGTO_ENDPOINT "
                "(e.g. https://abc123.logto.app) or remove both to use the local dev provider"
            )
        endpoint = f"http://localhost:{dev_port}"
        app_id, app_secret = DEV_APP_ID, dev_client_secret(data_dir)

    return Settings(
        logto_endpoint=endpoint,
        logto_app_id=app_id,
        logto_app_secret=app_secret,
        app_base_url=base_url,
        secret_key=check_secret_key(get("FLASK_SECRET_KEY"), base_url, data_dir),
        scopes=tuple(get("LOGTO_SCOPES", DEFAULT_SCOPES).split()),
        direct_sign_in=env.get("LOGTO_DIRECT_SIGN_IN", DEFAULT_DIRECT_SIGN_IN).strip(),  # empty: Logto's page
        data_dir=data_dir,
        session_lifetime=timedelta(
            seconds=_int(get, "SESSION_LIFETIME", int(DEFAULT_SESSION_LIFETIME.total_seconds()), minimum=60)
        ),
        logto_timeout=float(_int(get, "LOGTO_TIMEOUT", 10, minimum=1)),
        uses_dev_provider=not get("LOGTO_ENDPOINT"),
        dev_provider_port=dev_port,
        on_space=bool(get("SPACE_ID")),
    )


def check_base_url(url: str) -> str:
    parts = urlsplit(url)
    try:
        parts.port
    except ValueError:
        raise ConfigError(f"APP_BASE_URL={url!r} has a bad port: use e.g. http://localhost:3000") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"APP_BASE_URL={url!r} is not a URL: use e.g. http://localhost:3000")
    if parts.path.rstrip("/") or parts.query or parts.fragment:
        raise ConfigError(
            f"APP_BASE_URL={url!r} has a path: give only scheme, host and port (e.g. https://me-site.hf.space)"
        )
    if parts.scheme == "http" and not is_loopback_url(url):
        raise ConfigError(f"APP_BASE_URL={url!r} must use https unless the host is localhost or 127.0.0.1")
    return f"{parts.scheme}://{parts.netloc}"


def check_endpoint(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"LOGTO_ENDPOINT={url!r} is not a URL: use e.g. https://abc123.logto.app")
    path = parts.path.rstrip("/")
    if path.endswith("/oidc"):
        raise ConfigError(
            f"LOGTO_ENDPOINT={url!r} ends with /oidc: drop it (use {parts.scheme}://{parts.netloc}{path[:-5]})"
        )
    if parts.query or parts.fragment:
        raise ConfigError(f"LOGTO_ENDPOINT={url!r} has a query or fragment: use only the base URL")
    if parts.scheme == "http" and not is_loopback_url(url):
        raise ConfigError(f"LOGTO_ENDPOINT={url!r} must use https unless the host is localhost or 127.0.0.1")
    return f"{parts.scheme}://{parts.netloc}{path}"


def check_secret_key(key: str, base_url: str, data_dir: Path) -> str:
    """The key to sign sessions with. A key that is set must be strong; only local development may leave it unset."""
    problem = secret_key_problem(key)
    if problem is None:
        return key
    if key or not is_loopback_url(base_url):
        raise ConfigError(f"FLASK_SECRET_KEY {problem}: {MAKE_SECRET_HINT}")
    # Local development: keep a generated key so sessions survive restarts.
    return _read_or_create_secret(data_dir / "secret_key")


def secret_key_problem(key: str) -> str | None:
    if not key:
        return "is missing"
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"is too short ({len(key)} characters, need {MIN_SECRET_KEY_LENGTH})"
    if len(set(key)) < MIN_SECRET_KEY_DISTINCT:
        return f"looks weak (only {len(set(key))} different characters)"
    return None


def dev_client_secret(data_dir: Path) -> str:
    """The client secret shared by the site and the local dev provider (kept under APP_DATA_DIR)."""
    return _read_or_create_secret(data_dir / "devidp" / "client_secret")


def _read_or_create_secret(path: Path) -> str:
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_hex(32))
    return path.read_text().strip()


def _int(get, name: str, default: int, *, minimum: int) -> int:
    raw = get(name, str(default))
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is too small (minimum {minimum})")
    return value
