"""`flask logto doctor`: its checks, each a `Check` printed as ✓ / ✗ (with its fix) / ! / -, and the command.

The site's settings are read first, by the site's own reader; a setting the site refuses is a ✗ (and nothing
else can be checked). Local checks (endpoint and discovery document, by the site's rule; clock skew; APP_BASE_URL;
FLASK_SECRET_KEY, by the site's rule; the session store) always run. The tenant checks (app, URIs, secret,
Hugging Face connector, Hugging Face token storage with Account Center and the `identities` scope, sign-in
experience, LOGTO_DIRECT_SIGN_IN, sign-up) need the machine-to-machine app;
without it the doctor probes Logto's authorize endpoint for the redirect URI instead and lists what it skipped.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

import click
import requests
from flask.cli import NoAppException, ScriptInfo
from logto.models.oidc import OidcProviderMetadata

from flask_logto import oidc_core
from flask_logto.access import hf_org_pages
from flask_logto.config import MAKE_SECRET_HINT, is_loopback_url, is_private_url
from flask_logto.errors import ConfigError
from tools.logto_cli.api import (
    HF_APPS_PAGE,
    HF_CONNECTOR_ID,
    HF_TARGET,
    READ_MEMBERSHIPS,
    TIMEOUT,
    AdminEnv,
    LogtoApiError,
    ManagementApi,
    admin_env,
    error_from_response,
    find_hf_connector,
    one_line_errors,
    read_site_config,
    stores_tokens,
)
from website import settings

MAX_CLOCK_SKEW = 30.0  # seconds
SETUP_COMMAND = "flask --app flask_app logto setup"
MARKS = {"ok": "✓", "fail": "✗", "warn": "!", "skip": "-"}
TENANT_CHECKS = (
    "LOGTO_APP_ID exists and is a Traditional web app",
    "its redirect and post sign-out URIs include this site's",
    "LOGTO_APP_SECRET is one of the app's secrets",
    "the Hugging Face connector exists and is in the sign-in experience",
    "sign-up does not ask Hugging Face users for a username",
)


@dataclass(frozen=True)
class Check:
    status: str  # one of MARKS
    text: str
    fix: str = ""

    def lines(self) -> list[str]:
        head = f"{MARKS[self.status]} {'skipped: ' if self.status == 'skip' else ''}{self.text}"
        return [head, f"    fix: {self.fix}"] if self.fix and self.status in ("fail", "warn") else [head]


@click.command("doctor")
@one_line_errors
def doctor_command() -> None:
    """Check the Logto connection and settings; print each check with the fix for a failure (exit 1 if any fail)."""
    if not run_doctor(os.environ, click.echo, org_pages=_org_pages()):
        raise click.exceptions.Exit(1)


def _org_pages() -> list[str]:
    """The site's pages that `hf_org_required` guards (the app Flask's CLI loads), for the organisation checks."""
    info = click.get_current_context().find_object(ScriptInfo)
    try:
        return hf_org_pages(info.load_app()) if info is not None else []
    except NoAppException:
        return []


def run_doctor(environ: Mapping[str, str], echo: Callable[[str], None], org_pages: Sequence[str] = ()) -> bool:
    """Print every check; True when none failed. `ConfigError` when LOGTO_ENDPOINT is missing or malformed.
    `org_pages`: the site's pages only some organisations' members may open (`hf_org_required`)."""
    try:
        config = read_site_config(environ)
    except ConfigError as exc:
        return report([site_refusal(exc), Check("skip", "every other check (the site would not start)")], echo)
    env = admin_env(config, environ)
    note = "" if env.has_m2m else (
        "Set LOGTO_M2M_APP_ID and LOGTO_M2M_APP_SECRET to run the skipped checks (see docs/logto-setup.md)."
    )
    return report(all_checks(env, org_pages), echo, note)


def report(checks: Iterable[Check], echo: Callable[[str], None], note: str = "") -> bool:
    """Print the checks, the note and the verdict; True when none failed (warnings and skips do not fail)."""
    counts = {status: 0 for status in MARKS}
    for check in checks:
        counts[check.status] += 1
        for line in check.lines():
            echo(line)
    if note:
        echo(note)
    verdict = f"{counts['fail']} problem(s) found" if counts["fail"] else "No problems found"
    echo(f"{verdict}; {counts['warn']} warning(s), {counts['skip']} skipped.")
    return counts["fail"] == 0


def all_checks(env: AdminEnv, org_pages: Sequence[str] = ()) -> Iterator[Check]:
    discovery, response, local_time = check_discovery(env)
    yield discovery
    yield check_clock(response, local_time)
    yield check_app_base_url(env)
    yield check_secret_key(env)
    yield check_session_store(env)
    if env.has_m2m:
        yield from tenant_checks(env, org_pages)
        return
    yield from _missing_m2m(env)
    reachable = response is not None
    yield check_redirect_probe(env) if reachable else Check("skip", "redirect URI probe (Logto not reachable)")
    yield check_direct_sign_in(env.direct_sign_in, None)
    yield from (Check("skip", f"{name} (needs LOGTO_M2M_APP_ID/LOGTO_M2M_APP_SECRET)") for name in TENANT_CHECKS)


# Local checks


def site_refusal(exc: ConfigError) -> Check:
    """A setting the site refuses, as a ✗ in the site's own words (its secret-key hint as the fix line)."""
    message = str(exc)
    problem = message.removesuffix(f": {MAKE_SECRET_HINT}")
    return Check("fail", problem, MAKE_SECRET_HINT if problem != message else "")


