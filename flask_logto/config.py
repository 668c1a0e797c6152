"""The sign-in unit's settings: read from `app.config`, checked once at `init_app`, then frozen.

Every mistake is reported as one line that names the key and the fix (`ConfigError`). The site reads
the same keys from the environment (the site: website/settings.py), so a key's name is also its environment variable.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from flask_logto.errors import ConfigError

DEFAULT_BASE_URL = "http://localhost:3000"
DEFAULT_SCOPES = "email identities"
DEFAULT_DIRECT_SIGN_IN = "social:huggingface"
DEFAULT_SESSION_LIFETIME = int(timedelta(days=14).total_seconds())  # Logto's refresh-token lifetime
MIN_SESSION_LIFETIME = 60
DEFAULT_TIMEOUT = 10
DEFAULT_HF_ENDPOINT = "https://huggingface.co"
SIGN_IN_TIMEOUT_SECONDS = 15 * 60  # a sign-in in progress, and anything kept for a visitor not signed in, lives this long
MIN_SECRET_KEY_LENGTH = 32
MIN_SECRET_KEY_DISTINCT = 8
MAKE_SECRET_HINT = "make one with: python -c 'import secrets; print(secrets.token_hex(32))'"


@dataclass(frozen=True)
class AuthSettings:
    logto_endpoint: str
    logto_app_id: str
    logto_app_secret: str
    app_base_url: str
    scopes: tuple[str, ...]
    direct_sign_in: str
    logto_timeout: float
    session_lifetime: timedelta
    data_dir: Path
    session_redis_url: str = ""  # empty: sessions in files under data_dir
    hf_allowed_orgs: tuple[str, ...] = ()  # Hub names; empty: anyone may sign in
    hf_endpoint: str = DEFAULT_HF_ENDPOINT  # the Hub, asked `whoami-v2` for the person's organisations
    # Where the unit's routes are (with `url_prefix`): `LogtoAuth.init_app` sets them from the app's URL map.
    callback_path: str = "/callback"
    backchannel_logout_path: str = "/backchannel-logout"
    auth_paths: frozenset[str] = frozenset({"/sign-in", "/sign-up", "/callback", "/sign-out", "/backchannel-logout"})

    @property
    def redirect_uri(self) -> str:
        return f"{self.app_base_url}{self.callback_path}"

    @property
    def post_sign_out_uri(self) -> str:
        return post_sign_out_uri(self.app_base_url)

    @property
    def backchannel_logout_uri(self) -> str:
        return f"{self.app_base_url}{self.backchannel_logout_path}"

    @property
    def is_https(self) -> bool:
        return self.app_base_url.startswith("https://")

    @property
    def issuer(self) -> str:
        return issuer(self.logto_endpoint)


def redirect_uri(base_url: str) -> str:
    """The URI to register on the Logto app as a redirect URI (the unit's `/callback`, without a `url_prefix`)."""
    return f"{base_url}/callback"


def post_sign_out_uri(base_url: str) -> str:
    """The URI to register on the Logto app as a post sign-out redirect URI."""
    return f"{base_url}/"


def backchannel_logout_uri(base_url: str) -> str:
    """The URI to register on the Logto app as its back-channel logout URI (`/backchannel-logout`, without a `url_prefix`)."""
    return f"{base_url}/backchannel-logout"


def issuer(endpoint: str) -> str:
    """Logto's issuer for an endpoint: `{endpoint}/oidc`."""
    return f"{endpoint}/oidc"


# Settings renamed into the unit's own LOGTO_ namespace (the last two were in Flask-Session's SESSION_ one).
RENAMED = {
    "APP_BASE_URL": "LOGTO_BASE_URL", "APP_DATA_DIR": "LOGTO_DATA_DIR",
    "SESSION_LIFETIME": "LOGTO_SESSION_LIFETIME", "SESSION_REDIS_URL": "LOGTO_REDIS_URL",
}


def read_auth_settings(config: Mapping[str, Any]) -> AuthSettings:
    """The unit's settings from `app.config`; raise `ConfigError` on the first mistake."""

    def text(name: str, default: str = "") -> str:
        value = config.get(name)
        return str(value).strip() if value not in (None, "") else default

    for old, new in RENAMED.items():
        if old in config and new not in config:
            raise ConfigError(f"{old} is now called {new}: rename it in app.config")

    endpoint = text("LOGTO_ENDPOINT")
    if not endpoint:
        raise ConfigError("LOGTO_ENDPOINT is missing: set it to your Logto endpoint (e.g. https://abc123.logto.app)")
    endpoint = check_endpoint(endpoint)
    for name, what in (("LOGTO_APP_ID", "App ID"), ("LOGTO_APP_SECRET", "an App secret")):
        if not text(name):
            raise ConfigError(
                f"{name} is missing while LOGTO_ENDPOINT is set: copy {what} of your "
                "Traditional web app from the Logto console (Applications)"
            )
    base_url = check_base_url(text("LOGTO_BASE_URL", DEFAULT_BASE_URL))
    problem = secret_key_problem(str(config.get("SECRET_KEY") or ""))
    if problem:
        raise ConfigError(f"SECRET_KEY {problem}: {MAKE_SECRET_HINT}")
    direct = config.get("LOGTO_DIRECT_SIGN_IN")
    return AuthSettings(
        logto_endpoint=endpoint,
        logto_app_id=text("LOGTO_APP_ID"),
        logto_app_secret=text("LOGTO_APP_SECRET"),
        app_base_url=base_url,
        scopes=tuple(text("LOGTO_SCOPES", DEFAULT_SCOPES).split()),
        direct_sign_in=DEFAULT_DIRECT_SIGN_IN if direct is None else str(direct).strip(),  # "": Logto's page
        logto_timeout=float(whole_number(config, "LOGTO_TIMEOUT", DEFAULT_TIMEOUT, minimum=1)),
        session_lifetime=timedelta(
            seconds=whole_number(config, "LOGTO_SESSION_LIFETIME", DEFAULT_SESSION_LIFETIME, minimum=MIN_SESSION_LIFETIME)
        ),
        data_dir=Path(text("LOGTO_DATA_DIR", "instance")).resolve(),
        session_redis_url=check_redis_url(text("LOGTO_REDIS_URL")),
        hf_allowed_orgs=check_hf_orgs(config.get("LOGTO_HF_ALLOWED_ORGS")),
        hf_endpoint=check_hf_endpoint(text("LOGTO_HF_ENDPOINT", DEFAULT_HF_ENDPOINT)),
    )


def check_hf_orgs(value: Any, name: str = "LOGTO_HF_ALLOWED_ORGS") -> tuple[str, ...]:
    """Hugging Face organisation names: a comma-separated string or a list of names; empty: none."""
    from flask_logto.user import HF_USERNAME

    if value is None:
        value = ""
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(org, str) for org in names):
        raise ConfigError(f"{name} must be Hugging Face organisation names, comma-separated or a list (e.g. acme,beta-lab)")
    orgs = tuple(org.strip() for org in names if org.strip())
    bad = [org for org in orgs if not HF_USERNAME.fullmatch(org)]
    if bad:
        raise ConfigError(f"{name} has {bad[0]!r}, which is not a Hugging Face organisation name (e.g. acme,beta-lab)")
    return orgs


