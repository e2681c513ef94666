// Browser tests of the console: playwright-core driving Debian's Chromium
// against a hub started by hub/consoletest (which passes its address and
// the users' credentials in the environment). Exits non-zero on the first
// failed check, printing what failed; screenshots go to SCREENSHOT_DIR.
import { chromium } from 'playwright-core';
import { mkdirSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const HUB = env('HUB_URL');
const users = {
  ADMIN: { username: env('ADMIN_USER', 'admin'), password: env('ADMIN_PASSWORD') },
  OPERATOR: { username: env('OPERATOR_USER'), password: env('OPERATOR_PASSWORD') },
  VIEWER: { username: env('VIEWER_USER'), password: env('VIEWER_PASSWORD') },
};
const here = dirname(fileURLToPath(import.meta.url));
const SHOTS = env('SCREENSHOT_DIR', join(here, '../../artifacts/screenshots'));
const FLOWS_DIR = env('FLOWS_DIR', join(here, '../../packaging/nodered/flows'));
const DESKTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };
mkdirSync(SHOTS, { recursive: true });
for (const f of readdirSync(SHOTS)) if (f.startsWith('FAILED-')) rmSync(join(SHOTS, f));

const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const shots = [];
function check(ok, what) {
  if (!ok) throw new Error('check failed: ' + what);
}

// launch() gives the browser a fresh temporary profile (user-data-dir) and removes it on close.
const browser = await chromium.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync', '--disable-dev-shm-usage'],
});

