// provider.js — the oidc-provider instance configured to look like Logto to the `logto` SDK:
// issuer {endpoint}/oidc, ES384 ID tokens, PKCE, refresh tokens on prompt=consent,
// Logto's claim shapes (identities/custom_data only at /oidc/me), Logto's extra parameters.

import Provider, { interactionPolicy } from 'oidc-provider';

import { userinfoOrg } from './orgs.js';
import * as pages from './pages.js';

export const EXTRA_PARAMS = ['direct_sign_in', 'first_screen', 'interaction_mode', 'organization_id'];

const CLAIMS = {
  openid: ['sub'],
  profile: ['name', 'preferred_username', 'picture', 'updated_at', 'username', 'created_at'],
  email: ['email', 'email_verified'],
  phone: ['phone_number', 'phone_number_verified'],
  identities: ['identities', 'sso_identities'],
  custom_data: ['custom_data'],
  roles: ['roles'],
};
const SCOPES = ['openid', 'offline_access', ...Object.keys(CLAIMS).filter((s) => s !== 'openid')];
const USERINFO_ONLY = ['identities', 'sso_identities', 'custom_data'];

/** Logto's user claims for a Hugging Face-only user, plus the connector's identity details: with the
 * dedicated connector, rawData is Hugging Face's userinfo as of the first sign-in (its `orgs` only if the scope
 * had read-memberships then); with token storage, Hugging Face's ID token, which has no `orgs`. */
export function accountClaims(account, { hfConnector } = {}) {
  const { hf } = account;
  const firstOrgs = hfConnector === 'dedicated' && Array.isArray(hf.firstOrgs) ? { orgs: hf.firstOrgs.map(userinfoOrg) } : {};
  return {
    sub: account.id,
    name: account.name,
    preferred_username: null, // social-only sign-up: Logto has no username for this user
    picture: account.picture,
    updated_at: account.updated_at,
    username: null,
    created_at: account.created_at,
    email: account.email,
    email_verified: true,
    phone_number: null,
    phone_number_verified: false,
    identities: {
      huggingface: {
        userId: hf.sub,
        details: {
          id: hf.sub,
          name: account.name,
          avatar: account.picture,
          email: account.email,
          rawData: {
            sub: hf.sub,
            name: account.name,
            preferred_username: hf.username,
            picture: account.picture,
            email: account.email,
            email_verified: true,
            profile: `https://huggingface.co/${hf.username}`,
            website: '',
            isPro: false,
            canPay: false,
            ...firstOrgs,
          },
        },
      },
    },
    sso_identities: [],
    custom_data: {},
    roles: [],
  };
}

/** Back-channel logouts may go to this machine (the site runs next to the provider); anything else keeps
 * oidc-provider's SSRF guard, which drops connections to loopback and private addresses (as Logto does). */
function isLoopback(url) {
  const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function renderHtml(ctx, html, status) {
  ctx.type = 'html';
  ctx.set('cache-control', 'no-store');
  if (status) ctx.status = status;
  ctx.body = html;
}

/**
 * Build a Provider. Called at start-up and again after a key rotation; the adapter store,
 * accounts and cookie keys are shared between instances so sessions and tokens survive.
 */
export async function createProvider(config, { keys, accounts, oidcStore }) {
  // The SDK always sends prompt=consent; without this check every repeat sign-in would stop
  // at an interaction. Login + consent are finished together in server.js instead.
  // A page's language: the request's ui_locales (authorization or end-session), else the browser's.
  const pageView = (ctx) => pages.view({
    lang: pages.pickLanguage(ctx.oidc?.params?.ui_locales, ctx.get('accept-language')),
    site: { name: config.appName, url: config.siteUrl },
  });
  const policy = interactionPolicy.base();
  policy.get('consent').checks.remove('consent_prompt');

  const provider = new Provider(config.issuer, {
    adapter: oidcStore.adapterClass(),
    clients: [{
      client_id: config.clientId,
      client_secret: config.clientSecret,
      client_name: config.appName,
      application_type: 'web',
      redirect_uris: config.redirectUris,
      post_logout_redirect_uris: config.postLogoutRedirectUris,
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
      id_token_signed_response_alg: 'ES384',
      // Like Logto with backchannelLogoutUri + backchannelLogoutSessionRequired: ID tokens carry `sid`.
      ...(config.backchannelLogoutUri ? {
        backchannel_logout_uri: config.backchannelLogoutUri,
        backchannel_logout_session_required: true,
      } : {}),
    }],
    jwks: { keys: keys.signing },
    cookies: { keys: keys.cookies }, // default names (_session, _interaction, ...) kept on purpose
    enabledJWA: { idTokenSigningAlgValues: ['ES384'] },
    scopes: SCOPES,
    claims: CLAIMS,
    conformIdTokenClaims: false,
    extraParams: EXTRA_PARAMS,
    pkce: { required: () => true },
    rotateRefreshToken: true,
    clientBasedCORS: () => false,
    fetch: (url, options) => {
      if (isLoopback(url)) delete options.dispatcher; // what Logto's OIDC_PROVIDER_SSRF_PROTECTION_DISABLED does
      return globalThis.fetch(url, options);
    },
    features: {
      backchannelLogout: { enabled: true },
      devInteractions: { enabled: false },
      dPoP: { enabled: false },
      revocation: { enabled: true, allowedPolicy: async (ctx, client, token) => token.clientId === client.clientId },
      rpInitiatedLogout: {
        enabled: true,
        logoutSource: async (ctx, form) => renderHtml(ctx, pages.logoutPage(form, pageView(ctx))),
        postLogoutSuccessSource: async (ctx) => renderHtml(ctx, pages.loggedOutPage(pageView(ctx))),
      },
    },
    interactions: {
      policy,
      url: async (ctx, interaction) => `${config.endpoint}/interaction/${interaction.uid}`,
    },
    ttl: {
      AccessToken: config.accessTokenTtl,
      AuthorizationCode: 60,
      IdToken: 3600,
      RefreshToken: 14 * 24 * 3600,
      Session: 14 * 24 * 3600,
      Grant: 14 * 24 * 3600,
      Interaction: 600,
    },
    async findAccount(ctx, sub) {
      const account = accounts.get(sub);
      if (!account) return undefined;
      return {
        accountId: sub,
        async claims(use) {
          const claims = accountClaims(account, config);
          if (use === 'id_token') for (const name of USERINFO_ONLY) delete claims[name];
          return claims;
        },
      };
    },
    async renderError(ctx, out) {
      const message = out.error_description || out.error || { key: 'somethingWrong' };
      renderHtml(ctx, pages.errorPage(pageView(ctx), message).html);
    },
  });
  provider.proxy = false;

  // Static client metadata is only validated on first use; fail at start-up instead.
  await provider.Client.find(config.clientId);
  return provider;
}
