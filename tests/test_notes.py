"""Private notes (website/notes.py) over real HTTP, on SQLite and on a real PostgreSQL server that the tests start.

Every test that stores notes runs once per backend (`backend`, module-scoped: each backend's site starts
once). Users sign in through the embedded identity provider, each test with new ones. Outages are real:
SQLite's file write-locked by another connection, the PostgreSQL server stopped; a database that does not
exist yet at start-up; processes started side by side on a fresh database.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests
from sqlalchemy import event, func, inspect, select
from sqlalchemy.engine import make_url

from flask_app import create_app
from tests.conftest import Stack, forms_in, sign_in, start_stack
from tests.postgres import PostgresServer, postgres_server  # noqa: F401  (the fixture)
from website.notes import FULL_MESSAGE, MAX_NOTES, Note, db
from website.settings import site_config

ROOT = Path(__file__).resolve().parent.parent
HEAD = "4b1d7c2e9a30"
_usernames = itertools.count()


# ---------------------------------------------------------------- the two backends


class SQLiteBackend:
    name = "sqlite"

    def site_env(self, folder: Path) -> dict[str, str]:
        return {}  # the default: APP_DATA_DIR/notes.db

    def fresh_url(self, folder: Path, *, timeout: float | None = None) -> str:
        """A new database; `timeout`: seconds to wait for another connection's lock (default 5)."""
        folder.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{folder / 'notes.db'}" + (f"?timeout={timeout}" if timeout else "")

    def outage_env(self, folder: Path) -> dict[str, str]:
        return {"DATABASE_URL": self.fresh_url(folder / "db", timeout=0.2)}  # give up on a lock after 0.2 s

    @contextmanager
    def outage(self, env: dict[str, str]) -> Iterator[None]:
        """Another connection holds the database's exclusive lock: every transaction of the site's fails."""
        locker = sqlite3.connect(make_url(env["DATABASE_URL"]).database, isolation_level=None, timeout=5)
        try:
            locker.execute("BEGIN EXCLUSIVE")
            yield
            locker.execute("ROLLBACK")
        finally:
            locker.close()  # also ends the lock if the test failed inside

    def later(self, folder: Path) -> tuple[dict[str, str], Callable[[], None]]:
        """A database that cannot be opened yet (its folder is missing), and what makes it openable."""
        missing = folder / "not-yet"
        return {"DATABASE_URL": f"sqlite:///{missing / 'notes.db'}"}, missing.mkdir

    def versions(self, url: str) -> list[str]:
        with sqlite3.connect(make_url(url).database) as connection:
            return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


class PostgresBackend:
    name = "postgresql"

    def __init__(self, server: PostgresServer) -> None:
        self.server = server

    def site_env(self, folder: Path) -> dict[str, str]:
        return {"DATABASE_URL": self.server.create_database()}

    def fresh_url(self, folder: Path, *, timeout: float | None = None) -> str:
        return self.server.create_database()

    outage_env = site_env

    @contextmanager
    def outage(self, env: dict[str, str]) -> Iterator[None]:
        self.server.stop()
        try:
            yield
        finally:
            self.server.start()

    def later(self, folder: Path) -> tuple[dict[str, str], Callable[[], None]]:
        """A database that does not exist yet, and what creates it."""
        name = self.server.new_database_name()

        def create() -> None:
            self.server.create_database(name)

        return {"DATABASE_URL": self.server.url(name)}, create

    def versions(self, url: str) -> list[str]:
        with psycopg.connect(self.server.conninfo(make_url(url).database or "")) as connection:
            return [row[0] for row in connection.execute("SELECT version_num FROM alembic_version")]


Backend = SQLiteBackend | PostgresBackend


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "sqlite":
        return SQLiteBackend()
    return PostgresBackend(request.getfixturevalue("postgres_server"))


# ---------------------------------------------------------------- sites and users


def stop_site(site: Stack) -> None:
    site.stop()
    with site.app.app_context():
        db.engine.dispose()  # close pooled connections now (psycopg warns about ones left to the collector)


