// store.js — everything devidp keeps in DEVIDP_DATA_DIR.
//   keys.json      signing keys (EC P-384 JWKs, first = current) and cookie-signing keys
//   accounts.json  the simulated Logto users (one per Hugging Face username)
//   oidc.json      the oidc-provider adapter store (sessions, grants, tokens, interactions)
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
  const tmp = `${file}.${process.pid}.tmp`;
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

  /**
   * The account linked to this Hugging Face username, created on first sign-in
   * (Logto's social sign-up: no Logto username is invented). A non-empty full name or
   * email given later updates the profile, like a connector profile sync.
   */
  upsertHuggingFaceUser({ username, fullName, email }) {
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
        hf: { sub: crypto.randomBytes(12).toString('hex'), username },
      };
      this.accounts[id] = account;
    } else {
      const changes = {};
      if (fullName && fullName !== account.name) changes.name = fullName;
      if (email && email !== account.email) changes.email = email;
      if (Object.keys(changes).length) Object.assign(account, changes, { updated_at: now });
    }
    this.save();
    return account;
  }
}

// ---------------------------------------------------------------- oidc-provider adapter

const GRANTABLE = new Set([
  'AccessToken', 'AuthorizationCode', 'RefreshToken', 'DeviceCode',
  'BackchannelAuthenticationRequest', 'PreAuthorizedCode',
]);

/** All adapter records: { [model]: { [id]: { payload, expiresAt (ms) | null } } }. */
export class OidcStore {
  constructor(dataDir) {
    this.file = path.join(dataDir, 'oidc.json');
    this.models = readJson(this.file, {});
  }

  save() {
    const now = Date.now();
    for (const records of Object.values(this.models)) {
      for (const [id, { expiresAt }] of Object.entries(records)) {
        if (expiresAt !== null && expiresAt <= now) delete records[id];
      }
    }
    writeJsonAtomic(this.file, this.models, { pretty: false }); // rewritten on every change: keep it small
  }

  records(model) {
    this.models[model] ??= {};
    return this.models[model];
  }

  /** Live [id, payload] pairs of one model. */
  *live(model) {
    const now = Date.now();
    for (const [id, { payload, expiresAt }] of Object.entries(this.records(model))) {
      if (expiresAt === null || expiresAt > now) yield [id, payload];
    }
  }

  /** Remove every grant of an account and every token issued under them. */
  revokeAccount(accountId) {
    const grantIds = [...this.live('Grant')].filter(([, p]) => p.accountId === accountId).map(([id]) => id);
    for (const grantId of grantIds) {
      for (const model of GRANTABLE) this.deleteWhere(model, (p) => p.grantId === grantId);
      delete this.records('Grant')[grantId];
    }
    this.save();
    return grantIds.length;
  }

  deleteWhere(model, predicate) {
    const records = this.records(model);
    for (const [id, { payload }] of Object.entries(records)) {
      if (predicate(payload)) delete records[id];
    }
  }

  /** The adapter factory oidc-provider wants: `new Adapter(modelName)`. */
  adapterClass() {
    const store = this;
    return class FileAdapter {
      constructor(model) {
        this.model = model;
      }

      async upsert(id, payload, expiresIn) {
        const expiresAt = typeof expiresIn === 'number' ? Date.now() + expiresIn * 1000 : null;
        store.records(this.model)[id] = { payload: structuredClone(payload), expiresAt };
        store.save();
      }

      async find(id) {
        const record = store.records(this.model)[id];
        if (!record || (record.expiresAt !== null && record.expiresAt <= Date.now())) return undefined;
        return structuredClone(record.payload);
      }

      async findByUid(uid) {
        for (const [, payload] of store.live(this.model)) {
          if (payload.uid === uid) return structuredClone(payload);
        }
        return undefined;
      }

      async findByUserCode(userCode) {
        for (const [, payload] of store.live(this.model)) {
          if (payload.userCode === userCode) return structuredClone(payload);
        }
        return undefined;
      }

      async consume(id) {
        const record = store.records(this.model)[id];
        if (record) {
          record.payload.consumed = epoch();
          store.save();
        }
      }

      async destroy(id) {
        delete store.records(this.model)[id];
        store.save();
      }

      async revokeByGrantId(grantId) {
        store.deleteWhere(this.model, (p) => p.grantId === grantId);
        store.save();
      }
    };
  }
}
