// store.js — everything devidp keeps in DEVIDP_DATA_DIR.
//   keys.json      signing keys (EC P-384 JWKs, first = current) and cookie-signing keys
//   accounts.json  the simulated Logto users (one per Hugging Face username), each with the Hugging Face
//                  token set its last sign-in stored (Logto's Secret Vault: `hf.token`)
//   oidc/<Model>/<id>.json  the oidc-provider adapter store (sessions, grants, tokens, ...)
// Every change is written at once, synchronously, via temp file + rename, so a SIGTERM or
// crash never loses or half-writes state.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';

export function readJson(file, fallback) {
  let text;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    if (err.code === 'ENOENT') return fallback;
    throw err;
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`${file} is not valid JSON (delete it to start over)`);
  }
}

export function writeJsonAtomic(file, value, { pretty = true } = {}) {
  const tmp = `${file}.${process.pid}.tmp`; // same directory, so rename is atomic
  fs.writeFileSync(tmp, JSON.stringify(value, null, pretty ? 1 : undefined), { mode: 0o600 });
  fs.renameSync(tmp, file);
}

const epoch = () => Math.floor(Date.now() / 1000);

// ---------------------------------------------------------------- keys

/** RFC 7638 JWK thumbprint of an EC public key. */
export function thumbprint({ crv, x, y }) {
  return crypto.createHash('sha256').update(JSON.stringify({ crv, kty: 'EC', x, y })).digest('base64url');
}

/** A new EC P-384 signing key as a private JWK shaped like Logto's (kid = thumbprint). */
export function generateSigningKey() {
  const { privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-384' });
  const jwk = privateKey.export({ format: 'jwk' });
  return { kty: 'EC', use: 'sig', kid: thumbprint(jwk), alg: 'ES384', crv: jwk.crv, x: jwk.x, y: jwk.y, d: jwk.d };
}

export class KeyStore {
  constructor(dataDir) {
    this.file = path.join(dataDir, 'keys.json');
    const data = readJson(this.file, null);
    this.signing = data?.signing?.length ? data.signing : [generateSigningKey()];
    this.cookies = data?.cookies?.length ? data.cookies : [crypto.randomBytes(32).toString('base64url')];
    if (!data) this.save();
  }

  save() {
    writeJsonAtomic(this.file, { signing: this.signing, cookies: this.cookies });
  }

  /** Put a new key first (it signs from now on); keep or drop the others. */
  rotate(keepOld) {
    this.signing = [generateSigningKey(), ...(keepOld ? this.signing : [])];
    this.save();
  }

  get kids() {
    return this.signing.map((k) => k.kid);
  }
}

// ---------------------------------------------------------------- accounts

const ID_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';

/** Logto-style user id: 12 random lowercase alphanumerics. */
function randomId(length = 12) {
  let id = '';
  while (id.length < length) {
    const byte = crypto.randomBytes(1)[0];
    if (byte < 252) id += ID_ALPHABET[byte % 36]; // 252 = 7 * 36, no modulo bias
  }
  return id;
}

export const HF_TOKEN_SCOPE = 'openid profile email read-repos';
export const HF_TOKEN_TTL = 8 * 3600; // seconds, as Hugging Face's OAuth access tokens

/** The token set a sign-in through the simulated Hugging Face leaves in the vault (no refresh token, as HF). */
export function newHfToken() {
  return { access_token: `hf_oauth_${randomId(40)}`, scope: HF_TOKEN_SCOPE, expires_at: epoch() + HF_TOKEN_TTL };
}

export class AccountStore {
  constructor(dataDir) {
    this.file = path.join(dataDir, 'accounts.json');
    this.accounts = readJson(this.file, { accounts: {} }).accounts;
  }

  save() {
    writeJsonAtomic(this.file, { accounts: this.accounts });
  }

  get(id) {
    return this.accounts[id];
  }

  get count() {
    return Object.keys(this.accounts).length;
  }

  all() {
    return Object.values(this.accounts);
  }

  /**
   * The account linked to this Hugging Face username, created on first sign-in
   * (Logto's social sign-up: no Logto username is invented). A non-empty full name or
   * email given later updates the profile, like a connector profile sync.
   */
  /** The person signing in with (simulated) Hugging Face; `orgs` ([{name, role}]) the organisations they share,
   * or null when the connector does not ask for them. Like Logto 1.42, what the dedicated connector keeps of
   * Hugging Face's userinfo (rawData, with its orgs) is written at the first sign-in only (`hf.firstOrgs`). */
  upsertHuggingFaceUser({ username, fullName, email, orgs = null }) {
    const now = Date.now();
    let account = Object.values(this.accounts)
      .find((a) => a.hf.username.toLowerCase() === username.toLowerCase());
    if (!account) {
      let id;
      do id = randomId(); while (this.accounts[id]);
      account = {
        id,
        created_at: now,
        updated_at: now,
        name: fullName || username,
        picture: null, // nothing a page could try to fetch from the internet
        email: email || `${username.toLowerCase()}@users.noreply.huggingface.co`,
        hf: { sub: crypto.randomBytes(12).toString('hex'), username, firstOrgs: orgs },
      };
      this.accounts[id] = account;
    } else {
      const changes = {};
      if (fullName && fullName !== account.name) changes.name = fullName;
      if (email && email !== account.email) changes.email = email;
      if (Object.keys(changes).length) Object.assign(account, changes, { updated_at: now });
    }
    account.hf.orgs = orgs ?? [];
    account.hf.token = newHfToken(); // every sign-in stores the token set Hugging Face just issued
    this.save();
    return account;
  }

  /** Test control: the organisations the person shares now (as if they changed them on Hugging Face). */
  setHfOrgs(id, orgs) {
    const account = this.accounts[id];
    if (!account) return false;
    account.hf.orgs = orgs.map(({ name, role }) => ({ name, role }));
    this.save();
    return true;
  }

  /** Test control: the stored token goes `missing`, `expired`, or is `valid` again (a new one). */
  setHfToken(id, state) {
    const account = this.accounts[id];
    if (!account) return false;
    if (state === 'missing') delete account.hf.token;
    else if (state === 'expired') account.hf.token = { ...(account.hf.token ?? newHfToken()), expires_at: epoch() - 1 };
    else account.hf.token = newHfToken();
    this.save();
    return true;
  }

  /** The account whose stored, unexpired Hugging Face token this is (what the simulated Hub accepts). */
  byHfToken(token) {
    const given = Buffer.from(token);
    return Object.values(this.accounts).find(({ hf }) => {
      if (!hf.token || hf.token.expires_at <= epoch()) return false;
      const stored = Buffer.from(hf.token.access_token);
      return stored.length === given.length && crypto.timingSafeEqual(stored, given);
    });
  }
}

// ---------------------------------------------------------------- oidc-provider adapter

const GRANTABLE = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);
const SAFE_ID = /^[A-Za-z0-9_-]{1,128}$/;

