"""`/hf`: the signed-in person on the Hugging Face Hub, acting as them with their own Hub token.

The token comes from the sign-in unit (`auth.hf_token()`: Logto keeps it in its Secret Vault, see
flask_logto/hub_token.py) and goes only to the Hub, through `huggingface_hub` (`HfApi(endpoint=HF_ENDPOINT)`).
Without a token the page says what to do (sign in again, or an admin runs `flask logto setup --hf-token-storage`)
with a 401/403; the Hub down, refusing or slow gives 503/504 on this page only.

Every Hub request waits at most HF_TIMEOUT seconds, and a failure is not retried: huggingface_hub's own client has
no timeout and retries timeouts, 429 and 5xx for up to half a minute, which a page view must not. So the blueprint
installs (`set_client_factory`, once per process) a client whose transport applies the running app's HF_TIMEOUT
and turns those failures into `HubUnavailable` at once.
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import httpx2
from flask import Blueprint, current_app, render_template, session
from huggingface_hub import HfApi, set_client_factory
from huggingface_hub.errors import HfHubHTTPError

from client import HfTokenUnavailable, current_user, login_required
from flask_logto.hub_token import forget_hf_token
from flask_logto.i18n import N_
from flask_logto.user import HF_USERNAME

log = logging.getLogger("auth")
blueprint = Blueprint("hub", __name__)
MAX_LISTED = 50
DEFAULT_TIMEOUT = 10.0
T = TypeVar("T")
_timeout: contextvars.ContextVar[float] = contextvars.ContextVar("hub_timeout", default=DEFAULT_TIMEOUT)


class HubUnavailable(Exception):
    """The Hub could not be reached, refused (408, 429, 5xx) or answered junk; `str()` is for the log."""

    status, title = 503, N_("Hugging Face unavailable")


class HubSlow(HubUnavailable):
    """The Hub did not answer within HF_TIMEOUT."""

    status, title = 504, N_("Hugging Face too slow")


class HubUnexpected(HubUnavailable):
    """The Hub refused the request for another reason than the token (a 4xx other than 401)."""

    status, title = 502, N_("Unexpected answer from Hugging Face")


class FailFastTransport(httpx2.BaseTransport):
    """Each request within the running page's timeout; a timeout, network error, 408, 429 or 5xx raises at once."""

    def __init__(self) -> None:
        self._inner = httpx2.HTTPTransport()

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        seconds = _timeout.get()
        request.extensions["timeout"] = httpx2.Timeout(seconds).as_dict()
        what = f"{request.method} {request.url.path}"  # no query string, no headers: nothing secret
        try:
            response = self._inner.handle_request(request)
        except httpx2.TimeoutException:
            raise HubSlow(f"{what}: no answer within {seconds:g}s") from None
        except httpx2.TransportError as error:
            raise HubUnavailable(f"{what}: {type(error).__name__}") from None
        if response.status_code in (408, 429) or response.status_code >= 500:
            response.close()
            raise HubUnavailable(f"{what}: HTTP {response.status_code}")
        return response

    def close(self) -> None:
        self._inner.close()


def hub_client() -> httpx2.Client:
    """huggingface_hub's shared client: its defaults (redirects followed), with `FailFastTransport`."""
    return httpx2.Client(transport=FailFastTransport(), follow_redirects=True, timeout=DEFAULT_TIMEOUT)


_client_installed = False


@blueprint.record_once
def _use_hub_client(state: Any) -> None:
    global _client_installed
    if not _client_installed:  # once per process: a new factory would close the client other apps are using
        set_client_factory(hub_client)
        _client_installed = True


@contextmanager
def hub_timeout(seconds: float) -> Iterator[None]:
    reset = _timeout.set(seconds)
    try:
        yield
    finally:
        _timeout.reset(reset)


@blueprint.get("/hf")
@login_required
def page() -> Any:
    user = current_user()
    try:
        token = current_app.extensions["logto"].hf_token()
    except HfTokenUnavailable as failure:
        kind = type(failure).__name__
        log.warning("event=hf-token-unavailable user=%s kind=%s cause=%r", user.sub, kind, failure.cause)
        return render_template("hub.html", failure=failure), failure.status
    config = current_app.config
    endpoint = config["HF_ENDPOINT"]
    try:
        with hub_timeout(float(config["HF_TIMEOUT"])):
            overview = hub_overview(HfApi(endpoint=endpoint, token=token, library_name="flask-logto-site"), endpoint)
    except HfHubHTTPError as error:
        status = error.response.status_code if error.response is not None else None
        if status != 401:
            return _hub_failure(user.sub, HubUnexpected(f"Hub answered HTTP {status}"))
        forget_hf_token(session)  # revoked or otherwise refused: ask Logto again next time
        log.warning("event=hub-token-refused user=%s cause=%r", user.sub, "Hub answered 401")
        return render_template("hub.html", hub_refused=True), 401
    except HubUnavailable as failure:
        return _hub_failure(user.sub, failure)
    except httpx2.HTTPError as error:  # e.g. a redirect loop
        return _hub_failure(user.sub, HubUnavailable(type(error).__name__))
    return render_template("hub.html", **overview)


def hub_overview(api: HfApi, endpoint: str) -> dict[str, Any]:
    """Who the token's owner is on the Hub, and their own models and Spaces (the first `MAX_LISTED` of each)."""
    me = _answer("whoami", api.whoami)
    name = me.get("name") if isinstance(me, dict) else None
    if not isinstance(name, str) or not HF_USERNAME.fullmatch(name):
        raise HubUnavailable("whoami without a usable name")
    models = _answer("models", lambda: [item.id for item in api.list_models(author=name, limit=MAX_LISTED)])
    spaces = _answer("spaces", lambda: [item.id for item in api.list_spaces(author=name, limit=MAX_LISTED)])
    fullname = me.get("fullname")
    avatar = me.get("avatarUrl")
    return {
        "hub_user": {
            "name": name,
            "fullname": fullname if isinstance(fullname, str) else None,
            "avatar": avatar if isinstance(avatar, str) and urlsplit(avatar).scheme == "https" else None,
            "url": hub_url(endpoint, name),
        },
        "models": [{"id": repo_id, "url": hub_url(endpoint, repo_id)} for repo_id in models],
        "spaces": [{"id": repo_id, "url": hub_url(endpoint, "spaces", repo_id)} for repo_id in spaces],
        "max_listed": MAX_LISTED,
    }


def _answer(what: str, call: Callable[[], T]) -> T:
    """`call()`, with an answer huggingface_hub cannot read (not JSON, a list item without `id`) as `HubUnavailable`."""
    try:
        return call()
    except (ValueError, KeyError, TypeError) as error:
        raise HubUnavailable(f"{what}: unreadable answer ({type(error).__name__})") from None


def hub_url(endpoint: str, *parts: str) -> str:
    return "/".join([endpoint, *(quote(part, safe="/") for part in parts)])


def _hub_failure(sub: str, failure: HubUnavailable) -> tuple[str, int]:
    log.warning("event=hub-unavailable user=%s kind=%s cause=%r", sub, type(failure).__name__, str(failure))
    return render_template("hub.html", hub_failure=failure), failure.status
