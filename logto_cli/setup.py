"""`flask logto setup`: connect the site to a real Logto tenant in one command.

Here live the setup plan (what must change in Logto: the Traditional web app, the Hugging Face connector, the
sign-in experience), applying it, the `.env` editing behind `--write-env`, and the `setup` command. Its settings
are the site's (`read_admin_env` in `logto_cli/api.py`, over `os.environ`, which Flask's CLI fills from `.env`).
"""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import click
from dotenv import dotenv_values

from logto_auth.config import ConfigError
from logto_cli.api import (
    HF_CONNECTOR_ID,
    HF_TARGET,
    AdminEnv,
    LogtoApiError,
    ManagementApi,
    current_secret,
    find_hf_connector,
    one_line_errors,
    read_admin_env,
)

DEFAULT_APP_NAME = "Flask site"
HF_SCOPES = ("profile", "email")
SOCIAL_ONLY_SIGN_UP = {"identifiers": [], "password": False, "verify": False}
HF_APPS_PAGE = "https://huggingface.co/settings/connected-applications"
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
        return f"{'+' if self.method == 'POST' else '~'} {self.summary}"


@dataclass
class Plan:
    app: dict | None  # None: the app will be created
    connector: dict | None  # None: the connector will be created
    changes: list[Change] = field(default_factory=list)


def merge_uris(existing: list[str], wanted: list[str]) -> list[str]:
    """`existing` followed by the wanted URIs it lacks: nothing already registered is dropped."""
    return [*existing, *(uri for uri in wanted if uri not in existing)]


def plan_app(api: ManagementApi, env: AdminEnv, name: str) -> tuple[dict | None, Change | None]:
    """Find the site's app (LOGTO_APP_ID, else a Traditional app called `name`); plan its creation or URIs."""
    app = _app_by_id(api, env.app_id) if env.app_id else _app_by_name(api, name)
    if app is None:
        uris = {"redirectUris": [env.redirect_uri], "postLogoutRedirectUris": [env.post_sign_out_uri]}
        body = {"name": name, "type": "Traditional", "oidcClientMetadata": uris}
        summary = (
            f'create Traditional web app "{name}" (redirect URI {env.redirect_uri}, '
            f"post sign-out URI {env.post_sign_out_uri})"
        )
        return None, Change(summary, "POST", "/api/applications", body)
    metadata = app.get("oidcClientMetadata") or {}
    redirects = merge_uris(metadata.get("redirectUris") or [], [env.redirect_uri])
    sign_outs = merge_uris(metadata.get("postLogoutRedirectUris") or [], [env.post_sign_out_uri])
    added = [uri for uri in (*redirects, *sign_outs) if uri not in _uris(metadata)]
    if not added:
        return app, None
    new_metadata = {**metadata, "redirectUris": redirects, "postLogoutRedirectUris": sign_outs}
    summary = f"app {app['id']}: add {', '.join(added)} (keeping the URIs already there)"
    return app, Change(summary, "PATCH", f"/api/applications/{app['id']}", {"oidcClientMetadata": new_metadata})


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


def plan_connector(api: ManagementApi, hf_id: str, hf_secret: str) -> tuple[dict | None, Change | None]:
    """Plan the Hugging Face connector's creation, or the update of its config where it differs."""
    connector = find_hf_connector(api.connectors())
    if connector is None:
        if not (hf_id and hf_secret):
            raise ConfigError(
                "the Hugging Face connector does not exist yet: pass --hf-client-id and --hf-client-secret "
                f"(or set HF_CLIENT_ID and HF_CLIENT_SECRET) from your Hugging Face OAuth app ({HF_APPS_PAGE})"
            )
        config = {"clientId": hf_id, "clientSecret": hf_secret, "scope": " ".join(HF_SCOPES)}
        summary = f'create Hugging Face connector ({HF_CONNECTOR_ID}, client id {hf_id}, scope "{config["scope"]}")'
        return None, Change(summary, "POST", "/api/connectors", {"connectorId": HF_CONNECTOR_ID, "config": config})
    old = connector.get("config") or {}
    new = {**old, "scope": wanted_scope(str(old.get("scope") or ""))}
    new.update({key: value for key, value in (("clientId", hf_id), ("clientSecret", hf_secret)) if value})
    differences = [_describe(key, old.get(key), new[key]) for key in new if new[key] != old.get(key)]
    if not differences:
        return connector, None
    summary = f"Hugging Face connector {connector['id']}: {', '.join(differences)}"
    return connector, Change(summary, "PATCH", f"/api/connectors/{connector['id']}", {"config": new})


def wanted_scope(scope: str) -> str:
    """The connector scope with `profile email` added; scopes already there are kept."""
    words = scope.split()
    return " ".join([*words, *(word for word in HF_SCOPES if word not in words)])


def _describe(key: str, old: Any, new: Any) -> str:
    if "secret" in key.lower():
        return f"new {key}"
    return f'{key} "{old or ""}" → "{new}"'


def plan_sign_in(api: ManagementApi, social_only_sign_up: bool) -> Change | None:
    """Add `huggingface` to the social targets (the PATCH replaces the list) and, if asked, social-only sign-up."""
    experience = api.sign_in_experience()
    targets = list(experience.get("socialSignInConnectorTargets") or [])
    body: dict[str, Any] = {}
    notes = []
    if HF_TARGET not in targets:
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
    connector, connector_change = plan_connector(api, options["hf_client_id"], options["hf_client_secret"])
    sign_in_change = plan_sign_in(api, options["social_only_sign_up"])
    changes = [change for change in (app_change, connector_change, sign_in_change) if change]
    return Plan(app=app, connector=connector, changes=changes)


def apply_plan(api: ManagementApi, plan: Plan, echo: Callable[[str], None]) -> None:
    """Make the planned writes in order; created app/connector replace `None` in the plan."""
    for change in plan.changes:
        reply = api.call(change.method, change.path, change.body)
        if change.method == "POST" and change.path == "/api/applications":
            plan.app = reply
        elif change.method == "POST" and change.path == "/api/connectors":
            plan.connector = reply
        created = f" → id {reply['id']}" if change.method == "POST" else ""
        echo(f"  ✓ {change.summary}{created}")


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
    _run_plan(api, plan, options["dry_run"])
    _report(api, env, plan, options)


def _run_plan(api: ManagementApi, plan: Plan, dry_run: bool) -> None:
    if not plan.changes:
        click.echo("Nothing to change: the app, the Hugging Face connector and the sign-in experience are set up.")
        return
    click.echo("Plan:")
    for change in plan.changes:
        click.echo(f"  {change.line}")
    if dry_run:
        click.echo("Dry run: nothing was changed. Run again without --dry-run to apply.")
        return
    click.echo("Applying:")
    apply_plan(api, plan, click.echo)


def _report(api: ManagementApi, env: AdminEnv, plan: Plan, options: dict[str, Any]) -> None:
    if plan.app is not None:
        click.echo(f"App id: {plan.app['id']} (\"{plan.app.get('name')}\", Traditional web app)")
        _handle_app_credentials(api, env, plan.app["id"], options)
    elif options["write_env"]:
        click.echo("Would write LOGTO_APP_ID and LOGTO_APP_SECRET of the new app to .env.")
    connector_id = plan.connector["id"] if plan.connector else "<connector id, known once created>"
    click.echo(f"Hugging Face OAuth app redirect URI: {env.connector_callback(connector_id)}")
    click.echo(
        f"Next: add that redirect URI to your Hugging Face OAuth app ({HF_APPS_PAGE}), "
        f"then run: {DOCTOR_COMMAND}"
    )


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

