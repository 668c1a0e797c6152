// pages.js — the HTML devidp shows: a Logto-like first screen, a simulated Hugging Face
// authorize page, the auto-submitting sign-out page and plain error pages.
// Self-contained (inline CSS in the site's colours, no external resources); every dynamic value is escaped.
// In English, Japanese or Simplified Chinese: the authorization request's `ui_locales` (as Logto honours
// it: the first language it has), else the browser's Accept-Language, else English. Every page names the
// site (`appName`) and links back to it.

import { HF_ROLES } from './orgs.js';

export const NOTE = 'Local development identity provider — not Logto, no real Hugging Face';
export const LANGUAGES = ['en', 'ja', 'zh-CN'];

const TEXT = {
  en: {
    note: NOTE,
    signInTo: 'Sign in to {app}',
    createAccount: 'Create your account',
    forApp: 'for {app}',
    continueHf: 'Continue with Hugging Face (simulated)',
    authorizeTitle: 'Authorize with Hugging Face (simulated)',
    hfHeading: 'Hugging Face (simulated)',
    authorizeText: 'Authorize {app} to read your Hugging Face profile and email.',
    username: 'Hugging Face username',
    fullName: 'Full name',
    optional: '(optional)',
    cancel: 'Cancel',
    authorize: 'Authorize',
    signingOutTitle: 'Signing out',
    signingOut: 'Signing out…',
    continue: 'Continue',
    signedOut: 'Signed out',
    signedOutText: 'You have been signed out.',
    signInError: 'Sign-in error',
    expired: 'This sign-in attempt has expired or was started in another browser. Go back to {app} and sign in again.',
    internal: 'Internal error (see the devidp log).',
    somethingWrong: 'Something went wrong.',
    back: 'Back to {app}',
    badUsername: 'Enter a valid Hugging Face username: letters, digits, ".", "_" or "-", starting with a letter or digit, at most 42 characters.',
    badEmail: 'Enter a valid email address.',
    orgsLegend: 'Organizations to share with {app}',
    roleIn: 'Your role in {org}',
  },
  ja: {
    note: 'ローカル開発用の ID プロバイダーです — Logto ではなく、本物の Hugging Face にも接続しません',
    signInTo: '{app} にサインイン',
    createAccount: 'アカウントを作成',
    forApp: '{app} 用',
    continueHf: 'Hugging Face で続ける（シミュレーション）',
    authorizeTitle: 'Hugging Face で許可（シミュレーション）',
    hfHeading: 'Hugging Face（シミュレーション）',
    authorizeText: '{app} に、Hugging Face のプロフィールとメールアドレスの読み取りを許可します。',
    username: 'Hugging Face のユーザー名',
    fullName: '氏名',
    optional: '（任意）',
    cancel: 'キャンセル',
    authorize: '許可する',
    signingOutTitle: 'サインアウト中',
    signingOut: 'サインアウトしています…',
    continue: '続ける',
    signedOut: 'サインアウトしました',
    signedOutText: 'サインアウトしました。',
    signInError: 'サインインエラー',
    expired: 'このサインインは期限切れか、別のブラウザーで開始されたものです。{app} に戻って、もう一度サインインしてください。',
    internal: '内部エラーです（devidp のログを確認してください）。',
    somethingWrong: '問題が発生しました。',
    back: '{app} に戻る',
    badUsername: '有効な Hugging Face のユーザー名を入力してください。英字、数字、「.」「_」「-」が使え、英字か数字で始まる 42 文字以内です。',
    badEmail: '有効なメールアドレスを入力してください。',
    orgsLegend: '{app} と共有する組織',
    roleIn: '{org} でのあなたのロール',
  },
  'zh-CN': {
    note: '本地开发用的身份提供方 — 不是 Logto，也不连接真正的 Hugging Face',
    signInTo: '登录 {app}',
    createAccount: '创建账号',
    forApp: '用于 {app}',
    continueHf: '通过 Hugging Face 继续（模拟）',
    authorizeTitle: '通过 Hugging Face 授权（模拟）',
    hfHeading: 'Hugging Face（模拟）',
    authorizeText: '授权 {app} 读取你的 Hugging Face 个人资料和邮箱。',
    username: 'Hugging Face 用户名',
    fullName: '姓名',
    optional: '（可选）',
    cancel: '取消',
    authorize: '授权',
    signingOutTitle: '正在退出登录',
    signingOut: '正在退出登录…',
    continue: '继续',
    signedOut: '已退出登录',
    signedOutText: '你已退出登录。',
    signInError: '登录出错',
    expired: '此次登录已过期，或是在另一个浏览器中发起的。请返回 {app} 重新登录。',
    internal: '内部错误（请查看 devidp 日志）。',
    somethingWrong: '出了点问题。',
    back: '返回 {app}',
    badUsername: '请输入有效的 Hugging Face 用户名：可使用字母、数字、“.”、“_” 或 “-”，以字母或数字开头，最多 42 个字符。',
    badEmail: '请输入有效的邮箱地址。',
    orgsLegend: '与 {app} 共享的组织',
    roleIn: '你在 {org} 中的角色',
  },
};

