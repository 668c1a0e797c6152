"""The page a Hugging Face Space shows until its secrets are set: which secrets to add, which URIs to register.

`create_app()` returns this app instead of the site when `settings.space_setup_needs()` lists anything:
every path answers 503 with the checklist (`/healthz` answers 200, so the Space counts as running).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, g, render_template

from flask_logto.config import post_sign_out_uri, redirect_uri
from website import languages
from website.settings import HSTS, default_data_dir, space_host_of

SITE_ROOT = Path(__file__).resolve().parent.parent  # where the site's templates/ are


def setup_app(env: Mapping[str, str], needs: list[str]) -> Flask:
    app = Flask(__name__, root_path=str(SITE_ROOT))
    data_dir = Path(env.get("APP_DATA_DIR", "").strip() or default_data_dir(on_space=True))
    languages.init_app(app, data_dir / "translations", switcher=False)  # in the visitor's language, no switcher
    base_url = env.get("APP_BASE_URL", "").strip().rstrip("/") or f"https://{space_host_of(env)}"
    checklist = {
        "needs": needs,
        "redirect_uri": redirect_uri(base_url),
        "post_sign_out_uri": post_sign_out_uri(base_url),
        "space_id": env.get("SPACE_ID", "").strip(),
    }

    @app.get("/healthz")
    def healthz() -> tuple[str, int, dict[str, str]]:
        return "setup needed\n", 200, {"Content-Type": "text/plain"}

    @app.route("/", defaults={"path": ""}, methods=["GET", "HEAD", "POST"])
    @app.route("/<path:path>", methods=["GET", "HEAD", "POST"])
    def setup_page(path: str) -> tuple[str, int]:
        g.csp_nonce = secrets.token_urlsafe(16)
        return render_template("space_setup.html", **checklist), 503

    @app.after_request
    def headers(response: Any) -> Any:
        response.headers["Content-Security-Policy"] = (
            f"default-src 'none'; style-src 'nonce-{g.get('csp_nonce', '')}'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors https://huggingface.co"
        )
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        if base_url.startswith("https://"):
            response.headers["Strict-Transport-Security"] = HSTS
        return response

    return app
