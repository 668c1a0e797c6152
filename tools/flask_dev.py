"""`flask dev`: the site on APP_BASE_URL's port and, without LOGTO_ENDPOINT, the local identity provider.

The provider ends with this process however it ends (see devidp/launcher.py); a busy port is one line
that says how to move it.
"""

from __future__ import annotations

import errno
import signal
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click
from flask import current_app
from werkzeug.serving import make_server  # not run_simple: its banner repeats the URL as 127.0.0.1

from flask_logto.config import AuthSettings, backchannel_logout_uri, post_sign_out_uri, redirect_uri
from website.settings import DEFAULT_APP_NAME, DEV_APP_ID, dev_client_secret

if TYPE_CHECKING:
    from tools.devidp.launcher import RunningProvider


def start_local_provider(base_url: str, data_dir: Path, *, port: int, **options: Any) -> RunningProvider:
    """The local provider, with the site registered as its client (the id and secret `site_config` gives the site).

    Used by `flask dev`, the tests and the benchmark; `options` go to `devidp.launcher.start_provider`.
    The site's `/backchannel-logout` is the client's back-channel logout URI, as `flask logto setup` registers it.
    """
    from tools.devidp.launcher import ensure_installed, start_provider

    ensure_installed()
    options.setdefault("redirect_uris", [redirect_uri(base_url)])
    options.setdefault("post_logout_redirect_uris", [post_sign_out_uri(base_url)])
    options.setdefault("backchannel_logout_uri", backchannel_logout_uri(base_url))
    options.setdefault("app_name", DEFAULT_APP_NAME)  # its pages name the site ("Sign in to …", "Back to …")
    return start_provider(
        port=port, client_id=DEV_APP_ID, client_secret=dev_client_secret(data_dir), data_dir=data_dir / "devidp", **options,
    )


class _Terminated(BaseException):
    """Raised by `flask dev`'s SIGTERM handler; a BaseException so that no `except Exception` swallows it."""


def _raise_terminated(signum: int, frame: object) -> None:
    raise _Terminated


def _site_port_problem(base_url: str, port: int, error: OSError) -> str:
    if error.errno != errno.EADDRINUSE:
        return f"cannot serve on port {port}: {error.strerror}"
    scheme = urlsplit(base_url).scheme
    return (
        f"cannot serve on 127.0.0.1:{port}: port {port} is in use (another flask dev still running?): stop it, "
        f"or set APP_BASE_URL={scheme}://localhost:<free port> in .env (the Logto redirect URI, "
        "APP_BASE_URL/callback, follows it)"
    )


@click.command("dev")
def dev_command() -> None:
    """Run the site on APP_BASE_URL's port; without LOGTO_ENDPOINT, also the local dev identity provider.

    Ctrl-C and SIGTERM stop both; the provider also ends by itself if this process dies (see devidp/launcher.py).
    """
    from tools.devidp.launcher import DevIdpError  # only `dev` needs Node

    if "CONFIG_ERROR" in current_app.config:
        raise click.ClickException(current_app.config["CONFIG_ERROR"])
    settings: AuthSettings = current_app.extensions["logto"].settings
    port = urlsplit(settings.app_base_url).port or (443 if settings.is_https else 80)
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    server = provider = None
    try:
        # Bound here: on a busy port werkzeug's make_server prints its own advice and calls sys.exit(1).
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # the server keeps a duplicate
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
                sock.listen(128)
            except OSError as error:
                raise click.ClickException(_site_port_problem(settings.app_base_url, port, error)) from None
            server = make_server("127.0.0.1", port, current_app._get_current_object(), threaded=True, fd=sock.fileno())
        if current_app.config["USES_DEV_PROVIDER"]:
            try:
                provider = start_local_provider(
                    settings.app_base_url, settings.data_dir,
                    port=current_app.config["DEVIDP_PORT"], app_name=current_app.config["APP_NAME"],
                )
            except DevIdpError as error:
                raise click.ClickException(f"the local identity provider did not start: {error}") from None
            click.echo(f" * Local dev identity provider (not Logto): {provider.endpoint}")
        click.echo(f" * Site: {settings.app_base_url}")
        server.serve_forever()  # returns on Ctrl-C
    except _Terminated:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server:
            server.server_close()
        if provider:
            provider.stop()
