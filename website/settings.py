"""The site's settings: read once from the environment (or `.env`) into the keys of `app.config`.

One reader for the site and for the `flask logto` commands. It applies the site's defaults: the local
identity provider when `LOGTO_ENDPOINT` is empty, `https://$SPACE_HOST` on a Space, a generated secret
key for local use. The sign-in unit then checks its own keys (flask_logto/config.py), by the same rules
for the site and the commands. A mistake is one line naming the variable and the fix (`ConfigError`).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask_logto.config import (
    DEFAULT_BASE_URL,
    DEFAULT_HF_ENDPOINT,
    DEFAULT_SESSION_LIFETIME,
    MAKE_SECRET_HINT,
    MIN_SESSION_LIFETIME,
    check_base_url,
    check_hf_endpoint,
    check_hf_orgs,
    check_redis_url,
    is_loopback_url,
    secret_key_problem,
    whole_number,
)
from flask_logto.errors import ConfigError

DEFAULT_APP_NAME = "Flask × Hugging Face"
DEFAULT_DEV_PROVIDER_PORT = 3001
DEV_APP_ID = "local-dev-site"
SPACE_SECRETS = ("LOGTO_ENDPOINT", "LOGTO_APP_ID", "LOGTO_APP_SECRET", "FLASK_SECRET_KEY")
SPACE_STORAGE = "/data"  # a Space's persistent storage, when turned on
SPACE_FRAME_ANCESTOR = "https://huggingface.co"
DEV_HUB_PATH = "/hub"  # the local provider's simulated Hub
DEFAULT_HF_TIMEOUT = 10
HSTS = "max-age=63072000"  # two years, for https sites (not includeSubDomains: other hosts are not the site's to bind)
PASSED_THROUGH = (  # read as they are; the unit, the site's modules or the commands check them
    "LOGTO_APP_ID", "LOGTO_APP_SECRET", "LOGTO_SCOPES", "LOGTO_TIMEOUT",
    "LOGTO_M2M_APP_ID", "LOGTO_M2M_APP_SECRET", "LOGTO_MANAGEMENT_RESOURCE", "HF_CLIENT_ID", "HF_CLIENT_SECRET",
    # rate limits (flask_logto/rate_limits.py; RATELIMIT_ENABLED and RATELIMIT_STORAGE_URI are Flask-Limiter's)
    "RATELIMIT_ENABLED", "RATELIMIT_STORAGE_URI", "RATELIMIT_SIGN_IN", "RATELIMIT_CALLBACK", "RATELIMIT_SIGN_OUT",
    "RATELIMIT_BACKCHANNEL_LOGOUT", "RATELIMIT_LANGUAGE", "RATELIMIT_NOTES", "RATELIMIT_HUB",
)
SPACE_PROXY_HOPS = 1  # a Space is reached through one proxy of Hugging Face's


def site_config(env: Mapping[str, str]) -> dict[str, Any]:
    """The `app.config` values for the site from an environment mapping; `ConfigError` on the first mistake."""

    def get(name: str, default: str = "") -> str:  # set-but-empty means the default, as unset does
        return env.get(name, "").strip() or default

    space_host = space_host_of(env)
    on_space = bool(space_host or get("SPACE_ID"))
    base_url = check_base_url(
        get("APP_BASE_URL", f"https://{space_host}" if space_host else DEFAULT_BASE_URL), name="APP_BASE_URL"
    )
    data_dir = Path(get("APP_DATA_DIR", default_data_dir(on_space))).resolve()
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
    uses_dev_provider = not endpoint and not on_space  # a Space gets the setup page instead (see space_setup_needs)
    if uses_dev_provider:
        endpoint = f"http://localhost:{dev_port}"
        config.update(LOGTO_APP_ID=DEV_APP_ID, LOGTO_APP_SECRET=dev_client_secret(data_dir))
    direct_sign_in = env.get("LOGTO_DIRECT_SIGN_IN")  # set-but-empty: Logto's own sign-in page
    config.update(
        SECRET_KEY=secret_key(get("FLASK_SECRET_KEY"), base_url, data_dir),
        LOGTO_ENDPOINT=endpoint,
        LOGTO_DIRECT_SIGN_IN=None if direct_sign_in is None else direct_sign_in.strip(),
        # The unit's LOGTO_ settings under the site's environment names (flask_logto/config.py RENAMED).
        LOGTO_BASE_URL=base_url,
        LOGTO_DATA_DIR=str(data_dir),
        LOGTO_SESSION_LIFETIME=whole_number(env, "SESSION_LIFETIME", DEFAULT_SESSION_LIFETIME, minimum=MIN_SESSION_LIFETIME),
        LOGTO_REDIS_URL=check_redis_url(get("SESSION_REDIS_URL"), name="SESSION_REDIS_URL"),
        APP_NAME=get("APP_NAME", DEFAULT_APP_NAME)[:80],
        DEVIDP_PORT=dev_port,
        USES_DEV_PROVIDER=uses_dev_provider,
        ON_SPACE=on_space,
        # Who may show the site in a frame: on a Space, the Space page on huggingface.co.
        FRAME_ANCESTORS=get("FRAME_ANCESTORS", SPACE_FRAME_ANCESTOR if on_space else "'none'"),
        DATABASE_URL=get("DATABASE_URL", f"sqlite:///{data_dir / 'notes.db'}"),  # checked by notes.py
        # The Hub the /hf page talks to; with the local provider, its simulated Hub.
        HF_ENDPOINT=check_hf_endpoint(
            get("HF_ENDPOINT", f"{endpoint}{DEV_HUB_PATH}" if uses_dev_provider else DEFAULT_HF_ENDPOINT), name="HF_ENDPOINT",
        ),
        # Only members of these Hugging Face organisations may sign in (comma-separated; empty: everyone).
        LOGTO_HF_ALLOWED_ORGS=check_hf_orgs(get("HF_ALLOWED_ORGS"), name="HF_ALLOWED_ORGS"),
        HF_TIMEOUT=whole_number(env, "HF_TIMEOUT", DEFAULT_HF_TIMEOUT, minimum=1),
        # How many proxies in front of the site to trust for X-Forwarded-For (the client address rate limits count).
        TRUSTED_PROXY_HOPS=whole_number(env, "TRUSTED_PROXY_HOPS", SPACE_PROXY_HOPS if on_space else 0, minimum=0),
    )
    config["LOGTO_HF_ENDPOINT"] = config["HF_ENDPOINT"]  # the unit asks the same Hub for the person's organisations
    return config


def space_host_of(env: Mapping[str, str]) -> str:
    """The Space's host name (`SPACE_HOST` may list several, the first is the Space's own), or ""."""
    return env.get("SPACE_HOST", "").split(",")[0].strip()


def default_data_dir(on_space: bool) -> str:
    """`/data` on a Space with persistent storage (it survives restarts), else `./instance`."""
    return SPACE_STORAGE if on_space and os.access(SPACE_STORAGE, os.W_OK) else "instance"


def space_setup_needs(env: Mapping[str, str]) -> list[str]:
    """On a Space, the secrets still to add before the site can run (each with why); [] when none or not on a Space."""
    if not (space_host_of(env) or env.get("SPACE_ID", "").strip()):
        return []
    needs = [f"{name} (missing)" for name in SPACE_SECRETS if not env.get(name, "").strip()]
    key = env.get("FLASK_SECRET_KEY", "").strip()
    problem = secret_key_problem(key) if key else None
    if problem:
        needs.append(f"FLASK_SECRET_KEY ({problem}: {MAKE_SECRET_HINT})")
    return needs


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
