// Browser tests of the Analytics and Alerts pages (issue 17):
// playwright-core driving Debian's Chromium against a hub started by
// hub/consoletest TestObservabilityConsole, which runs an instance doing
// work through the RedForge workflow and LLM nodes and passes its address,
// users and a webhook receiver in the environment. Exits non-zero on the
// first failed check; screenshots go to SCREENSHOT_DIR (30-…).
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const HUB = env('HUB_URL');
const RECEIVER = env('RECEIVER_URL');
const INSTANCE = env('INSTANCE_NAME');
const users = {
  ADMIN: { username: env('ADMIN_USER', 'admin'), password: env('ADMIN_PASSWORD') },
  VIEWER: { username: env('VIEWER_USER'), password: env('VIEWER_PASSWORD') },
};
const here = dirname(fileURLToPath(import.meta.url));
const SHOTS = env('SCREENSHOT_DIR', join(here, '../../artifacts/screenshots'));
mkdirSync(SHOTS, { recursive: true });
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const shots = [];
function check(ok, what) {
  if (!ok) throw new Error('check failed: ' + what);
}

const browser = await chromium.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync', '--disable-dev-shm-usage'],
});
const consoleErrors = [];
const openPages = [];
// The rule form's refusal is a 400 the test provokes on purpose.
let expected400 = 0;
async function newPage(label, viewport = { width: 1280, height: 900 }) {
  const ctx = await browser.newContext({ viewport, baseURL: HUB });
  const page = await ctx.newPage();
  page.setDefaultTimeout(20_000);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    if (expected400 > 0 && /status of 400/.test(m.text())) {
      expected400--;
      return;
    }
    // The Grafana stand-in is another origin; what it logs is not the console's.
    if (!(m.location()?.url ?? '').startsWith(HUB)) return;
    consoleErrors.push(`${label}: console error: ${m.text()} (${m.location()?.url ?? ''})`);
  });
  page.on('pageerror', (e) => consoleErrors.push(`${label}: page error: ${e.message}`));
  openPages.push([label, page]);
  return page;
}
async function shot(page, name, what) {
  await page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: true });
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
}
async function noHorizontalScroll(page, where) {
  const [sw, w] = await page.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(sw <= w + 1, `${where}: page scrolls sideways at ${w}px (content ${sw}px wide)`);
}

