"""`flask logto setup`: connect the site to a real Logto tenant in one command.

Here live the setup plan (what must change in Logto: the Traditional web app, the Hugging Face connector, the
sign-in experience), applying it, the `.env` editing behind `--write-env`, and the `setup` command. Its settings
are the site's (`read_admin_env` in `logto_cli/api.py`, over `os.environ`, which Flask's CLI fills from `.env`).

`--hf-token-storage` switches the tenant to Logto keeping each user's Hugging Face token (its Secret Vault), which
the dedicated connector cannot do: the standard OIDC connector with target `huggingface` and token storage on takes
the dedicated connector's place and id (so the OAuth app's redirect URI stays valid), `huggingface` goes back to
its position in the sign-in experience (deleting a connector drops it there), and Account Center is turned on
(its Account API hands each user their token). Before deleting anything it asks Logto whether its Secret Vault
works, then asks you (`--yes` skips that); a failed creation puts the dedicated connector back.
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from dotenv import dotenv_values

from flask_logto.config import is_private_url
from flask_logto.errors import ConfigError
from tools.logto_cli.api import (
    HF_APPS_PAGE,
    HF_CONNECTOR_ID,
    HF_TARGET,
    OIDC_CONNECTOR_ID,
    SECRET_VAULT_FIX,
    AdminEnv,
    LogtoApiError,
    ManagementApi,
    current_secret,
    find_hf_connector,
    one_line_errors,
    read_admin_env,
    stores_tokens,
)

DEFAULT_APP_NAME = "Flask site"
HF_SCOPES = ("profile", "email")
OIDC_HF_SCOPES = ("openid", "profile", "email")  # the OIDC connector needs `openid` (Hugging Face's ID token)
DEFAULT_HF_EXTRA_SCOPES = "read-repos"  # what /hf needs beyond the profile: the user's repos
HF_OAUTH = "https://huggingface.co"
HF_SCOPE_WORD = re.compile(r"[a-z][a-z0-9-]{0,40}")
CHANGE_MARKS = {"POST": "+", "DELETE": "-"}  # anything else: "~"
SOCIAL_ONLY_SIGN_UP = {"identifiers": [], "password": False, "verify": False}
DOCTOR_COMMAND = "flask --app flask_app logto doctor"


@dataclass(frozen=True)
class Change:
    """One write to the Management API; `summary` is what the user reads (never a secret)."""

    summary: str
    method: str
    path: str
    body: dict[str, Any]

    @property
    def line(self) -> str:
        return f"{CHANGE_MARKS.get(self.method, '~')} {self.summary}"


@dataclass
class Plan:
    app: dict | None  # None: the app will be created
    connector: dict | None  # None: the connector will be created
    changes: list[Change] = field(default_factory=list)
    replaced: dict | None = None  # the dedicated connector that --hf-token-storage deletes
    targets: list[str] = field(default_factory=list)  # the social sign-in targets to restore if that goes wrong


def merge_uris(existing: list[str], wanted: list[str]) -> list[str]:
    """`existing` followed by the wanted URIs it lacks: nothing already registered is dropped."""
    return [*existing, *(uri for uri in wanted if uri not in existing)]


def plan_app(api: ManagementApi, env: AdminEnv, name: str) -> tuple[dict | None, Change | None]:
    """Find the site's app (LOGTO_APP_ID, else a Traditional app called `name`); plan its creation or URIs."""
    app = _app_by_id(api, env.app_id) if env.app_id else _app_by_name(api, name)
    if app is None:
        uris = {"redirectUris": [env.redirect_uri], "postLogoutRedirectUris": [env.post_sign_out_uri],
                **_backchannel_logout(env.backchannel_logout_uri)}
        body = {"name": name, "type": "Traditional", "oidcClientMetadata": uris}
        summary = (
            f'create Traditional web app "{name}" (redirect URI {env.redirect_uri}, '
            f"post sign-out URI {env.post_sign_out_uri}, back-channel logout URI {env.backchannel_logout_uri})"
        )
        return None, Change(summary, "POST", "/api/applications", body)
    metadata = app.get("oidcClientMetadata") or {}
    redirects = merge_uris(metadata.get("redirectUris") or [], [env.redirect_uri])
    sign_outs = merge_uris(metadata.get("postLogoutRedirectUris") or [], [env.post_sign_out_uri])
    added = [uri for uri in (*redirects, *sign_outs) if uri not in _uris(metadata)]
    backchannel, backchannel_note = plan_backchannel_logout(metadata, env.backchannel_logout_uri)
    if not added and not backchannel:
        return app, None
    # The PATCH replaces oidcClientMetadata as a whole: everything already there goes with it.
    new_metadata = {**metadata, "redirectUris": redirects, "postLogoutRedirectUris": sign_outs, **backchannel}
    notes = [f"add {', '.join(added)} (keeping the URIs already there)"] if added else []
    summary = f"app {app['id']}: {'; '.join([*notes, *filter(None, [backchannel_note])])}"
    return app, Change(summary, "PATCH", f"/api/applications/{app['id']}", {"oidcClientMetadata": new_metadata})


