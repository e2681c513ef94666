// Browser test of the Node-RED editor through the hub (issue 15):
// playwright-core driving Debian's Chromium against a hub started by
// hub/consoletest TestEditorInBrowser, which checks the hub's records
// afterwards. An OPERATOR opens the editor from the console's instance
// page, renames a node and deploys; a VIEWER's editor is read-only; a
// browser without a hub session gets no editor. Exits non-zero on the
// first failed check; screenshots go to SCREENSHOT_DIR. When TIMING=1 it
// instead prints the editor's load time through the hub and directly
// (JSON on the last line) for the benchmark.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const HUB = env('HUB_URL');
const NAME = env('INSTANCE');
const SHOTS = env('SCREENSHOT_DIR', 'artifacts/screenshots');
mkdirSync(SHOTS, { recursive: true });
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
function check(ok, what) {
  if (!ok) throw new Error('check failed: ' + what);
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync', '--disable-dev-shm-usage'],
});
const pageErrors = [];

async function newContext(label) {
  const ctx = await browser.newContext({ viewport: { width: 1400, height: 900 }, baseURL: HUB });
  ctx.on('page', (p) => p.on('pageerror', (e) => pageErrors.push(`${label}: page error: ${e.message}`)));
  return ctx;
}

async function login(page, user, password, role) {
  await page.goto('/');
  await page.waitForURL(/\/login/);
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByTestId('role').filter({ hasText: role }).waitFor();
}

// openEditor logs in, opens the instance's page and clicks "Open editor";
// it returns the editor's tab once the editor has loaded its flows.
async function openEditor(label, user, password, role) {
  const ctx = await newContext(label);
  const page = await ctx.newPage();
  page.setDefaultTimeout(30_000);
  await login(page, user, password, role);
  await page.goto(`/instances/${NAME}`);
  const button = page.getByTestId('open-editor');
  await button.waitFor();
  const [editor] = await Promise.all([ctx.waitForEvent('page'), button.click()]);
  editor.setDefaultTimeout(60_000);
  await editor.waitForURL(new RegExp(`/editor/${NAME}/$`));
  await editor.locator('#red-ui-header-button-deploy').waitFor();
  await editor.waitForFunction(() => window.RED && RED.nodes && RED.nodes.node('pf-set'));
  check((await editor.evaluate(() => window.opener)) === null, `${label}: the editor tab has no handle on the console`);
  log(label, 'editor loaded through the hub');
  return { ctx, page, editor };
}

if (env('TIMING', '') === '1') {
  // Editor load time: through the hub (console session, "Open editor")
  // against the runtime's own admin root (a token in the editor header,
  // as the hub would send it), median of three each.
  const direct = env('DIRECT_URL');
  const token = env('DIRECT_TOKEN');
  const load = async (ctx, url) => {
    const page = await ctx.newPage();
    const start = Date.now();
    await page.goto(url);
    await page.waitForFunction(() => window.RED && RED.nodes && RED.nodes.node('pf-set'), null, { timeout: 60_000 });
    const ms = Date.now() - start;
    await page.close();
    return ms;
  };
  const { ctx } = await openEditor('timing', env('OPERATOR_USER'), env('OPERATOR_PASSWORD'), 'OPERATOR');
  const directCtx = await browser.newContext({ extraHTTPHeaders: { 'x-redforge-editor': token } });
  const hub = [], dir = [];
  for (let i = 0; i < 3; i++) {
    hub.push(await load(ctx, `${HUB}/editor/${NAME}/`));
    dir.push(await load(directCtx, direct));
  }
  await browser.close();
  console.log(JSON.stringify({ hub, direct: dir }));
  process.exit(0);
}

