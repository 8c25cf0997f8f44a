// The job detail drawer: everything about one job an operator needs when it failed, or to
// prove what went onto a chip (full image sha256, options, result, production serial,
// phase timings, its audit rows). It re-renders from the store on every change, so a
// running job updates live; the shell (and its close button) is built once.
import { h, clear, bytes, seconds, when } from './util.js';
import { api } from './api.js';
import { state, isLive, putJob, changed } from './store.js';
import { jobLine } from './probes.js';

let panel, content, title;
let openId = null;
let lastState = null;        // the open job's state at the last render: refetch audit on finish
let audit = { id: null, rows: null, error: null };
const images = new Map();     // sha256 → Image, or null when the store does not know it
let onClose = () => {};

export function initJobDetail(container, { closed } = {}) {
  onClose = closed || onClose;
  title = h('h2#job-detail-title');
  content = h('div.drawer-body');
  panel = h('aside#job-detail.drawer', { hidden: true, role: 'region', 'aria-labelledby': 'job-detail-title' },
    h('header.drawer-head', title,
      h('button.small#job-detail-close', { type: 'button', 'aria-label': 'close job details', title: 'close (Esc)', onclick: closeJobDetail }, '✕')),
    content);
  container.append(panel);
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || openId === null || panel.closest('[hidden]') || document.querySelector('dialog[open]')) return;
    e.preventDefault();
    closeJobDetail();
  });
}

export function detailJobId() {
  return openId;
}

export async function openJobDetail(id) {
  openId = id;
  lastState = null;
  audit = { id, rows: null, error: null };
  panel.hidden = false;
  changed();
  // The list holds the latest 200; an older job, or one whose list entry is stale, is fetched.
  try {
    const job = await api(`/api/v1/jobs/${id}`);
    if (openId !== id) return;
    putJob(job);
    changed();
  } catch (e) {
    if (openId === id && !state.jobs.has(id)) clear(content, h('div.error', { role: 'alert' }, e.message));
  }
}

export function closeJobDetail() {
  if (openId === null) return;
  const id = openId;
  openId = null;
  panel.hidden = true;
  clear(content);
  changed();
  onClose(id);
}

// The job's audit rows (GET /api/v1/audit?job=ID). A finished job's row can trail its event
// by a moment, so an empty answer for a finished job is asked again a few times.
async function loadAudit(job, attempt = 0) {
  const id = job.id;
  const q = new URLSearchParams({ job: String(id), limit: '1000' });
  try {
    const res = await api(`/api/v1/audit?${q}`);
    if (openId !== id) return;
    const rows = res.rows;
    audit = { id, rows, error: null };
    if (!rows.length && !isLive(job) && attempt < 5) setTimeout(() => { if (openId === id) loadAudit(job, attempt + 1); }, 400);
  } catch (e) {
    if (openId !== id) return;
    audit = { id, rows: null, error: e.message };
  }
  changed();
}

async function loadImage(sha) {
  if (images.has(sha)) return;
  images.set(sha, undefined);  // asked once
  try {
    images.set(sha, await api(`/api/v1/images/${encodeURIComponent(sha)}`));
  } catch {
    images.set(sha, null);     // deleted since, or never stored
  }
  changed();
}

function duration(job) {
  if (!job.started_at) return null;
  const end = job.finished_at ? new Date(job.finished_at) : new Date();
  return (end - new Date(job.started_at)) / 1000;
}

const hex = (n) => `0x${Number(n).toString(16).padStart(8, '0')}`;
const yesNo = (b) => (b ? 'yes' : 'no');

// One dt/dd pair, or nothing when the value is absent.
function item(label, value, cls = '') {
  if (value === undefined || value === null || value === '') return null;
  return [h('dt', label), h(`dd${cls}`, { dataset: { field: label } }, value)];
}

