"""The transport to the identity provider refuses what a hostile one could do with HTTP itself."""

from __future__ import annotations

import asyncio

import pytest
from logto import LogtoException
from pytest_httpserver import HTTPServer
from werkzeug import Response

from flask_logto.errors import ResponseTooLarge
from flask_logto.oidc_core import MAX_BODY_BYTES, fetch_json


def test_a_redirect_is_not_followed(httpserver: HTTPServer):
    """A 307 would make aiohttp replay the form, client secret and code included, to the new place."""
    httpserver.expect_request("/oidc/token", method="POST").respond_with_response(
        Response(status=307, headers={"Location": httpserver.url_for("/steal")})
    )
    with pytest.raises(LogtoException):
        asyncio.run(fetch_json("POST", httpserver.url_for("/oidc/token"), data={"client_secret": "s3cret"}))
    assert [request.path for request, _ in httpserver.log] == ["/oidc/token"]


def test_a_declared_oversized_body_is_refused(httpserver: HTTPServer):
    httpserver.expect_request("/oidc/me").respond_with_data(b"{}" + b" " * MAX_BODY_BYTES)
    with pytest.raises(ResponseTooLarge):
        asyncio.run(fetch_json("GET", httpserver.url_for("/oidc/me")))


def test_an_undeclared_oversized_body_is_cut_off(httpserver: HTTPServer):
    def endless_chunks():
        yield b"["
        while True:
            yield b"1," * 32768

    httpserver.expect_request("/oidc/jwks").respond_with_response(Response(endless_chunks(), mimetype="application/json"))
    with pytest.raises(ResponseTooLarge):
        asyncio.run(fetch_json("GET", httpserver.url_for("/oidc/jwks")))


def test_an_error_answer_keeps_its_body_for_the_caller(httpserver: HTTPServer):
    httpserver.expect_request("/oidc/token", method="POST").respond_with_json({"error": "invalid_grant"}, status=400)
    with pytest.raises(LogtoException, match="invalid_grant"):
        asyncio.run(fetch_json("POST", httpserver.url_for("/oidc/token"), data={}))


def test_json_is_returned(httpserver: HTTPServer):
    httpserver.expect_request("/oidc/.well-known/openid-configuration").respond_with_json({"issuer": "x"})
    assert asyncio.run(fetch_json("GET", httpserver.url_for("/oidc/.well-known/openid-configuration"))) == {"issuer": "x"}
