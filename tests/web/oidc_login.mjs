// Signs in to the approvals web page through the identity provider (OIDC authorization code +
// PKCE) in headless Chromium and approves a held call, as a person would: open /approvals, get
// sent to the provider, log in through its dev interaction (any login name), consent, land back
// on the page signed in, open the request, give a reason, click Approve, see `executed`.
//
// usage: node tests/web/oidc_login.mjs <toolgate-url> <approval-id> [login-name]
// Prints one JSON object on stdout (the Rust test asserts on it); exits 1 on failure.
import { chromium } from 'playwright-core';

const [url, id, login = 'jane.approver'] = process.argv.slice(2);
if (!url || !id) {
  console.error('usage: node tests/web/oidc_login.mjs <toolgate-url> <approval-id> [login-name]');
  process.exit(2);
}

const out = { ok: false, step: 'launch' };
const shot = async (name) => {
  if (process.env.SCREENSHOT_DIR) {
    await page.screenshot({ path: `${process.env.SCREENSHOT_DIR}/${name}.png`, fullPage: true });
  }
};
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ],
});
const origin = new URL(url).origin;
let page;
try {
  const context = await browser.newContext();
  // The provider's dev pages import a web font; nothing outside loopback is reachable here.
  await context.route((u) => !['127.0.0.1', 'localhost'].includes(u.hostname), (r) => r.abort());
  page = await context.newPage();
  page.setDefaultTimeout(15000);
  let callback;
  page.on('request', (r) => {
    if (new URL(r.url()).pathname === '/approvals/callback') callback = r.url();
  });

  out.step = 'redirect to the identity provider';
  await page.goto(`${url}/approvals/${id}`);
  const atIdp = new URL(page.url());
  out.idp_origin = atIdp.origin;
  out.left_toolgate = atIdp.origin !== origin;
  const pre = (await context.cookies(`${url}/approvals/callback`)).find((c) => c.name === 'toolgate_oidc');
  out.prelogin_cookie = pre ? { httpOnly: pre.httpOnly, sameSite: pre.sameSite, path: pre.path } : null;
  await shot('idp-login');

  out.step = 'log in at the identity provider';
  await page.fill('input[name=login]', login);
  await page.fill('input[name=password]', 'any-password');
  await Promise.all([page.waitForURL((u) => u.pathname.includes('/interaction/')), page.click('button[type=submit]')]);
  await shot('idp-consent');

  out.step = 'consent';
  await Promise.all([
    page.waitForURL((u) => u.origin === origin && u.pathname === `/approvals/${id}`),
    page.getByRole('button', { name: 'Continue' }).click(),
  ]);
  out.landed_on = new URL(page.url()).pathname;
  out.signed_in_as = (await page.textContent('#who'))?.trim();
  const cookies = await context.cookies(`${url}/approvals`);
  const session = cookies.find((c) => c.name === 'toolgate_session');
  out.session_cookie = session
    ? { httpOnly: session.httpOnly, sameSite: session.sameSite, secure: session.secure, path: session.path }
    : null;
  out.session_seconds_left = session ? Math.round(session.expires - Date.now() / 1000) : null;
  out.prelogin_cookie_after = (await context.cookies(`${url}/approvals/callback`))
    .some((c) => c.name === 'toolgate_oidc');

  out.step = 'approve';
  out.state_before = (await page.textContent('#state'))?.trim();
  await shot('detail-pending');
  await page.fill('#reason', 'approved after signing in with the identity provider');
  await page.getByRole('button', { name: 'Approve' }).click();
  await page.locator('.notice').waitFor();
  out.final_state = (await page.textContent('#state'))?.trim();
  out.notice = (await page.textContent('.notice'))?.trim();
  out.decisions = (await page.innerText('#decisions')).replace(/\s+/g, ' ').trim();
  await shot('detail-executed');

  out.step = 'replayed callback';
  // The sign-in's state was used once: the same callback again is refused.
  out.saw_callback = Boolean(callback);
  if (callback) {
    const replay = await page.request.get(callback, { maxRedirects: 0 });
    out.replayed_callback_status = replay.status();
  }

  out.step = 'done';
  out.ok = true;
} catch (e) {
  out.error = String(e && e.message ? e.message : e);
  if (page) {
    out.url = page.url();
    out.html = (await page.content().catch(() => '')).slice(0, 4000);
  }
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
process.exit(out.ok ? 0 : 1);
