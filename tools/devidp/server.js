// server.js — devidp: an embedded development identity provider that looks like Logto
// (with a simulated "Sign in with Hugging Face") to the Python `logto` SDK.
//
//   /oidc/*            oidc-provider (provider.js), mounted like Logto's OIDC endpoints
//   /interaction/:uid  sign-in pages (pages.js): Logto-like first screen + simulated HF authorize
//   /api/my-account/identities/huggingface/access-token  Logto's Account API route for the user's stored
//                      Hugging Face token (account-api.js)
//   /hub/*             a simulated Hugging Face Hub API for those tokens (hub.js)
//   /__devidp__/*      test controls (fault injection, key rotation, revocation), only with
//                      DEVIDP_TEST_CONTROLS=1
// State lives in DEVIDP_DATA_DIR (store.js). Configuration: environment variables, see README.md.
// Prints "devidp ready http://{host}:{port}" on stdout once it serves requests.
// With DEVIDP_EXIT_ON_STDIN_EOF=1 (set by launcher.py) it exits as soon as its stdin closes, so it
// never outlives the process that started it, even one killed with SIGKILL.

import * as fs from 'node:fs';
import * as http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';

import { ACCOUNT_API_MODES, accountApiReply } from './account-api.js';
import { HUB_FAULT_MODES, HUB_PREFIX, hubReply } from './hub.js';
import { HF_ORGS, HF_ROLES, READ_MEMBERSHIPS, sharedOrgs } from './orgs.js';
import * as pages from './pages.js';
import { AccountStore, KeyStore, OidcStore, generateSigningKey } from './store.js';

const BIND_ADDRESS = '127.0.0.1';
const USERNAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,41}$/;
const EMAIL_RE = /^[^\s@<>]+@[^\s@<>]+\.[^\s@<>]+$/;
// ignore-max-age: authorization requests lose `max_age` and `prompt=login` (a provider that does not honour them).
const FAULT_MODES = new Set(['none', 'html', 'slow', 'error500', 'bad-jwks', 'ignore-max-age']);
const HF_CONNECTORS = new Set(['token-storage', 'dedicated']);
const MAX_BODY = 64 * 1024;

class ConfigError extends Error {}
class SessionNotFound extends Error {}
class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// ---------------------------------------------------------------- configuration

function readConfig(env) {
  const required = (name) => {
    const value = env[name]?.trim();
    if (!value) throw new ConfigError(`${name} is required`);
    return value;
  };
  const uriList = (name) => {
    const uris = (env[name] ?? '').split(/\s+/).filter(Boolean);
    for (const uri of uris) {
      if (!URL.canParse(uri)) throw new ConfigError(`${name}: not an absolute URL: ${uri}`);
    }
    return uris;
  };
  const integer = (name, fallback, min) => {
    const raw = env[name]?.trim();
    if (!raw) return fallback;
    if (!/^\d+$/.test(raw) || Number(raw) < min) throw new ConfigError(`${name} must be an integer >= ${min}, got ${raw}`);
    return Number(raw);
  };

  const clientId = required('DEVIDP_CLIENT_ID');
  const clientSecret = required('DEVIDP_CLIENT_SECRET');
  const dataDir = required('DEVIDP_DATA_DIR');
  const redirectUris = uriList('DEVIDP_REDIRECT_URIS');
  if (!redirectUris.length) throw new ConfigError('DEVIDP_REDIRECT_URIS is required (space-separated URLs)');
  const port = integer('DEVIDP_PORT', 3001, 0);
  if (port > 65535) throw new ConfigError(`DEVIDP_PORT out of range: ${port}`);
  const hostName = env.DEVIDP_HOST_NAME?.trim() || 'localhost';
  if (!/^[A-Za-z0-9.-]+$/.test(hostName)) throw new ConfigError(`DEVIDP_HOST_NAME is not a plain host name: ${hostName}`);

  const hfConnector = env.DEVIDP_HF_CONNECTOR?.trim() || 'token-storage';
  if (!HF_CONNECTORS.has(hfConnector)) throw new ConfigError(`DEVIDP_HF_CONNECTOR must be token-storage or dedicated, got ${hfConnector}`);

  return {
    port,
    hostName,
    // What Logto's Hugging Face connector asks Hugging Face for (its `scope`), and which connector it is:
    // `token-storage` (the OIDC connector storing tokens: rawData is Hugging Face's ID token, without orgs) or
    // `dedicated` (rawData is Hugging Face's userinfo as of the person's first sign-in; no token stored).
    hfScopes: (env.DEVIDP_HF_SCOPES?.trim() || `profile email ${READ_MEMBERSHIPS}`).split(/\s+/),
    hfConnector,
    clientId,
    clientSecret,
    redirectUris,
    postLogoutRedirectUris: uriList('DEVIDP_POST_LOGOUT_REDIRECT_URIS'),
    backchannelLogoutUri: uriList('DEVIDP_BACKCHANNEL_LOGOUT_URI')[0] ?? null,
    dataDir,
    accessTokenTtl: integer('DEVIDP_ACCESS_TOKEN_TTL', 3600, 1),
    testControls: env.DEVIDP_TEST_CONTROLS === '1',
    appName: env.DEVIDP_APP_NAME?.trim() || 'your app',
    siteUrl: `${new URL(redirectUris[0]).origin}/`, // every page links back to the site (the client's origin)
  };
}

