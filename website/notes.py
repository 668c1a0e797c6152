"""Private notes: each signed-in user's own short notes (blueprint `notes`, Flask-SQLAlchemy, Alembic migrations).

Routes, all `login_required`; every POST needs the form's CSRF token (400 without it):
- `GET /notes`: the user's notes, newest first, and a form to add one.
- `POST /notes` (field `text`): add one, 303 to `/notes`. Empty (after strip) or over 2,000 characters: 400.
- `POST /notes/<id>/delete`: delete one, 303 to `/notes`. Someone else's id, a missing one or a non-integer:
  the same 404 page (one query, `WHERE id = ? AND owner_sub = ?`, answers all three).
- `GET /notes/export`: the user's notes as a JSON attachment, `[{id, text, created_at}]` newest first.
- `POST /notes/delete-all`: delete all of the user's notes, 303 to `/notes`. Only after a sign-in at most
  5 minutes old (`recent_sign_in_required`): anyone else signs in again first, lands back on `/notes` with
  nothing deleted, and posts again.

A note belongs to the Logto user id (`current_user().sub`), never to a name that can change. At most 1,000
per user: the count and the insert run in one transaction that first takes a lock every other add by the
same user waits for (PostgreSQL: a transaction-level advisory lock keyed by the user; SQLite: every
transaction begins with `BEGIN IMMEDIATE`, the database's write lock).

Storage is `DATABASE_URL` (settings.py; default `sqlite:///<APP_DATA_DIR>/notes.db`), SQLite or PostgreSQL
through psycopg 3. `init_app` upgrades the database to the newest migration (migrations/, also
`flask --app flask_app db upgrade`); migrations/env.py makes the upgrade one locked transaction, so two
processes starting at once are safe. A database that cannot be reached at start-up does not stop the site:
one warning line, the notes pages answer 503, and the upgrade is tried again at the next notes request.
Any database failure in a notes route (down, locked, disk full) is rolled back and answers a 503 page;
`/` and `/healthz` never touch the database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.util import CommandError
from flask import Blueprint, Flask, Response, current_app, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFError
from sqlalchemy import DateTime, Engine, Index, Integer, String, Text, delete, event, func, select
from sqlalchemy import text as sql
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from client import current_user, login_required, recent_sign_in_required, signed_in_key
from flask_logto.errors import ConfigError
from flask_logto.i18n import N_
from flask_logto.rate_limits import check_limit, limit_views

MAX_NOTES = 1000
RATE_LIMIT = "60 per minute"  # changes (add, delete, delete all) per signed-in person
MAX_LENGTH = 2000
RECENT_SIGN_IN_SECONDS = 300  # "Delete all notes" asks for a sign-in at most this old
FULL_MESSAGE = N_("You have 1,000 notes, the most allowed: delete some first.")
MIGRATIONS = Path(__file__).resolve().parent / "migrations"
URL_HINT = "sqlite:////absolute/path/notes.db or postgresql+psycopg://user:password@host:5432/name"
_NOTE_ID = re.compile(r"[0-9]{1,10}")
_MAX_ID = 2**31 - 1  # the `id` column is a 32-bit integer on PostgreSQL
_migrating = threading.Lock()  # Alembic keeps one migration context per process

log = logging.getLogger("notes")
blueprint = Blueprint("notes", __name__)


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)
migrate = Migrate()


class Note(db.Model):  # type: ignore[name-defined]
    """One note; `owner_sub` is the Logto user id of the person who wrote it."""

    __tablename__ = "notes"
    __table_args__ = (Index("ix_notes_owner_sub_id", "owner_sub", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    owner_sub: Mapped[str] = mapped_column(String(255))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))

    @property
    def created_utc(self) -> datetime:
        """`created_at` in UTC (SQLite gives it back without a time zone; it was stored in UTC)."""
        moment = self.created_at
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    def exported(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "created_at": self.created_utc.isoformat()}


class BadNote(ValueError):
    """Text that cannot be a note; the message says why."""


def init_app(app: Flask) -> None:
    """Set up the database from `DATABASE_URL`, upgrade it to the newest migration, add the routes."""
    url = database_url(app.config.get("DATABASE_URL") or f"sqlite:///{Path(app.config['LOGTO_DATA_DIR']) / 'notes.db'}")
    app.config["SQLALCHEMY_DATABASE_URI"] = url
    app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", _engine_options(url))
    db.init_app(app)
    migrate.init_app(app, db, directory=str(MIGRATIONS))
    app.extensions["notes"] = {"schema_ready": False}
    app.register_blueprint(blueprint)
    check_limit(app.config, "RATELIMIT_NOTES", RATE_LIMIT)
    limit_views(  # every change, together, per person; counted before the CSRF check
        app, ["notes.add", "notes.delete_one", "notes.delete_all"], "RATELIMIT_NOTES",
        key=signed_in_key, scope="notes", check_csrf=True,
    )
    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            _real_sqlite_transactions(db.engine)
        try:
            ensure_schema()
        except OperationalError as error:
            log.warning(
                "event=notes-db-unavailable at=start-up database=%s cause=%s "
                "(the site serves; the notes pages answer 503 until the database can be reached)",
                make_url(url).render_as_string(hide_password=True), _cause(error),
            )
        except SQLAlchemyError as error:
            raise ConfigError(f"DATABASE_URL: upgrading the notes database failed: {_cause(error)}") from None
        except CommandError as error:  # e.g. the database is at a revision this code does not have
            raise ConfigError(f"DATABASE_URL: upgrading the notes database failed: {error}") from None


def database_url(raw: str) -> str:
    """`raw` as the URL to use: SQLite, or PostgreSQL through psycopg 3 (`postgres://` is taken as that too)."""
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ConfigError(f"DATABASE_URL is not a database URL: use {URL_HINT}") from None
    backend, _, driver = url.drivername.partition("+")
    if backend in ("postgres", "postgresql") and driver in ("", "psycopg"):
        url = url.set(drivername="postgresql+psycopg")
    elif not (backend == "sqlite" and driver in ("", "pysqlite")):
        raise ConfigError(f"DATABASE_URL: {url.drivername}:// is not supported: use {URL_HINT}")
    return url.render_as_string(hide_password=False)


def _engine_options(url: str) -> dict[str, Any]:
    options: dict[str, Any] = {"pool_pre_ping": True}  # a restarted server's dead connections are replaced
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        options["connect_args"] = {"connect_timeout": 5}
    return options


def _real_sqlite_transactions(engine: Engine) -> None:
    """SQLite transactions that hold: the driver's own BEGIN handling off, each one `BEGIN IMMEDIATE`.

    Taking the write lock when a transaction begins (not at its first write) serializes the count and
    insert of two adds, and the whole of two migrations; another writer waits up to the busy timeout
    (5 s, or `?timeout=` in the URL) and then gets "database is locked" (503).
    """

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def ensure_schema() -> None:
    """Upgrade the database to the newest migration, once per app (again after a failure). App context needed."""
    state = current_app.extensions["notes"]
    if state["schema_ready"]:
        return
    with _migrating:
        if not state["schema_ready"]:
            command.upgrade(migrate.get_config(), "head")
            state["schema_ready"] = True


def checked_text(raw: str) -> str:
    """The note to store for the form's `raw` text: line endings as `\\n`, stripped, 1 to 2,000 characters."""
    text = raw.replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise BadNote(gettext("A note needs some text."))
    if len(text) > MAX_LENGTH:
        most, count = f"{MAX_LENGTH:,}", f"{len(text):,}"
        raise BadNote(gettext("A note can have at most %(most)s characters; this one has %(count)s.", most=most, count=count))
    if "\x00" in text:
        raise BadNote(gettext("A note cannot contain NUL characters."))
    return text


