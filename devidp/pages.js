// pages.js — the HTML devidp shows: a Logto-like first screen, a simulated Hugging Face
// authorize page, the auto-submitting sign-out page and plain error pages.
// Self-contained (inline CSS, no external resources); every dynamic value is escaped.

export const NOTE = 'Local development identity provider — not Logto, no real Hugging Face';

export function escapeHtml(value) {
  return String(value ?? '').replace(/[&<>"'`=]/g, (c) => `&#${c.charCodeAt(0)};`);
}

const STYLE = `
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;background:#f4f5f7;color:#1b1c1d;margin:0;padding:48px 16px}
main{max-width:400px;margin:0 auto;background:#fff;border-radius:12px;padding:32px;box-shadow:0 2px 12px rgba(0,0,0,.08)}
h1{font-size:22px;margin:0 0 8px}
p{line-height:1.45}
.note{font-size:13px;color:#7a5b00;background:#fff8e1;border:1px solid #f3d67a;border-radius:8px;padding:8px 10px;margin:0 0 20px}
label{display:block;font-size:14px;font-weight:600;margin:14px 0 6px}
input[type=text],input[type=email]{width:100%;box-sizing:border-box;font-size:15px;padding:9px 10px;border:1px solid #c9ccd1;border-radius:8px}
.btn{display:block;width:100%;box-sizing:border-box;text-align:center;font-size:15px;font-weight:600;padding:10px;border-radius:8px;border:1px solid #c9ccd1;background:#fff;color:#1b1c1d;text-decoration:none;cursor:pointer;margin-top:16px}
.primary{background:#5d34f2;border-color:#5d34f2;color:#fff}
.hf{background:#ffd21e;border-color:#e6b800}
.row{display:flex;gap:12px}.row .btn{flex:1}
.error{color:#b00020;background:#fdecee;border-radius:8px;padding:8px 10px}
.muted{color:#6b6f76;font-size:13px}
`;

function layout(title, body, { status = 200 } = {}) {
  const html = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<p class="note" role="note">${escapeHtml(NOTE)}</p>
${body}
</main>
</body>
</html>
`;
  return { status, html };
}

/** Logto's first screen: "Sign in to <app>" (or "Create your account" for first_screen=register). */
export function firstScreen({ uid, appName, register }) {
  const title = register ? 'Create your account' : `Sign in to ${appName}`;
  return layout(title, `
<h1>${escapeHtml(title)}</h1>
${register ? `<p class="muted">for ${escapeHtml(appName)}</p>` : ''}
<a class="btn hf" id="continue-huggingface" href="/interaction/${escapeHtml(uid)}/huggingface">Continue with Hugging Face (simulated)</a>
`);
}

/** Stand-in for https://huggingface.co/oauth/authorize. */
export function huggingFaceAuthorize({ uid, appName, values = {}, error }) {
  return layout('Authorize with Hugging Face (simulated)', `
<h1>Hugging Face (simulated)</h1>
<p>Authorize <strong>${escapeHtml(appName)}</strong> to read your Hugging Face profile and email.</p>
${error ? `<p class="error" role="alert">${escapeHtml(error)}</p>` : ''}
<form method="post" action="/interaction/${escapeHtml(uid)}/huggingface" autocomplete="off">
<label for="username">Hugging Face username</label>
<input type="text" id="username" name="username" required maxlength="42" pattern="[A-Za-z0-9][A-Za-z0-9._\\-]{0,41}" value="${escapeHtml(values.username)}" autofocus>
<label for="full_name">Full name <span class="muted">(optional)</span></label>
<input type="text" id="full_name" name="full_name" maxlength="100" value="${escapeHtml(values.full_name)}">
<div class="row">
<button class="btn" type="submit" name="action" value="cancel" formnovalidate>Cancel</button>
<button class="btn primary" type="submit" name="action" value="authorize">Authorize</button>
</div>
</form>
`, { status: error ? 400 : 200 });
}

/** RP-initiated logout: submit oidc-provider's confirm form at once, with logout=yes. */
export function logoutPage(form) {
  const withLogout = form.replace('</form>', '<input type="hidden" name="logout" value="yes"/></form>');
  return layout('Signing out', `
<h1>Signing out…</h1>
${withLogout}
<noscript><button class="btn primary" type="submit" form="op.logoutForm">Continue</button></noscript>
<script>document.getElementById('op.logoutForm').submit()</script>
`).html;
}

export function loggedOutPage() {
  return layout('Signed out', '<h1>Signed out</h1><p>You have been signed out.</p>').html;
}

export function errorPage(title, message, status = 400) {
  return layout(title, `<h1>${escapeHtml(title)}</h1>${message ? `<p>${escapeHtml(message)}</p>` : ''}`, { status });
}
