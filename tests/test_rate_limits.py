"""Rate limits (Flask-Limiter): per client address for sign-in, callback, sign-out, back-channel logout and the
language switch; per signed-in person for notes changes and /hf. 429 with Retry-After, a page in the visitor's
language, one log line per client and window, refused requests counted before their CSRF check, proxies
trusted only as far as TRUSTED_PROXY_HOPS says, and the worker processes of one machine counting together.

Each test builds its own site (its own counters). The shared test stacks raise every limit (harness.ROOMY_LIMITS);
here `DEFAULTS` puts them back to the site's own defaults, and a test lowers the one it looks at.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from flask_app import create_app
from flask_logto.errors import ConfigError
from tests.conftest import Stack, csrf_token_in, page_text, sign_in
from tests.harness import ROOMY_LIMITS
from tests.servers import free_port, stop_process, wait_until

DEFAULTS = {name: "" for name in ROOMY_LIMITS}  # empty: the default limit
ROOT = Path(__file__).resolve().parent.parent
WORDS = {"en": "Too many requests", "ja": "リクエストが多すぎます", "zh-CN": "请求过于频繁"}


def rate_limited_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if "event=rate-limited" in record.getMessage()]


def get(stack: Stack, path: str, http: requests.Session | None = None, **headers: str) -> requests.Response:
    return (http or requests).get(stack.base_url + path, headers=headers, allow_redirects=False, timeout=15)


def post(
    stack: Stack, path: str, data: dict[str, str], http: requests.Session | None = None, **headers: str,
) -> requests.Response:
    return (http or requests).post(stack.base_url + path, data=data, headers=headers, allow_redirects=False, timeout=15)


def test_sign_in_starts_are_20_a_minute_per_address_and_the_21st_is_a_429_in_the_visitors_language(
    make_stack: Callable[..., Stack], caplog: pytest.LogCaptureFixture,
) -> None:
    stack = make_stack(**DEFAULTS)
    caplog.set_level(logging.INFO, logger="auth")
    # /sign-in and /sign-up count together, HEAD too
    answers = [get(stack, "/sign-in") for _ in range(10)] + [get(stack, "/sign-up") for _ in range(9)]
    answers.append(requests.head(stack.base_url + "/sign-in?next=/profile", allow_redirects=False, timeout=15))
    assert [answer.status_code for answer in answers] == [302] * 20
    for lang, words in WORDS.items():
        refused = get(stack, "/sign-up", **{"Accept-Language": lang})
        assert refused.status_code == 429
        assert f'<html lang="{lang}"' in refused.text and words in page_text(refused.text)
        assert 1 <= int(refused.headers["Retry-After"]) <= 61
        assert f"{refused.headers['Retry-After']} " in page_text(refused.text)  # the page says how long too
    assert get(stack, "/healthz").status_code == 200 and get(stack, "/").status_code == 200  # the rest is not limited
    assert len(rate_limited_lines(caplog)) == 1, rate_limited_lines(caplog)  # one line per client and window
    assert "client='127.0.0.1' scope='sign-in'" in rate_limited_lines(caplog)[0]


@pytest.mark.parametrize("setting, send", [
    ("RATELIMIT_CALLBACK", lambda stack: get(stack, "/callback?state=forged&code=x")),
    ("RATELIMIT_SIGN_OUT", lambda stack: post(stack, "/sign-out", {"csrf_token": "forged"})),
    ("RATELIMIT_BACKCHANNEL_LOGOUT", lambda stack: post(stack, "/backchannel-logout", {"logout_token": "junk"})),
    ("RATELIMIT_LANGUAGE", lambda stack: post(stack, "/language", {"lang": "xx"})),
])
def test_refused_requests_count_too(
    make_stack: Callable[..., Stack], setting: str, send: Callable[[Stack], requests.Response],
) -> None:
    """A forged callback, a sign-out without a valid CSRF token, a junk logout token, a bad language: each is
    refused (400), and counted before the check that refuses it, so the 4th of a 3-a-minute limit is a 429."""
    stack = make_stack(**{**DEFAULTS, setting: "3 per minute"})
    assert [send(stack).status_code for _ in range(3)] == [400, 400, 400]
    assert send(stack).status_code == 429


def test_the_default_limits_are_under_300_a_minute_and_above_what_a_person_does(tmp_path: Path) -> None:
    app = create_app({"APP_DATA_DIR": str(tmp_path)})
    import limits

    for name in ROOMY_LIMITS:
        (item,) = limits.parse_many(app.config[name])
        per_minute = item.amount * 60 / item.get_expiry()
        assert 20 <= per_minute < 300, (name, app.config[name])


def test_notes_changes_and_the_hub_page_are_limited_per_person(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(**{**DEFAULTS, "RATELIMIT_NOTES": "3 per minute", "RATELIMIT_HUB": "2 per minute"})
    ann, bob = requests.Session(), requests.Session()
    assert sign_in(stack, ann, "limit-ann").status_code == 302
    assert sign_in(stack, bob, "limit-bob").status_code == 302
    token = csrf_token_in(get(stack, "/notes", ann).text)
    assert post(stack, "/notes", {"text": "one", "csrf_token": token}, ann).status_code == 303
    assert post(stack, "/notes", {"text": "two"}, ann).status_code == 400  # no CSRF token: refused, and counted
    assert post(stack, "/notes/1/delete", {"csrf_token": token}, ann).status_code == 303  # every change counts
    assert post(stack, "/notes/delete-all", {"csrf_token": token}, ann).status_code == 429
    # bob, from the same address, has his own allowance
    bob_token = csrf_token_in(get(stack, "/notes", bob).text)
    assert post(stack, "/notes", {"text": "bob's", "csrf_token": bob_token}, bob).status_code == 303
    assert [get(stack, "/hf", ann).status_code for _ in range(2)] == [200, 200]
    refused = get(stack, "/hf", ann)
    assert refused.status_code == 429 and "Retry-After" in refused.headers
    assert get(stack, "/hf", bob).status_code == 200
    assert get(stack, "/notes", ann).status_code == 200  # reading is not limited


def test_x_forwarded_for_counts_only_as_far_as_the_trusted_proxy_hops(make_stack: Callable[..., Stack]) -> None:
    direct = make_stack(**{**DEFAULTS, "RATELIMIT_SIGN_IN": "2 per minute"})
    for spoofed in ("198.51.100.1", "198.51.100.2"):
        assert get(direct, "/sign-in", **{"X-Forwarded-For": spoofed}).status_code == 302
    assert get(direct, "/sign-in", **{"X-Forwarded-For": "198.51.100.3"}).status_code == 429  # not a fresh allowance

    proxied = make_stack(**{**DEFAULTS, "RATELIMIT_SIGN_IN": "2 per minute", "TRUSTED_PROXY_HOPS": "1"})
    # the trusted proxy appends the address it saw; whatever the client put before that is not believed
    for claimed in ("192.0.2.50", "192.0.2.51"):
        assert get(proxied, "/sign-in", **{"X-Forwarded-For": f"{claimed}, 203.0.113.9"}).status_code == 302
    assert get(proxied, "/sign-in", **{"X-Forwarded-For": "192.0.2.52, 203.0.113.9"}).status_code == 429
    assert get(proxied, "/sign-in", **{"X-Forwarded-For": "203.0.113.10"}).status_code == 302  # another client


@pytest.mark.parametrize("env, problem", [
    ({"RATELIMIT_SIGN_IN": "lots"}, "RATELIMIT_SIGN_IN='lots' is not a rate limit"),
    ({"RATELIMIT_NOTES": "5 per fortnight"}, "RATELIMIT_NOTES='5 per fortnight' is not a rate limit"),
    ({"RATELIMIT_ENABLED": "maybe"}, "RATELIMIT_ENABLED='maybe' is not true or false"),
    ({"TRUSTED_PROXY_HOPS": "-1"}, "TRUSTED_PROXY_HOPS=-1 is too small"),
    ({"RATELIMIT_STRATEGY": "moving-window"}, "RATELIMIT_STRATEGY='moving-window' needs counters in Redis"),
])
def test_a_bad_limit_setting_is_one_line_naming_it(tmp_path: Path, env: dict[str, str], problem: str) -> None:
    from flask import Flask

    from client import LogtoAuth
    from website.settings import site_config

    if "RATELIMIT_STRATEGY" in env:  # Flask-Limiter's own setting: an app sets it in app.config
        app = Flask("strategy")
        app.config.update(site_config({"APP_DATA_DIR": str(tmp_path)}), **env)
        with pytest.raises(ConfigError, match=problem):
            LogtoAuth(app)
        return
    with pytest.raises(SystemExit, match=problem):
        create_app({"APP_DATA_DIR": str(tmp_path), **env})


def test_limits_can_be_turned_off(make_stack: Callable[..., Stack]) -> None:
    stack = make_stack(**{**DEFAULTS, "RATELIMIT_ENABLED": "false"})
    assert {get(stack, "/sign-in").status_code for _ in range(25)} == {302}


def test_the_worker_processes_of_one_machine_count_together(tmp_path: Path) -> None:
    """gunicorn with 2 workers: 30 sign-in starts from 6 clients at once reach both workers, and 20 get through.

    The identity provider is not running (a closed port): each start that gets through answers 503, which
    is all this needs; the limit counts before the view.
    """
    port = free_port()
    access_log = tmp_path / "access.log"
    env = {
        **{name: value for name, value in os.environ.items() if not name.startswith(("LOGTO_", "APP_", "RATELIMIT_"))},
        "APP_DATA_DIR": str(tmp_path / "data"), "APP_BASE_URL": f"http://localhost:{port}",
        "DEVIDP_PORT": str(free_port()),
    }
    error_log = tmp_path / "gunicorn.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", "2", "-b", f"127.0.0.1:{port}", "--access-logfile", str(access_log),
         "--access-logformat", "%(p)s %(s)s", "--error-logfile", str(error_log), "flask_app:create_app()"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        def up() -> bool:
            try:
                return requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
            except requests.RequestException:  # not listening yet, or a worker still busy starting
                return False

        assert wait_until(up, lambda: process.poll() is None, 60), "gunicorn did not start"

        def both_workers_answer() -> bool:  # each has booted the site: the load below can reach both
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda _: up(), range(4)))
            return len({line.split()[0] for line in access_log.read_text().splitlines()}) == 2

        assert wait_until(both_workers_answer, lambda: process.poll() is None, 60), error_log.read_text()[-3000:]

        def start(_: int) -> int:
            return requests.get(f"http://localhost:{port}/sign-in", allow_redirects=False, timeout=30).status_code

        with ThreadPoolExecutor(6) as pool:
            statuses = list(pool.map(start, range(30)))
    finally:
        stop_process(process)
    assert statuses.count(429) == 10 and set(statuses) == {503, 429}, statuses
    workers = {line.split()[0] for line in access_log.read_text().splitlines() if line.endswith(("503", "429"))}
    assert len(workers) == 2, "the load did not reach both workers"


def test_an_apps_own_app_wide_limits_still_apply(tmp_path: Path) -> None:
    """The unit skips Flask-Limiter's app-wide check before every request only while no app-wide limit is set."""
    from flask import Flask

    from client import LogtoAuth
    from website.settings import site_config

    app = Flask("app_wide", root_path=str(tmp_path))  # no templates of its own: the unit's pages
    app.config.update(site_config({"APP_DATA_DIR": str(tmp_path)}), RATELIMIT_DEFAULT="2 per minute")
    LogtoAuth(app)

    @app.get("/mine")
    def mine() -> str:
        return "mine"

    client = app.test_client()
    assert [client.get("/mine").status_code for _ in range(3)] == [200, 200, 429]


