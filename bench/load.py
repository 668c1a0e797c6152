"""Load test: 1,000 distinct people sign in across two site instances that share Redis (and PostgreSQL for notes).

    python -m bench.load [--users 1000] [--concurrency 16] [--deadline 900]

Starts a Redis, a PostgreSQL (for the notes, when the site has them: notes.py), the embedded provider and two
gunicorn instances (2 workers × 4 threads each) on loopback. Each person signs in on one instance, then loads
`/profile` on the other, adds a note there and reads `/notes` back on the first. Every answer must be the
expected one (0 errors) and show that person and nobody else. Prints the figures as Markdown and writes them
into bench/RESULTS.md (the section between `<!-- load.py -->` markers). Bounded: stops by itself after
`--deadline` seconds at the most, and stops every process it started.
"""

from __future__ import annotations

import argparse
import re
import secrets
import signal
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from bench.common import RESULTS_MD, Cluster, machine, sign_in, start_cluster, stats, write_section
from tests.harness import forms_in, page_text

ROOT = Path(__file__).resolve().parent.parent

NAME = re.compile(r"load-\d{4}", re.IGNORECASE)
HAS_NOTES = (ROOT / "website" / "notes.py").exists()


@dataclass
class Outcome:
    timings: dict[str, list[float]] = field(default_factory=lambda: {"sign_in": [], "profile": [], "note": [], "notes": []})
    errors: list[str] = field(default_factory=list)
    people: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def time(self, step: str, started: float) -> None:
        with self.lock:
            self.timings[step].append((time.perf_counter() - started) * 1000)


def names_on(text: str) -> set[str]:
    """The load-test people a page names."""
    return {name.lower() for name in NAME.findall(text)}


def visit(cluster: Cluster, number: int, outcome: Outcome, deadline: float) -> None:
    """One person's visit; every unexpected answer is an error."""
    if time.monotonic() > deadline:
        raise RuntimeError("deadline passed before this person's turn")
    username = f"load-{number:04d}"
    first, second = (cluster.instances["a"], cluster.instances["b"])[:: 1 if number % 2 == 0 else -1]
    started = time.perf_counter()
    http = sign_in(first, username).http
    outcome.time("sign_in", started)

    started = time.perf_counter()
    profile = http.get(second.url("/profile"), allow_redirects=False, timeout=30)
    outcome.time("profile", started)
    _expect(profile, 200, f"<dd>{username}</dd>", username, f"{username} /profile on {second.name}")

    if HAS_NOTES:
        text = f"note of {username} {secrets.token_hex(4)}"
        started = time.perf_counter()
        page = http.get(second.url("/notes"), allow_redirects=False, timeout=30)
        _expect(page, 200, "Your notes", username, f"{username} GET /notes on {second.name}", named=False)
        csrf = next(form for form in forms_in(page.text) if str(form["action"]).endswith("/notes"))["fields"]["csrf_token"]
        added = http.post(second.url("/notes"), data={"csrf_token": csrf, "text": text}, allow_redirects=False, timeout=30)
        outcome.time("note", started)
        if added.status_code != 303:
            raise RuntimeError(f"{username} POST /notes on {second.name}: {added.status_code} {page_text(added.text)[:200]}")
        started = time.perf_counter()
        notes = http.get(first.url("/notes"), allow_redirects=False, timeout=30)
        outcome.time("notes", started)
        _expect(notes, 200, text, username, f"{username} GET /notes on {first.name}")
        if notes.text.count("note of load-") != 1:
            raise RuntimeError(f"{username} /notes on {first.name} shows {notes.text.count('note of load-')} notes")
    with outcome.lock:
        outcome.people += 1


def _expect(response: requests.Response, status: int, needle: str, username: str, what: str, *, named: bool = True) -> None:
    """The expected status and text, no other person's name, and (if `named`) this person's."""
    if response.status_code != status:
        raise RuntimeError(f"{what}: {response.status_code} {page_text(response.text)[:200]}")
    if needle not in response.text:
        raise RuntimeError(f"{what}: {needle!r} not on the page")
    names = names_on(response.text)
    if names - {username} or (named and username not in names):
        raise RuntimeError(f"{what}: the page names {sorted(names)}")


def run(args: argparse.Namespace) -> str:
    started = time.monotonic()
    deadline = started + args.deadline
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp:
        postgres = database_url = None
        if HAS_NOTES:
            from tests.postgres import start_postgres

            postgres = start_postgres()
            if postgres is None:
                raise SystemExit("PostgreSQL is not installed (apt-get install postgresql): the notes need it here")
            database_url = postgres.create_database()
        try:
            cluster = start_cluster(Path(tmp), {"a": "redis", "b": "redis"}, database_url=database_url or "")
            try:
                print(f"instances a {cluster.instances['a'].base_url}, b {cluster.instances['b'].base_url}; "
                      f"provider port {cluster.provider.port}; {cluster.redis.url}"
                      f"{'; PostgreSQL port ' + str(postgres.port) if postgres else ''}", flush=True)
                outcome, load_seconds = load(cluster, args, deadline)
                after = after_the_load(cluster, postgres, database_url)
            finally:
                cluster.stop()
        finally:
            if postgres is not None:
                postgres.stop()
                import shutil

                shutil.rmtree(postgres.base, ignore_errors=True)
    return report(args, outcome, load_seconds, after, time.monotonic() - started)


