"""The package: `python -m build` makes a wheel and an sdist of `flask_logto` alone; the wheel, installed into a
fresh virtualenv with no checkout on `sys.path`, runs the README's "Use it in your own Flask app" code as the whole
app (no templates of its own) from an empty folder, signing in through the embedded provider and out again.

No network: the build uses the backend installed here (`--no-isolation`), and the fresh virtualenv finds the
package's dependencies in this one's site-packages through a .pth file (the wheel itself goes in with pip).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
import requests

from tests.conftest import csrf_token_in, follow_to_callback, forms_in
from tools.devidp.launcher import ensure_installed, start_provider

ROOT = Path(__file__).resolve().parent.parent
SERVE_ON_FD = (  # the app is imported from the empty folder; flask_logto from the fresh virtualenv
    "import sys; from werkzeug.serving import make_server; from app import app; "
    "make_server('127.0.0.1', 0, app, threaded=True, fd=int(sys.argv[1])).serve_forever()"
)
SITE_MODULES = ("flask_app", "client", "website", "tools", "tests", "bench")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    return {"wheel": next(out.glob("*.whl")), "sdist": next(out.glob("*.tar.gz"))}


def test_the_wheel_and_sdist_hold_the_unit_and_nothing_of_the_site(built: dict[str, Path]) -> None:
    wheel = zipfile.ZipFile(built["wheel"]).namelist()
    packaged = [name for name in wheel if not name.startswith("flask_logto-")]
    assert packaged and all(name.startswith("flask_logto/") for name in packaged), packaged
    assert "flask_logto/templates/auth/error.html" in packaged and "flask_logto/extension.py" in packaged
    assert {f"flask_logto/translations/{locale}/LC_MESSAGES/flask_logto.po" for locale in ("ja", "zh_CN")} <= set(packaged)
    with tarfile.open(built["sdist"]) as sdist:
        members = [name.split("/", 1)[1] for name in sdist.getnames() if "/" in name]
    assert "pyproject.toml" in members and "flask_logto/views.py" in members
    assert not [name for name in members if name.split("/")[0].removesuffix(".py") in SITE_MODULES]


def readme_app() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use it in your own Flask app", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def fresh_virtualenv(where: Path, wheel: Path) -> Path:
    """A new virtualenv with the wheel installed, the package's dependencies found here; its python."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True, timeout=120)
    python = where / "bin" / "python"
    site_packages = Path(subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True, timeout=60,
    ).stdout.strip())
    (site_packages / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--disable-pip-version-check",
         "--target", str(site_packages), str(wheel)],
        check=True, timeout=120,
    )
    return python


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, built: dict[str, Path]) -> Path:
    """The python of a fresh virtualenv that has the wheel."""
    return fresh_virtualenv(tmp_path_factory.mktemp("fresh") / "venv", built["wheel"])


JAPANESE_PAGE = """
import sys
from flask import Flask
from flask_babel import Babel
from flask_logto import LogtoAuth
app = Flask("someone_elses_app")
app.config.update(SECRET_KEY="someone-elses-key-" + "0123456789abcdef" * 2, LOGTO_ENDPOINT="http://127.0.0.1:9",
                  LOGTO_APP_ID="app", LOGTO_APP_SECRET="secret", LOGTO_BASE_URL="http://localhost:3000",
                  LOGTO_DATA_DIR=sys.argv[1])
Babel(app, locale_selector=lambda: "ja")  # the app's own Flask-Babel, with no catalogs of its own
LogtoAuth(app)
print(app.test_client().get("/callback").text)
"""


def test_the_installed_wheel_brings_the_units_own_translations(tmp_path: Path, installed: Path):
    page = subprocess.run(
        [str(installed), "-c", JAPANESE_PAGE, str(tmp_path)], cwd=tmp_path, check=True, capture_output=True, text=True,
        timeout=60, env={key: value for key, value in os.environ.items() if key != "PYTHONPATH"},
    ).stdout
    assert '<html lang="ja">' in page and "<h1>サインインのリンクが無効です</h1>" in page and "もう一度サインイン" in page