@pytest.fixture(scope="module")
def site(backend: Backend, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    data_dir = tmp_path_factory.mktemp(f"notes-{backend.name}")
    running = start_stack(data_dir, **backend.site_env(data_dir))
    yield running
    stop_site(running)


class Sites:
    """Private sites for one test; each is stopped at the end (or earlier with `stop`)."""

    def __init__(self) -> None:
        self.running: list[Stack] = []

    def start(self, data_dir: Path, **env: str) -> Stack:
        running = start_stack(data_dir, **env)
        self.running.append(running)
        return running

    def stop(self, running: Stack) -> None:
        self.running.remove(running)
        stop_site(running)


@pytest.fixture
def sites() -> Iterator[Sites]:
    made = Sites()
    yield made
    for running in list(made.running):
        made.stop(running)


class User:
    """Someone signed in to `site` with a browser-like session of their own."""

    def __init__(self, site: Stack, name: str | None = None) -> None:
        self.site = site
        self.name = name or f"user{next(_usernames)}"
        self.http = requests.Session()
        answer = sign_in(site, self.http, self.name, path="/sign-in?max_age=3600")  # recent: "Delete all" asks
        assert answer.status_code == 302, answer.text[:300]
        forms = forms_in(self.get("/").text)  # any form's token will do: there is one per session
        self.csrf_token = next(str(form["fields"]["csrf_token"]) for form in forms if "csrf_token" in form["fields"])  # type: ignore[index, operator]

    def get(self, path: str) -> requests.Response:
        return self.http.get(self.site.base_url + path, allow_redirects=False, timeout=15)

    def post(self, path: str, data: dict[str, str] | None = None, *, csrf: bool = True) -> requests.Response:
        fields = dict(data or {})
        if csrf:
            fields["csrf_token"] = self.csrf_token
        return self.http.post(self.site.base_url + path, data=fields, allow_redirects=False, timeout=15)

    def add(self, text: str) -> requests.Response:
        return self.post("/notes", {"text": text})

    def exported(self) -> list[dict[str, Any]]:
        answer = self.get("/notes/export")
        assert answer.status_code == 200, answer.text[:300]
        return answer.json()

    def texts(self) -> list[str]:
        return [note["text"] for note in self.exported()]

    def ids(self) -> list[int]:
        return [note["id"] for note in self.exported()]


def rows(site: Stack) -> list[tuple[str, str]]:
    """(owner_sub, text) of every note in the site's database, oldest first."""
    with site.app.app_context():
        return [(note.owner_sub, note.text) for note in db.session.scalars(select(Note).order_by(Note.id))]


def owner_of(site: Stack, text: str) -> str:
    [owner] = [owner for owner, stored in rows(site) if stored == text]
    return owner


def same_page(html: str) -> str:
    """The page without what changes per request (style nonce, form tokens)."""
    return re.sub(r'(nonce|value)="[^"]*"', r'\1=""', html)


def assert_see_other_to_notes(answer: requests.Response) -> None:
    assert answer.status_code == 303, answer.text[:300]
    assert answer.headers["Location"].endswith("/notes") and "//" not in answer.headers["Location"].split("://")[-1]


# ---------------------------------------------------------------- the pages


def test_a_visitor_who_is_not_signed_in_is_sent_to_sign_in(site: Stack) -> None:
    for path in ("/notes", "/notes/export"):
        answer = requests.get(site.base_url + path, allow_redirects=False, timeout=10)
        assert answer.status_code == 302
        assert answer.headers["Location"] in (f"/sign-in?next={path}", f"{site.base_url}/sign-in?next={path}")


def test_notes_show_newest_first_escaped_with_their_line_breaks(site: Stack) -> None:
    user = User(site)
    assert_see_other_to_notes(user.add("first note"))
    assert_see_other_to_notes(user.add('<script>alert("x")</script> & <b>bold</b>'))
    assert_see_other_to_notes(user.add("line one\r\nline two\n\n  indented four  "))
    answer = user.get("/notes")
    assert answer.status_code == 200
    html = answer.text
    assert re.findall(r'<p class="note-text">(.*?)</p>', html, re.S) == [
        "line one\nline two\n\n  indented four",
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;",
        "first note",
    ]
    assert "<script" not in html and "<b>" not in html
    # line breaks are kept by CSS that the Content-Security-Policy lets the page use (no script anywhere)
    style_src = re.search(r"style-src ([^;]*)", answer.headers["Content-Security-Policy"]).group(1).split()  # type: ignore[union-attr]
    css = [body for nonce, body in re.findall(r'<style nonce="([^"]*)">(.*?)</style>', html, re.S)
           if f"'nonce-{nonce}'" in style_src]
    if "'self'" in style_src:
        css += [user.get(href).text for href in re.findall(r'<link rel="stylesheet" href="(/[^"]*)"', html)]
    assert re.search(r"\.note-text\s*\{[^}]*white-space:\s*pre-wrap", "\n".join(css))
    assert "script-src" not in answer.headers["Content-Security-Policy"]
    # the form: a labelled textarea `text` and the CSRF token, posting to /notes; the header links here
    textarea = re.search(r'<textarea id="([^"]+)" name="text"', html)
    assert textarea and f'<label for="{textarea.group(1)}">' in html
    add_form = next(form for form in forms_in(html) if form["action"] == "/notes")
    assert add_form["fields"]["csrf_token"]  # type: ignore[index]
    assert '<a href="/notes">Notes</a>' in html
    assert user.texts() == ["line one\nline two\n\n  indented four",
                            '<script>alert("x")</script> & <b>bold</b>', "first note"]


def test_every_route_refuses_another_users_note_ids_with_the_same_404(site: Stack) -> None:
    alice, bob = User(site), User(site)
    for text in ("alice one", "alice two"):
        assert_see_other_to_notes(alice.add(text))
    assert_see_other_to_notes(bob.add("bob's own"))
    alice_notes = alice.exported()
    alice_ids = [note["id"] for note in alice_notes]
    missing = max(alice_ids + bob.ids()) + 1000
    expected = bob.post(f"/notes/{missing}/delete")
    assert expected.status_code == 404 and "Note not found" in expected.text
    tried = [*alice_ids, missing, 0, -1, "abc", "1.5", "1e3", "0x1", " 1", "%C2%B2", "2147483648",
             "99999999999999999999", f"{alice_ids[0]}%00", f"{alice_ids[0]}%20OR%201=1"]
    for note_id in tried:
        answer = bob.post(f"/notes/{note_id}/delete")
        assert answer.status_code == 404, note_id
        assert same_page(answer.text) == same_page(expected.text), note_id
    # bob sees none of alice's notes anywhere, and clearing his own leaves hers alone
    assert "alice" not in bob.get("/notes").text
    assert bob.texts() == ["bob's own"]
    assert_see_other_to_notes(bob.post("/notes/delete-all"))
    assert bob.exported() == [] and alice.exported() == alice_notes
    # notes belong to the Logto user id: a new sign-in as alice finds them, stored under her sub, not her name
    assert User(site, alice.name).exported() == alice_notes
    alice_sub = owner_of(site, "alice one")
    assert alice_sub == owner_of(site, "alice two") and alice.name not in alice_sub
    assert all(owner != alice_sub for owner, text in rows(site) if not text.startswith("alice"))


def test_forms_without_a_valid_csrf_token_are_refused(site: Stack) -> None:
    user, other = User(site), User(site)
    assert_see_other_to_notes(user.add("keep me"))
    [note_id] = user.ids()
    for path, data in (("/notes", {"text": "sneaky"}), (f"/notes/{note_id}/delete", {}), ("/notes/delete-all", {})):
        for token in (None, "", "forged", other.csrf_token):
            fields = data if token is None else {**data, "csrf_token": token}
            answer = user.post(path, fields, csrf=False)
            assert answer.status_code == 400, (path, token)
            assert "Form expired" in answer.text
    assert user.texts() == ["keep me"]


def test_empty_or_too_long_text_is_refused_and_nothing_is_stored(site: Stack) -> None:
    user = User(site)
    for text in ("", "   ", " \r\n\t\n ", "x" * 2001, " " + "y" * 2001 + " ", "a\x00b"):
        answer = user.add(text)
        assert answer.status_code == 400, text[:10]
        assert "Note not saved" in answer.text
    assert user.post("/notes", {}).status_code == 400  # no `text` field at all
    assert user.add("z" * 70_000).status_code == 413  # past the site's request size limit
    assert user.texts() == []
    # the limits themselves: 2,000 characters after stripping; a line break from a browser (CRLF) is one
    for text in ("z" * 2000, "  " + "w" * 2000 + "\n", "v\r\n" * 1000):
        assert_see_other_to_notes(user.add(text))
    assert [len(text) for text in user.texts()] == [1999, 2000, 2000]


def test_at_most_1000_notes_even_when_adds_race(site: Stack) -> None:
    user = User(site)
    assert_see_other_to_notes(user.add("the first"))
    owner = owner_of(site, "the first")
    with site.app.app_context():
        made = datetime.now(UTC)
        db.session.add_all(Note(owner_sub=owner, text=f"bulk {n}", created_at=made) for n in range(MAX_NOTES - 2))
        db.session.commit()
    assert_see_other_to_notes(user.add("number 1000"))
    full = user.add("number 1001")
    assert full.status_code == 409 and FULL_MESSAGE in full.text
    page = user.get("/notes").text
    assert FULL_MESSAGE in page and "1,000 of 1,000 notes" in page

    # one free place, four adds at once, each pausing between its count and its insert: exactly one gets it
    assert_see_other_to_notes(user.post(f"/notes/{user.ids()[0]}/delete"))
    start = threading.Barrier(4)
    statuses: list[int] = []

    def pause_after_counting(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().lower().startswith("select count("):
            time.sleep(0.3)

    def add_at_once(n: int) -> None:
        http = requests.Session()
        http.cookies.update(user.http.cookies)
        start.wait(timeout=10)
        answer = http.post(f"{site.base_url}/notes", data={"text": f"racer {n}", "csrf_token": user.csrf_token},
                           allow_redirects=False, timeout=30)
        statuses.append(answer.status_code)

    with site.app.app_context():
        engine = db.engine
    event.listen(engine, "after_cursor_execute", pause_after_counting)
    try:
        racers = [threading.Thread(target=add_at_once, args=(n,)) for n in range(4)]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join(timeout=60)
    finally:
        event.remove(engine, "after_cursor_execute", pause_after_counting)
    assert sorted(statuses) == [303] + [409] * 3
    with site.app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Note).where(Note.owner_sub == owner)) == MAX_NOTES