def load(cluster: Cluster, args: argparse.Namespace, deadline: float) -> tuple[Outcome, float]:
    outcome = Outcome()
    started = time.monotonic()
    with ThreadPoolExecutor(args.concurrency) as pool:
        futures = {pool.submit(visit, cluster, number, outcome, deadline): number for number in range(args.users)}
        for done, future in enumerate(as_completed(futures), 1):
            try:
                future.result()
            except Exception as error:  # noqa: BLE001 - every failure is counted and shown
                outcome.errors.append(f"{type(error).__name__}: {error}"[:300])
            if done % 100 == 0:
                print(f"  {done} people done, {len(outcome.errors)} errors, {time.monotonic() - started:.0f} s", flush=True)
    return outcome, time.monotonic() - started


def after_the_load(cluster: Cluster, postgres: Any, database_url: str | None) -> dict[str, Any]:
    client = cluster.redis.client()
    memory = client.info("memory")
    after = {
        "sessions": sum(1 for _ in client.scan_iter("session:*", count=1000)),
        "index_sets": sum(1 for _ in client.scan_iter("flask_logto:s*:*", count=1000)),
        "redis_memory": memory.get("used_memory_human", "?"),
        "provider": cluster.provider.state()["counts"],
    }
    if postgres is not None and database_url:
        import psycopg

        name = database_url.rsplit("/", 1)[1]
        with psycopg.connect(postgres.conninfo(name)) as connection:
            after["notes"], after["note_owners"] = connection.execute(
                "SELECT count(*), count(DISTINCT owner_sub) FROM notes").fetchone()
    return after


def report(args: argparse.Namespace, outcome: Outcome, load_seconds: float, after: dict[str, Any], elapsed: float) -> str:
    steps = {"sign_in": "whole sign-in (7 requests, site + provider)", "profile": "`GET /profile` on the other instance",
             "note": "`GET /notes` + `POST /notes` on the other instance", "notes": "`GET /notes` back on the first"}
    lines = [
        "<!-- load.py -->",
        f"## Load test: {args.users:,} people, two instances sharing Redis" + (" and PostgreSQL" if HAS_NOTES else ""),
        "",
        f"`python -m bench.load --users {args.users} --concurrency {args.concurrency}`, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}. Machine: {machine()}. Two gunicorn instances (2 workers × 4 threads each) "
        "on two loopback ports, sharing one Redis (sessions, refresh locks, sign-in index)"
        + (", one PostgreSQL (notes)" if HAS_NOTES else " (no notes.py: no database)")
        + " and the embedded provider; everything on this machine, client included. Each person signs in on one "
        "instance, then loads `/profile`" + (", adds a note and reads `/notes`" if HAS_NOTES else "")
        + " across both; every answer must show that person and no one else.",
        "",
        f"- People: {outcome.people} of {args.users} completed, **{len(outcome.errors)} errors**, in {load_seconds:.1f} s "
        f"({outcome.people / load_seconds:.1f} people/s, {args.concurrency} at a time).",
        f"- Redis after the load: {after['sessions']} sessions, {after['index_sets']} sign-in index sets, "
        f"{after['redis_memory']} used. Provider: "
        + ", ".join(f"{count} {grant.replace('_', ' ')} grants" for grant, count in after["provider"]["grants"].items()) + ".",
    ]
    if "notes" in after:
        lines.append(f"- PostgreSQL after the load: {after['notes']} notes by {after['note_owners']} distinct users.")
    lines += ["", "| step | n | p50 ms | p95 ms | max ms |", "|---|---|---|---|---|"]
    for key, label in steps.items():
        if outcome.timings[key]:
            row = stats(outcome.timings[key])
            lines.append(f"| {label} | {row['n']:.0f} | {row['p50']:.1f} | {row['p95']:.1f} | {row['max']:.1f} |")
    if outcome.errors:
        lines += ["", "First errors:", *(f"- {error}" for error in outcome.errors[:10])]
    lines += ["", f"Whole run {elapsed:.0f} s (start-up and clean-up included).", "<!-- /load.py -->"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1000, help="people to sign in (default 1000)")
    parser.add_argument("--concurrency", type=int, default=16, help="people at a time (default 16)")
    parser.add_argument("--deadline", type=int, default=900, help="seconds after which it gives up (default 900)")
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/RESULTS.md alone")
    args = parser.parse_args()
    if not 1 <= args.users <= 10_000 or not 1 <= args.concurrency <= 64 or args.deadline < 10:
        parser.error("--users 1..10000, --concurrency 1..64, --deadline >= 10")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the finally blocks: stop every process
    section = run(args)
    print("\n" + section)
    if not args.no_write:
        write_section(RESULTS_MD, section, "load.py")
        print(f"(written to {RESULTS_MD.relative_to(ROOT)})")
    print("Every process started here has stopped.")
    if "**0 errors**" not in section:
        sys.exit(1)


if __name__ == "__main__":
    main()