def _backchannel_logout(uri: str) -> dict[str, Any]:
    # Session required: Logto then puts `sid` in ID tokens and logout tokens, so one sign-out ends one sign-in.
    return {"backchannelLogoutUri": uri, "backchannelLogoutSessionRequired": True}


def plan_backchannel_logout(metadata: dict, uri: str) -> tuple[dict[str, Any], str]:
    """The back-channel logout keys to send, and what the plan says about them ({}, "" when nothing changes).

    Logto keeps one back-channel logout URI per app. A public one is never replaced by a loopback or private
    one (a site run locally against the deployed site's app): Logto could not deliver there anyway.
    """
    current = metadata.get("backchannelLogoutUri") or ""
    if current == uri and metadata.get("backchannelLogoutSessionRequired") is True:
        return {}, ""
    if current and current != uri and not is_private_url(current) and is_private_url(uri):
        return {}, ""
    if current == uri:
        return _backchannel_logout(uri), "back-channel logout: session required (sid in tokens)"
    replacing = f" (replacing {current}: Logto keeps one per app)" if current else ""
    return _backchannel_logout(uri), f"back-channel logout URI {uri}{replacing}"


def _uris(metadata: dict) -> list[str]:
    return [*(metadata.get("redirectUris") or []), *(metadata.get("postLogoutRedirectUris") or [])]


def _app_by_id(api: ManagementApi, app_id: str) -> dict:
    try:
        app = api.application(app_id)
    except LogtoApiError as exc:
        if exc.status == 404:
            exc.fix = f"LOGTO_APP_ID={app_id} is not an app of this tenant: correct it, or remove it to create one"
        raise
    if app.get("type") != "Traditional":
        raise ConfigError(
            f"LOGTO_APP_ID={app_id} is a {app.get('type')} app, not a Traditional web app: "
            "remove LOGTO_APP_ID from .env and run setup again to create one"
        )
    return app


def _app_by_name(api: ManagementApi, name: str) -> dict | None:
    return next((app for app in api.traditional_apps() if app.get("name") == name), None)


def plan_connector(
    connector: dict | None, hf_id: str, hf_secret: str, scopes: tuple[str, ...] = HF_SCOPES,
) -> Change | None:
    """Plan the Hugging Face connector's creation, or the update of its config where it differs (`scopes` added)."""
    if connector is None:
        if not (hf_id and hf_secret):
            raise ConfigError(
                "the Hugging Face connector does not exist yet: pass --hf-client-id and --hf-client-secret "
                f"(or set HF_CLIENT_ID and HF_CLIENT_SECRET) from your Hugging Face OAuth app ({HF_APPS_PAGE})"
            )
        config = {"clientId": hf_id, "clientSecret": hf_secret, "scope": " ".join(scopes)}
        summary = f'create Hugging Face connector ({HF_CONNECTOR_ID}, client id {hf_id}, scope "{config["scope"]}")'
        return Change(summary, "POST", "/api/connectors", {"connectorId": HF_CONNECTOR_ID, "config": config})
    new, differences = _config_update(connector, scopes, hf_id, hf_secret)
    if not differences:
        return None
    summary = f"Hugging Face connector {connector['id']}: {', '.join(differences)}"
    return Change(summary, "PATCH", f"/api/connectors/{connector['id']}", {"config": new})


