// The audit log: one row per finished job (and per console command or GDB session that
// changed a target), filtered on the daemon, paged, and exported as CSV with the same filters.
import { h, clear, bytes, seconds, when, shortSha } from './util.js';
import { api } from './api.js';

let root, body, count, form;
let offset = 0;
const LIMIT = 100;

function field(name, label, input) {
  input.name = name;
  return h('label', label, ' ', input);
}

export function initAudit(el) {
  root = el;
  form = h('form.filters', { onsubmit: (e) => { e.preventDefault(); offset = 0; loadAudit(); } },
    field('probe', 'probe', h('input', { type: 'search', placeholder: 'serial', size: 14 })),
    field('result', 'result', h('select', ['', 'succeeded', 'failed', 'cancelled', 'interrupted'].map((s) => h('option', { value: s }, s || 'any')))),
    field('who', 'who', h('input', { type: 'search', placeholder: 'token name', size: 10 })),
    field('image', 'image', h('input', { type: 'search', placeholder: 'sha256', size: 14 })),
    field('target_uid', 'target UID', h('input', { type: 'search', size: 14 })),
    field('since', 'since', h('input', { type: 'datetime-local' })),
    field('until', 'until', h('input', { type: 'datetime-local' })),
    h('button.primary', { type: 'submit' }, 'Filter'),
    h('button#audit-csv', { type: 'button', onclick: exportCsv }, 'Export CSV'));
  count = h('span.count');
  body = h('div');
  clear(root, form, h('div.toolbar', count,
    h('button.small', { type: 'button', onclick: () => { offset = Math.max(0, offset - LIMIT); loadAudit(); } }, '← newer'),
    h('button.small', { type: 'button', onclick: () => { offset += LIMIT; loadAudit(); } }, 'older →')), body);
}

function query(extra = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of new FormData(form)) {
    if (!v) continue;
    // The daemon takes milliseconds since the epoch; the inputs are local time.
    if (k === 'since' || k === 'until') q.set(k, String(new Date(v).getTime() + (k === 'until' ? 59999 : 0)));
    else q.set(k, v);
  }
  for (const [k, v] of Object.entries(extra)) q.set(k, v);
  return q;
}

async function exportCsv() {
  try {
    // A plain link cannot carry the bearer token, so the CSV is fetched and handed to the
    // browser as a download.
    const text = await api(`/api/v1/audit?${query({ format: 'csv', limit: 10000 })}`);
    const url = URL.createObjectURL(new Blob([text], { type: 'text/csv' }));
    const a = h('a', { href: url, download: `probefarm-audit-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '')}.csv` });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  } catch (e) {
    clear(body, h('div.error', { role: 'alert' }, e.message));
  }
}

function row(r) {
  const took = r.durations ? Object.values(r.durations).reduce((a, b) => a + b, 0) : null;
  return h('tr', { dataset: { job: r.job_id ?? '', result: r.result || '' } },
    h('td', when(r.at)),
    h('td.num', r.job_id === null || r.job_id === undefined ? '–' : `#${r.job_id}`),
    h('td', r.who || '–'),
    h('td.mono', r.probe || '–'),
    h('td', r.chip || '–'),
    h('td.mono', r.target_uid || '–'),
    h('td', r.operation || '–'),
    h('td.mono', { title: r.image_sha256 || '' }, shortSha(r.image_sha256)),
    h('td', r.result ? h(`span.badge.${r.result}`, r.result) : '–'),
    h('td.num', r.bytes_programmed ? bytes(r.bytes_programmed) : '–'),
    h('td.num', took === null ? '–' : seconds(took)),
    h('td.wide', r.error ? h('span.err', r.error) : r.detail ? h('span.mono.detail', r.detail) : ''));
}

export async function loadAudit() {
  if (!root) return;
  try {
    const res = await api(`/api/v1/audit?${query({ limit: LIMIT, offset })}`);
    clear(count, res.total ? `rows ${res.offset + 1}–${res.offset + res.rows.length} of ${res.total}` : 'no rows');
    clear(body, h('table.grid.audit',
      h('thead', h('tr', ['at', 'job', 'who', 'probe', 'chip', 'target UID', 'operation', 'image', 'result', 'programmed', 'took', 'error / detail'].map((c) => h('th', c)))),
      h('tbody', res.rows.map(row))));
  } catch (e) {
    clear(body, h('div.error', { role: 'alert' }, `${e.message}${e.hint ? ` (${e.hint})` : ''}`));
  }
}