@blueprint.get("/notes")
@login_required
def index() -> str:
    notes = _notes_of(_owner())
    return render_template(
        "notes.html", notes=notes, max_length=MAX_LENGTH, max_notes=MAX_NOTES,
        full_message=FULL_MESSAGE if len(notes) >= MAX_NOTES else None,
    )


@blueprint.post("/notes")
@login_required
def add() -> Any:
    try:
        text = checked_text(request.form.get("text", ""))
    except BadNote as problem:
        return _page(400, N_("Note not saved"), str(problem))
    owner = _owner()
    ensure_schema()
    _lock_owner(owner)
    count = db.session.scalar(select(func.count()).select_from(Note).where(Note.owner_sub == owner))
    if (count or 0) >= MAX_NOTES:
        db.session.rollback()
        return _page(409, N_("Too many notes"), FULL_MESSAGE)
    db.session.add(Note(owner_sub=owner, text=text, created_at=datetime.now(UTC)))
    db.session.commit()
    log.info("event=note-added user=%s", owner)
    return redirect(url_for("notes.index"), 303)


@blueprint.post("/notes/<note_id>/delete")
@login_required
def delete_one(note_id: str) -> Any:
    number = int(note_id) if _NOTE_ID.fullmatch(note_id) else 0
    if not 1 <= number <= _MAX_ID:
        return _not_found()
    ensure_schema()
    result = db.session.execute(delete(Note).where(Note.id == number, Note.owner_sub == _owner()))
    db.session.commit()
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return _not_found()
    return redirect(url_for("notes.index"), 303)