def _config_update(connector: dict, scopes: tuple[str, ...], hf_id: str, hf_secret: str) -> tuple[dict, list[str]]:
    """The connector's config with `scopes` added and the given credentials; and what differs, for the plan."""
    old = connector.get("config") or {}
    new = {**old, "scope": wanted_scope(str(old.get("scope") or ""), scopes)}
    new.update({key: value for key, value in (("clientId", hf_id), ("clientSecret", hf_secret)) if value})
    return new, [_describe(key, old.get(key), new[key]) for key in new if new[key] != old.get(key)]


def wanted_scope(scope: str, wanted: tuple[str, ...] = HF_SCOPES) -> str:
    """The connector scope with the `wanted` scopes (default `profile email`) added; scopes already there are kept."""
    words = scope.split()
    return " ".join([*words, *(word for word in wanted if word not in words)])


def plan_token_storage(connector: dict | None, options: dict[str, Any]) -> tuple[list[Change], dict | None]:
    """Plan the Hugging Face connector Logto keeps tokens for: the standard OIDC connector, token storage on.

    Returns the changes and, when the dedicated connector has to make way, that connector (`Plan.replaced`).
    """
    scopes = (*OIDC_HF_SCOPES, *hf_extra_scopes(options["hf_scopes"]))
    hf_id, hf_secret = options["hf_client_id"], options["hf_client_secret"]
    if connector is not None and connector.get("connectorId") == OIDC_CONNECTOR_ID:
        config, notes = _config_update(connector, scopes, hf_id, hf_secret)
        body: dict[str, Any] = {"config": config} if notes else {}
        if not stores_tokens(connector):
            body["enableTokenStorage"] = True
            notes.append("token storage on")
        if not body:
            return [], None
        return [Change(f"Hugging Face connector {connector['id']}: {', '.join(notes)}", "PATCH",
                       f"/api/connectors/{connector['id']}", body)], None
    old = (connector or {}).get("config") or {}
    hf_id, hf_secret = hf_id or str(old.get("clientId") or ""), hf_secret or str(old.get("clientSecret") or "")
    if not (hf_id and hf_secret):
        raise ConfigError(
            "the Hugging Face connector does not exist yet: pass --hf-client-id and --hf-client-secret "
            f"(or set HF_CLIENT_ID and HF_CLIENT_SECRET) from your Hugging Face OAuth app ({HF_APPS_PAGE})"
        )
    scope = wanted_scope(" ".join(scopes), tuple(str(old.get("scope") or "").split()))  # ours first, then the old
    body = oidc_connector_body(hf_id, hf_secret, scope)
    made = f'client id {hf_id}, scope "{scope}", token storage on'
    if connector is None:
        return [Change(f"create Hugging Face connector (standard OIDC, {made})", "POST", "/api/connectors", body)], None
    old_id = connector["id"]
    delete = Change(
        f"delete the dedicated Hugging Face connector {old_id} (it cannot store tokens; Logto also takes "
        '"huggingface" out of the sign-in experience)', "DELETE", f"/api/connectors/{old_id}", None,
    )
    create = Change(
        f"create Hugging Face connector {old_id} again as the standard OIDC connector (same id, so the OAuth app's "
        f"redirect URI stays valid; {made})", "POST", "/api/connectors", {"id": old_id, **body},
    )
    return [delete, create], connector


