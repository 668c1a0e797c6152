"""Test fixtures: the embedded identity provider and the site, both real HTTP servers on free ports.

`stack` is shared by the tests of a module; `make_stack()` builds a private one for tests that
break the provider. The helpers that walk a sign-in live in tests/harness.py (the benchmark uses them too).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.harness import (  # noqa: F401  (re-exported for the tests)
    Stack,
    csrf_token_in,
    follow_to_callback,
    forms_in,
    page_text,
    sign_in,
    start_sign_in,
    start_stack,
)

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    running = start_stack(tmp_path_factory.mktemp("stack"))
    yield running
    running.stop()


@pytest.fixture
def make_stack(tmp_path: Path) -> Iterator[Callable[..., Stack]]:
    started: list[Stack] = []

    def make(**kwargs: object) -> Stack:
        running = start_stack(tmp_path / f"stack{len(started)}", **kwargs)  # type: ignore[arg-type]
        started.append(running)
        return running

    yield make
    for running in started:
        running.stop()


def pytest_configure(config: pytest.Config) -> None:
    ARTIFACTS.mkdir(exist_ok=True)


def chromium_path() -> str | None:
    return shutil.which("chromium") or (os.path.exists("/usr/bin/chromium") and "/usr/bin/chromium") or None
