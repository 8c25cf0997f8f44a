// The dashboard in a real browser (Debian's chromium, headless, via playwright-core) against
// probefarmd on simulated boards: static serving, login, a bad and a good upload, a flash to
// 100 %, the jobs view with its phase chart, the audit entry and its CSV export, `reg` in the
// console, an unplugged probe going offline, and what a viewer token does not get.
//
// Environment: PROBEFARM_BIN_DIR (probefarmd, probefarm-sim), PROBEFARM_DEMO_ELF,
// PROBEFARM_WEB_DIR (default: ../../web), PROBEFARM_WEB_OUT (screenshots; default a temp dir).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, existsSync, mkdtempSync } from 'node:fs';
import { join, dirname, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { Farm, until } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const env = (name, fallback) => {
  const v = process.env[name] || fallback;
  if (!v) throw new Error(`${name} is not set (see the comment at the top of ${fileURLToPath(import.meta.url)})`);
  return v;
};
const binDir = env('PROBEFARM_BIN_DIR');
const elfPath = env('PROBEFARM_DEMO_ELF');
const webDir = resolve(env('PROBEFARM_WEB_DIR', join(here, '..', '..', 'web')));
const outDir = env('PROBEFARM_WEB_OUT', mkdtempSync(join(tmpdir(), 'probefarm-web-shots-')));
const CHROMIUM = '/usr/bin/chromium';
const T = 30000;  // deadline of one UI wait

const F407 = 'PFWEB01F407';
const F103 = 'PFWEB02F103';
let farm, browser, page;

async function shot(name) {
  await page.screenshot({ path: join(outDir, `${name}.png`), fullPage: true });
}

const card = (serial) => page.locator(`.card[data-serial="${serial}"]`);

// A file dropped onto an element, as a desktop file manager would: a DataTransfer with a File.
async function dropFile(selector, name, bytes) {
  const dt = await page.evaluateHandle(({ name, b64 }) => {
    const data = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const dt = new DataTransfer();
    dt.items.add(new File([data], name));
    return dt;
  }, { name, b64: Buffer.from(bytes).toString('base64') });
  await page.locator(selector).dispatchEvent('dragover', { dataTransfer: dt });
  await page.locator(selector).dispatchEvent('drop', { dataTransfer: dt });
}

before(async () => {
  for (const [what, path] of [['chromium', CHROMIUM], ['the demo firmware', elfPath], ['probefarmd', join(binDir, 'probefarmd')]])
    if (!existsSync(path)) throw new Error(`${what} not found at ${path} (run scripts/setup and build first)`);
  mkdirSync(outDir, { recursive: true });
  farm = new Farm({ binDir, webDir, boards: [`stm32f407vg:cmsis-dap-v2:${F407}`, `stm32f103c8:cmsis-dap-v1:${F103}`] });
  await farm.start();
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    // Chromium's sandbox needs user namespaces, which containers (and root) often lack.
    args: process.getuid && process.getuid() === 0 ? ['--no-sandbox'] : [],
  });
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, acceptDownloads: true });
  page = await context.newPage();
  page.setDefaultTimeout(T);
  page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
});

after(async () => {
  if (browser) await browser.close();
  if (farm) {
    if (process.exitCode) console.error(farm.log.slice(-40).join('\n'));
    await farm.stop();
  }
  console.log(`screenshots in ${outDir}`);
});

test('the daemon serves the dashboard without a token, and nothing outside web/', async () => {
  const index = await farm.raw('/');
  assert.equal(index.status, 200);
  assert.match(index.headers['content-type'], /^text\/html/);
  assert.match(index.body, /<script type="module" src="app.js">/);
  assert.match(index.headers['content-security-policy'], /default-src 'self'/);
  const js = await farm.raw('/app.js');
  assert.equal(js.status, 200);
  assert.match(js.headers['content-type'], /^text\/javascript/);
  assert.match((await farm.raw('/style.css')).headers['content-type'], /^text\/css/);
  // web/ sits next to the top-level CMakeLists.txt and server/: none of it may leak.
  for (const path of ['/../CMakeLists.txt', '/%2e%2e/CMakeLists.txt', '/..%2fCMakeLists.txt',
    '/%2E%2E/server/main.cpp', '/..\\CMakeLists.txt', '/x/../../CMakeLists.txt', '/.%2e/CMakeLists.txt',
    '//etc/passwd', '/nothing-here.js']) {
    const r = await farm.raw(path);
    assert.equal(r.status, 404, `${path} → ${r.status}`);
    assert.doesNotMatch(r.body, /cmake_minimum_required|int main|root:/, path);
  }
  // An unknown API path stays a JSON error for API clients.
  const api = await farm.raw('/api/v1/nope');
  assert.equal(api.status, 404);
  assert.match(api.headers['content-type'], /^application\/json/);
  // The page is behind the same Host check as the API (DNS rebinding).
  assert.equal((await farm.raw('/', { Host: 'evil.example:80' })).status, 403);
});