function section(name, ...rows) {
  const items = rows.flat(Infinity).filter(Boolean);
  if (!items.length) return null;
  return h('section.detail-section', { dataset: { section: name } }, h('h3', name), h('dl.kv', items));
}

function imageValue(sha) {
  if (!sha) return null;
  const img = images.get(sha);
  return h('span',
    h('span.mono.sha.job-image', sha),
    img ? h('div.dim', `${img.name} · ${img.format.toUpperCase()} · ${bytes(img.data_bytes ?? img.size)}`) :
      img === null ? h('div.dim', 'not in the image store any more') : null);
}

// The options the job was submitted with: every spec field but the ones shown above.
function optionRows(spec) {
  const shown = new Set(['operation', 'image', 'probe']);
  const out = [];
  for (const [k, v] of Object.entries(spec || {})) {
    if (shown.has(k) || v === null || v === undefined) continue;
    let text;
    if (typeof v === 'boolean') text = yesNo(v);
    else if (k === 'address') text = hex(v);
    else if (k === 'size') text = bytes(v);
    else if (k === 'speed_khz') text = `${v} kHz`;
    else if (k === 'serial' && typeof v === 'object') text = `counter ${v.counter} at ${hex(v.address)}`;
    else if (typeof v === 'object') text = Object.entries(v).map(([a, b]) => `${a}=${b}`).join(' ');
    else text = String(v);
    out.push(item(k.replace(/_/g, ' '), text));
  }
  return out;
}

function probeValue(job) {
  if (job.probe) return job.probe;
  const sel = job.spec?.probe || {};
  const parts = [sel.serial, sel.chip && `chip ${sel.chip}`, sel.label && `label ${sel.label}`].filter(Boolean);
  return parts.length ? `${parts.join(', ')} (not assigned yet)` : null;
}

function resultRows(job) {
  const r = job.result || {};
  const final = !isLive(job);
  const anything = Object.entries(r).some(([k, v]) => k !== 'durations' && v !== null && v !== false && v !== 0);
  if (!final || (!anything && job.state !== 'succeeded')) return [];
  const ob = r.option_bytes;
  return [
    item('bytes programmed', r.bytes_programmed !== undefined ? `${bytes(r.bytes_programmed)} (${r.bytes_programmed} B)` : null),
    item('image bytes', r.image_bytes ? bytes(r.image_bytes) : null),
    item('sectors erased', r.sectors_erased ?? null),
    item('sectors skipped', r.sectors_skipped ?? null),
    item('sectors programmed', r.sectors_programmed ?? null),
    r.mass_erase ? item('mass erase', 'yes') : null,
    item('verified', r.verified === undefined ? null : h(`span.${r.verified ? 'ok' : 'dim'}`, yesNo(r.verified))),
    item('read', r.read_size ? `${bytes(r.read_size)} from ${hex(r.read_address ?? 0)}` : null),
    item('output image', r.output_image ? h('span.mono.sha', r.output_image) : null),
    ob ? item('option bytes', [`RDP ${ob.rdp_level}`, ob.changed ? ` · written (${ob.reload || 'reloaded'})` : '',
      ob.values ? h('div.mono', Object.entries(ob.values).map(([k, v]) => `${k}=${v}`).join(' ')) : null]) : null,
  ];
}

function phaseTable(job, colour) {
  const d = job.result?.durations;
  if (!d || !Object.keys(d).length) return null;
  const total = Object.values(d).reduce((a, b) => a + b, 0) || 1e-9;
  return h('section.detail-section', { dataset: { section: 'phases' } }, h('h3', 'Phases'),
    h('table.phases',
      h('tbody', Object.entries(d).map(([phase, s]) => {
        const sw = h('span.swatch');
        sw.style.background = colour(phase);
        const bar = h('span.phase-bar');
        bar.style.width = `${Math.max(1, (s / total) * 100)}%`;
        bar.style.background = colour(phase);
        return h('tr', { dataset: { phase } },
          h('td', sw, ' ', phase), h('td.num', seconds(s)), h('td.phase-cell', bar));
      }),
      h('tr.total', h('td', 'total'), h('td.num', seconds(total)), h('td')))));
}