def check_discovery(env: AdminEnv) -> tuple[Check, requests.Response | None, float]:
    """GET the discovery document and hold it to the site's rule (`oidc_core.check_discovery`).

    The issuer must be `{endpoint}/oidc` and every endpoint on its origin. Returns the reply for the clock check.
    """
    url = f"{env.issuer}/.well-known/openid-configuration"
    fix = "set LOGTO_ENDPOINT to your Logto endpoint without /oidc (Logto Cloud: https://<tenant-id>.logto.app)"
    started = time.time()
    try:
        response = requests.get(url, timeout=TIMEOUT)
    except requests.RequestException as exc:
        return Check("fail", f"Logto endpoint {env.endpoint} is not reachable ({type(exc).__name__})", fix), None, 0.0
    local_time = (started + time.time()) / 2
    try:  # parsed as the site parses it, with the SDK's model
        metadata = oidc_core.parse_model(OidcProviderMetadata, response.json()) if response.ok else None
    except (ValueError, oidc_core.ProviderError):
        metadata = None
    if metadata is None:
        return Check("fail", f"{url} answered {response.status_code} without a discovery document", fix), None, 0.0
    issuer = metadata.issuer
    problem = oidc_core.check_discovery(metadata, env.issuer)
    if problem and issuer != env.issuer:
        better = f"set LOGTO_ENDPOINT={issuer.removesuffix('/oidc')}" if issuer.endswith("/oidc") else fix
        return Check("fail", f"discovery issuer is {issuer}, expected {env.issuer}", better), response, local_time
    if problem:
        off_origin = "LOGTO_ENDPOINT must be the Logto server itself: the site refuses endpoints on another origin"
        return Check("fail", problem, off_origin), response, local_time
    return Check("ok", f"Logto endpoint {env.endpoint} reachable, issuer {issuer}"), response, local_time


def check_clock(response: requests.Response | None, local_time: float) -> Check:
    """Compare this machine's clock with the `Date` header of Logto's reply (a warning above 30 s)."""
    date = response.headers.get("Date") if response is not None else None
    if not date:
        return Check("skip", "clock skew (no Date header from Logto)")
    try:
        skew = parsedate_to_datetime(date).timestamp() - local_time
    except (TypeError, ValueError):
        return Check("skip", f"clock skew (unreadable Date header {date!r})")
    if abs(skew) <= MAX_CLOCK_SKEW:
        return Check("ok", f"clock within {MAX_CLOCK_SKEW:.0f} s of Logto's ({round(skew):+d} s)")
    direction = "behind" if skew > 0 else "ahead of"
    return Check(
        "warn",
        f"this machine's clock is {abs(skew):.0f} s {direction} Logto's (its Date header): token times may be rejected",
        "sync the clock (e.g. `timedatectl set-ntp true`, or restart the container/VM)",
    )


def check_app_base_url(env: AdminEnv) -> Check:
    """The base URL the site uses (the site's reader checked it, or chose it: SPACE_HOST, else localhost)."""
    base = env.base_url
    note = " (loopback: http allowed)" if is_loopback_url(base) and base.startswith("http:") else ""
    return Check("ok", f"APP_BASE_URL {base}{note}")