def test_an_ipv6_client_counts_per_64_block(tmp_path: Path) -> None:
    """One subscriber gets a /64: its addresses share one allowance; another block has its own."""
    app = create_app({"APP_DATA_DIR": str(tmp_path), **DEFAULTS, "RATELIMIT_SIGN_IN": "2 per minute"})
    client = app.test_client()

    def start(address: str) -> int:
        return client.get("/sign-in", environ_base={"REMOTE_ADDR": address}).status_code

    assert start("2001:db8:1:2::1") != 429 and start("2001:db8:1:2::ffff:7") != 429
    assert start("2001:db8:1:2:aaaa::3") == 429  # the same /64
    assert start("2001:db8:1:3::1") != 429  # the next /64
    assert start("::ffff:192.0.2.1") != 429 and start("192.0.2.1") != 429 and start("192.0.2.1") == 429  # mapped IPv4


def test_an_apps_own_blueprint_limit_still_applies(tmp_path: Path) -> None:
    from flask import Blueprint, Flask

    from client import LogtoAuth
    from flask_logto.rate_limits import LIMITER
    from website.settings import site_config

    app = Flask("blueprint_limit", root_path=str(tmp_path))
    app.config.update(site_config({"APP_DATA_DIR": str(tmp_path)}))
    LogtoAuth(app)
    mine = Blueprint("mine", __name__)

    @mine.get("/mine")
    def view() -> str:
        return "mine"

    app.extensions[LIMITER].limit("2 per minute")(mine)
    app.register_blueprint(mine)
    client = app.test_client()
    assert [client.get("/mine").status_code for _ in range(3)] == [200, 200, 429]