@blueprint.get("/notes/export")
@login_required
def export() -> Response:
    body = json.dumps([note.exported() for note in _notes_of(_owner())], ensure_ascii=False, indent=2)
    return Response(
        body + "\n", mimetype="application/json",
        headers={"Content-Disposition": 'attachment; filename="notes.json"'},
    )


@blueprint.post("/notes/delete-all")
@login_required
@recent_sign_in_required(max_age=RECENT_SIGN_IN_SECONDS)
def delete_all() -> Any:
    owner = _owner()
    ensure_schema()
    result = db.session.execute(delete(Note).where(Note.owner_sub == owner))
    db.session.commit()
    log.info("event=notes-deleted user=%s count=%s", owner, result.rowcount)  # type: ignore[attr-defined]
    return redirect(url_for("notes.index"), 303)


@blueprint.errorhandler(SQLAlchemyError)
def database_unavailable(error: SQLAlchemyError) -> tuple[str, int]:
    """Down, locked, full or any other database failure: roll back (nothing half-written) and say so."""
    try:
        db.session.rollback()
    except SQLAlchemyError:
        pass
    user = current_user()
    log.warning(
        "event=notes-db-unavailable path=%r user=%s cause=%r", request.path, user.sub if user else "-", _cause(error)
    )
    return _page(
        503, N_("Notes unavailable"),
        N_("Your notes cannot be reached right now; nothing was changed. Please try again in a moment."),
    )


@blueprint.errorhandler(CSRFError)
def form_expired(error: CSRFError) -> tuple[str, int]:
    log.warning("event=csrf-failure path=%r cause=%r", request.path, error.description)
    return _page(400, N_("Form expired"), N_("Please reload the page and try again."))


def _owner() -> str:
    user = current_user()
    assert user is not None  # every route is login_required
    return user.sub


def _notes_of(owner: str) -> list[Note]:
    """The owner's notes, newest first; the read transaction (SQLite: its lock) ends before the page is drawn."""
    ensure_schema()
    try:
        return list(db.session.scalars(select(Note).where(Note.owner_sub == owner).order_by(Note.id.desc())))
    finally:
        db.session.close()


def _lock_owner(owner: str) -> None:
    """Hold, until this transaction ends, a lock that every other add by `owner` waits for."""
    if db.engine.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.blake2b(f"notes:{owner}".encode(), digest_size=8).digest(), "big", signed=True)
        db.session.execute(sql("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    # SQLite: this transaction began with BEGIN IMMEDIATE, so it already holds the database's write lock.


def _not_found() -> tuple[str, int]:
    return _page(404, N_("Note not found"), N_("There is no such note among yours."))


def _page(status: int, title: str, message: str) -> tuple[str, int]:
    """error.html with an English title and message (marked with N_), which it shows in the visitor's language."""
    return render_template("error.html", title=title, message=message), status


def _cause(error: SQLAlchemyError) -> str:
    """The driver's one-line reason, without the statement or its parameters (which hold note text)."""
    original = getattr(error, "orig", None) or error
    first_line = (str(original).strip().splitlines() or [""])[0]
    return f"{type(original).__name__}: {first_line[:200]}"
