// The dashboard in a real browser (Debian's chromium, headless, via playwright-core) against
// probefarmd on simulated boards: static serving, login, a bad and a good upload, a flash to
// 100 %, the jobs view with its phase chart, the job detail panel (a succeeded job, and a
// failed one followed live), the audit entry and its CSV export, editing a probe's name and
// labels, `reg` in the console, an unplugged probe going offline, and what a viewer token
// does not get.
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

const detail = () => page.locator('#job-detail');

test('a job row opens its detail panel: full sha256, state, options, result, phases, audit row', async () => {
  const done = await farm.api(`/api/v1/jobs/${jobId}`);
  assert.match(done.spec.image, /^[0-9a-f]{64}$/);
  assert.ok(done.result.bytes_programmed > 0, JSON.stringify(done.result));
  await page.keyboard.press('2');
  const row = page.locator(`#view-jobs tr[data-job="${jobId}"]`);
  await row.click();
  await detail().waitFor({ state: 'visible' });
  await page.locator(`#job-detail[data-job="${jobId}"] .detail-state`, { hasText: 'succeeded' }).waitFor();
  // The full sha256 (the table shows 12 digits), with the image's name from the image store.
  assert.equal((await detail().locator('.job-image').textContent()).trim(), done.spec.image);
  await detail().locator('[data-field="image"]', { hasText: 'demo_stm32f407vg.elf' }).waitFor();
  assert.equal(await detail().locator('[data-field="probe"]').textContent(), F407);
  assert.equal(await detail().locator('[data-field="submitted by"]').textContent(), done.submitted_by);
  assert.equal(await detail().locator('[data-field="erase"]').textContent(), 'sectors');
  assert.equal(await detail().locator('[data-field="verify"]').textContent(), 'yes');
  assert.match(await detail().locator('[data-field="bytes programmed"]').textContent(), new RegExp(`\\(${done.result.bytes_programmed} B\\)`));
  assert.equal(await detail().locator('[data-field="verified"]').textContent(), done.result.verified ? 'yes' : 'no');
  assert.deepEqual(await detail().locator('tr[data-phase]').evaluateAll((rs) => rs.map((r) => r.dataset.phase)), Object.keys(done.result.durations));
  // Its audit row (the audit API has no job filter: the panel picks the job's own rows).
  const auditRow = detail().locator(`[data-audit-row][data-audit-job="${jobId}"]`);
  await auditRow.waitFor();
  assert.match(await auditRow.textContent(), /succeeded/);
  assert.equal(await detail().locator('[data-audit-row]').count(),
    (await farm.api(`/api/v1/audit?probe=${F407}&limit=1000`)).rows.filter((r) => r.job_id === jobId).length);
  assert.ok(await row.evaluate((el) => el.classList.contains('selected')));
  // A taller window for the picture, so the drawer shows down to its audit rows.
  await page.setViewportSize({ width: 1280, height: 1100 });
  await shot('job-detail');
  await page.setViewportSize({ width: 1280, height: 800 });
  // Escape closes it and gives the focus back to the row; Enter on the row opens it again.
  await page.keyboard.press('Escape');
  await detail().waitFor({ state: 'hidden' });
  assert.equal(await page.evaluate(() => document.activeElement?.dataset.job), String(jobId));
  await page.keyboard.press('Enter');
  await page.locator(`#job-detail[data-job="${jobId}"]`).waitFor({ state: 'visible' });
  await page.locator('#job-detail-close').click();
  await detail().waitFor({ state: 'hidden' });
});

test('the panel follows a job live: queued behind a session, then failed with its error and hint', async () => {
  // An image that is not what the chip holds: 256 bytes of 0x5a where the demo firmware is.
  const up = await fetch(`${farm.url}/api/v1/images?name=not-the-firmware.bin&format=bin&address=0x08000000`, {
    method: 'POST', headers: { Authorization: `Bearer ${farm.adminToken}`, 'Content-Type': 'application/octet-stream' },
    body: new Uint8Array(256).fill(0x5a),
  });
  assert.ok(up.ok, await up.clone().text());
  const image = await up.json();
  // A console session holds the probe, so the verify job waits queued while the panel shows it.
  await page.evaluate((serial) => new Promise((resolve, reject) => {
    const u = new URL(`/api/v1/probes/${serial}/console`, location.href);
    u.protocol = 'ws:';
    u.searchParams.set('access_token', sessionStorage.getItem('probefarm.token'));
    window.holder = new WebSocket(u);
    window.holder.onmessage = (m) => (JSON.parse(m.data).type === 'hello' ? resolve() : reject(new Error(m.data)));
    window.holder.onerror = () => reject(new Error('console socket failed'));
  }), F407);
  const job = await farm.api('/api/v1/jobs', { method: 'POST', body: { operation: 'verify', probe: { serial: F407 }, image: image.sha256 } });
  const row = page.locator(`#view-jobs tr[data-job="${job.id}"]`);
  await row.click();
  await page.locator(`#job-detail[data-job="${job.id}"] .detail-state`, { hasText: 'queued' }).waitFor();
  assert.equal(await detail().locator('[data-field="operation"]').textContent(), 'verify');
  assert.equal(await detail().locator('.job-error').count(), 0);
  await shot('job-detail-queued');
  // The session ends, the job runs and fails: the open panel updates without a click.
  await page.evaluate(() => window.holder.close());
  await page.locator(`#job-detail[data-job="${job.id}"] .detail-state`, { hasText: 'failed' }).waitFor({ timeout: 60000 });
  const failed = await until('the job to fail', 30000, async () => {
    const j = await farm.api(`/api/v1/jobs/${job.id}`);
    return j.state === 'failed' ? j : undefined;
  });
  assert.ok(failed.error.message && failed.error.hint, JSON.stringify(failed.error));
  await detail().locator('.job-error-message', { hasText: failed.error.message }).waitFor();
  assert.equal(await detail().locator('.job-error-message').textContent(), failed.error.message);
  assert.equal(await detail().locator('.job-error-hint').textContent(), failed.error.hint);
  assert.match(await detail().locator('.job-error').textContent(), new RegExp(`^${failed.error.category}: `));
  assert.match(await detail().locator('[data-field="image"]').textContent(), /not-the-firmware\.bin/);
  const auditRow = detail().locator(`[data-audit-row][data-audit-job="${job.id}"]`);
  await auditRow.waitFor();
  assert.match(await auditRow.textContent(), /failed/);
  await page.setViewportSize({ width: 1280, height: 1100 });
  await shot('job-detail-failed');
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.keyboard.press('Escape');
  await detail().waitFor({ state: 'hidden' });
  await page.keyboard.press('1');
});