test('login: a wrong token is refused, the admin token shows both probes', async () => {
  await page.goto(farm.url);
  await page.locator('#token').fill('pf_not_a_token');
  await page.locator('#login-form button[type=submit]').click();
  await page.locator('#login-error', { hasText: 'not known' }).waitFor();
  await shot('login');
  await page.locator('#token').fill(farm.adminToken);
  await page.locator('#login-form button[type=submit]').click();
  await card(F407).waitFor();
  await card(F103).waitFor();
  await page.locator('#link.live').waitFor();
  await assert.doesNotReject(card(F407).locator('.probe-state', { hasText: 'idle' }).waitFor());
  assert.match(await card(F407).textContent(), /STM32F40/);
  assert.match(await card(F407).textContent(), /1 MiB|1024/);
});

test('a malformed image dropped on a card shows the daemon\'s validation message', async () => {
  await dropFile(`.card[data-serial="${F407}"]`, 'broken.hex', ':10000000ZZ\n');
  const error = page.locator('#flash-dialog .upload-status .error');
  await error.waitFor();
  const text = await error.textContent();
  assert.match(text, /^image: /, text);
  assert.ok(await page.locator('#flash-submit').isDisabled());
  await shot('upload-error');
  await page.locator('#flash-dialog button', { hasText: 'Cancel' }).click();
  await page.locator('#flash-dialog').waitFor({ state: 'hidden' });
});

let jobId;
test('an ELF dropped on a card is uploaded and flashed; the bar reaches 100 %', async () => {
  await dropFile(`.card[data-serial="${F407}"]`, 'demo_stm32f407vg.elf', readFileSync(elfPath));
  await page.locator('#flash-dialog .upload-status .ok', { hasText: 'ELF' }).waitFor();
  await page.locator('#flash-erase').selectOption('sectors');
  await shot('flash-dialog');
  // Watch the card's bar from now on: every value it shows, in order.
  await page.evaluate(() => {
    window.seenPercent = [];
    const root = document.getElementById('view-probes');
    new MutationObserver(() => {
      const bar = root.querySelector('.card[data-serial="PFWEB01F407"] .bar');
      const v = bar && Number(bar.getAttribute('aria-valuenow'));
      const id = bar && bar.closest('.job').dataset.job;
      if (bar && window.seenPercent.at(-1)?.v !== v) window.seenPercent.push({ id, v });
    }).observe(root, { childList: true, subtree: true, attributes: true });
  });
  await page.locator('#flash-submit').click();
  await page.locator('#flash-dialog').waitFor({ state: 'hidden' });
  const job = card(F407).locator('.job');
  await job.locator('.bar[aria-valuenow="100"]').waitFor({ timeout: 60000 });
  await job.locator('.job-state', { hasText: 'succeeded' }).waitFor();
  jobId = Number(await job.getAttribute('data-job'));
  // The card still describes the probe after the job's state events.
  assert.match(await card(F407).textContent(), /STM32F40[\s\S]*1 MiB/);
  await shot('probes-after-flash');
  const seen = await page.evaluate(() => window.seenPercent);
  assert.ok(seen.some((s) => Number(s.id) === jobId), JSON.stringify(seen));
  assert.equal(seen.at(-1).v, 100);
  // What the browser showed is what the daemon did.
  const done = await farm.api(`/api/v1/jobs/${jobId}`);
  assert.equal(done.state, 'succeeded');
  assert.equal(done.probe, F407);
  assert.equal(done.spec.erase, 'sectors');
  assert.equal(done.spec.verify, true);
});

test('an image dropped on a chip group targets every idle probe of that chip', async () => {
  const group = page.locator('.group[data-group="chip:STM32F405/407/415/417"]');
  await group.waitFor();
  await dropFile('.group[data-group="chip:STM32F405/407/415/417"]', 'demo_stm32f407vg.elf', readFileSync(elfPath));
  await page.locator('#flash-dialog .upload-status .ok', { hasText: 'already stored' }).waitFor();
  assert.deepEqual(await page.locator('#flash-dialog .targets .tag').allTextContents(), [F407]);
  await page.locator('#flash-dialog button', { hasText: 'Cancel' }).click();
  await page.locator('#flash-dialog').waitFor({ state: 'hidden' });
});

