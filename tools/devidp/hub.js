// hub.js — a simulated Hugging Face Hub for the users devidp signs in, under /hub (the site's HF_ENDPOINT):
//   GET /hub/api/whoami-v2                   Bearer <the user's stored hf_oauth_ token> → the user, else 401
//   GET /hub/api/models?author=NAME&limit=N  that user's models   (what huggingface_hub's list_models reads)
//   GET /hub/api/spaces?author=NAME&limit=N  that user's Spaces   (list_spaces)
//   GET /hub/NAME, /hub/OWNER/MODEL, /hub/spaces/OWNER/SPACE: a one-line page (the site links there)
// Every user has the same two models and one Space, named after them. `fault` (a test control) makes the API
// answer 500 (`error500`) or only after `delay_ms` (`slow`).

import { setTimeout as sleep } from 'node:timers/promises';

import { whoamiOrg } from './orgs.js';
import { escapeHtml } from './pages.js';

export const HUB_PREFIX = '/hub';
export const HUB_FAULT_MODES = new Set(['none', 'error500', 'slow']);
const MAX_LIMIT = 1000;

function reposOf(account) {
  const { username } = account.hf;
  const createdAt = new Date(account.created_at).toISOString();
  const common = { likes: 0, trendingScore: 0, private: false, createdAt };
  return {
    models: [
      { ...common, id: `${username}/demo-model`, modelId: `${username}/demo-model`, downloads: 0,
        tags: ['transformers', 'text-classification'], pipeline_tag: 'text-classification', library_name: 'transformers' },
      { ...common, id: `${username}/tiny-llm`, modelId: `${username}/tiny-llm`, downloads: 0,
        tags: ['transformers', 'text-generation'], pipeline_tag: 'text-generation', library_name: 'transformers' },
    ],
    spaces: [{ ...common, id: `${username}/demo-space`, sdk: 'gradio', tags: ['gradio'] }],
  };
}

function whoami(account) {
  const { hf } = account;
  return {
    type: 'user',
    id: hf.sub,
    name: hf.username,
    fullname: account.name,
    email: account.email,
    emailVerified: true,
    canPay: false,
    isPro: false,
    periodEnd: null,
    avatarUrl: null, // nothing a page could fetch from the internet
    orgs: (hf.orgs ?? []).map(whoamiOrg), // the ones the person shared at their last sign-in
    auth: { type: 'oauth', expiresAt: new Date(hf.token.expires_at * 1000).toISOString() },
  };
}

/** [status, content type, body] for a /hub request. */
export async function hubReply({ accounts, fault }, req, url) {
  const path = url.pathname.slice(HUB_PREFIX.length) || '/';
  if (req.method !== 'GET') return [405, 'application/json', { error: 'Method not allowed' }];
  if (path.startsWith('/api/')) {
    if (fault.mode === 'slow') await sleep(fault.delay_ms);
    if (fault.mode === 'error500') return [500, 'application/json', { error: 'Internal Error' }];
    return apiReply(accounts, req, path, url.searchParams);
  }
  const title = path.replace(/^\/+/, '') || 'Hugging Face (simulated)';
  return [200, 'text/html; charset=utf-8', `<!DOCTYPE html><meta charset="utf-8"><title>${escapeHtml(title)}</title>`
    + `<p>Simulated Hugging Face Hub (devidp): ${escapeHtml(title)}</p>`];
}

function apiReply(accounts, req, path, query) {
  if (path === '/api/whoami-v2') {
    const bearer = (req.headers.authorization ?? '').match(/^Bearer (\S+)$/i);
    const account = bearer ? accounts.byHfToken(bearer[1]) : undefined;
    if (!account) return [401, 'application/json', { error: 'Invalid credentials in Authorization header' }];
    return [200, 'application/json', whoami(account)];
  }
  if (path === '/api/models' || path === '/api/spaces') {
    const author = (query.get('author') ?? '').toLowerCase();
    const limit = Math.min(Number.parseInt(query.get('limit') ?? '', 10) || MAX_LIMIT, MAX_LIMIT);
    const account = accounts.all().find(({ hf }) => hf.username.toLowerCase() === author);
    const repos = account ? reposOf(account)[path.slice('/api/'.length)] : [];
    return [200, 'application/json', repos.slice(0, limit)];
  }
  return [404, 'application/json', { error: 'Sorry, we can\'t find the page you are looking for.' }];
}