export function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"'`=]/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The first of `tags` (BCP 47, best first) that devidp speaks, matching the primary subtag too (`ja-JP` → `ja`). */
function firstKnown(tags) {
  for (const tag of tags) {
    const lower = tag.toLowerCase();
    const found = LANGUAGES.find((known) => known.toLowerCase() === lower)
      ?? LANGUAGES.find((known) => known.split('-')[0] === lower.split('-')[0]);
    if (found) return found;
  }
  return undefined;
}

/** The page language: `ui_locales` (space-separated, Logto takes the first it has), else Accept-Language, else English. */
export function pickLanguage(uiLocales, acceptLanguage) {
  const asked = String(uiLocales ?? '').split(/\s+/).filter(Boolean);
  const accepted = String(acceptLanguage ?? '').split(',')
    .map((part, index) => {
      const [tag, ...params] = part.trim().split(';');
      const q = params.map((p) => p.trim().match(/^q=([0-9.]+)$/)).find(Boolean);
      return { tag: tag.trim(), q: q ? Number(q[1]) : 1, index };
    })
    .filter(({ tag, q }) => tag && tag !== '*' && q > 0)
    .sort((a, b) => b.q - a.q || a.index - b.index)
    .map(({ tag }) => tag);
  return firstKnown(asked) ?? firstKnown(accepted) ?? 'en';
}

/** What every page needs: its language and the site it serves (`{ name, url }`). */
export function view({ lang = 'en', site }) {
  return { lang, site, t: TEXT[lang] ?? TEXT.en };
}

/** `text` with each `{name}` replaced by the escaped value (or by `wrap(escaped)`); the text itself is escaped. */
function fill(text, values, wrap = (escaped) => escaped) {
  return escapeHtml(text).replace(/\{(\w+)\}/g, (whole, name) => (name in values ? wrap(escapeHtml(values[name])) : whole));
}

const STYLE = `
:root{--bg:#f5f6f8;--surface:#fff;--text:#1f2937;--muted:#4b5563;--border:#d5d9e0;--soft:#eef0f3;--dark:#111827;--dark-hover:#2b3442;--link:#1d4ed8;--note-bg:#fff7d6;--note-text:#6b4e00;--error-bg:#fdecec;--error-text:#9b1c1c;font-family:system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans",Arial,sans-serif;line-height:1.5;color:var(--text);background:var(--bg)}
:root:lang(ja){font-family:system-ui,-apple-system,"Hiragino Sans","Yu Gothic UI",Meiryo,"Noto Sans CJK JP",sans-serif}
:root:lang(zh-CN){font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif}
*,*::before,*::after{box-sizing:border-box}
body{margin:0;padding:1.5rem .75rem}
main{max-width:26rem;margin:0 auto;background:var(--surface);border:1px solid var(--border);border-radius:.75rem;padding:clamp(1.25rem,5vw,2rem);overflow-wrap:anywhere}
h1{font-size:1.35rem;line-height:1.3;margin:0 0 .5rem}
p{margin:0 0 1rem}
a{color:var(--link)}
:focus-visible{outline:3px solid var(--link);outline-offset:2px}
.note{font-size:.85rem;color:var(--note-text);background:var(--note-bg);border-radius:.5rem;padding:.5rem .75rem;margin-bottom:1.25rem}
label{display:block;font-weight:600;margin:1rem 0 .35rem}
input[type=text],input[type=email]{width:100%;font:inherit;padding:.6rem .7rem;border:1px solid #8b93a1;border-radius:.5rem;background:var(--surface);color:inherit}
.btn{display:flex;align-items:center;justify-content:center;gap:.6rem;width:100%;text-align:center;min-height:2.75rem;margin-top:1rem;padding:.5rem 1rem;border:1px solid var(--border);border-radius:.6rem;background:var(--surface);color:var(--text);font:inherit;font-weight:600;text-decoration:none;cursor:pointer}
.btn:hover{background:var(--soft)}
.primary{background:var(--dark);border-color:var(--dark);color:#fff}
.primary:hover{background:var(--dark-hover)}
.mark{font-size:1.25rem;line-height:1}
.row{display:flex;gap:.75rem}.row .btn{flex:1}
.error{color:var(--error-text);background:var(--error-bg);border-radius:.5rem;padding:.5rem .75rem}
.muted{color:var(--muted);font-weight:400}
fieldset{border:1px solid var(--border);border-radius:.5rem;margin:1rem 0 0;padding:.25rem .75rem .75rem}legend{font-weight:600;padding:0 .25rem}
.org{display:flex;align-items:center;gap:.5rem;margin-top:.5rem}.org label{flex:1;margin:0}.org select{font:inherit;padding:.3rem;border:1px solid #8b93a1;border-radius:.4rem;background:var(--surface);color:inherit}
footer{max-width:26rem;margin:1rem auto 0;text-align:center}
`;

