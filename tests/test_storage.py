"""The SDK's tokens live in the server-side session (session_keys.py); the browser only holds an opaque id."""

from flask import session

from flask_app import create_app
from flask_logto.connection import DictStorage
from flask_logto.session_keys import keep_tokens, tokens


def test_the_sdks_tokens_round_trip_on_the_server(tmp_path):
    app = create_app({"APP_DATA_DIR": str(tmp_path)})

    @app.get("/_store")
    def store():
        keep_tokens(session, {"idToken": "secret-id-token-value", "refreshToken": "secret-refresh-value"})
        keep_tokens(session, {**tokens(session), "refreshToken": None})  # a missing one is removed
        return tokens(session)

    @app.get("/_read")
    def read():
        return {"idToken": tokens(session)["idToken"]}

    client = app.test_client()
    assert client.get("/_store").json == {"idToken": "secret-id-token-value", "refreshToken": None, "accessTokenMap": None}
    cookie = client.get_cookie("site_session")
    assert cookie is not None and "secret" not in cookie.value and cookie.http_only and cookie.same_site == "Lax"
    assert client.get("/_read").json == {"idToken": "secret-id-token-value"}
    stored = b"".join(p.read_bytes() for p in (tmp_path / "sessions").iterdir() if p.is_file())
    assert b"secret-id-token-value" in stored and b"secret-refresh-value" not in stored


def test_dict_storage_set_none_deletes():
    storage = DictStorage({"idToken": "x"})
    storage.set("idToken", None)
    assert storage.get("idToken") is None and storage.data == {}