let failed = null;
try {
  const admin = await newPage('admin');
  await login(admin, 'ADMIN');

  // --- Analytics: the fleet's numbers and charts from /api/metrics/fleet.
  await admin.getByRole('link', { name: 'Analytics' }).click();
  await admin.waitForURL(/\/analytics/);
  await admin.getByTestId('analytics-kpis').waitFor();
  await admin.waitForFunction(() => /\d/.test(document.querySelector('[data-testid=kpi-runs] .kpi-value')?.textContent || '') && document.querySelector('[data-testid=kpi-runs] .kpi-value')?.textContent !== '0', null, { timeout: 60_000 });
  const runs = await admin.getByTestId('kpi-runs').locator('.kpi-value').textContent();
  const cost = await admin.getByTestId('kpi-cost').locator('.kpi-value').textContent();
  check(Number((runs || '').replace(/,/g, '')) > 0 && /^\$[0-9.]+$/.test(cost || ''), `workflows ${runs} and cost ${cost} shown`);
  check((await admin.locator('.chart canvas').count()) >= 3, 'throughput, error rate and latency charts are drawn');
  const models = await admin.getByTestId('models-table').locator('tbody tr td.mono').allTextContents();
  check(models.includes('gpt-4o') && models.includes('llama3'), `tokens by model: ${models.join(', ')}`);
  // The four dashboards, embedded from --grafana-url.
  const frame = admin.getByTestId('grafana-frame');
  for (const [key, uid] of [['deployment', 'redforge-deployment'], ['performance', 'redforge-performance'], ['cost', 'redforge-cost'], ['fleet', 'redforge-fleet']]) {
    await admin.getByTestId('dashboard-' + key).click();
    const src = await frame.getAttribute('src');
    check(src.includes(`/d/${uid}?`) && src.includes('kiosk') && src.includes('from=now-1h'), `dashboard ${key} embedded from ${src}`);
  }
  await admin.frameLocator('[data-testid=grafana-frame]').getByText('Grafana stand-in: /d/redforge-fleet').waitFor();
  await admin.getByTestId('analytics-window').selectOption('15m');
  await admin.waitForURL(/window=15m/);
  check((await frame.getAttribute('src')).includes('from=now-15m'), 'the window follows to the embedded dashboard');
  await admin.frameLocator('[data-testid=grafana-frame]').getByText('Grafana stand-in: /d/redforge-fleet').waitFor();
  await shot(admin, '30-analytics', 'Analytics: fleet counts, workflow throughput, error rate, latency percentiles, tokens and cost by model, the Fleet Overview dashboard embedded');
  await noHorizontalScroll(admin, 'analytics at 1280px');

  // --- Alerts: a bad rule names the field; a good one is listed.
  await admin.getByRole('link', { name: 'Alerts' }).click();
  await admin.waitForURL(/\/alerts/);
  await admin.getByText('No alert rules yet.').waitFor();
  await admin.getByTestId('rule-name').fill('too many errors');
  await admin.getByTestId('rule-metric').selectOption('agent_workflow_error_rate');
  await admin.getByTestId('rule-condition').selectOption('>');
  await admin.getByTestId('rule-threshold').fill('0.1');
  await admin.getByTestId('rule-severity').selectOption('warning');
  await admin.getByTestId('rule-match-label').selectOption('name');
  await admin.getByTestId('rule-match-value').fill(INSTANCE);
  await admin.getByTestId('channel-target-0').fill('ftp://example.com/hook');
  expected400 = 1;
  await admin.getByTestId('rule-create').click();
  const err = await admin.getByTestId('rule-error').textContent();
  check(/channels\[0\]\.url/.test(err || '') && (await admin.getByTestId('channel-target-0').getAttribute('class')) === 'invalid', `a bad URL is refused naming the field: ${err}`);
  await shot(admin, '31-alert-rule-refused', 'the rule form refusing an ftp:// webhook, naming channels[0].url');
  await admin.getByTestId('channel-target-0').fill(RECEIVER + '/hook/token-in-path');
  await admin.getByTestId('add-channel').click();
  await admin.getByTestId('channel-type-1').selectOption('slack');
  await admin.getByTestId('channel-target-1').fill(RECEIVER + '/slack/T0/B0/secret');
  await admin.getByTestId('rule-create').click();
  await admin.getByTestId('rule-row').filter({ hasText: 'too many errors' }).waitFor();
  const row = await admin.getByTestId('rule-row').textContent();
  check(!row.includes('secret') && !row.includes('token-in-path'), `channel secrets are not shown: ${row}`);

  // Make the instance fail its workflows: the rule fires, live.
  const ctx = await browser.newContext();
  for (let i = 0; i < 12; i++) {
    const r = await ctx.request.get(`${HUB}/i/${INSTANCE}/work?ms=5&fail=1&model=gpt-4o`);
    check(r.status() === 500, `a failing workflow answers 500, got ${r.status()}`);
  }
  await ctx.close();
  await admin.getByTestId('active-alert').filter({ hasText: 'too many errors' }).waitFor({ timeout: 60_000 });
  await admin.getByTestId('history-table').getByText('2 sent').waitFor({ timeout: 30_000 });
  await shot(admin, '32-alerts', 'Alerts: the error-rate rule firing live, its rule, and history with both notifications sent');
  await admin.getByTestId('history-table').locator('summary').first().click();
  await shot(admin, '33-alert-history', 'Alert history: each notification, its channel (URL redacted) and status');

  // --- VIEWER: reads analytics and alerts, cannot add a rule.
  const viewer = await newPage('viewer');
  await login(viewer, 'VIEWER');
  await viewer.goto('/alerts');
  await viewer.getByTestId('rules-table').waitFor();
  check((await viewer.getByTestId('rule-create').count()) === 0, 'a VIEWER gets no rule form');
  check((await viewer.getByRole('button', { name: 'Delete' }).count()) === 0, 'a VIEWER gets no delete button');

  // --- Phone width.
  const phone = await newPage('phone', { width: 390, height: 844 });
  await login(phone, 'ADMIN');
  await phone.goto('/analytics');
  await phone.getByTestId('analytics-kpis').waitFor();
  await phone.locator('.chart canvas').first().waitFor();
  await noHorizontalScroll(phone, 'analytics at 390px');
  await shot(phone, '34-analytics-phone', 'Analytics at phone width');
  await phone.goto('/alerts');
  await phone.getByTestId('rules-table').waitFor();
  await noHorizontalScroll(phone, 'alerts at 390px');
  await shot(phone, '35-alerts-phone', 'Alerts at phone width');

  check(consoleErrors.length === 0, 'no console errors:\n  ' + consoleErrors.join('\n  '));
} catch (e) {
  failed = e;
  for (const [label, page] of openPages) {
    await page.screenshot({ path: join(SHOTS, `FAILED-obs-${label}.png`), fullPage: true }).catch(() => {});
    console.log(`FAILED-obs-${label}.png: ${page.url()}`);
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
