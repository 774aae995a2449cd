// Approves a held call through the approvals web page in headless Chromium, as a person would:
// sign in with a token, open the list, open the request, read the preview, give a reason,
// click Approve, see the result. Also checks that a POST without the CSRF token is refused.
//
// usage: node tests/web/approve.mjs <toolgate-url> <token> <approval-id>
// Prints one JSON object on stdout (the Rust test asserts on it); exits 1 on failure.
import { chromium } from 'playwright-core';

const [url, token, id] = process.argv.slice(2);
if (!url || !token || !id) {
  console.error('usage: node tests/web/approve.mjs <toolgate-url> <token> <approval-id>');
  process.exit(2);
}

const out = { ok: false, step: 'launch' };
// For people reviewing the page: SCREENSHOT_DIR=/tmp/shots keeps full-page screenshots.
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
let page;
try {
  const context = await browser.newContext();
  page = await context.newPage();
  page.setDefaultTimeout(15000);

  out.step = 'redirect to login';
  await page.goto(`${url}/approvals`);
  out.login_redirect = new URL(page.url()).pathname;

  out.step = 'sign in';
  await page.fill('#token', token);
  await Promise.all([page.waitForURL(`${url}/approvals`), page.click('button[type=submit]')]);
  out.signed_in_as = (await page.textContent('#who'))?.trim();
  const cookies = await context.cookies(`${url}/approvals`);
  const session = cookies.find((c) => c.name === 'toolgate_session');
  out.session_cookie = session ? { httpOnly: session.httpOnly, sameSite: session.sameSite } : null;

  out.step = 'open the request from the list';
  const link = page.locator(`a[href="/approvals/${id}"]`);
  out.listed = await link.isVisible();
  await shot('list');
  await Promise.all([page.waitForURL(`${url}/approvals/${id}`), link.click()]);
  out.state_before = (await page.textContent('#state'))?.trim();
  out.preview_summary = (await page.textContent('#preview .summary'))?.trim();
  out.preview_visible = await page.isVisible('#preview .summary');
  const diff = page.locator('#diff');
  await shot('detail-pending');
  out.diff_present = (await diff.count()) > 0;
  if (out.diff_present) {
    out.diff_visible = await diff.isVisible();
    out.diff_added_lines = await page.locator('#diff .add').count();
    out.diff_removed_lines = await page.locator('#diff .del').count();
    out.diff_text = await diff.innerText();
  }

  out.step = 'csrf';
  const noToken = await page.request.post(`${url}/approvals/${id}/approve`, {
    form: { reason: 'forged' }, maxRedirects: 0,
  });
  out.csrf_missing_status = noToken.status();
  const wrongToken = await page.request.post(`${url}/approvals/${id}/approve`, {
    form: { reason: 'forged', csrf: 'not-the-token' }, maxRedirects: 0,
  });
  out.csrf_wrong_status = wrongToken.status();
  await page.reload();
  out.state_after_refused = (await page.textContent('#state'))?.trim();

  out.step = 'approve';
  await page.fill('#reason', 'approved from the browser');
  await page.getByRole('button', { name: 'Approve' }).click();
  // The POST redirects back to this page, which then carries a one-shot notice.
  await page.locator('.notice').waitFor();
  out.url_after = new URL(page.url()).pathname;
  out.final_state = (await page.textContent('#state'))?.trim();
  out.notice = (await page.textContent('.notice'))?.trim();
  out.result_visible = await page.isVisible('#result');
  out.decisions = (await page.innerText('#decisions')).replace(/\s+/g, ' ').trim();
  out.audit = (await page.innerText('#audit')).replace(/\s+/g, ' ').trim();
  await shot('detail-executed');

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