@pytest.mark.parametrize("prefix", ["", "/auth"])
def test_the_readme_app_signs_in_and_out_with_the_installed_wheel(tmp_path: Path, installed: Path, prefix: str):
    """The README's app as it is, and with `LogtoAuth(app, url_prefix="/auth")`."""
    python = installed
    project = tmp_path / "myapp"
    project.mkdir()
    code = readme_app()
    if prefix:
        assert "auth = LogtoAuth(app)" in code
        code = code.replace("auth = LogtoAuth(app)", f"auth = LogtoAuth(app, url_prefix={prefix!r})")
    (project / "app.py").write_text(code, encoding="utf-8")
    clean_env = {key: value for key, value in os.environ.items() if not key.startswith(("FLASK_", "LOGTO_", "APP_"))}
    clean_env.pop("PYTHONPATH", None)
    where = json.loads(subprocess.run(
        [str(python), "-c", "import flask_logto, json, os, sys; "
         "print(json.dumps([flask_logto.__file__, [os.path.abspath(entry) for entry in sys.path]]))"],
        cwd=project, env=clean_env, check=True, capture_output=True, text=True, timeout=60,
    ).stdout)
    assert where[0].startswith(str(python.parent.parent)) and str(ROOT) not in where[1]  # no checkout on sys.path

    listener = socket.create_server(("127.0.0.1", 0))
    base_url = f"http://localhost:{listener.getsockname()[1]}"
    ensure_installed()
    provider = start_provider(
        port=0, client_id="my-app", client_secret="my-app-secret-" + "x1y2z3" * 4,
        redirect_uris=[f"{base_url}{prefix}/callback"], post_logout_redirect_uris=[f"{base_url}/"],
        data_dir=tmp_path / "devidp",
    )
    env = {
        **clean_env, "FLASK_SECRET_KEY": "readme-app-" + "0123456789abcdef" * 2,
        "FLASK_LOGTO_ENDPOINT": provider.endpoint, "FLASK_LOGTO_APP_ID": "my-app",
        "FLASK_LOGTO_APP_SECRET": "my-app-secret-" + "x1y2z3" * 4, "FLASK_LOGTO_BASE_URL": base_url,
        "FLASK_LOGTO_DATA_DIR": str(tmp_path / "data"),
    }
    log = (tmp_path / "app.log").open("w")
    app = subprocess.Popen(
        [str(python), "-c", SERVE_ON_FD, str(listener.fileno())], cwd=project, env=env,
        pass_fds=[listener.fileno()], stdout=log, stderr=subprocess.STDOUT,
    )
    listener.close()  # the app process holds its own copy
    try:
        http = requests.Session()
        # The socket was listening before the app started: this waits in its backlog until the app is up.
        assert "Sign in with Hugging Face" in http.get(base_url + "/", timeout=30).text
        first = http.get(base_url + "/private", allow_redirects=False, timeout=10)
        assert first.status_code == 302 and first.headers["Location"].startswith(f"{prefix}/sign-in?next=")
        authorize = http.get(base_url + first.headers["Location"], allow_redirects=False, timeout=10)
        callback = follow_to_callback(
            http, authorize.headers["Location"], base_url, username="readme-user", callback_path=f"{prefix}/callback"
        )
        answer = http.get(callback, allow_redirects=False, timeout=10)
        assert answer.status_code == 302 and answer.headers["Location"] == "/private"
        assert http.get(base_url + "/private", timeout=10).text == "Hello readme-user"
        assert not any("eyJ" in cookie.value for cookie in http.cookies)  # no token in a cookie

        home = http.get(base_url + "/", timeout=10).text
        assert forms_in(home)[0]["action"] == f"{prefix}/sign-out"
        out = http.post(
            base_url + f"{prefix}/sign-out", data={"csrf_token": csrf_token_in(home)}, allow_redirects=False, timeout=10
        )
        assert out.status_code == 302 and out.headers["Location"].startswith(f"{provider.endpoint}/oidc/session/end")
        assert http.get(base_url + "/private", allow_redirects=False, timeout=10).status_code == 302

        failure = requests.get(base_url + f"{prefix}/callback?state=x&code=y", timeout=10)  # the unit's own page
        assert failure.status_code == 400 and "no sign-in in progress" in failure.text
        if prefix:  # nothing of the unit at the app's root
            assert requests.get(base_url + "/sign-in", allow_redirects=False, timeout=10).status_code == 404
    finally:
        app.terminate()
        app.wait(10)
        provider.stop()
        log.close()
    assert "Traceback" not in (tmp_path / "app.log").read_text()