try {
  // No hub session: no editor, only a page that says where to open it.
  {
    const ctx = await newContext('anonymous');
    const page = await ctx.newPage();
    const res = await page.goto(`/editor/${NAME}/`);
    check(res.status() === 401, `no session: /editor/${NAME}/ answers ${res.status()}, want 401`);
    check(await page.getByText('Open editor').count() > 0, 'no session: the page says to use Open editor from the console');
    check((await page.locator('#red-ui-header-button-deploy').count()) === 0, 'no session: no editor');
    await page.screenshot({ path: join(SHOTS, 'editor-01-no-session.png') });
    await ctx.close();
    log('no session: no editor');
  }

  // The OPERATOR renames the change node in the editor's edit tray and
  // deploys.
  {
    const { ctx, page, editor } = await openEditor('operator', env('OPERATOR_USER'), env('OPERATOR_PASSWORD'), 'OPERATOR');
    check(await editor.evaluate(() => RED.settings.user && RED.settings.user.username) === env('OPERATOR_USER'), 'the editor names the hub user');
    // A snapshot from the instance page before the change.
    await page.getByTestId('nodes-panel').getByText("Only Node-RED's own nodes.").waitFor();
    await page.getByTestId('snapshot-name').fill('before the editor');
    await page.getByTestId('snapshot-create').click();
    await page.getByTestId('snapshots').getByText('before the editor').waitFor();
    await editor.evaluate(() => RED.view.reveal('pf-set'));
    await editor.locator('g.red-ui-flow-node-group#pf-set').dblclick();
    const name = editor.locator('#node-input-name');
    await name.waitFor();
    await name.fill('renamed in the editor');
    await editor.screenshot({ path: join(SHOTS, 'editor-02-edit-node.png') });
    await editor.locator('#node-dialog-ok').click();
    await editor.waitForFunction(() => !document.querySelector('#red-ui-header-button-deploy').classList.contains('disabled'));
    await editor.locator('#red-ui-header-button-deploy').click();
    await editor.locator('.red-ui-notification').filter({ hasText: /Successfully deployed/ }).waitFor();
    await editor.screenshot({ path: join(SHOTS, 'editor-03-deployed.png') });
    log('operator: deployed from the editor');
    // The snapshot compared with what runs now names exactly the renamed node.
    await page.bringToFront();
    const diff = page.getByTestId('snapshot-diff');
    for (let i = 0; i < 20; i++) {
      await page.getByTestId('snapshot-compare').first().click();
      await diff.waitFor();
      if (/renamed in the editor · change \(name[,)]/.test(await diff.innerText())) break;
      await page.waitForTimeout(500); // the editor deploy reaches the hub a moment after Node-RED answered
    }
    const text = await diff.innerText();
    check(/0 nodes added, 1 changed, 0 removed/.test(text) && /renamed in the editor · change \(name[,)]/.test(text), `snapshot diff shows the renamed node only: ${text}`);
    await page.screenshot({ path: join(SHOTS, 'editor-05-snapshot-diff.png'), fullPage: true });
    log('operator: the snapshot diff names the renamed node');
    await ctx.close();
  }

  // The VIEWER's editor is read-only: the deploy button is locked, and a
  // deploy the page attempts anyway is refused.
  {
    const { ctx, editor } = await openEditor('viewer', env('VIEWER_USER'), env('VIEWER_PASSWORD'), 'VIEWER');
    await editor.locator('.red-ui-deploy-button-group.readOnly').waitFor();
    check(await editor.locator('#red-ui-header-button-deploy').evaluate((b) => b.classList.contains('disabled')), 'viewer: the deploy button is disabled');
    const status = await editor.evaluate(async () => {
      const flows = RED.nodes.createCompleteNodeSet();
      const r = await fetch('flows', { method: 'POST', headers: { 'Content-Type': 'application/json', 'Node-RED-API-Version': 'v2' }, body: JSON.stringify({ flows, rev: RED.nodes.version() }) });
      return r.status;
    });
    check(status === 401, `viewer: a deploy from the page answers ${status}, want 401`);
    await editor.screenshot({ path: join(SHOTS, 'editor-04-viewer-read-only.png') });
    log('viewer: read-only');
    await ctx.close();
  }
  check(pageErrors.length === 0, 'no page errors: ' + pageErrors.join('; '));
} catch (e) {
  console.error(e.message);
  await browser.close();
  process.exit(1);
}
await browser.close();
log('editor browser tests passed');