def test_export_is_a_json_attachment_of_the_users_notes(site: Stack) -> None:
    user = User(site)
    assert user.exported() == []
    before = datetime.now(UTC) - timedelta(seconds=5)
    assert_see_other_to_notes(user.add("one"))
    assert_see_other_to_notes(user.add("two\nlines, \"quoted\" é ✓"))
    answer = user.get("/notes/export")
    assert answer.status_code == 200
    assert answer.headers["Content-Type"].startswith("application/json")
    assert re.fullmatch(r'attachment; filename="notes\.json"', answer.headers["Content-Disposition"])
    notes = answer.json()
    assert [note["text"] for note in notes] == ["two\nlines, \"quoted\" é ✓", "one"]
    assert all(set(note) == {"id", "text", "created_at"} and isinstance(note["id"], int) for note in notes)
    assert notes[0]["id"] > notes[1]["id"]
    for note in notes:
        created = datetime.fromisoformat(note["created_at"])
        assert created.utcoffset() == timedelta(0)
        assert before <= created <= datetime.now(UTC) + timedelta(seconds=5)


def test_deleting_one_note_then_all(site: Stack) -> None:
    user = User(site)
    for text in ("a", "b", "c"):
        assert_see_other_to_notes(user.add(text))
    c_id, b_id, a_id = user.ids()
    assert_see_other_to_notes(user.post(f"/notes/{b_id}/delete"))
    assert user.texts() == ["c", "a"]
    assert user.post(f"/notes/{b_id}/delete").status_code == 404  # already gone
    assert_see_other_to_notes(user.post("/notes/delete-all"))
    assert user.texts() == []
    assert_see_other_to_notes(user.post("/notes/delete-all"))  # nothing left to delete is fine too