// ---------------------------------------------------------------- small HTTP helpers

function send(res, status, type, body, headers = {}) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', ...headers });
  res.end(body);
}
const sendJson = (res, status, value) => send(res, status, 'application/json; charset=utf-8', JSON.stringify(value));
const sendPage = (res, { status, html }) => send(res, status, 'text/html; charset=utf-8', html);
const redirect = (res, location) => send(res, 303, 'text/plain; charset=utf-8', '', { location });

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) throw new HttpError(413, 'request body too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

async function readJsonBody(req) {
  const text = await readBody(req);
  if (!text.trim()) return {};
  try {
    const value = JSON.parse(text);
    if (value && typeof value === 'object' && !Array.isArray(value)) return value;
  } catch { /* fall through */ }
  throw new HttpError(400, 'body must be a JSON object');
}

/** A fault control's body: `{mode, delay_ms}`, `slow` waiting 2000 ms unless told. */
function readFault(body, modes) {
  const mode = body.mode ?? 'none';
  const delayMs = body.delay_ms ?? (mode === 'slow' ? 2000 : 0);
  if (!modes.has(mode)) throw new HttpError(400, `mode must be one of ${[...modes].join(', ')}`);
  if (!Number.isInteger(delayMs) || delayMs < 0) throw new HttpError(400, 'delay_ms must be a non-negative integer');
  return { mode, delay_ms: delayMs };
}

const describeFault = ({ mode, delay_ms: delayMs }) => `${mode}${mode === 'slow' ? ` (${delayMs} ms)` : ''}`;

// ---------------------------------------------------------------- the server

class DevIdp {
  constructor(config) {
    this.config = config;
    fs.mkdirSync(config.dataDir, { recursive: true });
    this.keys = new KeyStore(config.dataDir);
    this.accounts = new AccountStore(config.dataDir);
    this.oidcStore = new OidcStore(config.dataDir);
    this.fault = { mode: 'none', delay_ms: 0 };
    this.counts = { grants: {}, backchannel_logouts: { sent: 0, failed: 0 } }; // what tests count
    this.accountApiMode = 'none';
    this.hubFault = { mode: 'none', delay_ms: 0 };
    this.provider = null;
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => this.fail(req, res, err));
    });
  }

  async listen() {
    await new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.config.port, BIND_ADDRESS, resolve);
    });
    const { port } = this.server.address();
    this.config.port = port;
    this.config.endpoint = `http://${this.config.hostName}:${port}`;
    this.config.issuer = `${this.config.endpoint}/oidc`;
    await this.loadProvider();
  }

  async loadProvider() {
    // Imported late so that a config error is reported before oidc-provider prints anything.
    const { createProvider } = await import('./provider.js');
    const provider = await createProvider(this.config, this);
    provider.on('grant.success', (ctx) => {
      const type = ctx.oidc.params.grant_type;
      this.counts.grants[type] = (this.counts.grants[type] ?? 0) + 1;
    });
    provider.on('backchannel.success', () => { this.counts.backchannel_logouts.sent += 1; });
    provider.on('backchannel.error', (ctx, err) => {
      this.counts.backchannel_logouts.failed += 1;
      console.error(`devidp backchannel.error: ${err.message}${err.cause ? ` (${err.cause.message ?? err.cause})` : ''}`);
    });
    for (const event of ['server_error', 'authorization.error', 'grant.error', 'end_session.error',
      'userinfo.error', 'revocation.error']) {
      provider.on(event, (ctx, err) => {
        const detail = err.error_description || err.message;
        console.error(`devidp ${event}: ${err.error || err.name}${detail ? `: ${detail}` : ''}`);
        if (event === 'server_error') console.error(err.stack);
      });
    }
    this.provider = provider;
    this.oidcCallback = provider.callback();
  }

  async handle(req, res) {
    const started = Date.now();
    const logPath = req.url.split('?')[0];
    res.on('finish', () => console.log(`${req.method} ${logPath} ${res.statusCode} ${Date.now() - started}ms`));
    if (!this.provider) return send(res, 503, 'text/plain', 'starting');
    // All URLs are built from the configured host name, never from what the client sent.
    req.headers.host = `${this.config.hostName}:${this.config.port}`;
    const url = new URL(req.url, this.config.endpoint);
    const { pathname } = url;

    if (pathname === '/oidc' || pathname.startsWith('/oidc/')) return this.handleOidc(req, res, pathname);

    const interaction = pathname.match(/^\/interaction\/([A-Za-z0-9_-]+)(\/huggingface)?\/?$/);
    if (interaction) {
      const [, uid, huggingface] = interaction;
      if (!huggingface && req.method === 'GET') return this.firstScreen(req, res, uid);
      if (huggingface && req.method === 'GET') return this.huggingFacePage(req, res, uid);
      if (huggingface && req.method === 'POST') return this.huggingFaceSubmit(req, res, uid);
      return send(res, 405, 'text/plain', 'method not allowed');
    }

    if (pathname.startsWith('/api/')) {
      if (await this.faulted(res, pathname)) return undefined;
      const { provider, accounts, accountApiMode: mode } = this;
      const tokenStorage = this.config.hfConnector === 'token-storage';
      const [status, body] = await accountApiReply({ provider, accounts, mode, tokenStorage }, req, pathname);
      return sendJson(res, status, body);
    }
    if (pathname === HUB_PREFIX || pathname.startsWith(`${HUB_PREFIX}/`)) {
      const [status, type, body] = await hubReply({ accounts: this.accounts, fault: this.hubFault }, req, url);
      return type === 'application/json' ? sendJson(res, status, body) : send(res, status, type, body);
    }

    if (pathname.startsWith('/__devidp__/') && this.config.testControls) {
      return this.handleControl(req, res, pathname);
    }
    if (pathname === '/') {
      return send(res, 200, 'text/plain; charset=utf-8', `devidp — ${pages.NOTE}\nissuer: ${this.config.issuer}\n`);
    }
    return send(res, 404, 'text/plain', 'not found');
  }

  /** What a page needs: its language (the sign-in's `ui_locales`, else the browser's) and the site it links back to. */
  view(req, uiLocales) {
    const { appName: name, siteUrl: url } = this.config;
    return pages.view({ lang: pages.pickLanguage(uiLocales, req.headers['accept-language']), site: { name, url } });
  }

  fail(req, res, err) {
    // SessionNotFound: oidc-provider's (no/expired interaction cookie) or ours (uid mismatch)
    const sessionLost = err.name === 'SessionNotFound' || err instanceof SessionNotFound;
    const status = err instanceof HttpError ? err.status : sessionLost ? 400 : 500;
    if (status === 500) console.error('devidp error:', err.stack || err);
    if (res.headersSent) return res.destroy();
    const message = sessionLost ? { key: 'expired' } : status === 500 ? { key: 'internal' } : err.message;
    return sendPage(res, pages.errorPage(this.view(req), message, status));
  }

  // ------------------------------------------------------------ /oidc (+ fault injection)

  /** Answer as the fault mode says (true), or let the request through (false; after the delay when `slow`). */
  async faulted(res, pathname) {
    const { mode, delay_ms: delayMs } = this.fault;
    if (mode === 'slow') await sleep(delayMs);
    if (mode === 'html') send(res, 200, 'text/html; charset=utf-8', '<html>not json</html>');
    else if (mode === 'error500') sendJson(res, 500, { code: 'internal', message: 'boom' });
    else if (mode === 'bad-jwks' && pathname === '/oidc/jwks') sendJson(res, 200, this.badJwks());
    else return false;
    return true;
  }

  async handleOidc(req, res, pathname) {
    if (await this.faulted(res, pathname)) return undefined;
    if (this.fault.mode === 'ignore-max-age' && pathname === '/oidc/auth') {
      const url = new URL(req.url, 'http://devidp');
      url.searchParams.delete('max_age');
      if (url.searchParams.has('prompt')) url.searchParams.set('prompt', 'consent');
      req.url = `${url.pathname}${url.search}`;
    }

    // Mount under /oidc: oidc-provider derives its mount path from originalUrl vs url.
    req.originalUrl = req.url;
    const rest = req.url.slice('/oidc'.length);
    req.url = rest.startsWith('/') ? rest : `/${rest}`;
    return this.oidcCallback(req, res);
  }

  /** The real kids with a different public key: ID-token signatures stop verifying. */
  badJwks() {
    this.bogusKey ??= generateSigningKey();
    const { x, y } = this.bogusKey;
    return { keys: this.keys.signing.map(({ kty, use, kid, alg, crv }) => ({ kty, use, kid, alg, crv, x, y })) };
  }

  // ------------------------------------------------------------ interaction pages

  async details(req, res, uid) {
    const details = await this.provider.interactionDetails(req, res);
    if (details.uid !== uid) throw new SessionNotFound('interaction uid mismatch');
    return details;
  }

  async firstScreen(req, res, uid) {
    const details = await this.details(req, res, uid);
    if (details.prompt.name !== 'login') return this.finishConsent(req, res, details);
    const { params } = details;
    if (params.direct_sign_in === 'social:huggingface') return redirect(res, `/interaction/${uid}/huggingface`);
    const register = ['register', 'identifier:register'].includes(params.first_screen) || params.interaction_mode === 'signUp';
    return sendPage(res, pages.firstScreen({ uid, register, view: this.view(req, params.ui_locales) }));
  }

  async huggingFacePage(req, res, uid) {
    const details = await this.details(req, res, uid);
    if (details.prompt.name !== 'login') return redirect(res, `/interaction/${uid}`);
    return sendPage(res, pages.huggingFaceAuthorize({ uid, orgs: this.asksForOrgs() ? HF_ORGS : null, view: this.view(req, details.params.ui_locales) }));
  }

  async huggingFaceSubmit(req, res, uid) {
    const details = await this.details(req, res, uid);
    const form = new URLSearchParams(await readBody(req));
    if (form.get('action') === 'cancel') {
      return this.provider.interactionFinished(req, res, {
        error: 'access_denied', error_description: 'End-User aborted interaction',
      }, { mergeWithLastSubmission: false });
    }
    if (details.prompt.name !== 'login') return this.finishConsent(req, res, details);

    const username = (form.get('username') ?? '').trim();
    const fullName = (form.get('full_name') ?? '').trim().slice(0, 100);
    const email = (form.get('email') ?? '').trim(); // not on the page; lets tests pick an email
    const values = { username, full_name: fullName, orgs: this.asksForOrgs() ? sharedOrgs(form) : [] };
    let error;
    if (!USERNAME_RE.test(username)) {
      error = 'badUsername'; // pages.js words it in the page's language
    } else if (email && !EMAIL_RE.test(email)) {
      error = 'badEmail';
    }
    if (error) {
      return sendPage(res, pages.huggingFaceAuthorize({
        uid, values, error, orgs: this.asksForOrgs() ? HF_ORGS : null, view: this.view(req, details.params.ui_locales),
      }));
    }

    const orgs = this.asksForOrgs() ? sharedOrgs(form) : null; // Hugging Face sends orgs only with read-memberships
    const account = this.accounts.upsertHuggingFaceUser({ username, fullName, email, orgs });
    // Finish login and consent in one go, like Logto does for its own first-party apps.
    const grantId = await this.saveGrant(details, account.id);
    return this.provider.interactionFinished(req, res, {
      login: { accountId: account.id },
      consent: { grantId },
    }, { mergeWithLastSubmission: false });
  }

  /** Whether the simulated Hugging Face consent page offers organisations (the connector's scope has read-memberships). */
  asksForOrgs() {
    return this.config.hfScopes.includes(READ_MEMBERSHIPS);
  }

  /** Already signed in but the grant is missing (new scopes, or revoked): consent silently. */
  async finishConsent(req, res, details) {
    const grantId = await this.saveGrant(details, details.session.accountId);
    return this.provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
  }

  async saveGrant(details, accountId) {
    const { Grant } = this.provider;
    let grant = details.grantId ? await Grant.find(details.grantId) : undefined;
    if (grant?.accountId !== accountId) grant = new Grant({ accountId, clientId: details.params.client_id });
    grant.addOIDCScope(details.params.scope);
    return grant.save();
  }

  // ------------------------------------------------------------ test controls

  async handleControl(req, res, pathname) {
    try {
      return await this.control(req, res, pathname);
    } catch (err) {
      if (!(err instanceof HttpError)) throw err;
      return sendJson(res, err.status, { error: err.message });
    }
  }

  async control(req, res, pathname) {
    if (pathname === '/__devidp__/state' && req.method === 'GET') return sendJson(res, 200, this.state());
    if (req.method !== 'POST') throw new HttpError(405, 'method not allowed');
    const body = await readJsonBody(req);

    if (pathname === '/__devidp__/fault') {
      this.fault = readFault(body, FAULT_MODES);
      console.log(`devidp fault mode: ${describeFault(this.fault)}`);
      return sendJson(res, 200, this.state());
    }
    if (pathname === '/__devidp__/rotate-key') {
      this.keys.rotate(Boolean(body.keep_old));
      this.bogusKey = null;
      await this.loadProvider(); // the keystore is fixed per Provider; stores are shared
      console.log(`devidp signing key rotated: ${this.keys.kids[0]}`);
      return sendJson(res, 200, this.state());
    }
    if (pathname === '/__devidp__/hf-token') {
      if (!['missing', 'expired', 'valid'].includes(body.state)) throw new HttpError(400, 'state must be missing, expired or valid');
      if (typeof body.sub !== 'string' || !this.accounts.setHfToken(body.sub, body.state)) throw new HttpError(404, 'no such sub');
      console.log(`devidp Hugging Face token of ${body.sub}: ${body.state}`);
      return sendJson(res, 200, this.state());
    }
    if (pathname === '/__devidp__/hf-orgs') {
      const orgs = Array.isArray(body.orgs) ? body.orgs : null;
      if (!orgs || !orgs.every((org) => HF_ORGS.some(({ name }) => name === org?.name) && HF_ROLES.includes(org.role))) {
        throw new HttpError(400, 'orgs must be a list of {name, role} with preset names and Hugging Face roles');
      }
      if (typeof body.sub !== 'string' || !this.accounts.setHfOrgs(body.sub, orgs)) throw new HttpError(404, 'no such sub');
      console.log(`devidp Hugging Face organisations of ${body.sub}: ${orgs.map(({ name, role }) => `${name}:${role}`).join(', ') || 'none'}`);
      return sendJson(res, 200, this.state());
    }
    if (pathname === '/__devidp__/account-api') {
      if (!ACCOUNT_API_MODES.has(body.mode)) throw new HttpError(400, `mode must be one of ${[...ACCOUNT_API_MODES].join(', ')}`);
      this.accountApiMode = body.mode;
      console.log(`devidp Account API mode: ${body.mode}`);
      return sendJson(res, 200, this.state());
    }
    if (pathname === '/__devidp__/hub-fault') {
      this.hubFault = readFault(body, HUB_FAULT_MODES);
      console.log(`devidp Hub fault mode: ${describeFault(this.hubFault)}`);
      return sendJson(res, 200, this.state());
    }
    if (pathname === '/__devidp__/revoke') {
      if (typeof body.sub !== 'string' || !body.sub) throw new HttpError(400, 'sub is required');
      const revokedGrants = this.oidcStore.revokeAccount(body.sub);
      console.log(`devidp revoked ${revokedGrants} grant(s) of ${body.sub}`);
      return sendJson(res, 200, { sub: body.sub, revoked_grants: revokedGrants });
    }
    throw new HttpError(404, 'unknown test control');
  }

  state() {
    return {
      issuer: this.config.issuer,
      fault: this.fault,
      counts: this.counts,
      account_api: this.accountApiMode,
      hub_fault: this.hubFault,
      kids: this.keys.kids,
      accounts: this.accounts.count,
    };
  }

  async close() {
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

// ---------------------------------------------------------------- main

async function main() {
  let idp;
  try {
    idp = new DevIdp(readConfig(process.env));
    await idp.listen();
  } catch (err) {
    const port = idp?.config.port;
    const reason = err instanceof ConfigError ? `config error: ${err.message}`
      : err.code === 'EADDRINUSE' ? `cannot listen on ${BIND_ADDRESS}:${port}: address in use `
        + '(another flask dev still running?): stop it, or set DEVIDP_PORT=<free port> in .env'
        : `start-up failed: ${err.error ? `${err.error}: ` : ''}${err.error_description || err.message}`;
    console.error(`devidp: ${reason}`);
    process.exit(2);
  }

  let stopping = false;
  const stop = (signal) => {
    if (stopping) return;
    stopping = true;
    console.log(`devidp stopping (${signal})`);
    idp.close().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (process.env.DEVIDP_EXIT_ON_STDIN_EOF === '1') {
    // The parent is gone: nobody reads our output any more, so ignore EPIPE on the way out.
    const parentGone = () => {
      for (const stream of [process.stdout, process.stderr]) stream.on('error', () => {});
      stop('stdin closed');
    };
    process.stdin.on('data', () => {}).on('end', parentGone).on('close', parentGone).on('error', parentGone);
  }

  console.log(`devidp ready ${idp.config.endpoint}`);
  console.log(`devidp issuer ${idp.config.issuer}; data dir ${idp.config.dataDir}; test controls ${idp.config.testControls ? 'on' : 'off'}`);
}

main();