def test_a_back_channel_logout_that_is_accepted_does_not_count(make_stack: Callable[..., Stack]) -> None:
    """Logto's servers post every user's logouts from a few addresses: only refused ones count."""
    from urllib.parse import urljoin

    from tests.conftest import forms_in

    stack = make_stack(**{**DEFAULTS, "RATELIMIT_BACKCHANNEL_LOGOUT": "2 per minute"})
    people = {name: requests.Session() for name in ("bcl-ann", "bcl-bob", "bcl-cy")}
    for name, http in people.items():
        assert sign_in(stack, http, name).status_code == 302
        # sign out at the provider, as Logto's end-session page does: it posts the back-channel logout
        url = f"{stack.provider.endpoint}/oidc/session/end?client_id=local-dev-site"
        form = forms_in(http.get(url, timeout=15).text)[0]
        http.post(urljoin(url, str(form["action"])), data=form["fields"], allow_redirects=False, timeout=15)
    for http in people.values():  # three logouts delivered and accepted, over a limit of two
        assert get(stack, "/profile", http).status_code == 302
    assert [post(stack, "/backchannel-logout", {"logout_token": "junk"}).status_code for _ in range(3)] == [400, 400, 429]


def test_an_untrusted_proxy_is_reported_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import flask_app

    flask_app._proxy_warned.clear()
    client = create_app({"APP_DATA_DIR": str(tmp_path)}).test_client()
    for _ in range(3):
        client.get("/", headers={"X-Forwarded-For": "198.51.100.7"})
    warnings = [record.getMessage() for record in caplog.records if "TRUSTED_PROXY_HOPS=0" in record.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("event=config-warning")


def test_the_machines_counters_count_every_increment_of_threads_starting_together(tmp_path: Path) -> None:
    """Fresh counter files, four threads' first increments at once, fifty times: none refused, none lost.
    (A connection that switched the file to WAL itself was refused while another was counting.)"""
    import threading

    from flask_logto.limit_storage import SqliteCounters

    refused: list[str] = []
    for trial in range(50):
        counters = SqliteCounters(f"logto-sqlite://{tmp_path / f'{trial}.sqlite'}")
        together = threading.Barrier(4)

        def count(counters: SqliteCounters = counters, together: threading.Barrier = together) -> None:
            together.wait()
            try:
                for _ in range(3):
                    counters.incr("address", 60)
            except Exception as error:  # noqa: BLE001  (any refusal fails the test below)
                refused.append(repr(error))

        threads = [threading.Thread(target=count) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert counters.get("address") == 12 or refused, trial
    assert refused == []
