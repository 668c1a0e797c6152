"""Local use without surprises: one host name, the site's own name in the header, readable test logs."""

from __future__ import annotations

import logging
import re

import pytest
import requests

from flask_app import create_app
from tests.conftest import Stack, forms_in, sign_in


@pytest.fixture
def local_app(tmp_path):
    return create_app({"APP_DATA_DIR": str(tmp_path), "APP_BASE_URL": "http://localhost:3000"})


@pytest.mark.parametrize("host", ["127.0.0.1:3000", "127.0.0.1", "[::1]:3000", "127.1.2.3:3000", "LOCALHOST:3000"])
def test_another_loopback_name_is_sent_to_app_base_url(local_app, host):
    answer = local_app.test_client().get("/profile?tab=a%20b", headers={"Host": host})
    if host == "LOCALHOST:3000":  # the same name, only in other case: served as it is
        assert answer.status_code == 302 and answer.location.startswith("/sign-in")
        return
    assert answer.status_code == 302
    assert answer.location == "http://localhost:3000/profile?tab=a%20b"


def test_head_is_redirected_and_post_is_not(local_app):
    client = local_app.test_client()
    assert client.head("/", headers={"Host": "127.0.0.1:3000"}).location == "http://localhost:3000/"
    assert client.post("/sign-out", headers={"Host": "127.0.0.1:3000"}).status_code == 400  # CSRF, not a redirect


def test_the_reverse_when_app_base_url_names_127_0_0_1(tmp_path):
    app = create_app({"APP_DATA_DIR": str(tmp_path), "APP_BASE_URL": "http://127.0.0.1:3000"})
    answer = app.test_client().get("/", headers={"Host": "localhost:3000"})
    assert answer.location == "http://127.0.0.1:3000/"


@pytest.mark.parametrize("host", ["evil.example", "10.0.0.5:3000", "[oops"])
def test_other_hosts_are_not_redirected_anywhere(local_app, host):
    answer = local_app.test_client().get("/", headers={"Host": host})
    assert answer.status_code != 302 or "evil" not in answer.location


def test_a_deployed_site_answers_whatever_host_it_is_reached_by(tmp_path):
    app = create_app({
        "APP_DATA_DIR": str(tmp_path), "APP_BASE_URL": "https://me-site.hf.space",
        "FLASK_SECRET_KEY": "k3y-" + "abcdefghij" * 4,
    })
    client = app.test_client()
    assert client.get("/healthz", headers={"Host": "10.0.0.5:7860"}).status_code == 200
    assert client.get("/healthz", headers={"Host": "127.0.0.1:7860"}).status_code == 200


def test_the_header_shows_the_sites_name_not_a_sign_in_control(tmp_path):
    app = create_app({"APP_DATA_DIR": str(tmp_path), "APP_NAME": "Notes <& Co>"})
    html = app.test_client().get("/").get_data(as_text=True)
    brand = re.search(r'<a class="brand" href="/"><img [^>]*alt=""[^>]*><span class="brand-name">([^<]*)</span></a>', html)
    assert brand and brand.group(1) == "Notes &lt;&amp; Co&gt;"
    assert "<title>Notes &lt;&amp; Co&gt;</title>" in html


def test_the_default_name_reads_as_a_name(local_app):
    html = local_app.test_client().get("/").get_data(as_text=True)
    assert re.search(r'<a class="brand" href="/"><img [^>]*><span class="brand-name">Flask × Hugging Face</span></a>', html)


def test_only_sign_in_controls_say_sign_in_or_continue(local_app):
    html = local_app.test_client().get("/").get_data(as_text=True)
    links = re.findall(r'<a [^>]*href="([^"]*)"[^>]*>([^<]*)</a>', html)
    assert links, html
    for href, text in links:
        if re.search(r"sign in|continue", text, re.I):
            assert href.startswith(("/sign-in", "/sign-up")), (href, text)
        else:
            assert not href.startswith("/sign-in"), (href, text)


def test_test_logs_hold_the_sites_own_lines_and_no_access_lines(stack: Stack, caplog):
    caplog.set_level(logging.INFO)
    http = requests.Session()
    assert sign_in(stack, http, "quiet-logs").status_code == 302
    http.get(stack.base_url + "/callback?state=forged&code=x&iss=x", timeout=10)
    messages = [(record.name, record.getMessage()) for record in caplog.records]
    assert any(name == "auth" and "event=sign-in" in message for name, message in messages)
    assert any(name == "auth" and "event=auth-failure" in message for name, message in messages)
    assert not [message for name, message in messages if name == "werkzeug" and "HTTP/1.1" in message]
    assert forms_in  # the harness's helpers stay importable from conftest


def test_a_real_bug_is_a_500_page_and_its_traceback_is_logged(local_app, caplog):
    @local_app.get("/boom")
    def boom() -> str:
        raise KeyError("a bug")

    answer = local_app.test_client().get("/boom", headers={"Host": "localhost:3000"})
    assert answer.status_code == 500 and "Something went wrong" in answer.text and "KeyError" not in answer.text
    logged = [record for record in caplog.records if "event=error" in record.getMessage()]
    assert logged and logged[0].exc_info and logged[0].exc_info[0] is KeyError


def test_a_page_rendered_before_any_view_still_gets_its_styles(local_app):
    """The CSRF check runs before the site's own hooks: its error page links the stylesheet the CSP allows too."""
    answer = local_app.test_client().post("/sign-out")
    assert answer.status_code == 400
    assert re.search(r"style-src [^;]*'self'", answer.headers["Content-Security-Policy"])
    assert '<link rel="stylesheet" href="/static/site.css">' in answer.text