function layout({ lang, site, t }, title, body, { status = 200 } = {}) {
  const html = `<!DOCTYPE html>
<html lang="${escapeHtml(lang)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<p class="note" role="note">${escapeHtml(t.note)}</p>
${body}
</main>
<footer><a id="back-to-site" href="${escapeHtml(site.url)}">← ${fill(t.back, { app: site.name })}</a></footer>
</body>
</html>
`;
  return { status, html };
}

/** Logto's first screen: "Sign in to <app>" (or "Create your account" for first_screen=register). */
export function firstScreen({ uid, register, view: page }) {
  const { t, site } = page;
  const title = register ? t.createAccount : t.signInTo.replace('{app}', site.name);
  return layout(page, title, `
<h1>${escapeHtml(title)}</h1>
${register ? `<p class="muted">${fill(t.forApp, { app: site.name })}</p>` : ''}
<a class="btn" id="continue-huggingface" href="/interaction/${escapeHtml(uid)}/huggingface"><span class="mark" aria-hidden="true">🤗</span>${escapeHtml(t.continueHf)}</a>
`);
}

/** Stand-in for https://huggingface.co/oauth/authorize. */
export function huggingFaceAuthorize({ uid, values = {}, error, orgs = null, view: page }) {
  const { t, site } = page;
  return layout(page, t.authorizeTitle, `
<h1><span class="mark" aria-hidden="true">🤗</span> ${escapeHtml(t.hfHeading)}</h1>
<p>${fill(t.authorizeText, { app: site.name }, (name) => `<strong>${name}</strong>`)}</p>
${error ? `<p class="error" role="alert">${escapeHtml(t[error])}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/huggingface" autocomplete="off">
<label for="username">${escapeHtml(t.username)}</label>
<input type="text" id="username" name="username" required maxlength="42" pattern="[A-Za-z0-9][A-Za-z0-9._\\-]{0,41}" value="${escapeHtml(values.username)}" autofocus>
<label for="full_name">${escapeHtml(t.fullName)} <span class="muted">${escapeHtml(t.optional)}</span></label>
<input type="text" id="full_name" name="full_name" maxlength="100" value="${escapeHtml(values.full_name)}">
${orgs ? orgsFieldset(orgs, values.orgs ?? [], page) : ''}
<div class="row">
<button class="btn" type="submit" name="action" value="cancel" formnovalidate>${escapeHtml(t.cancel)}</button>
<button class="btn primary" type="submit" name="action" value="authorize">${escapeHtml(t.authorize)}</button>
</div>
</form>
`, { status: error ? 400 : 200 });
}

/** Hugging Face's consent page lists the person's organisations (scope read-memberships): here, presets,
 * each ticked to share it, with the role the person has in it. */
function orgsFieldset(orgs, shared, { t, site }) {
  const rows = orgs.map(({ name, fullname }) => {
    const ticked = shared.find((org) => org.name === name);
    const options = HF_ROLES.map((role) => `<option value="${role}"${ticked?.role === role ? ' selected' : ''}>${role}</option>`);
    return `
<div class="org"><input type="checkbox" id="org-${escapeHtml(name)}" name="org" value="${escapeHtml(name)}"${ticked ? ' checked' : ''}>
<label for="org-${escapeHtml(name)}">${escapeHtml(fullname)} <span class="muted">${escapeHtml(name)}</span></label>
<select name="role_${escapeHtml(name)}" aria-label="${fill(t.roleIn, { org: fullname })}">${options.join('')}</select></div>`;
  }).join('');
  return `<fieldset><legend>${fill(t.orgsLegend, { app: site.name })}</legend>${rows}
</fieldset>`;
}

/** RP-initiated logout: submit oidc-provider's confirm form at once, with logout=yes. */
export function logoutPage(form, page) {
  const { t } = page;
  const withLogout = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
  return layout(page, t.signingOutTitle, `
<h1>${escapeHtml(t.signingOut)}</h1>
${withLogout}
<noscript><button class="btn primary" type="submit" form="op.logoutForm">${escapeHtml(t.continue)}</button></noscript>
<script>document.getElementById('op.logoutForm').submit()</script>
`).html;
}

export function loggedOutPage(page) {
  const { t } = page;
  return layout(page, t.signedOut, `<h1>${escapeHtml(t.signedOut)}</h1><p>${escapeHtml(t.signedOutText)}</p>`).html;
}

/** An error page: `message` is `{ key }` (one of the dictionary's, e.g. "expired", naming the site) or a text as it is. */
export function errorPage(page, message, status = 400) {
  const { t, site } = page;
  const text = typeof message === 'object' ? fill(t[message.key], { app: site.name }) : escapeHtml(message);
  return layout(page, t.signInError, `<h1>${escapeHtml(t.signInError)}</h1>${text ? `<p>${text}</p>` : ''}
<a class="btn primary" href="${escapeHtml(site.url)}">${fill(t.back, { app: site.name })}</a>`, { status });
}