test('the jobs view lists the job with a chart of its phases', async () => {
  await page.keyboard.press('2');
  const row = page.locator(`#view-jobs tr[data-job="${jobId}"]`);
  await row.locator('.badge', { hasText: 'succeeded' }).waitFor();
  const phases = await page.locator(`#view-jobs svg.phase-chart g[data-job="${jobId}"] rect[data-phase]`).evaluateAll((rs) => rs.map((r) => r.dataset.phase));
  const { result } = await farm.api(`/api/v1/jobs/${jobId}`);
  assert.deepEqual(phases, Object.keys(result.durations));
  assert.ok(phases.length > 0);
  await shot('jobs');
});

test('the audit view shows the job\'s entry and exports it as CSV', async () => {
  await page.keyboard.press('3');
  const row = page.locator(`#view-audit tr[data-job="${jobId}"]`);
  await row.waitFor();
  assert.equal(await row.getAttribute('data-result'), 'succeeded');
  assert.match(await row.textContent(), new RegExp(F407));
  // Filtering on another result hides it.
  await page.locator('#view-audit select[name=result]').selectOption('failed');
  await page.locator('#view-audit button[type=submit]').click();
  await row.waitFor({ state: 'detached' });
  await page.locator('#view-audit select[name=result]').selectOption('');
  await page.locator('#view-audit button[type=submit]').click();
  await row.waitFor();
  await shot('audit');
  const [download] = await Promise.all([page.waitForEvent('download'), page.locator('#audit-csv').click()]);
  const csv = readFileSync(await download.path(), 'utf8');
  assert.match(download.suggestedFilename(), /\.csv$/);
  const lines = csv.trim().split(/\r?\n/);
  assert.ok(lines.length >= 2, csv);
  assert.ok(lines.slice(1).some((l) => l.includes(F407) && l.includes('succeeded')), csv);
});

test('the console answers `halt` then `reg` with the core registers', async () => {
  await page.keyboard.press('4');
  await page.locator('#console-probe').selectOption(F407);
  await page.locator('#console-connect').click();
  const input = page.locator('#console-input');
  await page.waitForFunction(() => !document.getElementById('console-input').disabled, null, { timeout: T });
  const out = page.locator('#console-out');
  // The registers of a running core cannot be read (OpenOCD's rule too): halt it first.
  await input.fill('halt');
  await input.press('Enter');
  await out.locator('.cmd', { hasText: 'halt' }).waitFor();
  await out.locator('.out', { hasText: /halted/i }).waitFor();
  await input.fill('reg');
  await input.press('Enter');
  const regs = out.locator('.out', { hasText: /\br0\b/ });
  await regs.waitFor().catch(async (e) => {
    throw new Error(`${e.message}\nconsole shows:\n${await out.textContent()}`);
  });
  assert.match(await regs.textContent(), /\br0\b[\s\S]*\bsp\b[\s\S]*\bpc\b/);
  await shot('console');
  // While it is open the daemon shows the probe held; leaving the view ends the session, so
  // the probe takes jobs again.
  assert.equal((await farm.api(`/api/v1/probes/${F407}`)).session?.kind, 'console');
  await input.blur();
  await page.keyboard.press('1');
  await card(F407).waitFor();
  await until('the console session to end', 10000, async () => !(await farm.api(`/api/v1/probes/${F407}`)).session);
});

test('an unplugged probe goes offline on its card', async () => {
  await farm.ctl('unplug', F103);
  await card(F103).locator('.probe-state', { hasText: 'offline' }).waitFor();
  assert.equal(await card(F103).getAttribute('class'), 'card offline');
  assert.equal(await card(F103).locator('.flash-btn').count(), 0);
  await shot('probes-unplugged');
});

test('a viewer sees the farm but gets no flash or console actions', async () => {
  const { token } = await farm.api('/api/v1/tokens', { method: 'POST', body: { name: 'web-viewer', role: 'viewer' } });
  const viewer = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  viewer.setDefaultTimeout(T);
  await viewer.goto(farm.url);
  await viewer.locator('#token').fill(token);
  await viewer.locator('#login-form button[type=submit]').click();
  await viewer.locator(`.card[data-serial="${F407}"]`).waitFor();
  await viewer.locator('#who', { hasText: 'viewer' }).waitFor();
  assert.equal(await viewer.locator('.flash-btn').count(), 0);
  assert.equal(await viewer.locator('.groups').count(), 0);
  await viewer.keyboard.press('4');
  assert.ok(await viewer.locator('#console-connect').isDisabled());
  await viewer.screenshot({ path: join(outDir, 'viewer.png'), fullPage: true });
  await viewer.context().close();
});
