// The live jobs view: every job the daemon knows (newest first), updated from the event
// stream, with a chart of each finished job's phase durations (inline SVG: no library, no
// canvas, so it prints and scales).
import { h, clear, seconds, when, shortSha } from './util.js';
import { api } from './api.js';
import { state, canAct, isLive, putJob, changed } from './store.js';
import { jobLine } from './probes.js';
import { initJobDetail, openJobDetail, renderJobDetail, detailJobId } from './jobdetail.js';

let root;
const filter = { state: '', probe: '' };

// One colour per phase name, stable across renders and jobs. Okabe–Ito, readable by
// colour-blind operators.
const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#999999'];
const phaseColour = new Map();
export function colour(phase) {
  if (!phaseColour.has(phase)) phaseColour.set(phase, PALETTE[phaseColour.size % PALETTE.length]);
  return phaseColour.get(phase);
}

let count, body;

// The toolbar is built once: re-rendering on every event must not eat what is being typed.
export function initJobs(el) {
  root = el;
  const stateSel = h('select#jobs-state', { 'aria-label': 'job state', onchange: (e) => { filter.state = e.target.value; renderJobs(); } },
    ['', 'queued', 'running', 'succeeded', 'failed', 'cancelled', 'interrupted'].map((s) =>
      h('option', { value: s }, s || 'any state')));
  const probeIn = h('input#jobs-probe', { type: 'search', placeholder: 'probe serial', 'aria-label': 'probe serial' });
  probeIn.addEventListener('input', () => { filter.probe = probeIn.value.trim(); renderJobs(); });
  count = h('span.count');
  body = h('div');
  clear(root, h('div.toolbar', count, stateSel, probeIn), body);
  // Closing the drawer gives the keyboard back to the job's row.
  initJobDetail(root, { closed: (id) => body.querySelector(`tr[data-job="${id}"]`)?.focus() });
}

function duration(job) {
  if (!job.started_at) return null;
  const end = job.finished_at ? new Date(job.finished_at) : new Date();
  return (end - new Date(job.started_at)) / 1000;
}

async function cancel(job) {
  try {
    putJob(await api(`/api/v1/jobs/${job.id}/cancel`, { method: 'POST' }));
  } catch (e) {
    alert(`Cannot cancel job #${job.id}: ${e.message}`);
  }
  changed();
}

function visibleJobs() {
  return [...state.jobs.values()]
    .filter((j) => (!filter.state || j.state === filter.state) &&
      (!filter.probe || (j.probe || j.spec?.probe?.serial || '').toLowerCase().includes(filter.probe.toLowerCase())))
    .sort((a, b) => b.id - a.id);
}

// Stacked horizontal bars, one row per job, one segment per phase, all on one time scale.
export function phaseChart(jobs) {
  const rows = jobs.filter((j) => j.result && j.result.durations && Object.keys(j.result.durations).length).slice(0, 40);
  if (!rows.length) return h('p.empty', 'No finished job with phase timings yet.');
  const total = (j) => Object.values(j.result.durations).reduce((a, b) => a + b, 0);
  const max = Math.max(...rows.map(total), 1e-6);
  const labelW = 60, barW = 560, rowH = 18, gap = 4, axisH = 18;
  const height = rows.length * (rowH + gap) + axisH;
  const svg = h('svg.phase-chart', {
    viewBox: `0 0 ${labelW + barW + 90} ${height}`, width: labelW + barW + 90, height,
    role: 'img', 'aria-label': 'phase durations per job',
  });
  rows.forEach((j, i) => {
    const y = i * (rowH + gap);
    const g = h('g', { 'data-job': j.id });
    g.append(h('text', { x: 0, y: y + rowH - 5, class: 'chart-label' }, `#${j.id}`));
    let x = labelW;
    for (const [phase, s] of Object.entries(j.result.durations)) {
      const w = Math.max((s / max) * barW, s > 0 ? 1 : 0);
      g.append(h('rect', { x, y, width: w, height: rowH, fill: colour(phase), 'data-phase': phase },
        h('title', `#${j.id} ${phase}: ${seconds(s)}`)));
      x += w;
    }
    g.append(h('text', { x: x + 6, y: y + rowH - 5, class: 'chart-label' }, seconds(total(j))));
    svg.append(g);
  });
  // Time axis: 0 and the longest job.
  const ay = rows.length * (rowH + gap) + 12;
  svg.append(h('line', { x1: labelW, x2: labelW + barW, y1: ay - 10, y2: ay - 10, class: 'axis' }));
  svg.append(h('text', { x: labelW, y: ay + 4, class: 'chart-label' }, '0'));
  svg.append(h('text', { x: labelW + barW, y: ay + 4, class: 'chart-label', 'text-anchor': 'end' }, seconds(max)));
  const phases = [...new Set(rows.flatMap((j) => Object.keys(j.result.durations)))];
  return h('figure.chart',
    h('figcaption', 'Phase durations ', phases.map((p) => {
      const sw = h('span.swatch');
      sw.style.background = colour(p);
      return h('span.legend', sw, p);
    })),
    svg);
}

function row(j) {
  const d = duration(j);
  const open = (e) => {
    // The row's own controls (Cancel) keep their meaning.
    if (e.target.closest('button, a, input, select')) return;
    if (e.type === 'keydown' && e.key !== 'Enter') return;
    e.preventDefault();
    openJobDetail(j.id);
  };
  return h('tr.job-row', {
    dataset: { job: j.id, state: j.state }, tabindex: 0, title: 'show the job\'s details',
    'aria-label': `job ${j.id}, ${j.state}: show details`, 'aria-controls': 'job-detail',
    class: detailJobId() === j.id ? 'selected' : null, onclick: open, onkeydown: open,
  },
    h('td.num', `#${j.id}`),
    h('td', h(`span.badge.${j.state}`, j.state)),
    h('td', j.spec?.operation || 'flash'),
    h('td.mono', j.probe || j.spec?.probe?.serial || [j.spec?.probe?.chip, j.spec?.probe?.label].filter(Boolean).join(' ')),
    h('td', j.chip || '–'),
    h('td.mono', { title: j.spec?.image || '' }, shortSha(j.spec?.image)),
    h('td', j.submitted_by || '–'),
    h('td', when(j.created_at)),
    h('td.num', d === null ? '–' : seconds(d)),
    h('td.wide', isLive(j) ? jobLine(j) : j.error ? h('span.err', { title: j.error.hint || '' }, j.error.message) : ''),
    h('td', canAct() && isLive(j) ? h('button.small', { type: 'button', onclick: () => cancel(j) }, 'Cancel') : null));
}

export function renderJobs() {
  const jobs = visibleJobs();
  // Re-rendering must not steal the keyboard focus from the row the operator is on.
  const focused = document.activeElement?.closest?.('#view-jobs tr[data-job]')?.dataset.job;
  const live = jobs.filter(isLive).length;
  clear(count, `${jobs.length} jobs · ${live} live`);
  clear(body,
    phaseChart(jobs),
    h('table.grid.jobs',
      h('thead', h('tr', ['job', 'state', 'operation', 'probe', 'chip', 'image', 'by', 'created', 'took', 'progress / error', ''].map((c) => h('th', c)))),
      h('tbody', jobs.slice(0, 200).map(row))));
  if (focused) body.querySelector(`tr[data-job="${CSS.escape(focused)}"]`)?.focus();
  renderJobDetail(colour);
}

export async function loadJobs() {
  const { jobs } = await api('/api/v1/jobs?limit=200');
  for (const j of jobs.reverse()) putJob(j);
  changed();
}