/**
 * The oidc-provider adapter store: one file per record, oidc/<Model>/<id>.json holding
 * { id, payload, expiresAt (ms) | null }, so each change rewrites one small file.
 * All records are also kept in memory (loaded at start-up); expired ones are swept.
 */
export class OidcStore {
  constructor(dataDir) {
    this.dir = path.join(dataDir, 'oidc');
    this.models = new Map(); // model -> Map(id -> record)
    this.writes = 0;
    fs.mkdirSync(this.dir, { recursive: true });
    for (const model of fs.readdirSync(this.dir)) {
      const modelDir = path.join(this.dir, model);
      if (!fs.statSync(modelDir).isDirectory()) continue;
      for (const name of fs.readdirSync(modelDir)) {
        if (!name.endsWith('.json')) { fs.rmSync(path.join(modelDir, name), { force: true }); continue; } // stale temp file
        const record = readJson(path.join(modelDir, name), null);
        if (record) this.records(model).set(record.id, record);
      }
    }
    this.sweep();
  }

  records(model) {
    if (!this.models.has(model)) this.models.set(model, new Map());
    return this.models.get(model);
  }

  file(model, id) {
    const name = SAFE_ID.test(id) ? id : `h-${crypto.createHash('sha256').update(id).digest('hex')}`;
    return path.join(this.dir, model, `${name}.json`);
  }

  put(model, record) {
    fs.mkdirSync(path.join(this.dir, model), { recursive: true });
    writeJsonAtomic(this.file(model, record.id), record, { pretty: false });
    this.records(model).set(record.id, record);
    if (++this.writes % 200 === 0) this.sweep();
  }

  remove(model, id) {
    if (this.records(model).delete(id)) fs.rmSync(this.file(model, id), { force: true });
  }

  /** Live record or undefined. */
  get(model, id) {
    const record = this.records(model).get(id);
    if (!record || (record.expiresAt !== null && record.expiresAt <= Date.now())) return undefined;
    return record;
  }

  /** Live payloads of one model. */
  *live(model) {
    for (const id of this.records(model).keys()) {
      const record = this.get(model, id);
      if (record) yield record.payload;
    }
  }

  sweep() {
    const now = Date.now();
    for (const [model, records] of this.models) {
      for (const [id, { expiresAt }] of records) {
        if (expiresAt !== null && expiresAt <= now) this.remove(model, id);
      }
    }
  }

  deleteWhere(model, predicate) {
    for (const [id, { payload }] of this.records(model)) {
      if (predicate(payload)) this.remove(model, id);
    }
  }

  /** Remove every grant of an account and every token issued under them. */
  revokeAccount(accountId) {
    const grantIds = [...this.records('Grant').values()]
      .filter(({ payload }) => payload.accountId === accountId).map(({ id }) => id);
    for (const grantId of grantIds) {
      for (const model of GRANTABLE) this.deleteWhere(model, (p) => p.grantId === grantId);
      this.remove('Grant', grantId);
    }
    return grantIds.length;
  }

  /** The adapter class oidc-provider instantiates per model: `new Adapter(modelName)`. */
  adapterClass() {
    const store = this;
    const find = (model, predicate) => {
      for (const payload of store.live(model)) if (predicate(payload)) return structuredClone(payload);
      return undefined;
    };
    return class FileAdapter {
      constructor(model) {
        this.model = model;
      }

      async upsert(id, payload, expiresIn) {
        const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : null;
        store.put(this.model, { id, payload: structuredClone(payload), expiresAt });
      }

      async find(id) {
        const record = store.get(this.model, id);
        return record && structuredClone(record.payload);
      }

      async findByUid(uid) {
        return find(this.model, (p) => p.uid === uid);
      }

      async findByUserCode(userCode) {
        return find(this.model, (p) => p.userCode === userCode);
      }

      async consume(id) {
        const record = store.get(this.model, id);
        if (record) store.put(this.model, { ...record, payload: { ...record.payload, consumed: epoch() } });
      }

      async destroy(id) {
        store.remove(this.model, id);
      }

      async revokeByGrantId(grantId) {
        store.deleteWhere(this.model, (p) => p.grantId === grantId);
      }
    };
  }
}