def check_secret_key(env: AdminEnv) -> Check:
    """The site's own rule (`settings.secret_key`), and its words when it refuses the key.

    A key that is set must be strong; only a local site may leave it unset (it then keeps a generated key in
    APP_DATA_DIR, which this check makes if missing, as the site would).
    """
    try:
        settings.secret_key(env.secret_key, env.base_url, env.data_dir)
    except ConfigError as exc:
        return site_refusal(exc)
    except OSError as exc:
        fix = f"set FLASK_SECRET_KEY ({MAKE_SECRET_HINT}), or make APP_DATA_DIR writable"
        return Check("fail", f"FLASK_SECRET_KEY unset and the site cannot keep a generated key ({exc.strerror})", fix)
    if not env.secret_key:
        return Check("ok", "FLASK_SECRET_KEY unset: fine locally (the site keeps a generated key in APP_DATA_DIR)")
    return Check("ok", f"FLASK_SECRET_KEY is set ({len(env.secret_key)} characters)")


def check_session_store(env: AdminEnv) -> Check:
    """`{APP_DATA_DIR}/sessions` must be a writable directory (or creatable: its nearest existing parent writable)."""
    store = env.data_dir.resolve() / "sessions"
    fix = f"make {store} a directory the site's user can write, or set APP_DATA_DIR (on a Space with storage: /data)"
    existing = next(path for path in (store, *store.parents) if path.exists())
    if not existing.is_dir():
        return Check("fail", f"session store {store}: {existing} is not a directory", fix)
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as exc:
        return Check("fail", f"session store {store} is not writable ({exc.strerror})", fix)
    return Check("ok", f"session store {store} is writable" + ("" if existing == store else " (will be created)"))


# Without the machine-to-machine app


def _missing_m2m(env: AdminEnv) -> Iterator[Check]:
    if env.m2m_app_id or env.m2m_app_secret:
        missing = "LOGTO_M2M_APP_SECRET" if env.m2m_app_id else "LOGTO_M2M_APP_ID"
        yield Check("fail", f"{missing} is missing (the other M2M setting is set)", f"set {missing} in .env")


def check_redirect_probe(env: AdminEnv) -> Check:
    """Ask Logto's authorize endpoint whether it accepts our redirect URI for LOGTO_APP_ID (no M2M needed)."""
    if not env.app_id:
        return Check("fail", "LOGTO_APP_ID is not set", f"run: {SETUP_COMMAND} --write-env (or copy the App ID)")
    params = {
        "client_id": env.app_id,
        "redirect_uri": env.redirect_uri,
        "response_type": "code",
        "scope": "openid",
        "state": "logto-doctor",
        "code_challenge": "x" * 43,
        "code_challenge_method": "S256",
    }
    try:
        response = requests.get(
            f"{env.issuer}/auth", params=params, allow_redirects=False, timeout=TIMEOUT,
            headers={"Accept": "application/json"},
        )
    except requests.RequestException as exc:
        problem = f"Logto's authorize endpoint is not reachable ({type(exc).__name__})"
        return Check("fail", problem, "check LOGTO_ENDPOINT")
    if response.is_redirect:
        return Check("ok", f"Logto accepts redirect URI {env.redirect_uri} for app {env.app_id}")
    error = error_from_response("authorize probe", response)
    if error.code.endswith("invalid_redirect_uri"):
        return Check(
            "fail",
            f"Logto rejects redirect URI {env.redirect_uri} for app {env.app_id}: {error.message}",
            f"run: {SETUP_COMMAND}, or add it in the Logto console: Applications → your app → Redirect URIs",
        )
    if error.code.endswith("invalid_client"):
        return Check("fail", f"Logto does not know LOGTO_APP_ID={env.app_id}", "copy the App ID from the Logto console")
    return Check("fail", error.summary, "check LOGTO_APP_ID and LOGTO_ENDPOINT")


# With the machine-to-machine app


@dataclass(frozen=True)
class Tenant:
    app: dict | None
    app_error: LogtoApiError | None
    secrets: list[dict] | None
    connectors: list[dict]
    experience: dict
    account_center: dict | None = None  # read only when the connector can store tokens; None: unreadable