def oidc_connector_body(client_id: str, client_secret: str, scope: str) -> dict[str, Any]:
    """`POST /api/connectors` for Logto's standard OIDC connector speaking to huggingface.co, token storage on."""
    return {
        "connectorId": OIDC_CONNECTOR_ID,
        "metadata": {"target": HF_TARGET, "name": {"en": "Hugging Face"}},
        "config": {
            "authorizationEndpoint": f"{HF_OAUTH}/oauth/authorize",
            "tokenEndpoint": f"{HF_OAUTH}/oauth/token",
            "clientId": client_id,
            "clientSecret": client_secret,
            "tokenEndpointAuthMethod": "client_secret_basic",
            "scope": scope,
            "idTokenVerificationConfig": {"jwksUri": f"{HF_OAUTH}/oauth/jwks", "issuer": HF_OAUTH},
        },
        "syncProfile": False,
        "enableTokenStorage": True,
    }


def hf_extra_scopes(value: str | None, default: str = DEFAULT_HF_EXTRA_SCOPES) -> tuple[str, ...]:
    """`--hf-scopes`: the Hugging Face scopes besides `openid profile email` (token storage, default `read-repos`)
    or `profile email` (the dedicated connector, default none); e.g. `read-memberships` for the organisations."""
    words = tuple((default if value is None else value).replace(",", " ").split())
    bad = [word for word in words if not HF_SCOPE_WORD.fullmatch(word)]
    if bad:
        raise ConfigError(f"--hf-scopes: {bad[0]!r} is not a Hugging Face scope (e.g. read-repos, inference-api)")
    return words


def plan_account_center(api: ManagementApi) -> Change | None:
    """Account Center on: its Account API is how the site reads a user's stored Hugging Face token."""
    if api.account_center().get("enabled") is True:
        return None
    summary = "turn on Account Center (its Account API hands each signed-in user their Hugging Face token)"
    return Change(summary, "PATCH", "/api/account-center", {"enabled": True})


def _describe(key: str, old: Any, new: Any) -> str:
    if "secret" in key.lower():
        return f"new {key}"
    return f'{key} "{old or ""}" → "{new}"'


def plan_sign_in(experience: dict, social_only_sign_up: bool, readd: bool = False) -> Change | None:
    """Add `huggingface` to the social targets (the PATCH replaces the list) and, if asked, social-only sign-up.

    `readd`: the connector is deleted first, which takes `huggingface` out of the list: put it back where it was.
    """
    targets = list(experience.get("socialSignInConnectorTargets") or [])
    body: dict[str, Any] = {}
    notes = []
    if readd and HF_TARGET in targets:
        body["socialSignInConnectorTargets"] = targets
        position = f"position {targets.index(HF_TARGET) + 1} of {len(targets)}"
        notes.append(f'put "{HF_TARGET}" back in social sign-in after the switch ({position}, as before)')
    elif HF_TARGET not in targets:
        body["socialSignInConnectorTargets"] = [*targets, HF_TARGET]
        keeping = f" (keeping {', '.join(targets)})" if targets else ""
        notes.append(f'add "{HF_TARGET}" to social sign-in{keeping}')
    sign_up = experience.get("signUp") or {}
    if social_only_sign_up and any(sign_up.get(key) != value for key, value in SOCIAL_ONLY_SIGN_UP.items()):
        body["signUp"] = {**sign_up, **SOCIAL_ONLY_SIGN_UP}
        notes.append("sign-up identifiers: none, social sign-up only (sign-in methods unchanged)")
    if not body:
        return None
    return Change(f"sign-in experience: {'; '.join(notes)}", "PATCH", "/api/sign-in-exp", body)


