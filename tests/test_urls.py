"""Pure URL logic: the `next` sanitiser and the sign-in URL the site sends the browser to."""

from urllib.parse import parse_qs, urlsplit

import pytest

from client import ConfigError, safe_next
from flask_app import create_app


@pytest.mark.parametrize("target", ["/", "/profile", "/profile?tab=1", "/a/b?x=%2F%2Fevil.example#top"])
def test_same_site_paths_are_kept(target):
    assert safe_next(target) == target


@pytest.mark.parametrize(
    "target",
    [
        None, "", "profile", "//evil.example", "///evil.example", "/\\evil.example", "\\\\evil.example",
        "https://evil.example/", "javascript:alert(1)", "/\t/evil.example", "/\n/evil.example", " /profile",
        "/profile\r\nSet-Cookie: x=1", "/caf\u00e9", "/sign-in", "/callback?code=x", "/sign-out", "/" + "a" * 3000,
    ],
)
def test_everything_else_becomes_home(target):
    assert safe_next(target) == "/"


@pytest.fixture
def app(tmp_path, monkeypatch):
    import json
    from pathlib import Path

    from logto.models.oidc import OidcProviderMetadata

    from flask_logto.oidc_core import StrictOidcCore

    metadata = OidcProviderMetadata(**json.loads((Path(__file__).parent / "fixtures/discovery.json").read_text()))

    async def recorded_metadata(url):
        assert url == "http://localhost:3001/oidc/.well-known/openid-configuration"
        return metadata

    monkeypatch.setattr(StrictOidcCore, "getProviderMetadata", staticmethod(recorded_metadata))
    return create_app({"APP_DATA_DIR": str(tmp_path), "DEVIDP_PORT": "3001"})


def _sign_in_query(app, path):
    response = app.test_client().get(path)
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == "http://localhost:3001/oidc/auth"
    return {key: values[0] for key, values in parse_qs(location.query).items()}


def test_sign_in_url_has_pkce_state_nonce_and_direct_sign_in(app):
    query = _sign_in_query(app, "/sign-in?next=/profile")
    assert query["client_id"] == "local-dev-site"
    assert query["redirect_uri"] == "http://localhost:3000/callback"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32 and query["state"] != query["nonce"]
    assert query["direct_sign_in"] == "social:huggingface"
    assert set(query["scope"].split()) == {"openid", "offline_access", "profile", "email", "identities"}
    assert "first_screen" not in query and "interaction_mode" not in query


def test_sign_up_url_asks_for_the_register_screen(app):
    assert _sign_in_query(app, "/sign-up")["first_screen"] == "register"


def test_each_sign_in_gets_fresh_state_and_nonce(app):
    first, second = _sign_in_query(app, "/sign-in"), _sign_in_query(app, "/sign-in")
    assert first["state"] != second["state"] and first["nonce"] != second["nonce"]


def test_empty_direct_sign_in_shows_logtos_own_page(tmp_path, app, monkeypatch):
    other = create_app({"APP_DATA_DIR": str(tmp_path), "LOGTO_DIRECT_SIGN_IN": ""})
    assert "direct_sign_in" not in _sign_in_query(other, "/sign-in")


def test_with_a_url_prefix_next_cannot_lead_to_the_units_prefixed_routes(tmp_path):
    from flask import Flask

    from client import LogtoAuth
    from website.settings import site_config

    app = Flask("prefixed", root_path=str(tmp_path))
    app.config.update(site_config({"APP_DATA_DIR": str(tmp_path)}))
    auth = LogtoAuth(app, url_prefix="/auth")
    with app.test_request_context():
        assert auth.settings.redirect_uri == "http://localhost:3000/auth/callback"
        assert auth.settings.backchannel_logout_uri == "http://localhost:3000/auth/backchannel-logout"
        assert safe_next("/auth/sign-in") == "/" and safe_next("/auth/callback?code=x") == "/"
        assert safe_next("/sign-in") == "/sign-in"  # not the unit's here: an app's own page may live there
    with pytest.raises(ConfigError, match="url_prefix"):
        LogtoAuth(url_prefix="auth/")