def fetch_tenant(api: ManagementApi, env: AdminEnv) -> Tenant:
    """Read what the tenant checks need (GET only); a missing app is a finding, other errors raise."""
    app = app_error = secrets = None
    if env.app_id:
        try:
            app = api.application(env.app_id)
        except LogtoApiError as exc:
            if exc.status != 404:
                raise
            app_error = exc
    if app is not None:
        try:
            secrets = api.app_secrets(env.app_id)
        except LogtoApiError:
            secrets = None  # older Logto: no secrets endpoint; the check is skipped
    connectors = api.connectors()
    connector = find_hf_connector(connectors)
    center = None
    if connector is not None and connector.get("connectorId") != HF_CONNECTOR_ID:
        try:
            center = api.account_center()
        except LogtoApiError:
            center = None  # reported as skipped
    return Tenant(app, app_error, secrets, connectors, api.sign_in_experience(), center)


def tenant_checks(env: AdminEnv, org_pages: Sequence[str] = ()) -> Iterator[Check]:
    try:
        tenant = fetch_tenant(ManagementApi(env), env)
    except LogtoApiError as exc:
        fix = exc.fix or "check LOGTO_M2M_APP_ID/LOGTO_M2M_APP_SECRET and the M2M app's role"
        yield Check("fail", exc.summary, fix)
        yield from (Check("skip", f"{name} (the Management API is not usable)") for name in TENANT_CHECKS)
        yield check_direct_sign_in(env.direct_sign_in, None)
        return
    yield from app_checks(env, tenant)
    yield from connector_checks(env, tenant)
    yield from token_storage_checks(env, tenant)
    yield from org_checks(env, tenant, org_pages)
    yield check_direct_sign_in(env.direct_sign_in, tenant.connectors)
    yield check_sign_up(tenant.experience)


def app_checks(env: AdminEnv, tenant: Tenant) -> Iterator[Check]:
    setup_fix = f"run: {SETUP_COMMAND} --write-env (it creates the app and writes LOGTO_APP_ID/LOGTO_APP_SECRET)"
    app = tenant.app
    if not env.app_id:
        yield Check("fail", "LOGTO_APP_ID is not set", setup_fix)
        return
    if app is None:
        why = tenant.app_error.message if tenant.app_error else ""
        yield Check("fail", f"LOGTO_APP_ID={env.app_id} does not exist in this tenant ({why})", setup_fix)
        return
    if app.get("type") != "Traditional":
        problem = f"LOGTO_APP_ID={env.app_id} is a {app.get('type')} app, not a Traditional web app"
        yield Check("fail", problem, f"remove LOGTO_APP_ID from .env, then {setup_fix}")
        return
    yield Check("ok", f"app {app['id']} (\"{app.get('name')}\") is a Traditional web app")
    metadata = app.get("oidcClientMetadata") or {}
    for label, key, uri in (
        ("redirect URI", "redirectUris", env.redirect_uri),
        ("post sign-out URI", "postLogoutRedirectUris", env.post_sign_out_uri),
    ):
        yield _uri_check(label, uri, metadata.get(key) or [], app)
    yield check_backchannel_logout(env, metadata)
    yield _secret_check(env, tenant.secrets)


def check_backchannel_logout(env: AdminEnv, metadata: dict) -> Check:
    """The app's back-channel logout URI: this site's, session required, and somewhere Logto can deliver to.

    Without it a sign-out at Logto (or in another app) leaves this site's sessions alive. Each finding is a warning:
    sign-in works either way.
    """
    uri, wanted = metadata.get("backchannelLogoutUri") or "", env.backchannel_logout_uri
    fix = f"run: {SETUP_COMMAND} (registers {wanted}), or in the Logto console: Applications → your app → Back-channel logout"
    if not uri:
        return Check("warn", "no back-channel logout URI: signing out at Logto does not end this site's sessions", fix)
    if uri != wanted:
        return Check("warn", f"back-channel logout URI is {uri}, not this site's {wanted}", fix)
    if metadata.get("backchannelLogoutSessionRequired") is not True:
        problem = "backchannelLogoutSessionRequired is off: ID tokens carry no sid, so a sign-out ends all the user's sessions"
        return Check("warn", problem, fix)
    if is_private_url(uri):
        return Check(
            "warn",
            f"back-channel logout URI {uri} is not publicly reachable (loopback or private address): Logto refuses to "
            "send logouts there",
            "deploy the site at a public https address; a self-hosted Logto can allow it with "
            "OIDC_PROVIDER_SSRF_PROTECTION_DISABLED=true (Logto Cloud cannot)",
        )
    return Check("ok", f"back-channel logout URI {uri} is registered (session required)")


