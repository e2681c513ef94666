// Browser test of the Models page (playwright-core driving Debian's
// Chromium) against a hub prepared by hub/consoletest TestModelsPage: test
// providers, models with live traffic, routes, a budget, a finished
// benchmark. It exits non-zero on the first failed check; screenshots go
// to SCREENSHOT_DIR.
import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const env = (k, d) => {
  const v = process.env[k] ?? d;
  if (v === undefined) throw new Error(`${k} is not set`);
  return v;
};
const HUB = env('HUB_URL');
const here = dirname(fileURLToPath(import.meta.url));
const SHOTS = env('SCREENSHOT_DIR', join(here, '../../artifacts/screenshots'));
const KEY = env('PROVIDER_KEY');
mkdirSync(SHOTS, { recursive: true });
const t0 = Date.now();
const log = (...a) => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)}s]`, ...a);
const check = (ok, what) => {
  if (!ok) throw new Error('check failed: ' + what);
  log('ok', what);
};
const shots = [];
const browser = await chromium.launch({
  executablePath: env('CHROMIUM', '/usr/bin/chromium'),
  headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run', '--disable-quic', '--disable-sync', '--disable-dev-shm-usage'],
});
const errors = [];
async function newPage(label, viewport = { width: 1280, height: 860 }) {
  const ctx = await browser.newContext({ viewport, baseURL: HUB });
  const page = await ctx.newPage();
  page.setDefaultTimeout(15_000);
  page.on('console', (m) => m.type() === 'error' && errors.push(`${label}: ${m.text()}`));
  page.on('pageerror', (e) => errors.push(`${label}: page error: ${e.message}`));
  return page;
}
async function shot(page, name, what) {
  await page.screenshot({ path: join(SHOTS, name + '.png'), fullPage: true });
  shots.push(`${name}.png — ${what}`);
  log('screenshot', name);
}
async function login(page, user, password, role) {
  await page.goto('/');
  await page.waitForURL(/\/login/);
  await page.getByLabel('Username').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Log in' }).click();
  await page.getByTestId('role').filter({ hasText: role }).waitFor();
}

let failed;
const pages = [];
try {
  // --- ADMIN: registry with live figures, providers, routes, budgets, benchmarks, cost per workflow.
  const admin = await newPage('admin');
  pages.push(admin);
  await login(admin, env('ADMIN_USER'), env('ADMIN_PASSWORD'), 'ADMIN');
  await admin.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Models' }).click();
  await admin.getByTestId('models-table').waitFor();
  const row = admin.locator('[data-testid=model-row][data-model="llama3.2:v1"]');
  await row.waitFor();
  check(/\d+(\.\d)? ms/.test(await row.getByTestId('model-latency').innerText()), 'the registry shows live latency figures');
  check((await admin.getByTestId('providers-table').innerText()).includes('set · write-only'), 'a provider key shows only as set, write-only');
  check(!(await admin.content()).includes(KEY), 'the provider key is nowhere in the page');
  check((await admin.getByTestId('routes-table').innerText()).includes('gpt:v1 → llama3.2'), 'routes list their candidates in order');
  check((await admin.getByTestId('budgets-table').innerText()).includes('of $'), 'budgets show the spend of the day');
  await admin.getByTestId('bench-results').waitFor();
  const recs = await admin.getByTestId('bench-recs').innerText();
  check(recs.includes('Best for quality') && recs.includes('Best for cost') && recs.includes('Best within SLA'), 'the benchmark shows its three recommendations');
  check((await admin.getByTestId('bench-table').innerText()).includes('90%'), 'the benchmark table shows the accuracy');
  check((await admin.locator('[data-testid=chart-accuracy] rect').count()) === 2, 'the accuracy chart draws one bar per model');
  check((await admin.getByTestId('usage-table').innerText()).includes('triage'), 'cost per workflow lists the flow');
  await shot(admin, '30-models', 'Models as ADMIN: registry with live figures, providers (key write-only), routes, budgets, benchmark with recommendations and charts, cost per workflow by model');

  // Set a provider key from the form: it is sent, then gone from the page.
  await admin.getByTestId('provider-form').getByLabel('Id').fill('extra');
  await admin.getByTestId('provider-form').getByLabel('Base URL').fill('http://127.0.0.1:9/v1');
  await admin.getByTestId('provider-form').getByLabel('API key (write-only)').fill('sk-typed-in-the-console');
  await admin.getByTestId('provider-form').getByRole('button', { name: 'Save' }).click();
  await admin.getByText('provider extra saved').waitFor();
  await admin.waitForFunction(() => document.querySelector('[data-testid=providers-table]')?.textContent?.includes('extra'));
  check((await admin.getByTestId('provider-form').getByLabel('API key (write-only)').inputValue()) === '', 'the key field is emptied once saved');
  check(!(await admin.content()).includes('sk-typed-in-the-console'), 'the typed key is not shown back');

  // Launch a benchmark from the page and watch it finish.
  const form = admin.getByTestId('bench-form');
  await form.getByLabel('llama3.2:v1').check();
  await form.getByLabel('gpt:v1').check();
  await form.getByRole('button', { name: 'Run benchmark' }).click();
  await admin.getByText('benchmark started').waitFor();
  await shot(admin, '31-models-benchmark-launched', 'a benchmark launched from the Models page');

  // Roll back a version in one click.
  await admin.locator('[data-testid=model-row][data-model="llama3.2:v2"]').getByRole('button', { name: 'Roll back' }).click();
  await admin.getByText('llama3.2 rolled back').waitFor();
  await admin.waitForFunction(() => document.querySelector('[data-model="llama3.2:v1"]')?.textContent?.includes('★'));
  check(true, 'rollback made v1 current again');

  // --- VIEWER: reads, no forms, no keys.
  const viewer = await newPage('viewer');
  pages.push(viewer);
  await login(viewer, env('VIEWER_USER'), env('VIEWER_PASSWORD'), 'VIEWER');
  await viewer.goto('/models');
  await viewer.getByTestId('models-table').waitFor();
  check((await viewer.getByTestId('provider-form').count()) === 0 && (await viewer.getByTestId('bench-form').count()) === 0, 'VIEWER sees no provider, route or benchmark forms');
  check(!(await viewer.content()).includes(KEY), 'VIEWER sees no key');
  await shot(viewer, '32-models-viewer', 'Models as VIEWER: read-only, no forms, no keys');

  // --- Phone width.
  await admin.setViewportSize({ width: 390, height: 844 });
  await admin.reload();
  await admin.getByTestId('models-table').waitFor();
  const [sw, w] = await admin.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]);
  check(sw <= w + 1, `Models fits 390 px without sideways scrolling (content ${sw}px)`);
  await shot(admin, '33-models-phone', 'Models at 390 px');
  check(errors.length === 0, 'no console errors:\n  ' + errors.join('\n  '));
} catch (e) {
  failed = e;
  for (const [i, p] of pages.entries()) await p.screenshot({ path: join(SHOTS, `FAILED-models-${i}.png`), fullPage: true }).catch(() => {});
  if (errors.length) console.log('console errors:\n  ' + errors.join('\n  '));
}
await browser.close();
console.log('screenshots in ' + SHOTS + ':\n  ' + shots.join('\n  '));
if (failed) {
  console.error('FAIL:', failed.stack || failed.message);
  process.exit(1);
}
log('PASS');
