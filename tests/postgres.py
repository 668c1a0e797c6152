"""A throwaway PostgreSQL server for the tests: initdb into a temporary folder, pg_ctl start on a free port.

`postgres_server` (session-scoped fixture) starts one per test session, or skips its tests with the reason
when the PostgreSQL binaries are not installed (`apt-get install postgresql`; .ci/run does it), except under
CI=true, where that is a failure. The server
listens on 127.0.0.1 and a Unix socket in its own folder only, trusts local connections, and is stopped
and deleted at the end. PostgreSQL refuses to run as root: as root, it runs as the `postgres` user that
Debian's package creates, or as `notes-test-pg` (made with useradd) where there is none.
"""

from __future__ import annotations

import os
import pwd
import re
import secrets
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from tests.servers import served, start_on_free_port

SUPERUSER = "notes"
FALLBACK_USER = "notes-test-pg"


def find_bin_dir() -> Path | None:
    """The folder with initdb, pg_ctl and postgres: Debian's newest /usr/lib/postgresql/N/bin, else PATH's."""
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
        key=lambda path: [int(part) for part in re.findall(r"\d+", path.parent.parent.name)],
    )
    candidates = [path.parent for path in reversed(debian)]
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for folder in candidates:
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _server_account() -> tuple[int, int] | None:
    """(uid, gid) to run the server as when we are root; None when we are not (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", FALLBACK_USER):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return entry.pw_uid, entry.pw_gid
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", FALLBACK_USER],
        check=True, capture_output=True, text=True,
    )
    entry = pwd.getpwnam(FALLBACK_USER)
    return entry.pw_uid, entry.pw_gid


@dataclass
class PostgresServer:
    bin_dir: Path
    base: Path  # owned by the server's account: data/, the socket, log
    account: tuple[int, int] | None
    port: int = 0

    @property
    def data_dir(self) -> Path:
        return self.base / "data"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def conninfo(self, database: str = "postgres") -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={database} connect_timeout=5"

    def new_database_name(self) -> str:
        return f"notes_{secrets.token_hex(6)}"

    def create_database(self, name: str | None = None) -> str:
        """A new, empty database; returns its SQLAlchemy URL."""
        name = name or self.new_database_name()
        with psycopg.connect(self.conninfo(), autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')  # type: ignore[arg-type]
        return self.url(name)

    def initdb(self) -> None:
        self._run("initdb", "-D", str(self.data_dir), "-U", SUPERUSER, "--auth=trust", "--no-locale",
                  "-E", "UTF8", "--no-sync", "--no-instructions")

    def start(self) -> None:
        """Start (again), on `port` if it has one, else on a free port (another try if one is taken meanwhile)."""
        attempts: list[subprocess.CompletedProcess[str]] = []

        def start_on(port: int) -> bool:  # pg_ctl -w: started means accepting connections
            options = f"-p {port} -k {self.base} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off"
            result = self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.base / "log"), "-w", "-t", "60",
                               "-o", options, "start", check=False)
            attempts.append(result)
            return result.returncode == 0

        port = start_on_free_port(start_on, self.port)
        if port is None:
            raise RuntimeError(f"PostgreSQL did not start: {attempts[-1].stdout}{attempts[-1].stderr}{self.log_tail()}")
        self.port = port

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data_dir), "-w", "-t", "60", "-m", "fast", "stop", check=False)

    def log_tail(self) -> str:
        log = self.base / "log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""

    def _run(self, program: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        ids: dict[str, object] = {}
        if self.account is not None:
            ids = {"user": self.account[0], "group": self.account[1], "extra_groups": []}
        result = subprocess.run(
            [str(self.bin_dir / program), *args], cwd=self.base, capture_output=True, text=True, timeout=120,
            env={**os.environ, "LC_ALL": "C"}, **ids,  # type: ignore[arg-type]
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{program} failed ({result.returncode}): {result.stdout}{result.stderr}")
        return result


def start_postgres() -> PostgresServer | None:
    """A new, started server, or None without the PostgreSQL binaries."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        return None
    account = _server_account()
    base = Path(tempfile.mkdtemp(prefix="notes-pg-"))  # not under pytest's root-only tmp folders
    if account is not None:
        os.chown(base, *account)
    server = PostgresServer(bin_dir, base, account)
    try:
        server.initdb()
        server.start()
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    return server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    yield from served(start_postgres(), "PostgreSQL is not installed (no initdb/pg_ctl/postgres; apt-get install postgresql)")
