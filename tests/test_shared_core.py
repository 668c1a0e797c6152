"""What the process keeps for all requests (the OIDC core, its signing keys) is built once, however many
threads and event loops ask for it at the same moment.

Each test holds the first fetch until every caller is inside: either fetching for itself (the race
these tests guard against) or sharing the fetch under way. Only then is the fetch let go.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from logto.models.oidc import OidcProviderMetadata

from flask_logto import oidc_core
from flask_logto.connection import Logto
from flask_logto.oidc_core import SingleFlight, StrictOidcCore
from tests.harness import auth_settings

CALLERS = 8
METADATA = json.loads((Path(__file__).parent / "fixtures/discovery.json").read_text())


def wait_until(condition: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the callers never all arrived"
        time.sleep(0.001)


def in_threads(count: int, work: Callable[[], object]) -> tuple[list[threading.Thread], list[object]]:
    """Start `count` threads, each running `work` (an `asyncio.run` of its own loop); results in arrival order."""
    results: list[object] = []

    def run() -> None:
        try:
            results.append(work())
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results.append(error)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    return threads, results


def test_callers_arriving_together_share_one_core(tmp_path, monkeypatch):
    logto = Logto(auth_settings({"APP_DATA_DIR": str(tmp_path)}))
    fetches: list[str] = []
    release = threading.Event()

    async def held_discovery(url: str) -> OidcProviderMetadata:
        fetches.append(url)
        await asyncio.to_thread(release.wait, 10)
        return OidcProviderMetadata(**METADATA)

    monkeypatch.setattr(StrictOidcCore, "getProviderMetadata", staticmethod(held_discovery))
    threads, cores = in_threads(CALLERS, lambda: asyncio.run(logto.core()))
    wait_until(lambda: len(fetches) + logto._core_build.waiting == CALLERS)
    release.set()
    for thread in threads:
        thread.join()

    assert len(fetches) == 1
    assert len({id(core) for core in cores}) == 1 and isinstance(cores[0], StrictOidcCore)
    assert asyncio.run(logto.core()) is cores[0]  # and it is never replaced


def test_a_failed_build_is_shared_then_retried(tmp_path, monkeypatch):
    logto = Logto(auth_settings({"APP_DATA_DIR": str(tmp_path)}))
    fetches: list[str] = []
    release = threading.Event()

    async def failing_discovery(url: str) -> OidcProviderMetadata:
        fetches.append(url)
        await asyncio.to_thread(release.wait, 10)
        raise OSError("connection refused")

    monkeypatch.setattr(StrictOidcCore, "getProviderMetadata", staticmethod(failing_discovery))
    threads, outcomes = in_threads(CALLERS, lambda: asyncio.run(logto.core()))
    wait_until(lambda: len(fetches) + logto._core_build.waiting == CALLERS)
    release.set()
    for thread in threads:
        thread.join()
    assert len(fetches) == 1 and all(isinstance(outcome, OSError) for outcome in outcomes)

    async def working_discovery(url: str) -> OidcProviderMetadata:
        return OidcProviderMetadata(**METADATA)

    monkeypatch.setattr(StrictOidcCore, "getProviderMetadata", staticmethod(working_discovery))
    assert isinstance(asyncio.run(logto.core()), StrictOidcCore)


def test_a_sharer_that_gives_up_does_not_cancel_the_fetch_for_the_others():
    flight: SingleFlight[str] = SingleFlight()
    release = threading.Event()
    started = threading.Event()

    async def slow() -> str:
        started.set()
        await asyncio.to_thread(release.wait, 10)
        return "done"

    owner, outcome = in_threads(1, lambda: asyncio.run(flight.run(slow)))
    started.wait(10)

    async def impatient() -> str:
        return await asyncio.wait_for(flight.run(slow), 0.01)

    with pytest.raises(TimeoutError):
        asyncio.run(impatient())
    release.set()
    owner[0].join()
    assert outcome == ["done"]


def test_signing_keys_are_fetched_once_for_tokens_verified_together(monkeypatch):
    key = ec.generate_private_key(ec.SECP384R1())
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    jwk.update(kid="k1", use="sig", alg="ES384")
    core = StrictOidcCore(OidcProviderMetadata(**METADATA))
    now = int(time.time())
    token = jwt.encode(
        {"iss": METADATA["issuer"], "sub": "u1", "aud": "app", "exp": now + 600, "iat": now},
        key, algorithm="ES384", headers={"kid": "k1"},
    )
    fetches: list[str] = []
    release = threading.Event()

    async def held_jwks(method: str, url: str, **request: object) -> dict[str, object]:
        fetches.append(url)
        await asyncio.to_thread(release.wait, 10)
        return {"keys": [jwk]}

    monkeypatch.setattr(oidc_core, "fetch_json", held_jwks)

    def verify() -> str:
        asyncio.run(core._have_key_for(token))
        core.verifyIdToken(token, "app")
        return "verified"

    threads, outcomes = in_threads(CALLERS, verify)
    wait_until(lambda: len(fetches) + core._key_fetch.waiting == CALLERS)
    release.set()
    for thread in threads:
        thread.join()
    assert outcomes == ["verified"] * CALLERS and len(fetches) == 1
