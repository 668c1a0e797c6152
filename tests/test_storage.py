"""The SDK's storage lives in the server-side session; the browser only holds an opaque id."""

from flask_app import create_app
from flask_logto.connection import DictStorage, SessionStorage


def test_session_storage_round_trip_stays_on_the_server(tmp_path):
    app = create_app({"APP_DATA_DIR": str(tmp_path)})

    @app.get("/_store")
    def store():
        storage = SessionStorage()
        storage.set("idToken", "secret-id-token-value")
        storage.set("refreshToken", "secret-refresh-value")
        storage.delete("refreshToken")
        return {"idToken": storage.get("idToken"), "refreshToken": storage.get("refreshToken")}

    @app.get("/_read")
    def read():
        return {"idToken": SessionStorage().get("idToken")}

    client = app.test_client()
    assert client.get("/_store").json == {"idToken": "secret-id-token-value", "refreshToken": None}
    cookie = client.get_cookie("site_session")
    assert cookie is not None and "secret" not in cookie.value and cookie.http_only and cookie.same_site == "Lax"
    assert client.get("/_read").json == {"idToken": "secret-id-token-value"}
    stored = b"".join(p.read_bytes() for p in (tmp_path / "sessions").iterdir() if p.is_file())
    assert b"secret-id-token-value" in stored


def test_dict_storage_set_none_deletes():
    storage = DictStorage({"idToken": "x"})
    storage.set("idToken", None)
    assert storage.get("idToken") is None and storage.data == {}
