"""The site's settings: read once from the environment (or `.env`) into the keys of `app.config`.

One reader for the site and for the `flask logto` commands. It applies the site's defaults: the local
identity provider when `LOGTO_ENDPOINT` is empty, `https://$SPACE_HOST` on a Space, a generated secret
key for local use. The sign-in unit then checks its own keys (logto_auth/config.py), by the same rules
for the site and the commands. A mistake is one line naming the variable and the fix (`ConfigError`).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any, Mapping

from logto_auth.config import (
    DEFAULT_BASE_URL, MAKE_SECRET_HINT, ConfigError, check_base_url, is_loopback_url, secret_key_problem, whole_number,
)

DEFAULT_APP_NAME = "Flask × Hugging Face"
DEFAULT_DEV_PROVIDER_PORT = 3001
DEV_APP_ID = "local-dev-site"
PASSED_THROUGH = (  # read as they are; the unit or the commands check them
    "LOGTO_APP_ID", "LOGTO_APP_SECRET", "LOGTO_SCOPES", "LOGTO_TIMEOUT", "SESSION_LIFETIME",
    "LOGTO_M2M_APP_ID", "LOGTO_M2M_APP_SECRET", "LOGTO_MANAGEMENT_RESOURCE", "HF_CLIENT_ID", "HF_CLIENT_SECRET",
)


def site_config(env: Mapping[str, str]) -> dict[str, Any]:
    """The `app.config` values for the site from an environment mapping; `ConfigError` on the first mistake."""

    def get(name: str, default: str = "") -> str:  # set-but-empty means the default, as unset does
        return env.get(name, "").strip() or default

    space_host = get("SPACE_HOST").split(",")[0].strip()  # set by Hugging Face Spaces
    base_url = check_base_url(get("APP_BASE_URL", f"https://{space_host}" if space_host else DEFAULT_BASE_URL))
    data_dir = Path(get("APP_DATA_DIR", "instance")).resolve()
    config: dict[str, Any] = {name: get(name) for name in PASSED_THROUGH}
    dev_port = whole_number(env, "DEVIDP_PORT", DEFAULT_DEV_PROVIDER_PORT, minimum=1)
    if dev_port > 65535:
        raise ConfigError(f"DEVIDP_PORT={dev_port} is not a port (1 to 65535)")
    endpoint = get("LOGTO_ENDPOINT")
    if not endpoint and (config["LOGTO_APP_ID"] or config["LOGTO_APP_SECRET"]):
        raise ConfigError(
            "LOGTO_APP_ID/LOGTO_APP_SECRET are set but LOGTO_ENDPOINT is not: set LOGTO_ENDPOINT "
            "(e.g. https://abc123.logto.app) or remove both to use the local dev provider"
        )
    uses_dev_provider = not endpoint
    if uses_dev_provider:
        endpoint = f"http://localhost:{dev_port}"
        config.update(LOGTO_APP_ID=DEV_APP_ID, LOGTO_APP_SECRET=dev_client_secret(data_dir))
    direct_sign_in = env.get("LOGTO_DIRECT_SIGN_IN")  # set-but-empty: Logto's own sign-in page
    config.update(
        SECRET_KEY=secret_key(get("FLASK_SECRET_KEY"), base_url, data_dir),
        LOGTO_ENDPOINT=endpoint,
        LOGTO_DIRECT_SIGN_IN=None if direct_sign_in is None else direct_sign_in.strip(),
        APP_BASE_URL=base_url,
        APP_DATA_DIR=str(data_dir),
        APP_NAME=get("APP_NAME", DEFAULT_APP_NAME)[:80],
        DEVIDP_PORT=dev_port,
        USES_DEV_PROVIDER=uses_dev_provider,
        ON_SPACE=bool(get("SPACE_ID")),
    )
    return config


def secret_key(key: str, base_url: str, data_dir: Path) -> str:
    """The key to sign sessions with. A key that is set must be strong; only local development may leave it unset."""
    problem = secret_key_problem(key)
    if problem is None:
        return key
    if key or not is_loopback_url(base_url):
        raise ConfigError(f"FLASK_SECRET_KEY {problem}: {MAKE_SECRET_HINT}")
    # Local development: keep a generated key so sessions survive restarts.
    return _read_or_create_secret(data_dir / "secret_key")


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