def make_plan(api: ManagementApi, env: AdminEnv, options: dict[str, Any]) -> Plan:
    """Read the tenant (GET only) and list the writes setup must make."""
    app, app_change = plan_app(api, env, options["app_name"])
    connector = find_hf_connector(api.connectors())
    replaced = None
    if options["hf_token_storage"]:
        center_change = plan_account_center(api)
        connector_changes, replaced = plan_token_storage(connector, options)
    else:
        center_change = None
        scopes = (*HF_SCOPES, *hf_extra_scopes(options["hf_scopes"], default=""))
        connector_changes = [plan_connector(connector, options["hf_client_id"], options["hf_client_secret"], scopes)]
    experience = api.sign_in_experience()
    sign_in_change = plan_sign_in(experience, options["social_only_sign_up"], readd=replaced is not None)
    changes = [change for change in (app_change, center_change, *connector_changes, sign_in_change) if change]
    targets = list(experience.get("socialSignInConnectorTargets") or [])
    return Plan(app=app, connector=None if replaced else connector, changes=changes, replaced=replaced, targets=targets)


def apply_plan(api: ManagementApi, plan: Plan, echo: Callable[[str], None]) -> None:
    """Make the planned writes in order; created app/connector replace `None` in the plan.

    Should the replacement of a deleted dedicated connector fail, the dedicated connector is put back.
    """
    deleted = False
    for change in plan.changes:
        try:
            reply = api.call(change.method, change.path, change.body)
        except LogtoApiError:
            if deleted and plan.connector is None and plan.replaced is not None:
                restore_dedicated(api, plan.replaced, plan.targets, echo)
            raise
        deleted = deleted or change.method == "DELETE"
        if change.method == "POST" and change.path == "/api/applications":
            plan.app = reply
        elif change.method == "POST" and change.path == "/api/connectors":
            plan.connector = reply
        created = f" → id {reply['id']}" if change.method == "POST" else ""
        echo(f"  ✓ {change.summary}{created}")


def restore_dedicated(api: ManagementApi, replaced: dict, targets: list[str], echo: Callable[[str], None]) -> None:
    """Put the deleted dedicated connector back as it was (same id and config) and the social sign-in targets."""
    body = {"id": replaced["id"], "connectorId": HF_CONNECTOR_ID, "config": replaced.get("config") or {},
            "syncProfile": bool(replaced.get("syncProfile"))}
    try:
        api.call("POST", "/api/connectors", body)
        api.call("PATCH", "/api/sign-in-exp", {"socialSignInConnectorTargets": targets})
    except LogtoApiError as exc:
        echo(f"  ✗ could not put the dedicated Hugging Face connector {replaced['id']} back ({exc.summary}): "
             "run setup again without --hf-token-storage to recreate it")
        return
    echo(f"  ↩ put the dedicated Hugging Face connector {replaced['id']} and the sign-in experience back unchanged")


def check_secret_vault(api: ManagementApi, dedicated_id: str) -> None:
    """Ask Logto whether it can store tokens, before anything is deleted; the question changes nothing.

    Logto refuses token storage on the dedicated connector, and checks its Secret Vault (SECRET_VAULT_KEK) first:
    `request.feature_not_supported` means no vault, `connector.token_storage_not_supported` means a working one.
    """
    path = f"/api/connectors/{dedicated_id}"
    try:
        api.call("PATCH", path, {"enableTokenStorage": True})
    except LogtoApiError as exc:
        if exc.code == "connector.token_storage_not_supported":
            return
        if exc.code == "request.feature_not_supported":
            raise LogtoApiError(
                "Secret Vault check", exc.status, exc.code,
                "Logto reports its Secret Vault unavailable, so it cannot store tokens; nothing was changed",
                SECRET_VAULT_FIX,
            ) from None
        raise


# .env editing (--write-env)

_ENV_KEY = re.compile(r"^\s*(export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=")


def env_file_changes(path: Path, values: dict[str, str]) -> list[str]:
    """The keys whose value in `path` differs from `values` (all of them if the file is missing)."""
    current = dotenv_values(stream=io.StringIO(path.read_text())) if path.exists() else {}
    return [key for key, value in values.items() if current.get(key) != value]


