"""The README's "Use it in your own Flask app", done as it says: the files it names copied into an empty
folder, its code as the whole app (no templates of its own), signing in through the embedded provider
and out again, in a process of its own that sees none of the site.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import requests

from conftest import csrf_token_in, follow_to_callback
from devidp.launcher import ensure_installed, start_provider

ROOT = Path(__file__).resolve().parent.parent
SERVE_ON_FD = (  # the app is imported from the copy only: the project's folder is not on sys.path
    "import sys; from werkzeug.serving import make_server; from app import app; "
    "make_server('127.0.0.1', 0, app, threaded=True, fd=int(sys.argv[1])).serve_forever()"
)


def readme_app() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Use it in your own Flask app", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_the_readme_app_signs_in_and_out(tmp_path: Path):
    project = tmp_path / "myapp"
    project.mkdir()
    shutil.copy(ROOT / "client.py", project)
    shutil.copytree(ROOT / "logto_auth", project / "logto_auth", ignore=shutil.ignore_patterns("__pycache__"))
    (project / "app.py").write_text(readme_app(), encoding="utf-8")

    listener = socket.create_server(("127.0.0.1", 0))
    base_url = f"http://localhost:{listener.getsockname()[1]}"
    ensure_installed()
    provider = start_provider(
        port=0, client_id="my-app", client_secret="my-app-secret-" + "x1y2z3" * 4,
        redirect_uris=[f"{base_url}/callback"], post_logout_redirect_uris=[f"{base_url}/"],
        data_dir=tmp_path / "devidp",
    )
    env = {
        **{key: value for key, value in os.environ.items() if not key.startswith(("FLASK_", "LOGTO_", "APP_"))},
        "PYTHONPATH": str(project), "FLASK_SECRET_KEY": "readme-app-" + "0123456789abcdef" * 2,
        "FLASK_LOGTO_ENDPOINT": provider.endpoint, "FLASK_LOGTO_APP_ID": "my-app",
        "FLASK_LOGTO_APP_SECRET": "my-app-secret-" + "x1y2z3" * 4, "FLASK_APP_BASE_URL": base_url,
        "FLASK_APP_DATA_DIR": str(tmp_path / "data"),
    }
    log = (tmp_path / "app.log").open("w")
    app = subprocess.Popen(
        [sys.executable, "-c", SERVE_ON_FD, str(listener.fileno())], cwd=project, env=env,
        pass_fds=[listener.fileno()], stdout=log, stderr=subprocess.STDOUT,
    )
    listener.close()  # the app process holds its own copy
    try:
        http = requests.Session()
        # The socket was listening before the app started: this waits in its backlog until the app is up.
        assert "Sign in with Hugging Face" in http.get(base_url + "/", timeout=30).text
        first = http.get(base_url + "/private", allow_redirects=False, timeout=10)
        assert first.status_code == 302 and first.headers["Location"].startswith("/sign-in?next=")
        authorize = http.get(base_url + first.headers["Location"], allow_redirects=False, timeout=10)
        callback = follow_to_callback(http, authorize.headers["Location"], base_url, username="readme-user")
        answer = http.get(callback, allow_redirects=False, timeout=10)
        assert answer.status_code == 302 and answer.headers["Location"] == "/private"
        assert http.get(base_url + "/private", timeout=10).text == "Hello readme-user"
        assert not any("eyJ" in cookie.value for cookie in http.cookies)  # no token in a cookie

        token = csrf_token_in(http.get(base_url + "/", timeout=10).text)
        out = http.post(base_url + "/sign-out", data={"csrf_token": token}, allow_redirects=False, timeout=10)
        assert out.status_code == 302 and out.headers["Location"].startswith(f"{provider.endpoint}/oidc/session/end")
        assert http.get(base_url + "/private", allow_redirects=False, timeout=10).status_code == 302

        failure = requests.get(base_url + "/callback?state=x&code=y", timeout=10)  # the unit's own page
        assert failure.status_code == 400 and "no sign-in in progress" in failure.text
    finally:
        app.terminate()
        app.wait(10)
        provider.stop()
        log.close()
    assert "Traceback" not in (tmp_path / "app.log").read_text()