function auditSection(job) {
  let inner;
  if (audit.error) inner = h('p.err', audit.error);
  else if (audit.rows === null) inner = h('p.dim', isLive(job) ? 'Written when the job finishes.' : 'Loading…');
  else if (!audit.rows.length) inner = h('p.dim', isLive(job) ? 'Written when the job finishes.' : 'No audit row for this job.');
  else {
    // Narrow enough for the drawer: the target UID is in the Job section; an error or a
    // session's detail takes a line of its own under its row.
    inner = h('table.grid.detail-audit',
      h('thead', h('tr', ['at', 'who', 'result', 'programmed'].map((c) => h('th', c)))),
      audit.rows.map((r) => h('tbody', { dataset: { auditRow: r.id, auditJob: r.job_id } },
        h('tr',
          h('td', when(r.at)),
          h('td', r.who || '–'),
          h('td', r.result ? h(`span.badge.${r.result}`, r.result) : '–'),
          h('td.num', r.bytes_programmed ? bytes(r.bytes_programmed) : '–')),
        r.error || r.detail ? h('tr.sub', h('td.wide', { colspan: 4 },
          r.error ? h('span.err', r.error) : h('span.mono.detail', r.detail))) : null)));
  }
  return h('section.detail-section', { dataset: { section: 'audit' } }, h('h3', 'Audit rows'), inner);
}

// Called by renderJobs (every store change while the jobs view shows).
export function renderJobDetail(colour = () => '#999') {
  if (openId === null) return;
  const job = state.jobs.get(openId);
  clear(title, `Job #${openId} `, job ? h(`span.badge.${job.state}.detail-state`, job.state) : null);
  if (!job) {
    if (!content.firstChild) clear(content, h('p.dim', 'Loading…'));
    return;
  }
  panel.dataset.job = job.id;
  panel.dataset.state = job.state;
  // Audit rows: asked when the panel opens and again when the job finishes.
  if (audit.id !== job.id || lastState === null || (isLive({ state: lastState }) && !isLive(job))) {
    audit = { id: job.id, rows: null, error: null };
    loadAudit(job);
  }
  lastState = job.state;
  const sha = job.spec?.image;
  if (sha && !images.has(sha)) loadImage(sha);
  const d = duration(job);
  const spec = job.spec || {};
  const e = job.error;
  clear(content,
    isLive(job) ? jobLine(job) : null,
    e ? h('div.error.job-error', { role: 'alert' },
      h('strong', e.category ? `${e.category}: ` : ''), h('span.job-error-message', e.message || ''),
      e.hint ? h('div.hint.job-error-hint', e.hint) : null) : null,
    job.cancel_requested && isLive(job) ? h('p.dim', 'Cancellation requested.') : null,
    section('Job',
      item('operation', spec.operation || 'flash'),
      item('probe', probeValue(job), '.mono'),
      item('chip', job.chip || null),
      item('target UID', job.target_uid || null, '.mono'),
      item('image', imageValue(sha)),
      item('submitted by', job.submitted_by || null),
      item('created', job.created_at ? when(job.created_at) : null),
      item('started', job.started_at ? when(job.started_at) : null),
      item('finished', job.finished_at ? when(job.finished_at) : null),
      item(isLive(job) ? 'running for' : 'took', d === null ? null : seconds(d)),
      item('idempotency key', job.idempotency_key || null, '.mono')),
    section('Options', optionRows(spec)),
    section('Result', resultRows(job),
      item('production serial', job.serial_value === null || job.serial_value === undefined ? null :
        `${job.serial_value}${spec.serial ? ` (counter ${spec.serial.counter})` : ''}`, '.mono')),
    phaseTable(job, colour),
    auditSection(job));
}