const consoleErrors = [];
const openPages = [];
// The browser logs every 4xx response as an error; the one a test provokes
// on purpose (a wrong password) is expected and not counted.
let expected401 = 0;
async function newPage(label, viewport = DESKTOP) {
  const ctx = await browser.newContext({ viewport, acceptDownloads: true, baseURL: HUB });
  const page = await ctx.newPage();
  page.setDefaultTimeout(15_000);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expected401 > 0 && /status of 401/.test(m.text()) && /\/api\/auth\/(login|me|refresh)$/.test(m.location()?.url ?? '')) {
      expected401--;
      return;
    }
    consoleErrors.push(`${label}: console error: ${m.text()} (${m.location()?.url ?? ''})`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${label}: page error: ${e.message}`));
  openPages.push([label, page]);
  return page;
}

async function shot(page, name, what) {
  const file = join(SHOTS, name + '.png');
  await page.screenshot({ path: file, fullPage: true });
  shots.push(`${name}.png — ${what}`);
  log('screenshot', name);
}

async function login(page, role) {
  const u = users[role];
  await page.goto('/');
  await page.waitForURL(/\/login/);
  await page.getByLabel('Username').fill(u.username);
  await page.getByLabel('Password').fill(u.password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByTestId('role').filter({ hasText: role }).waitFor();
  log('logged in as', role);
}

async function noHorizontalScroll(page, where) {
  const [sw, w] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(sw <= w + 1, `${where}: page scrolls sideways at ${w}px (content ${sw}px wide)`);
}

// healthPoints is how many transitions the health chart draws (-1 without a chart).
async function healthPoints(page) {
  return page.evaluate(() => Number(document.querySelector('[data-testid=health-chart]')?.getAttribute('data-points') ?? -1));
}

// deployFromForm fills the deployment form with a flows file (or, given
// {version: n}, picks recorded flows version n), confirms, and watches the
// live timeline until the deployment ends; it must succeed.
async function deployFromForm(page, file, screenshotConfirm, pickShot) {
  if (typeof file === 'object') {
    await page.getByTestId('source-version').check();
    const select = page.getByTestId('deploy-version');
    await select.waitFor();
    const labels = await select.locator('option').allTextContents();
    check(labels.length >= 2 && /^v(\d+) · /.test(labels[0]) && Number(/^v(\d+)/.exec(labels[0])[1]) > Number(/^v(\d+)/.exec(labels[1])[1]), `versions are listed latest first: ${labels.join(' | ')}`);
    check(labels.every((l) => / · admin · (put|deployment)$/.test(l)), `each version says when, who and how: ${labels.join(' | ')}`);
    const label = labels.find((l) => l.startsWith(`v${file.version} · `));
    check(!!label, `version ${file.version} is offered: ${labels.join(' | ')}`);
    await select.selectOption({ label });
    check((await page.getByTestId('deploy-flows').count()) === 0, 'picking a version hides the flows editor');
    file = `flows version ${file.version}`;
  } else {
    await page.locator('input[type=file]').setInputFiles(join(FLOWS_DIR, file));
    await page.waitForFunction(() => (document.querySelector('[data-testid=deploy-flows]')?.value || '').length > 10);
  }
  await page.getByLabel('Drain timeout').fill('5s');
  await page.getByLabel('Rollback window').fill('5m');
  await page.getByLabel('Smoke HTTP path (optional)').fill('/hello');
  if (pickShot) await shot(page, pickShot[0], pickShot[1]);
  await page.getByTestId('deploy-review').click();
  await page.getByRole('dialog').getByText('Rollback window').waitFor();
  if (screenshotConfirm) await shot(page, '05-deploy-confirm', 'deployment confirmation: held messages, green + smoke tests, rollback window');
  await page.getByTestId('confirm').click();
  await page.waitForURL(/\/deployments\/[^?]+$/);
  // Every phase the timeline shows as current, recorded by the page itself
  // on each DOM change: a phase current for less than one poll below is
  // still seen.
  await page.evaluate(() => {
    window.__phasesSeen = new Set();
    const record = () => document.querySelectorAll('[data-phase][data-state=current]').forEach((e) => window.__phasesSeen.add(e.getAttribute('data-phase')));
    record();
    new MutationObserver(record).observe(document.body, { subtree: true, childList: true, attributes: true, attributeFilter: ['data-state', 'data-phase'] });
  });
  const seen = new Set();
  const deadline = Date.now() + 180_000;
  let status = '';
  while (Date.now() < deadline) {
    const now = await page.evaluate(() => ({
      current: [...window.__phasesSeen],
      status: document.querySelector('.page-head .badge')?.textContent || '',
    }));
    now.current.forEach((p) => seen.add(p));
    status = now.status;
    if (/succeeded|failed|rolled back/.test(status)) break;
    await page.waitForTimeout(150);
  }
  log(`deployment of ${file}: ${status}; phases seen current: ${[...seen].join(' ')}`);
  check(status === 'succeeded', `the deployment of ${file} succeeded, got ${status}: ${await page.locator('main').textContent()}`);
  const done = await page.locator('[data-phase][data-state=done]').count();
  check(done === 6, `all six phases are done, got ${done}`);
  await page.getByText('http').first().waitFor();
  return { seen };
}

let failed = null;
try {
  // --- Login: a wrong password shows the API's message; then ADMIN.
  const admin = await newPage('admin');
  await admin.goto('/');
  await admin.waitForURL(/\/login/);
  await shot(admin, '01-login', 'the login page (1280 px)');
  await admin.getByLabel('Username').fill('admin');
  await admin.getByLabel('Password').fill('not-the-password');
  expected401 = 1;
  await admin.getByRole('button', { name: 'Log in' }).click();
  const msg = await admin.getByTestId('login-error').textContent();
  check(/invalid|password|credentials/i.test(msg || ''), `a failed login shows the API's message, got ${JSON.stringify(msg)}`);
  await login(admin, 'ADMIN');

  // --- Fleet, empty, then create an instance and see it turn healthy live.
  await admin.getByText('No instances yet').waitFor();
  for (const nav of ['Instances', 'Deployments', 'Edges', 'Regions', 'Governance']) {
    check(await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: nav }).isVisible(), `ADMIN sees the ${nav} page link`);
  }
  await admin.evaluate(() => (window.__noReload = true));
  await admin.getByTestId('new-instance').click();
  await admin.getByLabel('Name', { exact: true }).fill('e2e-alpha');
  await admin.getByLabel('Environment (one NAME=value a line)').fill('LOG_LEVEL=info\nAPI_TOKEN=s3cret');
  await admin.getByTestId('create-submit').click();
  const card = admin.locator('[data-testid=instance-card][data-name="e2e-alpha"]');
  await card.waitFor();
  const created = Date.now();
  await card.locator('[data-testid=health][data-status=running]').waitFor({ timeout: 90_000 });
  log(`e2e-alpha healthy ${((Date.now() - created) / 1000).toFixed(1)}s after the card appeared`);
  check(await admin.evaluate(() => window.__noReload === true), 'the fleet page turned healthy without a reload');
  check((await admin.getByTestId('live').textContent()).includes('Live'), 'the fleet shows its live connection');
  // Metrics arrive over the WebSocket: the memory bar gets a value.
  await admin.waitForFunction(() => {
    const c = document.querySelector('[data-testid=instance-card][data-name="e2e-alpha"]');
    return c && [...c.querySelectorAll('.bar-text')].some((e) => /B$/.test(e.textContent || ''));
  }, null, { timeout: 30_000 });
  await shot(admin, '02-fleet-admin', 'fleet as ADMIN: e2e-alpha healthy (green badge), CPU/memory bars from live metrics, quick actions');
  // search filter
  await admin.getByTestId('fleet-search').fill('zzz-nothing');
  await admin.getByText('No instance matches the filters.').waitFor();
  await admin.getByTestId('fleet-search').fill('');

  // --- Instance detail: metadata, masked secret, charts, logs.
  await card.getByRole('link', { name: 'e2e-alpha' }).click();
  await admin.waitForURL(/\/instances\//);
  await admin.getByRole('heading', { name: 'e2e-alpha' }).waitFor();
  const body = await admin.locator('main').textContent();
  check(body.includes('LOG_LEVEL') && body.includes('info'), 'instance page lists the environment');
  check(!body.includes('s3cret'), 'instance page masks a secret env value');
  check(await admin.getByTestId('destroy').isVisible(), 'ADMIN sees Destroy');
  // The health chart draws the recorded transitions (creating → starting → running).
  await admin.locator('[data-testid=health-chart] .uplot').waitFor();
  check((await healthPoints(admin)) >= 3, `the health chart draws the recorded transitions, got ${await healthPoints(admin)} points`);
  check(/was starting/.test(await admin.getByTestId('status-history').textContent()), 'the history lists each change with the status before it');
  await admin.locator('.chart', { hasText: 'CPU' }).locator('.uplot').waitFor({ timeout: 30_000 });
  await admin.locator('pre.logs').filter({ hasText: /\S/ }).waitFor();
  await admin.waitForFunction(() => !/not running|No log output/.test(document.querySelector('pre.logs')?.textContent || ''), null, { timeout: 20_000 });
  // Replicas: where the runtime runs, and scaling to two.
  await admin.getByTestId('replica-row').first().waitFor();
  check((await admin.getByTestId('replica-row').count()) === 1, 'one replica row for a 1-replica instance');
  await admin.getByTestId('scale-input').fill('2');
  await admin.getByTestId('scale').click();
  await admin.waitForFunction(() => document.querySelectorAll('[data-testid=replica-row]').length === 2, null, { timeout: 30_000 });
  await admin.waitForFunction(() => [...document.querySelectorAll('[data-testid=replica-row]')].every((r) => /healthy|running/i.test(r.textContent || '')), null, { timeout: 90_000 });
  await shot(admin, '27-instance-replicas', 'instance replicas: two runtimes, the hub each runs on, its address and why it is there; live status over the WebSocket');
  await admin.getByTestId('scale-input').fill('1');
  await admin.getByTestId('scale').click();
  await admin.waitForFunction(() => document.querySelectorAll('[data-testid=replica-row]').length === 1, null, { timeout: 30_000 });
  await shot(admin, '03-instance-admin', 'instance detail: metadata, masked API_TOKEN, health history chart and list from the API, CPU and memory charts (uPlot), logs');

  // --- Deployments: blue-green v1 from the form, watch the phases, roll back.
  await admin.getByRole('button', { name: 'Redeploy' }).click();
  await admin.waitForURL(/\/deployments\?instance=/);
  await admin.getByRole('heading', { name: 'New blue-green deployment' }).waitFor();
  await admin.getByText('No deployments yet.').waitFor();
  await shot(admin, '04-deployments-form', 'deployments: the form with the instance preselected, empty history');
  const d1 = await deployFromForm(admin, 'bluegreen-v1.json', true);
  check(d1.seen.size >= 2, `the timeline moved through phases live (saw ${[...d1.seen].join(',')})`);
  await shot(admin, '06-deployment-succeeded', 'a finished blue-green deployment: all phases done, smoke results, phase history');
  // v2 over v1 (blue now answers on the hub bus), then roll it back.
  await admin.getByRole('link', { name: '← Deployments' }).click();
  await admin.getByTestId('deploy-instance').selectOption({ label: 'e2e-alpha' });
  await deployFromForm(admin, 'bluegreen-v2.json', false);
  await admin.getByTestId('rollback').click();
  await admin.getByRole('dialog').getByText('blue instance').waitFor();
  await admin.getByTestId('confirm').click();
  await admin.locator('.page-head .badge', { hasText: 'rolled back' }).waitFor({ timeout: 120_000 });
  await shot(admin, '07-deployment-rolled-back', 'the same deployment after a rollback from the console');
  await admin.getByRole('link', { name: '← Deployments' }).click();
  await admin.getByTestId('deployments-table').waitFor();
  await shot(admin, '08-deployments-history', 'deployment history table with status badge, duration and who');
  // Redeploy v1 by picking its recorded version: v1 (succeeded) and v2
  // (rolled back) were recorded by the two deployments above.
  await admin.getByTestId('deploy-instance').selectOption({ label: 'e2e-alpha' });
  await deployFromForm(admin, { version: 1 }, false, ['23-deploy-pick-version', 'deployment form redeploying a recorded flows version: versions latest first with time, who and source']);
  const versions = await admin.getByTestId('deployment-versions').textContent();
  check(/^v1 → v3/.test(versions), `the deployment went from v1 (live after the rollback) to v3 (the redeployed v1), got ${versions}`);
  await shot(admin, '24-deployment-from-version', 'a blue-green deployment started from recorded version v1: succeeded, flows v1 → v3');
  await admin.getByRole('link', { name: 'e2e-alpha' }).click();
  await admin.getByRole('heading', { name: 'e2e-alpha' }).waitFor();
  await admin.locator('[data-testid=health-chart] .uplot').waitFor();
  await admin.waitForFunction(() => Number(document.querySelector('[data-testid=health-chart]')?.getAttribute('data-rows')) >= 2);
  check(/e2e-alpha\./.test(await admin.getByTestId('status-history').textContent()), 'the history lists the deployments\' green rows');
  await shot(admin, '25-instance-health-history', 'instance health history after three blue-green deployments: one step line per row (the instance and its green copies)');

  // --- Governance: chain verification, filter, export; users and tokens.
  await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Governance' }).click();
  await admin.getByTestId('chain-status').filter({ hasText: 'intact' }).waitFor();
  await admin.getByTestId('audit-table').waitFor();
  await admin.getByTestId('audit-action').selectOption('INSTANCE_CREATED');
  await admin.getByTestId('audit-apply').click();
  await admin.waitForFunction(() => {
    const rows = [...document.querySelectorAll('[data-testid=audit-table] tbody tr')];
    return rows.length > 0 && rows.every((r) => r.getAttribute('data-action') === 'INSTANCE_CREATED');
  });
  await shot(admin, '09-audit-filtered', 'audit log filtered to INSTANCE_CREATED; hash chain verified intact');
  const [csv] = await Promise.all([admin.waitForEvent('download'), admin.getByTestId('export-csv').click()]);
  const csvText = readFileSync(await csv.path(), 'utf8');
  check(csv.suggestedFilename().endsWith('.csv'), `CSV export is named .csv: ${csv.suggestedFilename()}`);
  check(csvText.includes('INSTANCE_CREATED') && !csvText.includes('LOGIN_SUCCEEDED'), 'the CSV export holds the filtered records only');
  const [js] = await Promise.all([admin.waitForEvent('download'), admin.getByTestId('export-json').click()]);
  const doc = JSON.parse(readFileSync(await js.path(), 'utf8'));
  check(doc.records?.length > 0 && doc.records.every((r) => r.action === 'INSTANCE_CREATED'), 'the JSON export holds the filtered records');
  await admin.getByTestId('tab-ai_decisions').click();
  await admin.getByText('No AI decisions recorded').waitFor();
  await admin.getByTestId('tab-reports').click();
  const [pdf] = await Promise.all([admin.waitForEvent('download'), admin.getByRole('button', { name: 'Generate and download' }).click()]);
  check(pdf.suggestedFilename().endsWith('.pdf') && readFileSync(await pdf.path()).subarray(0, 5).toString() === '%PDF-', `the report downloads as a PDF: ${pdf.suggestedFilename()}`);
  await admin.getByTestId('tab-users').click();
  await admin.getByTestId('users-table').waitFor();
  check((await admin.getByTestId('users-table').textContent()).includes(users.VIEWER.username), 'ADMIN sees the users');
  await shot(admin, '10-users-admin', 'users (ADMIN only): roles, enable/disable, delete');
  await admin.getByTestId('tab-tokens').click();
  await admin.getByRole('form', { name: 'New API token' }).getByLabel('Name').fill('e2e-ci');
  await admin.getByRole('button', { name: 'Create token' }).click();
  await admin.getByTestId('token-secret').waitFor();
  await admin.getByTestId('tokens-table').getByText('e2e-ci').waitFor();
  await shot(admin, '11-tokens-admin', 'API tokens (ADMIN only): a new token shown once, the token table');
  await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Edges' }).click();
  const EDGE = process.env.EDGE_NAME;
  if (EDGE) {
    // An enrolled edge that reported its backlog in a heartbeat.
    const row = admin.getByTestId('edges-table').locator('tr', { hasText: EDGE });
    await row.waitFor();
    const backlog = await row.getByTestId('edge-backlog').textContent();
    check(/vectors\s*1200 rec · 4\.5 MiB\s*1 m 35 s/.test(backlog) && /ai_decisions\s*3 rec · 2\.0 KiB · 2 evicted\s*12 s/.test(backlog) && /audit\s*0 rec/.test(backlog), `the backlog per stream is shown: ${backlog}`);
    check((await row.getByTestId('edge-oldest').textContent()) === '1 m 35 s', 'the oldest unsynced age is the oldest over the streams');
    await shot(admin, '12-edges', 'edges page: an enrolled edge with the backlog it reported per stream (records, bytes, evicted, oldest unsynced age) and applied/desired config');
  } else {
    await admin.getByText('No edges enrolled').waitFor();
    await shot(admin, '12-edges', 'edges page (empty state: no edge enrolled in this test)');
  }
  await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Regions' }).click();
  await admin.getByTestId('region-card').first().waitFor();
  await admin.getByTestId('hub-row').first().waitFor();
  check(/running/.test(await admin.getByTestId('hubs').textContent()), 'the hubs table shows the hub\'s load');
  await shot(admin, '13-regions', 'regions page: hubs with their state, drain and load (replicas, reserved memory), this one-node hub, leader, probe state');

  // --- OPERATOR: runs the fleet, no deletes, no users or tokens.
  const op = await newPage('operator');
  await login(op, 'OPERATOR');
  const opCard = op.locator('[data-testid=instance-card][data-name="e2e-alpha"]');
  await opCard.waitFor();
  check(await op.getByTestId('new-instance').isVisible(), 'OPERATOR sees New instance');
  check(await opCard.getByRole('button', { name: 'Deploy' }).isVisible(), 'OPERATOR sees Deploy');
  // OPERATOR creates an instance; the ADMIN's open fleet page follows live.
  await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Instances' }).click();
  await admin.evaluate(() => (window.__noReload = true));
  await op.getByTestId('new-instance').click();
  await op.getByLabel('Name', { exact: true }).fill('e2e-beta');
  await op.getByTestId('create-submit').click();
  const beta = op.locator('[data-testid=instance-card][data-name="e2e-beta"]');
  await beta.locator('[data-testid=health][data-status=running]').waitFor({ timeout: 90_000 });
  const betaAdmin = admin.locator('[data-testid=instance-card][data-name="e2e-beta"]');
  await betaAdmin.locator('[data-testid=health][data-status=running]').waitFor({ timeout: 30_000 });
  check(await beta.getByRole('button', { name: 'Stop' }).isVisible(), 'OPERATOR sees Stop');
  check(await beta.getByRole('button', { name: 'Restart' }).isVisible(), 'OPERATOR sees Restart');
  await shot(op, '14-fleet-operator', 'fleet as OPERATOR: e2e-alpha (deployed v1) and e2e-beta created by the operator; start/stop/restart/deploy, no destroy');
  // Stop from the OPERATOR's page: the ADMIN's page shows it within seconds, no reload.
  const stopAt = Date.now();
  await beta.getByRole('button', { name: 'Stop' }).click();
  await betaAdmin.locator('[data-testid=health][data-status=stopped]').waitFor({ timeout: 30_000 });
  log(`stop by OPERATOR shown on the ADMIN's page after ${((Date.now() - stopAt) / 1000).toFixed(1)}s`);
  check(await admin.evaluate(() => window.__noReload === true), 'the ADMIN page followed without a reload');
  await beta.getByRole('button', { name: 'Start' }).waitFor();
  await beta.getByRole('link', { name: 'e2e-beta' }).click();
  await op.getByRole('heading', { name: 'e2e-beta' }).waitFor();
  check((await op.getByTestId('destroy').count()) === 0, 'OPERATOR does not see Destroy');
  // The health chart follows live: start it here and watch starting and running arrive without a reload.
  await op.locator('[data-testid=health-chart] .uplot').waitFor();
  await op.waitForFunction(() => /stopped/.test(document.querySelector('[data-testid=status-history] li')?.textContent || ''));
  const before = await healthPoints(op);
  await op.evaluate(() => (window.__noReload = true));
  await op.getByRole('button', { name: 'Start' }).click();
  await op.waitForFunction((n) => Number(document.querySelector('[data-testid=health-chart]')?.getAttribute('data-points')) >= n + 2, before, { timeout: 90_000 });
  await op.locator('.page-head [data-testid=health][data-status=running]').waitFor({ timeout: 30_000 });
  check(await op.evaluate(() => window.__noReload === true), 'the health chart followed live, without a reload');
  await shot(op, '26-instance-health-live', 'instance health chart as OPERATOR after stop and start: the new transitions arrived over the WebSocket');
  await op.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Governance' }).click();
  await op.getByTestId('audit-table').waitFor();
  check((await op.getByTestId('tab-users').count()) === 0 && (await op.getByTestId('tab-tokens').count()) === 0, 'OPERATOR sees no Users or API tokens tab');
  check((await op.getByTestId('tab-reports').count()) === 1, 'OPERATOR may generate reports');

  // --- VIEWER: reads only.
  const viewer = await newPage('viewer');
  await login(viewer, 'VIEWER');
  const vCard = viewer.locator('[data-testid=instance-card][data-name="e2e-alpha"]');
  await vCard.waitFor();
  check((await viewer.getByTestId('new-instance').count()) === 0, 'VIEWER does not see New instance');
  check((await vCard.getByRole('button').count()) === 0, 'VIEWER sees no instance actions');
  await shot(viewer, '15-fleet-viewer', 'fleet as VIEWER: no create button, no quick actions');
  await viewer.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Deployments' }).click();
  await viewer.getByTestId('deployments-table').waitFor();
  check((await viewer.getByRole('heading', { name: 'New blue-green deployment' }).count()) === 0, 'VIEWER does not see the deployment form');
  await viewer.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Governance' }).click();
  await viewer.getByTestId('audit-table').waitFor();
  check((await viewer.getByTestId('tab-reports').count()) === 0 && (await viewer.getByTestId('tab-users').count()) === 0, 'VIEWER sees neither Reports nor Users');
  await shot(viewer, '16-governance-viewer', 'governance as VIEWER: audit log and AI decisions only');
  await viewer.getByTestId('logout').click();
  await viewer.waitForURL(/\/login/);

  // --- Phone width: the same pages fit without sideways scrolling.
  await admin.setViewportSize(PHONE);
  await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Instances' }).click();
  await card.waitFor();
  await noHorizontalScroll(admin, 'fleet');
  await shot(admin, '17-fleet-phone', 'fleet at 390 px (phone)');
  await card.getByRole('link', { name: 'e2e-alpha' }).click();
  await admin.getByRole('heading', { name: 'e2e-alpha' }).waitFor();
  await noHorizontalScroll(admin, 'instance');
  await shot(admin, '18-instance-phone', 'instance detail at 390 px');
  await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Governance' }).click();
  await admin.getByTestId('audit-table').waitFor();
  await noHorizontalScroll(admin, 'governance');
  await shot(admin, '19-governance-phone', 'governance at 390 px (the audit table scrolls inside its box)');
  await admin.setViewportSize(DESKTOP);

  // --- Keyboard: the login form is reachable and submits with Enter.
  const kb = await newPage('keyboard', PHONE);
  await kb.goto('/');
  await kb.waitForURL(/\/login/);
  await kb.keyboard.press('Tab');
  check(await kb.evaluate(() => document.activeElement?.getAttribute('name') === 'password' || document.activeElement?.getAttribute('name') === 'username'), 'Tab reaches the login form');
  await shot(kb, '20-login-phone', 'the login page at 390 px');

  // --- Destroy with confirmation (ADMIN).
  await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Instances' }).click();
  await card.getByRole('link', { name: 'e2e-alpha' }).click();
  await admin.getByTestId('destroy').click();
  check(await admin.getByTestId('confirm').isDisabled(), 'Destroy needs the name typed first');
  await admin.getByTestId('confirm-text').fill('e2e-alpha');
  await shot(admin, '21-destroy-confirm', 'destroy confirmation: type the instance name');
  await admin.getByTestId('confirm').click();
  await admin.waitForURL((u) => u.pathname === '/instances');
  await admin.locator('[data-testid=instance-card][data-name="e2e-beta"]').waitFor();
  check((await card.count()) === 0, 'the destroyed instance is gone from the fleet, the other stays');

  // --- Sessions: an expired access token is refreshed without the user
  // noticing; when the refresh fails too, the login page says why.
  await op.goto('/audit');
  await op.getByTestId('audit-table').waitFor();
  await op.evaluate(() => {
    const s = JSON.parse(sessionStorage.getItem('redforge.session'));
    s.access_token = 'expired-or-revoked';
    sessionStorage.setItem('redforge.session', JSON.stringify(s));
  });
  expected401 = 1; // GET /api/auth/me with the bad token, before the refresh
  await op.reload();
  await op.getByTestId('audit-table').waitFor();
  check(expected401 === 0, 'the bad access token was refused once, then refreshed');
  await op.evaluate(() => {
    const s = JSON.parse(sessionStorage.getItem('redforge.session'));
    s.access_token = 'expired-or-revoked';
    s.refresh_token = 'revoked';
    sessionStorage.setItem('redforge.session', JSON.stringify(s));
  });
  expected401 = 2; // GET /api/auth/me, then POST /api/auth/refresh
  await op.reload();
  await op.waitForURL(/\/login\?next=%2Faudit/);
  await op.getByText('Your session has ended. Log in again.').waitFor();
  check(expected401 === 0, 'the session ended after one refused refresh');
  await shot(op, '22-session-ended', 'the login page after the session ended (refresh refused), keeping the page to return to');

  check(consoleErrors.length === 0, 'no console errors:\n  ' + consoleErrors.join('\n  '));
} catch (e) {
  failed = e;
  for (const [label, page] of openPages) {
    await page.screenshot({ path: join(SHOTS, `FAILED-${label}.png`), fullPage: true }).catch(() => {});
    console.log(`FAILED-${label}.png: ${page.url()}`);
  }
  if (consoleErrors.length) console.log('console errors so far:\n  ' + consoleErrors.join('\n  '));
}
await browser.close();
console.log('screenshots in ' + SHOTS + ':\n  ' + shots.join('\n  '));
if (failed) {
  console.error('FAIL:', failed.stack || failed.message);
  process.exit(1);
}
log('PASS');
