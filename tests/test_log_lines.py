"""One log line per event: values from a request cannot start a line or forge a field; and HSTS on https sites.

The log is read as an operator reads it: the site's own format (flask_app._configure_logging), line by line.
Every record must parse as `<time> <LEVEL> <logger>: event=<name> key=value ...`, each value a bare token
or a quoted Python literal, each key once; requests carry CR, LF, NUL, ESC, NEL and U+2028 in the path,
the query (`next`), form fields and headers.
"""

from __future__ import annotations

import io
import logging
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import request

from flask_app import create_app
from tests.conftest import Stack, start_stack
from tests.harness import ROOMY_LIMITS

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # flask_app._configure_logging's
FORGED = "2026-12-07 13:50:00,000 INFO auth: event=sign-in user=admin"
NASTY = ["\n", "\r\n", "\r", "\x00", "\x1b[2J", "\x85", "\u2028"]
RECORD = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) (INFO|WARNING|ERROR) ([\w.-]+): (.*)")
FIELD = re.compile(r"""(\w+)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'"]\S*)(?: |$)""")


@pytest.fixture
def site_log() -> Iterator[io.StringIO]:
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(logging.Formatter(FORMAT))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield captured
    finally:
        root.removeHandler(handler)


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A site behind one trusted proxy (the client address comes from X-Forwarded-For), with low limits."""
    running = start_stack(
        tmp_path_factory.mktemp("log"), TRUSTED_PROXY_HOPS="1",
        **{**ROOMY_LIMITS, "RATELIMIT_SIGN_IN": "1 per minute", "RATELIMIT_BACKCHANNEL_LOGOUT": "1000 per minute"},
    )
    yield running
    running.stop()


def records(text: str) -> list[tuple[str, str, dict[str, str]]]:
    """(level, logger, fields) of each record; fails on a line that is not a whole record of key=value fields."""
    parsed = []
    for line in text.splitlines():
        match = RECORD.fullmatch(line)
        assert match, f"not a log record of its own: {line!r}"
        _, level, logger, message = match.groups()
        fields = FIELD.findall(message)
        assert "".join(f"{key}={value} " for key, value in fields).rstrip() == message, f"not key=value fields: {line!r}"
        keys = [key for key, _ in fields]
        assert len(keys) == len(set(keys)), f"a field twice: {line!r}"
        parsed.append((level, logger, dict(fields)))
    return parsed


def test_values_from_requests_cannot_start_a_line_or_forge_a_field(proxied: Stack, site_log: io.StringIO) -> None:
    base = proxied.base_url
    for nasty in NASTY:
        injected = f"{nasty}{FORGED}{nasty}"
        quoted = requests.utils.quote(injected, safe="")
        # in the path: a notes form without its CSRF token (refused and logged with its path)
        requests.post(f"{base}/notes/1{quoted}/delete", data={"text": injected}, timeout=15)
        requests.post(f"{base}/sign-out{quoted}", timeout=15)
        # in the query and `next`
        requests.get(f"{base}/callback?state={quoted}&code={quoted}&next={quoted}", timeout=15)
        requests.get(f"{base}/sign-in?next=/{quoted}", allow_redirects=False, timeout=15)
        # in form fields
        requests.post(f"{base}/backchannel-logout", data={"logout_token": injected}, timeout=15)
        requests.post(f"{base}/sign-out", data={"csrf_token": injected}, timeout=15)
        requests.post(f"{base}/language", data={"lang": injected, "next": injected}, timeout=15)
    # in headers (no CR or LF: HTTP itself cannot carry them there): the proxy's X-Forwarded-For is the client address
    for nasty in ("\x00", "\x1b[2J", "\x7f"):
        for _ in range(2):  # the second is over the limit, and the limit's log line names the client
            requests.get(f"{base}/sign-in", headers={"X-Forwarded-For": f"{nasty} {FORGED} {nasty}"},
                         allow_redirects=False, timeout=15)
    text = site_log.getvalue()
    parsed = records(text)
    events = [fields.get("event") for _, _, fields in parsed]
    assert events.count("csrf-failure") >= 2 * len(NASTY) and events.count("auth-failure") >= len(NASTY)
    assert events.count("backchannel-logout-refused") == len(NASTY)
    assert events.count("rate-limited") == 1 + 3  # the sign-ins with a nasty `next`, then each nasty header
    assert "sign-in" not in events  # nobody signed in here: a forged one would show
    assert not [line for line in text.splitlines() if line.startswith(FORGED[:10] + " 13:50")]
    assert all(not any(ch in line for ch in "\x00\x1b\x7f\x85\u2028") for line in text.splitlines())


def test_the_500_page_logs_its_path_on_one_line(tmp_path: Path, site_log: io.StringIO) -> None:
    app = create_app({"APP_DATA_DIR": str(tmp_path)})

    @app.before_request
    def boom() -> None:  # before routing: any path, newlines included, reaches the 500 handler
        if request.path.startswith("/boom"):
            raise RuntimeError("a bug")

    answer = app.test_client().get("/boom/x%0a" + requests.utils.quote(FORGED) + "%0d%0a")
    assert answer.status_code == 500 and "a bug" not in answer.get_data(as_text=True)
    first = site_log.getvalue().splitlines()[0]
    ((level, _, fields),) = records(first)
    assert level == "ERROR" and fields["event"] == "error" and fields["path"].startswith("'/boom/x\\n2026")
    assert site_log.getvalue().splitlines()[1] == "Traceback (most recent call last):"  # the bug's own lines follow


# HSTS

KEY = secrets.token_hex(32)


@pytest.mark.parametrize("path", ["/", "/healthz", "/no-such-page", "/static/site.css", "/sign-in"])
def test_an_https_site_sends_hsts_on_every_response(tmp_path: Path, path: str) -> None:
    app = create_app({"APP_DATA_DIR": str(tmp_path), "APP_BASE_URL": "https://site.example", "FLASK_SECRET_KEY": KEY})
    with app.test_client().get(path, base_url="https://site.example") as answer:
        header = answer.headers.get("Strict-Transport-Security", "")
    max_age = re.fullmatch(r"max-age=(\d+)", header)
    assert max_age and int(max_age.group(1)) >= 365 * 24 * 3600, header


def test_a_space_sends_hsts_even_before_its_secrets_are_set(tmp_path: Path) -> None:
    app = create_app({"APP_DATA_DIR": str(tmp_path), "SPACE_ID": "me/site", "SPACE_HOST": "me-site.hf.space"})
    answer = app.test_client().get("/")
    assert answer.status_code == 503 and answer.headers["Strict-Transport-Security"].startswith("max-age=")


def test_a_local_http_site_sends_no_hsts(tmp_path: Path) -> None:
    app = create_app({"APP_DATA_DIR": str(tmp_path)})
    assert "Strict-Transport-Security" not in app.test_client().get("/").headers
