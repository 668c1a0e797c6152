"""Run the site and the dev identity provider together on free ports, and walk a sign-in like a browser.

Used by the tests (conftest.py) and the benchmark (bench/). `start_stack()` binds the site's
port first (its URL is the redirect URI the provider must know), starts the provider, then builds
the site with `create_app()`. `sign_in()` drives a `requests.Session` through the whole flow.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import requests
from flask import Flask
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from flask_app import create_app
from flask_logto.config import AuthSettings, read_auth_settings
from tools.devidp.launcher import RunningProvider
from tools.flask_dev import start_local_provider
from website.settings import site_config


@dataclass
class Stack:
    """A running provider + site pair."""

    base_url: str
    provider: RunningProvider
    app: Flask
    server: BaseWSGIServer
    data_dir: Path
    _thread: threading.Thread = field(repr=False)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.provider.stop()


# Tests and the benchmark sign many people in from one address (127.0.0.1), far past the per-address
# limits a real person never reaches: their stacks raise the limits through the settings. The rate-limit
# tests (test_abuse.py) build stacks with the defaults or with limits of their own.
ROOMY_LIMITS = {
    name: "100000 per minute"
    for name in (
        "RATELIMIT_SIGN_IN", "RATELIMIT_CALLBACK", "RATELIMIT_SIGN_OUT", "RATELIMIT_BACKCHANNEL_LOGOUT",
        "RATELIMIT_LANGUAGE", "RATELIMIT_NOTES", "RATELIMIT_HUB",
    )
}


def auth_settings(env: dict[str, str]) -> AuthSettings:
    """The sign-in unit's settings for a site environment, as `create_app` would make them."""
    return read_auth_settings(site_config(env))


class _LateApp:
    """WSGI app filled in after the server is bound (the site's URL must be known to build the site)."""

    app: Flask | None = None

    def __call__(self, environ, start_response):  # type: ignore[no-untyped-def]
        assert self.app is not None
        return self.app(environ, start_response)


class QuietRequestHandler(WSGIRequestHandler):
    """No access line per request: a failing test's output shows the site's own log lines, not ~130 of these."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def start_stack(
    data_dir: Path, *, access_token_ttl: int | None = None, make_app: Callable[[dict[str, str]], Flask] = create_app,
    provider_options: Mapping[str, str] | None = None, **env: str,
) -> Stack:
    """The provider and an app (the site, or `make_app(env)`) on free ports, the app knowing the provider.
    `provider_options` go to the provider's launcher (e.g. `hf_connector="dedicated"`)."""
    late = _LateApp()
    server = make_server("127.0.0.1", 0, late, threaded=True, request_handler=QuietRequestHandler)
    base_url = f"http://localhost:{server.server_port}"
    provider = start_local_provider(
        base_url, data_dir, port=0, test_controls=True, access_token_ttl=access_token_ttl, **(provider_options or {}),
    )
    late.app = make_app(
        {"APP_BASE_URL": base_url, "APP_DATA_DIR": str(data_dir), "DEVIDP_PORT": str(provider.port), **ROOMY_LIMITS, **env}
    )
    thread = threading.Thread(target=server.serve_forever, name="site", daemon=True)
    thread.start()
    return Stack(base_url, provider, late.app, server, data_dir, thread)


class _Forms(HTMLParser):
    """Collects each <form>'s action and its named inputs' values."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append({"action": attributes.get("action") or "", "fields": {}})
        elif tag == "input" and self.forms and attributes.get("name"):
            if attributes.get("type") in ("checkbox", "radio") and "checked" not in attributes:
                return  # as a browser sends the form: only ticked boxes
            self.forms[-1]["fields"][attributes["name"]] = attributes.get("value") or ""  # type: ignore[index]


def forms_in(html: str) -> list[dict[str, object]]:
    parser = _Forms()
    parser.feed(html)
    return parser.forms


def follow_to_callback(
    http: requests.Session, url: str, base_url: str, *, username: str = "alice", action: str = "authorize",
    callback_path: str = "/callback", orgs: Mapping[str, str] | None = None,
) -> str:
    """Follow the provider's redirects and answer its Hugging Face page (sharing `orgs`: name to role, when the
    page offers them); return the site callback URL."""
    for _ in range(20):
        response = http.get(url, allow_redirects=False, timeout=10)
        if response.is_redirect:
            url = urljoin(url, response.headers["Location"])
        elif response.status_code == 200 and 'name="username"' in response.text:
            form_url = urljoin(url, forms_in(response.text)[0]["action"])  # type: ignore[arg-type]
            fields = [("username", username), ("full_name", username.title()), ("action", action)]
            for org, role in (orgs or {}).items():
                fields += [("org", org), (f"role_{org}", role)]
            response = http.post(form_url, data=fields, allow_redirects=False, timeout=10)
            assert response.is_redirect, response.text[:500]
            url = urljoin(form_url, response.headers["Location"])
        else:
            raise AssertionError(f"unexpected {response.status_code} at {url}: {response.text[:300]}")
        if url.startswith(f"{base_url}{callback_path}"):
            return url
    raise AssertionError("too many redirects")


def start_sign_in(stack: Stack, http: requests.Session, path: str = "/sign-in") -> str:
    response = http.get(stack.base_url + path, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text[:300]
    return response.headers["Location"]


def sign_in(
    stack: Stack,
    http: requests.Session,
    username: str = "alice",
    *,
    path: str = "/sign-in",
    tamper: Callable[[str], str] | None = None,
    action: str = "authorize",
    orgs: Mapping[str, str] | None = None,
) -> requests.Response:
    """A whole sign-in; returns the site's answer to the callback (not followed)."""
    authorize_url = start_sign_in(stack, http, path)
    if tamper:
        authorize_url = tamper(authorize_url)
    callback_url = follow_to_callback(http, authorize_url, stack.base_url, username=username, action=action, orgs=orgs)
    return http.get(callback_url, allow_redirects=False, timeout=10)


def csrf_token_in(html: str) -> str:
    """The CSRF token of the first form on a page that has one (the sign-out form, say)."""
    return next(form["fields"]["csrf_token"] for form in forms_in(html) if "csrf_token" in form["fields"])  # type: ignore[index,operator]


def page_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))