# ---------------------------------------------------------------- storage: restarts, outages, migrations


def test_notes_survive_a_restart_of_the_site(backend: Backend, sites: Sites, tmp_path: Path) -> None:
    env = backend.site_env(tmp_path)
    first = sites.start(tmp_path / "site", **env)
    assert_see_other_to_notes(User(first, "restarting").add("still here\nafter a restart"))
    sites.stop(first)
    second = sites.start(tmp_path / "site", **env)
    assert User(second, "restarting").texts() == ["still here\nafter a restart"]


def test_the_database_unavailable_gives_503_and_the_rest_of_the_site_serves(
    backend: Backend, sites: Sites, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = backend.outage_env(tmp_path)
    running = sites.start(tmp_path / "site", **env)
    user = User(running)
    assert_see_other_to_notes(user.add("kept"))
    [note_id] = user.ids()
    with backend.outage(env):
        for method, path, data in (
            ("get", "/notes", None), ("post", "/notes", {"text": "lost in the outage"}),
            ("post", f"/notes/{note_id}/delete", {}), ("get", "/notes/export", None), ("post", "/notes/delete-all", {}),
        ):
            answer = user.get(path) if method == "get" else user.post(path, data)
            assert answer.status_code == 503, (path, answer.text[:300])
            assert "Notes unavailable" in answer.text and "Traceback" not in answer.text
        for path in ("/", "/healthz", "/profile"):
            assert user.get(path).status_code == 200, path
        assert user.add("").status_code == 400  # checked before the database is needed
    assert user.get("/notes").status_code == 200
    assert user.texts() == ["kept"]  # nothing half-written, nothing lost
    logged = [record.getMessage() for record in caplog.records if record.name == "notes"]
    assert any("event=notes-db-unavailable path='/notes' " in line for line in logged)
    assert not any("lost in the outage" in line for line in logged)


def test_a_database_unreachable_at_start_up_does_not_stop_the_site(
    backend: Backend, sites: Sites, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env, make_available = backend.later(tmp_path)
    running = sites.start(tmp_path / "site", **env)
    assert any("event=notes-db-unavailable at=start-up" in record.getMessage() for record in caplog.records)
    user = User(running)
    assert user.get("/").status_code == 200
    assert user.get("/notes").status_code == 503
    make_available()
    assert user.get("/notes").status_code == 200  # the migration is tried again, and now runs
    assert_see_other_to_notes(user.add("the database is back"))
    assert user.texts() == ["the database is back"]


def test_the_schema_has_the_owner_index(site: Stack) -> None:
    with site.app.app_context():
        indexes = inspect(db.engine).get_indexes("notes")
    assert {"name": "ix_notes_owner_sub_id", "column_names": ["owner_sub", "id"]}.items() <= indexes[0].items()


STARTER = """
import sys, time
from sqlalchemy import event
from sqlalchemy.engine import Engine
from flask_app import create_app
event.listen(Engine, "after_cursor_execute", lambda *args: time.sleep(0.1))  # a wide window for a race
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))  # all start their migration at the same moment
create_app({"APP_DATA_DIR": sys.argv[2], "DATABASE_URL": sys.argv[3]})
"""


def test_processes_starting_at_once_on_a_fresh_database_migrate_it_once(backend: Backend, tmp_path: Path) -> None:
    url = backend.fresh_url(tmp_path, timeout=60)  # SQLite: wait for the others however slow the machine
    at = str(time.time() + 3)
    starters = [
        subprocess.Popen([sys.executable, "-c", STARTER, at, str(tmp_path / f"app{n}"), url], cwd=ROOT,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for n in range(3)
    ]
    for starter in starters:
        _, err = starter.communicate(timeout=120)
        assert starter.returncode == 0, err  # a second CREATE TABLE would have failed one of them
        assert "event=notes-db-unavailable" not in err
    assert backend.versions(url) == [HEAD]


def _cli_env(tmp_path: Path, url: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("LOGTO_", "APP_", "DATABASE_"))}
    return {**env, "APP_DATA_DIR": str(tmp_path / "cli"), "DATABASE_URL": url}


def test_flask_db_upgrade_and_the_models_match_the_migrations(backend: Backend, tmp_path: Path) -> None:
    url = backend.fresh_url(tmp_path)
    for args in (["db", "upgrade"], ["db", "check"]):  # check: no change in the models lacks a migration
        done = subprocess.run([sys.executable, "-m", "flask", "--app", "flask_app", *args], cwd=ROOT,
                              env=_cli_env(tmp_path, url), capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr
    assert backend.versions(url) == [HEAD]


# ---------------------------------------------------------------- the DATABASE_URL setting


def test_the_default_database_is_notes_db_in_the_data_folder(tmp_path: Path) -> None:
    expected = f"sqlite:///{tmp_path.resolve() / 'notes.db'}"
    assert site_config({"APP_DATA_DIR": str(tmp_path)})["DATABASE_URL"] == expected
    app = create_app({"APP_DATA_DIR": str(tmp_path)})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == expected
    assert SQLiteBackend().versions(expected) == [HEAD]


@pytest.mark.parametrize("url", [
    "mysql://me:s3cret@db.example/notes", "postgresql+psycopg2://me:s3cret@localhost/notes",
    "sqlite+aiosqlite:///notes.db", "not a url", "://me:s3cret@",
])
def test_an_unsupported_database_url_stops_start_up_with_one_line(tmp_path: Path, url: str) -> None:
    with pytest.raises(SystemExit) as stopped:
        create_app({"APP_DATA_DIR": str(tmp_path), "DATABASE_URL": url})
    message = str(stopped.value)
    assert message.startswith("Configuration error: DATABASE_URL") and "\n" not in message
    assert "s3cret" not in message and "sqlite:///" in message and "postgresql+psycopg://" in message


def test_a_postgres_url_uses_psycopg_and_its_password_is_never_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="notes"):
        app = create_app({"APP_DATA_DIR": str(tmp_path), "DATABASE_URL": "postgres://me:s3cret@127.0.0.1:1/notes"})
    try:
        assert app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql+psycopg://me:s3cret@127.0.0.1:1/")
        [line] = [record.getMessage() for record in caplog.records if record.name == "notes"]
        assert "at=start-up" in line and "me:***@127.0.0.1:1/notes" in line and "s3cret" not in line
    finally:
        with app.app_context():
            db.engine.dispose()
