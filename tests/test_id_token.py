"""What a hostile identity provider could send: tokens and metadata the site must refuse (unit level)."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from logto import LogtoException
from logto.models.oidc import OidcProviderMetadata

from flask_logto.connection import Logto
from flask_logto.errors import LogtoUnavailable, ProviderError, ResponseTooLarge, SessionEnded, SignInRejected
from flask_logto.oidc_core import StrictOidcCore
from tests.harness import auth_settings

ISSUER = "http://localhost:3001/oidc"
APP_ID = "local-dev-site"
KEY = ec.generate_private_key(ec.SECP384R1())


def as_jwk(public_key: object) -> jwt.PyJWK:
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return jwt.PyJWK.from_json(jwt.algorithms.ECAlgorithm.to_jwk(public_key))
    return jwt.PyJWK.from_json(jwt.algorithms.RSAAlgorithm.to_jwk(public_key))


@pytest.fixture
def core() -> StrictOidcCore:
    metadata = json.loads((Path(__file__).parent / "fixtures/discovery.json").read_text())
    strict = StrictOidcCore(OidcProviderMetadata(**metadata))
    strict._keys = {None: as_jwk(KEY.public_key())}  # tokens below carry no kid
    return strict


def claims(**changes: object) -> dict[str, object]:
    now = int(time.time())
    base = {"iss": ISSUER, "sub": "u1", "aud": APP_ID, "exp": now + 3600, "iat": now, "nonce": "n"}
    base.update(changes)
    return {key: value for key, value in base.items() if value is not None}


def test_a_good_token_passes(core):
    core.verifyIdToken(jwt.encode(claims(), KEY, algorithm="ES384"), APP_ID)


@pytest.mark.parametrize(
    "bad",
    [
        claims(iss="https://evil.example/oidc"),
        claims(aud="someone-else"),
        claims(exp=int(time.time()) - 120),
        claims(iat=int(time.time()) + 600),
        claims(exp=None),
        claims(iat=None),
        claims(sub=None),
        claims(sub=""),
        claims(aud=[APP_ID, "someone-else"]),
        claims(email=["not", "a", "string"]),
    ],
    ids=["issuer", "audience", "expired", "issued-in-future", "no-exp", "no-iat", "no-sub", "empty-sub",
         "several-audiences", "odd-claim-type"],
)
def test_bad_claims_are_refused(core, bad):
    with pytest.raises(jwt.InvalidTokenError):
        core.verifyIdToken(jwt.encode(bad, KEY, algorithm="ES384"), APP_ID)


def test_signature_by_another_key_is_refused(core):
    other = ec.generate_private_key(ec.SECP384R1())
    with pytest.raises(jwt.InvalidSignatureError):
        core.verifyIdToken(jwt.encode(claims(), other, algorithm="ES384"), APP_ID)


def test_unsigned_and_symmetric_tokens_are_refused(core):
    unsigned = jwt.encode(claims(), None, algorithm="none")
    with pytest.raises(jwt.InvalidTokenError):
        core.verifyIdToken(unsigned, APP_ID)
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    core._keys = {None: as_jwk(rsa_key.public_key())}
    forged = jwt.encode(claims(), "shared-secret-guess-of-thirty-two-bytes-or-more", algorithm="HS256")
    with pytest.raises(jwt.InvalidTokenError):
        core.verifyIdToken(forged, APP_ID)


def run_guarded(logto: Logto, step: str, error: BaseException) -> BaseException:
    async def failing() -> None:
        raise error

    try:
        asyncio.run(logto.guarded(step, failing()))
    except BaseException as caught:  # noqa: BLE001 - the test inspects what came out
        return caught
    raise AssertionError("guarded() swallowed the error")


@pytest.fixture
def logto(tmp_path) -> Logto:
    return Logto(auth_settings({"APP_DATA_DIR": str(tmp_path), "LOGTO_TIMEOUT": "1"}))


@pytest.mark.parametrize(
    "step, error, expected, cause",
    [
        ("token", jwt.InvalidSignatureError("x"), SignInRejected, "ID token rejected"),
        ("token", jwt.InvalidKeyError("ES256 header, P-384 key"), SignInRejected, "ID token rejected"),
        ("token", ProviderError("the JWKS has no usable key"), LogtoUnavailable, "no usable key"),
        ("token", ResponseTooLarge("300 MB"), LogtoUnavailable, "ResponseTooLarge"),
        ("token", LogtoException('{"error": "invalid_grant"}'), SignInRejected, "token: invalid_grant"),
        ("refresh", LogtoException('{"error": "invalid_grant"}'), SessionEnded, "refresh: invalid_grant"),
        ("refresh", LogtoException('{"error": "server_error"}'), LogtoUnavailable, "server_error"),
        ("userinfo", LogtoException('{"error": "invalid_token"}'), SessionEnded, "userinfo: invalid_token"),
        ("token", LogtoException("[" * 100000), LogtoUnavailable, "not OAuth JSON"),
        ("token", ProviderError("not JSON"), LogtoUnavailable, "not JSON"),
        ("token", ProviderError("ConnectionResetError"), LogtoUnavailable, "ConnectionResetError"),
        ("token", TimeoutError(), LogtoUnavailable, "no answer within 1s"),
    ],
)
def test_every_failure_becomes_a_page(logto, step, error, expected, cause):
    caught = run_guarded(logto, step, error)
    assert type(caught) is expected and cause in caught.cause


@pytest.mark.parametrize("bug", [KeyError("x"), TypeError("x"), ValueError("x"), AttributeError("x")])
def test_a_bug_in_our_code_is_not_dressed_up_as_a_logto_failure(logto, bug):
    assert run_guarded(logto, "token", bug) is bug


def test_a_hang_is_cut_at_the_timeout(logto):
    async def hang() -> None:
        await asyncio.sleep(30)

    with pytest.raises(LogtoUnavailable, match="no answer"):
        asyncio.run(logto.guarded("token", hang()))


def test_discovery_from_another_issuer_is_refused(logto, monkeypatch):
    metadata = json.loads((Path(__file__).parent / "fixtures/discovery.json").read_text())
    metadata["issuer"] = "https://evil.example/oidc"

    async def impostor(url: str) -> OidcProviderMetadata:
        return OidcProviderMetadata(**metadata)

    monkeypatch.setattr(StrictOidcCore, "getProviderMetadata", staticmethod(impostor))
    with pytest.raises(LogtoUnavailable, match="discovery issuer"):
        asyncio.run(logto.guarded("discovery", logto.core()))


def test_userinfo_for_another_user_is_refused(logto, core):
    from logto.models.response import UserInfoResponse

    from flask_logto.connection import DictStorage

    async def someone_elses(access_token: str) -> UserInfoResponse:
        return UserInfoResponse(sub="another-user")

    core.fetchUserInfo = someone_elses
    logto._core = core
    storage = DictStorage({
        "idToken": jwt.encode(claims(), KEY, algorithm="ES384"),
        "accessTokenMap": json.dumps({"x": {"": {"token": "at", "expiresAt": int(time.time()) + 600}}}),
    })
    with pytest.raises(SignInRejected, match="userinfo sub mismatch"):
        asyncio.run(logto._userinfo(logto.client(storage), {"sub": "u1"}))


@pytest.mark.parametrize("field", ["authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                                   "end_session_endpoint"])
@pytest.mark.parametrize("elsewhere", ["https://evil.example/oidc/x", "file:///etc/passwd", "http://localhost:9/oidc/x"])
def test_discovery_endpoints_elsewhere_are_refused(logto, monkeypatch, field, elsewhere):
    metadata = json.loads((Path(__file__).parent / "fixtures/discovery.json").read_text())
    metadata[field] = elsewhere

    async def detour(url: str) -> OidcProviderMetadata:
        return OidcProviderMetadata(**metadata)

    monkeypatch.setattr(StrictOidcCore, "getProviderMetadata", staticmethod(detour))
    with pytest.raises(LogtoUnavailable, match="discovery endpoint"):
        asyncio.run(logto.guarded("discovery", logto.core()))


def test_a_token_without_kid_is_accepted_when_the_jwks_has_one_key(core):
    core._keys = {"only": as_jwk(KEY.public_key())}
    core.verifyIdToken(jwt.encode(claims(), KEY, algorithm="ES384"), APP_ID)  # rp-id_token-kid-absent-single-jwks


def test_a_token_without_kid_is_refused_when_the_jwks_has_several(core):
    other = ec.generate_private_key(ec.SECP384R1())
    core._keys = {"one": as_jwk(KEY.public_key()), "two": as_jwk(other.public_key())}
    with pytest.raises(jwt.InvalidTokenError, match="no kid"):
        core.verifyIdToken(jwt.encode(claims(), KEY, algorithm="ES384"), APP_ID)


@pytest.mark.parametrize(
    "bad",
    [claims(exp=int(time.time()) - 120), claims(iat=int(time.time()) + 600), claims(iss="https://evil.example/oidc"),
     claims(aud="someone-else"), claims(azp="someone-else"), claims(email=["odd"])],
)
def test_the_readme_explains_each_cause_of_could_not_be_verified(core, bad):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    with pytest.raises(jwt.InvalidTokenError) as caught:
        core.verifyIdToken(jwt.encode(bad, KEY, algorithm="ES384"), APP_ID)
    assert f"`token: ID token rejected ({caught.value})`" in readme or f"`({caught.value})`" in readme