def write_env_file(path: Path, values: dict[str, str]) -> None:
    """Update the keys in place, append the missing ones, keep every other line; the file ends up mode 0600."""
    lines = path.read_text().splitlines() if path.exists() else []
    missing = dict(values)
    for index, line in enumerate(lines):
        match = _ENV_KEY.match(line)
        if match and match.group(2) in values:
            key = match.group(2)
            lines[index] = f"{match.group(1) or ''}{key}={_quote(values[key])}"
            missing.pop(key, None)
    lines += [f"{key}={_quote(value)}" for key, value in missing.items()]
    target = path.resolve()
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".env.")  # created with mode 0600
    with os.fdopen(fd, "w") as file:
        file.write("\n".join(lines) + "\n")
    os.replace(temp, target)
    os.chmod(target, 0o600)


def _quote(value: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./:@+-]*", value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# The command


@click.command("setup")
@click.option(
    "--hf-client-id", envvar="HF_CLIENT_ID", default="",
    help="Client ID of your Hugging Face OAuth app [env HF_CLIENT_ID].",
)
@click.option(
    "--hf-client-secret", envvar="HF_CLIENT_SECRET", default="",
    help="App secret of your Hugging Face OAuth app [env HF_CLIENT_SECRET].",
)
@click.option(
    "--app-name", default=DEFAULT_APP_NAME, show_default=True,
    help="Name of the Traditional web app to create, or to find when LOGTO_APP_ID is unset.",
)
@click.option(
    "--social-only-sign-up", is_flag=True,
    help="Set sign-up identifiers to none, so people arriving from Hugging Face skip the 'Set username' page.",
)
@click.option("--write-env", is_flag=True, help="Write LOGTO_APP_ID and LOGTO_APP_SECRET into ./.env (mode 0600).")
@click.option("--show-secret", is_flag=True, help="Print the app secret (never printed otherwise).")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing (only GETs to the Management API).")
@click.option(
    "--hf-token-storage", is_flag=True,
    help="Have Logto keep each user's Hugging Face token (Secret Vault) for the /hf page: replaces the dedicated "
    "connector with the standard OIDC one (same id) and turns on Account Center.",
)
@click.option(
    "--hf-scopes", default=None, metavar="SCOPES",
    help='Hugging Face scopes to add to the connector\'s (e.g. "read-memberships" for the organisations), besides '
    f'"profile email" (with --hf-token-storage: "openid profile email", default {DEFAULT_HF_EXTRA_SCOPES}).',

)
@click.option("--yes", is_flag=True, help="Do not ask before deleting the dedicated Hugging Face connector.")
@one_line_errors
def setup_command(**options: Any) -> None:
    """Create or update the Logto app, the Hugging Face connector and the sign-in experience (idempotent)."""
    env = read_admin_env(os.environ)
    if not env.has_m2m:
        raise ConfigError(
            "LOGTO_M2M_APP_ID and LOGTO_M2M_APP_SECRET are needed: create a machine-to-machine app with the role "
            "'Logto Management API access' in the Logto console (Applications) and put its id/secret in .env"
        )
    api = ManagementApi(env)
    click.echo(f"Logto: {env.endpoint} (Management API resource {env.resource})")
    click.echo(f"Site:  {env.base_url} (redirect URI {env.redirect_uri})")
    plan = make_plan(api, env, options)
    _run_plan(api, plan, options)
    _report(api, env, plan, options)


def _run_plan(api: ManagementApi, plan: Plan, options: dict[str, Any]) -> None:
    if not plan.changes:
        storage = " (token storage on), Account Center" if options["hf_token_storage"] else ""
        click.echo(
            f"Nothing to change: the app, the Hugging Face connector{storage} and the sign-in experience are set up."
        )
        return
    click.echo("Plan:")
    for change in plan.changes:
        click.echo(f"  {change.line}")
    if options["dry_run"]:
        click.echo("Dry run: nothing was changed. Run again without --dry-run to apply.")
        return
    if plan.replaced is not None:
        check_secret_vault(api, plan.replaced["id"])
        click.echo("Logto's Secret Vault is available (it can store Hugging Face tokens).")
        if not options["yes"] and not _confirm_deletion(plan.replaced["id"]):
            click.echo("Nothing was changed.")
            raise click.exceptions.Exit(1)
    click.echo("Applying:")
    apply_plan(api, plan, click.echo)


