// account-api.js — the one Logto Account API route the site uses: a user's stored Hugging Face token.
//   GET /api/my-account/identities/:target/access-token
//   Authorization: Bearer <the user's opaque access token, as the site got it from /oidc/token>
// Checks in Logto's order (authentication, Account Center, the `identities` scope, the stored token) and
// answers with Logto's bodies, as recorded from Logto OSS 1.42 (tests/fixtures/logto/account-api-*.json).

export const ACCOUNT_API_MODES = new Set(['none', 'not-enabled', 'forbidden']);

const REPLIES = {
  headerMissing: [401, { code: 'auth.authorization_header_missing', message: 'Authorization header is missing.' }],
  unauthorized: [401, { code: 'auth.unauthorized', message: 'Unauthorized. Please check credentials and its scope.' }],
  forbidden: [403, { code: 'auth.forbidden', message: 'Forbidden. Please check your user roles and permissions.' }],
  notEnabled: [400, { code: 'account_center.not_enabled', message: 'Account center is not enabled.' }],
  notFound: [404, { code: 'secrets.third_party_token_set.token_not_found', message: 'Token record not found.' }],
  // Code and status from Logto's source (no refresh token to renew with); the message was not recorded.
  expired: [401, { code: 'secrets.third_party_token_set.access_token_expired', message: 'The access token has expired.' }],
  noRoute: [404, { code: 'guard.invalid_path', message: 'This devidp serves only the access-token route of the Account API.' }],
};

const ROUTE = /^\/api\/my-account\/identities\/([A-Za-z0-9_-]+)\/access-token$/;

/**
 * [status, body] for an Account API request. `mode` (a test control) forces a tenant-level failure:
 * 'not-enabled' (Account Center off) or 'forbidden' (as if the token lacked the `identities` scope).
 * Without `tokenStorage` (the dedicated connector) no token is found.
 */
export async function accountApiReply({ provider, accounts, mode, tokenStorage = true }, req, pathname) {
  const route = pathname.match(ROUTE);
  if (!route || req.method !== 'GET') return REPLIES.noRoute;
  const header = req.headers.authorization ?? '';
  if (!header) return REPLIES.headerMissing;
  const bearer = header.match(/^Bearer ([\x21-\x7e]{1,4096})$/i);
  let accessToken;
  try {
    accessToken = bearer ? await provider.AccessToken.find(bearer[1]) : undefined; // undefined when expired
  } catch {
    accessToken = undefined;
  }
  if (!accessToken?.accountId) return REPLIES.unauthorized;
  if (mode === 'not-enabled') return REPLIES.notEnabled;
  const scopes = String(accessToken.scope ?? '').split(' ');
  if (mode === 'forbidden' || !scopes.includes('identities')) return REPLIES.forbidden;

  // The dedicated Hugging Face connector cannot store tokens: nothing is ever stored.
  const stored = route[1] === 'huggingface' && tokenStorage ? accounts.get(accessToken.accountId)?.hf.token : undefined;
  if (!stored) return REPLIES.notFound;
  const expiresIn = stored.expires_at - Math.floor(Date.now() / 1000);
  if (expiresIn <= 0) return REPLIES.expired;
  return [200, { access_token: stored.access_token, scope: stored.scope, token_type: 'bearer', expires_in: expiresIn }];
}