def _uri_check(label: str, uri: str, registered: list[str], app: dict) -> Check:
    if uri in registered:
        return Check("ok", f"{label} {uri} is registered")
    console = "Redirect URIs" if label == "redirect URI" else "Post sign-out redirect URIs"
    near = [other for other in registered if _loosely(other) == _loosely(uri)]
    hint = f"; {near[0]} is close but Logto compares URIs exactly" if near else ""
    return Check(
        "fail",
        f"{label} {uri} is not registered on app {app['id']} (registered: {', '.join(registered) or 'none'}){hint}",
        f"run: {SETUP_COMMAND} (adds it, keeping the others), or in the Logto console: "
        f"Applications → {app.get('name')} → {console}",
    )


def _loosely(uri: str) -> str:
    """A URI without scheme and trailing slash, to spot near misses like http/https or `/callback/`."""
    return uri.split("://", 1)[-1].rstrip("/").lower()


def _secret_check(env: AdminEnv, secrets: list[dict] | None) -> Check:
    fix = (
        "copy a secret from the Logto console (Applications → your app → App secrets), "
        f"or run: {SETUP_COMMAND} --write-env"
    )
    if secrets is None:
        return Check("skip", "LOGTO_APP_SECRET (this Logto has no secrets endpoint)")
    if not env.app_secret:
        return Check("fail", "LOGTO_APP_SECRET is not set", fix)
    now_ms = int(time.time() * 1000)
    valid = {s.get("value") for s in secrets if s.get("expiresAt") is None or s["expiresAt"] > now_ms}
    if env.app_secret not in valid:
        problem = "LOGTO_APP_SECRET is not one of the app's current secrets (sign-in would fail: invalid_client)"
        return Check("fail", problem, fix)
    return Check("ok", "LOGTO_APP_SECRET is one of the app's current secrets")


def connector_checks(env: AdminEnv, tenant: Tenant) -> Iterator[Check]:
    connector = find_hf_connector(tenant.connectors)
    if connector is None:
        yield Check(
            "fail",
            f"the Hugging Face connector ({HF_CONNECTOR_ID}) does not exist",
            f"run: {SETUP_COMMAND} --hf-client-id <id> --hf-client-secret <secret>",
        )
    else:
        callback = env.connector_callback(connector["id"])
        yield Check("ok", f"Hugging Face connector {connector['id']} exists (HF OAuth app redirect URI: {callback})")
    targets = tenant.experience.get("socialSignInConnectorTargets") or []
    if HF_TARGET in targets:
        yield Check("ok", f'"{HF_TARGET}" is in the sign-in experience\'s social sign-in')
    else:
        yield Check(
            "fail",
            f'"{HF_TARGET}" is not in the sign-in experience\'s social sign-in (now: {", ".join(targets) or "none"})',
            f"run: {SETUP_COMMAND} (adds it, keeping the others), or in the Logto console: "
            "Sign-in experience → Sign-up and sign-in → Social sign-in",
        )


def token_storage_checks(env: AdminEnv, tenant: Tenant) -> Iterator[Check]:
    """Whether Logto keeps users' Hugging Face tokens and hands them to the site (what the /hf page needs)."""
    connector = find_hf_connector(tenant.connectors)
    fix = f"run: {SETUP_COMMAND} --hf-token-storage"
    if connector is None:
        return  # connector_checks said so
    if connector.get("connectorId") == HF_CONNECTOR_ID:
        yield Check(
            "warn",
            "Hugging Face token storage is off: the dedicated connector cannot store users' Hugging Face tokens, "
            "so the /hf page cannot act on the Hub for them",
            fix,
        )
        return
    scope = str((connector.get("config") or {}).get("scope") or "")
    if stores_tokens(connector):
        yield Check("ok", f'Hugging Face token storage is on (connector {connector["id"]}, scope "{scope}")')
    else:
        yield Check("fail", f"Hugging Face connector {connector['id']} has token storage off", fix)
    if "openid" not in scope.split():
        yield Check("fail", f'the Hugging Face connector\'s scope "{scope}" lacks openid (for the ID token)', fix)
    center = tenant.account_center
    if center is None:
        yield Check("skip", "Account Center (its settings could not be read)")
    elif center.get("enabled") is True:
        yield Check("ok", "Account Center is on (its Account API hands signed-in users their Hugging Face token)")
    else:
        problem = "Account Center is off: Logto refuses every user's Hugging Face token (account_center.not_enabled)"
        yield Check("fail", problem, f"{fix}, or in the Logto console: Account center → enable")
    if "identities" in env.scopes:
        yield Check("ok", "LOGTO_SCOPES includes identities (without it the Account API refuses the token)")
    else:
        problem = f"LOGTO_SCOPES={' '.join(env.scopes)} lacks identities: Logto refuses the token (auth.forbidden)"
        fix = "add identities to LOGTO_SCOPES (the default is `email identities`); users then sign in again"
        yield Check("fail", problem, fix)