def check_hf_endpoint(url: str, name: str = "LOGTO_HF_ENDPOINT") -> str:
    """The Hub's base URL without a trailing slash; https unless on this machine."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"{name}={url!r} is not a base URL: use e.g. {DEFAULT_HF_ENDPOINT}")
    if parts.scheme == "http" and not is_loopback_url(url):
        raise ConfigError(f"{name}={url!r} must use https unless the host is localhost or 127.0.0.1")
    return url.rstrip("/")


def check_url_prefix(prefix: str) -> str:
    """A blueprint `url_prefix` for the unit's routes: empty, or a path like `/auth` (no trailing slash)."""
    if prefix and (not prefix.startswith("/") or prefix.endswith("/") or "//" in prefix or "?" in prefix or "#" in prefix):
        raise ConfigError(f"url_prefix={prefix!r} is not a path prefix: use e.g. '/auth' (or none)")
    return prefix


def is_loopback_url(url: str) -> bool:
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:  # e.g. "http://[oops"
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_private_url(url: str) -> bool:
    """True when the URL's host is loopback, a private or other non-public address, or a *.localhost name:
    Logto's SSRF protection (always on at Logto Cloud) refuses to send back-channel logouts there."""
    try:
        host = urlsplit(url).hostname or ""
    except ValueError:
        return False
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return not ipaddress.ip_address(host).is_global
    except ValueError:
        return False