def _confirm_deletion(connector_id: str) -> bool:
    question = (
        f"Delete the dedicated Hugging Face connector {connector_id} and create its replacement? Signing in with "
        "Hugging Face fails for the moment in between"
    )
    try:
        return click.confirm(question, default=False)
    except click.Abort:  # no answer (no terminal)
        return False


def _report(api: ManagementApi, env: AdminEnv, plan: Plan, options: dict[str, Any]) -> None:
    if plan.app is not None:
        click.echo(f"App id: {plan.app['id']} (\"{plan.app.get('name')}\", Traditional web app)")
        _handle_app_credentials(api, env, plan.app["id"], options)
    elif options["write_env"]:
        click.echo("Would write LOGTO_APP_ID and LOGTO_APP_SECRET of the new app to .env.")
    connector = plan.connector or plan.replaced
    connector_id = connector["id"] if connector else "<connector id, known once created>"
    click.echo(f"Hugging Face OAuth app redirect URI: {env.connector_callback(connector_id)}")
    if options["hf_token_storage"]:
        _report_token_storage(env, plan, options)
    elif options["hf_scopes"]:
        scopes = " ".join((*HF_SCOPES, *hf_extra_scopes(options["hf_scopes"], default="")))
        click.echo(f"Hugging Face OAuth app scopes: {scopes} (the OAuth app must allow them too: {HF_APPS_PAGE})")
    click.echo(
        f"Next: add that redirect URI to your Hugging Face OAuth app ({HF_APPS_PAGE}), "
        f"then run: {DOCTOR_COMMAND}"
    )


def _report_token_storage(env: AdminEnv, plan: Plan, options: dict[str, Any]) -> None:
    scopes = " ".join((*OIDC_HF_SCOPES, *hf_extra_scopes(options["hf_scopes"])))
    if plan.replaced is not None:
        click.echo("The new connector kept the dedicated connector's id: that redirect URI does not change.")
    click.echo(f"Hugging Face OAuth app scopes: {scopes} (the OAuth app must allow them: {HF_APPS_PAGE})")
    click.echo(
        "Stored tokens: Logto keeps a user's Hugging Face token from their next sign-in with Hugging Face on "
        "(people signed in now: sign out, then in again)."
    )
    if "identities" not in env.scopes:
        click.echo("Warning: LOGTO_SCOPES lacks `identities`, without which the site cannot read the tokens: add it.")


def _handle_app_credentials(api: ManagementApi, env: AdminEnv, app_id: str, options: dict[str, Any]) -> None:
    if not (options["write_env"] or options["show_secret"]):
        if env.app_id != app_id or not env.app_secret:
            click.echo(
                f"Set LOGTO_APP_ID={app_id} and LOGTO_APP_SECRET (the app's secret in the Logto console) in .env, "
                "or run again with --write-env."
            )
        return
    secret = current_secret(api.app_secrets(app_id), int(time.time() * 1000))
    if options["show_secret"]:
        click.echo(f"App secret: {secret or '(none: create one in the Logto console)'}")
    if options["write_env"]:
        _write_credentials(app_id, secret, options["dry_run"])


def _write_credentials(app_id: str, secret: str, dry_run: bool) -> None:
    values = {"LOGTO_APP_ID": app_id, **({"LOGTO_APP_SECRET": secret} if secret else {})}
    path = Path(".env")
    changed = env_file_changes(path, values)
    if not secret:
        click.echo("The app has no current secret: create one in the Logto console and set LOGTO_APP_SECRET.")
    if not changed:
        click.echo(".env already has LOGTO_APP_ID and LOGTO_APP_SECRET.")
    elif dry_run:
        click.echo(f"Would write {', '.join(changed)} to .env.")
    else:
        write_env_file(path, values)
        click.echo(f"Wrote {', '.join(changed)} to .env (the secret is not shown; --show-secret prints it).")