test('an operator edits a probe\'s name and labels on its card', async () => {
  const { token } = await farm.api('/api/v1/tokens', { method: 'POST', body: { name: 'web-operator', role: 'operator' } });
  const op = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  op.setDefaultTimeout(T);
  try {
    await op.goto(farm.url);
    await op.locator('#token').fill(token);
    await op.locator('#login-form button[type=submit]').click();
    const c = op.locator(`.card[data-serial="${F407}"]`);
    await c.waitFor();
    // The card carries the failed verify's long message on its job line: cut, not widening it.
    await c.locator('.job-state', { hasText: 'failed' }).waitFor();
    const widths = await c.evaluate((el) => ({ card: el.clientWidth, content: el.scrollWidth, jobHead: el.querySelector('.job-head').scrollWidth }));
    assert.ok(widths.content <= widths.card + 1 && widths.jobHead <= widths.card, `the card overflows its grid cell: ${JSON.stringify(widths)}`);
    await c.locator('.edit-btn').click();
    const dlg = op.locator('#probe-dialog');
    await dlg.waitFor({ state: 'visible' });
    // A label given twice is the daemon's to refuse: its message is shown, nothing is saved.
    await op.locator('#probe-name').fill('bench left');
    await op.locator('#probe-labels').fill('line-a, line-a');
    await op.locator('#probe-save').click();
    await dlg.locator('.error', { hasText: "'line-a' is given twice" }).waitFor();
    assert.deepEqual((await farm.api(`/api/v1/probes/${F407}`)).labels ?? [], []);
    await op.locator('#probe-labels').fill('line-a, rack3 fixture');
    await op.locator('#probe-save').click();
    await dlg.waitFor({ state: 'hidden' });
    await c.locator('.name', { hasText: 'bench left' }).waitFor();
    assert.deepEqual(await c.locator('.tag').allTextContents(), ['line-a', 'rack3', 'fixture']);
    // The labels become drop groups.
    await op.locator('.group[data-group="label:rack3"]').waitFor();
    const { probes } = await farm.api('/api/v1/probes');
    const p = probes.find((x) => x.serial === F407);
    assert.equal(p.name, 'bench left');
    assert.deepEqual(p.labels, ['line-a', 'rack3', 'fixture']);
    await op.screenshot({ path: join(outDir, 'probe-edited.png'), fullPage: true });
  } finally {
    await op.context().close();
  }
  // The other open tab learns the new name from the probe.updated event, without a reload.
  await page.keyboard.press('1');
  await card(F407).locator('.name', { hasText: 'bench left' }).waitFor();
  // Put it back (the keyboard path: `e` on the focused card), so later steps see the serial.
  await card(F407).focus();
  await page.keyboard.press('e');
  await page.locator('#probe-dialog').waitFor({ state: 'visible' });
  assert.equal(await page.locator('#probe-name').inputValue(), 'bench left');
  await page.locator('#probe-name').fill('');
  await page.locator('#probe-labels').fill('');
  await page.locator('#probe-save').click();
  await page.locator('#probe-dialog').waitFor({ state: 'hidden' });
  await card(F407).locator('.name', { hasText: F407 }).waitFor();
  assert.deepEqual((await farm.api(`/api/v1/probes/${F407}`)).labels ?? [], []);
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
  assert.equal(await viewer.locator('.edit-btn').count(), 0);
  assert.equal(await viewer.locator('#probe-dialog[open]').count(), 0);
  await viewer.locator(`.card[data-serial="${F407}"]`).focus();
  await viewer.keyboard.press('e');
  assert.equal(await viewer.locator('#probe-dialog[open]').count(), 0);
  assert.equal(await viewer.locator('.groups').count(), 0);
  await viewer.keyboard.press('4');
  assert.ok(await viewer.locator('#console-connect').isDisabled());
  await viewer.screenshot({ path: join(outDir, 'viewer.png'), fullPage: true });
  await viewer.context().close();
});