def check_base_url(url: str, name: str = "LOGTO_BASE_URL") -> str:
    """`url` as scheme://host[:port] if it is one (https unless on this machine); `name` is the setting it came from."""
    parts = urlsplit(url)
    try:
        _ = parts.port  # reading it checks it
    except ValueError:
        raise ConfigError(f"{name}={url!r} has a bad port: use e.g. http://localhost:3000") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"{name}={url!r} is not a URL: use e.g. http://localhost:3000")
    if parts.path.rstrip("/") or parts.query or parts.fragment:
        raise ConfigError(
            f"{name}={url!r} has a path: give only scheme, host and port (e.g. https://me-site.hf.space)"
        )
    if parts.scheme == "http" and not is_loopback_url(url):
        raise ConfigError(f"{name}={url!r} must use https unless the host is localhost or 127.0.0.1")
    return f"{parts.scheme}://{parts.netloc}"


def check_redis_url(url: str, name: str = "LOGTO_REDIS_URL") -> str:
    """`url` if empty or a Redis URL (redis:// or rediss://, with a host); the message (naming the setting `name`)
    never shows a password."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
        password, host, _ = parts.password, parts.hostname, parts.port  # reading the port checks it
    except ValueError:
        raise ConfigError(f"{name} is not a Redis URL: use e.g. redis://localhost:6379/0") from None
    shown = repr(url.replace(password, "***") if password else url)
    if parts.scheme not in ("redis", "rediss") or not host:
        raise ConfigError(
            f"{name}={shown} is not a Redis URL: use redis://host:6379/0 (rediss:// for TLS), "
            "or leave it empty to keep sessions in files"
        )
    return url


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


def secret_key_problem(key: str) -> str | None:
    """What is wrong with a session-signing key, if anything (the site and `logto doctor` use this too)."""
    if not key:
        return "is missing"
    if len(key) < MIN_SECRET_KEY_LENGTH:
        return f"is too short ({len(key)} characters, need {MIN_SECRET_KEY_LENGTH})"
    if len(set(key)) < MIN_SECRET_KEY_DISTINCT:
        return f"looks weak (only {len(set(key))} different characters)"
    return None


def whole_number(config: Mapping[str, Any], name: str, default: int, *, minimum: int) -> int:
    raw = config.get(name)
    if raw in (None, ""):
        return default
    if isinstance(raw, timedelta):
        raw = int(raw.total_seconds())
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a whole number") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} is too small (minimum {minimum})")
    return value


def check_flag(config: MutableMapping[str, Any], name: str, default: bool) -> bool:
    """`config[name]` as a bool ("true"/"false", "1"/"0", "yes"/"no", "on"/"off" from the environment), written back."""
    raw = config.get(name)
    if isinstance(raw, bool):
        return raw
    text = "" if raw is None else str(raw).strip().lower()
    if text in ("", "true", "1", "yes", "on", "false", "0", "no", "off"):
        value = default if not text else text in ("true", "1", "yes", "on")
        config[name] = value
        return value
    raise ConfigError(f"{name}={raw!r} is not true or false")
