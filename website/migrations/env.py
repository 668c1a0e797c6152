"""Alembic's environment for the notes database: the app's own engine, one transaction, one migrator at a time.

Run by `flask --app flask_app db ...` (Flask-Migrate) and by `notes.ensure_schema()` when the app is created.
The whole upgrade is one transaction that first takes a lock every other migrator waits for, so when two
processes start at once the second finds the work done: on PostgreSQL a transaction-level advisory lock
(DDL is transactional there), on SQLite the write lock that each transaction of the app's engine takes
with BEGIN IMMEDIATE (notes.py). A failure rolls the whole upgrade back.
"""

from __future__ import annotations

import logging
from typing import Any

from alembic import context
from flask import current_app
from sqlalchemy import text

MIGRATION_LOCK = 0x6E6F7465735F6462  # pg_advisory_xact_lock key: "notes_db"

config = context.config
target_db = current_app.extensions["migrate"].db
log = logging.getLogger("alembic.env")


def run_migrations_offline() -> None:
    """`--sql`: print the SQL instead of running it."""
    context.configure(
        url=target_db.engine.url.render_as_string(hide_password=False),
        target_metadata=target_db.metadata,
        literal_binds=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    def process_revision_directives(_context: Any, _revision: Any, directives: list[Any]) -> None:
        if getattr(config.cmd_opts, "autogenerate", False) and directives[0].upgrade_ops.is_empty():
            directives[:] = []  # `flask db migrate` with no change writes no empty revision
            log.info("No changes in schema detected.")

    configure_args = dict(current_app.extensions["migrate"].configure_args)
    configure_args.setdefault("process_revision_directives", process_revision_directives)
    with target_db.engine.connect() as connection, connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
        context.configure(connection=connection, target_metadata=target_db.metadata, **configure_args)
        with context.begin_transaction():  # inside ours: Alembic leaves the commit to the `with` above
            context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
