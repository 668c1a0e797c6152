"""Settings: defaults for local dev, and one clear line for each misconfiguration."""

from datetime import timedelta

import pytest

from flask_logto.errors import ConfigError
from tests.harness import auth_settings as load_settings
from website.settings import site_config

REAL = {
    "LOGTO_ENDPOINT": "https://abc123.logto.app",
    "LOGTO_APP_ID": "app-id",
    "LOGTO_APP_SECRET": "app-secret",
    "FLASK_SECRET_KEY": "0123456789abcdef" * 4,
}


def test_zero_configuration_uses_the_local_dev_provider(tmp_path):
    assert site_config({"APP_DATA_DIR": str(tmp_path)})["USES_DEV_PROVIDER"]
    settings = load_settings({"APP_DATA_DIR": str(tmp_path)})
    assert settings.logto_endpoint == "http://localhost:3001"
    assert settings.issuer == "http://localhost:3001/oidc"
    assert settings.redirect_uri == "http://localhost:3000/callback"
    assert settings.post_sign_out_uri == "http://localhost:3000/"
    assert settings.scopes == ("email", "identities")
    assert settings.direct_sign_in == "social:huggingface"
    assert settings.session_lifetime == timedelta(days=14)


def test_local_dev_secrets_are_generated_once_and_kept(tmp_path):
    first = site_config({"APP_DATA_DIR": str(tmp_path)})
    second = site_config({"APP_DATA_DIR": str(tmp_path)})
    assert len(first["SECRET_KEY"]) >= 32 and first["SECRET_KEY"] == second["SECRET_KEY"]
    assert first["LOGTO_APP_SECRET"] == second["LOGTO_APP_SECRET"] != first["SECRET_KEY"]
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_real_tenant_settings(tmp_path):
    settings = load_settings({**REAL, "APP_DATA_DIR": str(tmp_path), "APP_BASE_URL": "https://me-site.hf.space/",
                              "LOGTO_DIRECT_SIGN_IN": "", "LOGTO_SCOPES": "email"})
    assert settings.app_base_url == "https://me-site.hf.space"
    assert settings.redirect_uri == "https://me-site.hf.space/callback"
    assert settings.is_https and settings.direct_sign_in == "" and settings.scopes == ("email",)


@pytest.mark.parametrize(
    "change, names",
    [
        ({"LOGTO_ENDPOINT": "abc123.logto.app"}, "LOGTO_ENDPOINT"),
        ({"LOGTO_ENDPOINT": "https://abc123.logto.app/oidc"}, "LOGTO_ENDPOINT"),
        ({"LOGTO_ENDPOINT": "https://abc123.logto.app/oidc/"}, "drop it"),
        ({"LOGTO_ENDPOINT": "http://auth.example.com"}, "https"),
        ({"LOGTO_APP_ID": ""}, "LOGTO_APP_ID"),
        ({"LOGTO_APP_SECRET": ""}, "LOGTO_APP_SECRET"),
        ({"APP_BASE_URL": "https://example.com/app"}, "APP_BASE_URL"),
        ({"APP_BASE_URL": "localhost:3000"}, "APP_BASE_URL"),
        ({"APP_BASE_URL": "http://example.com"}, "https"),
        ({"APP_BASE_URL": "https://example.com", "FLASK_SECRET_KEY": ""}, "FLASK_SECRET_KEY is missing"),
        ({"APP_BASE_URL": "https://example.com", "FLASK_SECRET_KEY": "short"}, "too short"),
        ({"APP_BASE_URL": "https://example.com", "FLASK_SECRET_KEY": "ab" * 32}, "looks weak"),
        ({"APP_BASE_URL": "http://localhost:3000", "FLASK_SECRET_KEY": "short"}, "too short"),
        ({"APP_BASE_URL": "http://localhost:abc"}, "bad port"),
        ({"APP_BASE_URL": "http://localhost:99999"}, "bad port"),
        ({"SESSION_LIFETIME": "two weeks"}, "SESSION_LIFETIME"),
        ({"LOGTO_TIMEOUT": "0"}, "LOGTO_TIMEOUT"),
    ],
)
def test_misconfiguration_is_one_line_naming_the_variable(tmp_path, change, names):
    with pytest.raises(ConfigError) as caught:
        load_settings({**REAL, "APP_DATA_DIR": str(tmp_path), **change})
    message = str(caught.value)
    assert names in message and "\n" not in message


def test_weak_secret_outside_local_dev_says_how_to_make_one(tmp_path):
    with pytest.raises(ConfigError, match="secrets.token_hex"):
        load_settings({**REAL, "FLASK_SECRET_KEY": "", "APP_BASE_URL": "https://site.example", "APP_DATA_DIR": str(tmp_path)})


def test_app_id_without_endpoint_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="LOGTO_ENDPOINT"):
        load_settings({"LOGTO_APP_ID": "x", "APP_DATA_DIR": str(tmp_path)})