def org_checks(env: AdminEnv, tenant: Tenant, org_pages: Sequence[str]) -> Iterator[Check]:
    """When the site uses Hugging Face organisations (HF_ALLOWED_ORGS, `hf_org_required`): whether Hugging Face is
    asked for them (`read-memberships`), and whether they stay current (token storage: the Hub's whoami-v2)."""
    connector = find_hf_connector(tenant.connectors)
    used_by = [f"HF_ALLOWED_ORGS={','.join(env.hf_allowed_orgs)}"] if env.hf_allowed_orgs else []
    used_by += [f"hf_org_required on {page}" for page in org_pages]
    if not used_by or connector is None:
        return
    uses = "; ".join(used_by)
    scope = str((connector.get("config") or {}).get("scope") or "")
    storage = " --hf-token-storage" if connector.get("connectorId") != HF_CONNECTOR_ID else ""
    if READ_MEMBERSHIPS in scope.split():
        yield Check("ok", f'the Hugging Face connector asks for {READ_MEMBERSHIPS} (used by {uses})')
    else:
        yield Check(
            "warn",
            f'the site uses Hugging Face organisations ({uses}) but the connector\'s scope "{scope}" lacks '
            f"{READ_MEMBERSHIPS}: Hugging Face shares no organisation, so nobody passes",
            f"run: {SETUP_COMMAND}{storage} --hf-scopes {READ_MEMBERSHIPS}, and allow {READ_MEMBERSHIPS} in your Hugging "
            f"Face OAuth app too ({HF_APPS_PAGE})",
        )
    if not storage:
        yield Check(
            "warn",
            f"the site uses Hugging Face organisations ({uses}) without token storage: they come from what Logto kept "
            "of the person's first Hugging Face sign-in (Logto does not update it), so someone who leaves or un-shares "
            "an organisation keeps it here",
            f"run: {SETUP_COMMAND} --hf-token-storage --hf-scopes read-repos {READ_MEMBERSHIPS} (the site then asks the "
            "Hub at every sign-in and token refresh)",
        )


def check_direct_sign_in(value: str, connectors: list[dict] | None) -> Check:
    """`social:<target>` must name a connector's target; `sso:<id>` and '' are accepted as they are."""
    kind, _, target = value.partition(":")
    if not value:
        return Check("ok", "LOGTO_DIRECT_SIGN_IN is empty: people see Logto's sign-in page")
    if kind == "sso" and target:
        return Check("skip", f"LOGTO_DIRECT_SIGN_IN={value} (single sign-on connectors are not checked)")
    if kind != "social" or not target:
        return Check(
            "fail",
            f"LOGTO_DIRECT_SIGN_IN={value!r} is not social:<target> or sso:<connector id>",
            f"use social:{HF_TARGET}, or leave it empty to show Logto's sign-in page",
        )
    if connectors is None:
        return Check("skip", f"LOGTO_DIRECT_SIGN_IN={value}: whether that connector target exists (needs M2M)")
    targets = sorted({str(c.get("target")) for c in connectors})
    if target not in targets:
        return Check(
            "fail",
            f"LOGTO_DIRECT_SIGN_IN={value}: no connector has target {target!r} "
            f"(targets: {', '.join(targets) or 'none'}); Logto silently shows its first screen instead",
            f"set LOGTO_DIRECT_SIGN_IN=social:{HF_TARGET} (and run {SETUP_COMMAND}), or add that connector",
        )
    return Check("ok", f"LOGTO_DIRECT_SIGN_IN={value} names an existing connector")


def check_sign_up(experience: dict) -> Check:
    identifiers = (experience.get("signUp") or {}).get("identifiers") or []
    if "username" not in identifiers:
        return Check("ok", "sign-up does not ask new Hugging Face users for a username")
    return Check(
        "warn",
        "sign-up asks for a username: a person arriving from Hugging Face for the first time sees a "
        "'Set username' page before coming back",
        f"run: {SETUP_COMMAND} --social-only-sign-up (sign-up identifiers: none; sign-in methods unchanged)",
    )
