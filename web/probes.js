// The probe cards and the group drop targets ("all idle STM32F405/407/415/417", a label).
// An image dropped on either (or chosen with the card's Flash button) opens the flash dialog.
import { h, clear, bytes, rate } from './util.js';
import { state, canAct } from './store.js';
import { openFlash } from './flash.js';
import { openProbeEdit } from './probeedit.js';

let root;
let openConsole = () => {};

export function initProbes(el, { onConsole }) {
  root = el;
  openConsole = onConsole;
}

function sortedProbes() {
  // Online first, then by name: an unplugged probe stays visible (its history matters) but
  // out of the way.
  return [...state.probes.values()].sort((a, b) =>
    (a.state === 'offline') - (b.state === 'offline') ||
    (a.name || a.serial).localeCompare(b.name || b.serial));
}

// Groups of probes a drop can target: every chip line and every label, with the probes that
// are idle now (a group drop queues one job per idle member).
export function groups() {
  const out = new Map();
  for (const p of state.probes.values()) {
    const keys = [];
    if (p.target && p.target.chip) keys.push(['chip', p.target.chip]);
    for (const l of p.labels || []) keys.push(['label', l]);
    for (const [kind, value] of keys) {
      const id = `${kind}:${value}`;
      if (!out.has(id)) out.set(id, { id, kind, value, members: [], idle: [] });
      const g = out.get(id);
      g.members.push(p);
      if (p.state === 'idle' && !p.session) g.idle.push(p);
    }
  }
  return [...out.values()].sort((a, b) => a.id.localeCompare(b.id));
}

function dropTarget(el, targets, label) {
  if (!canAct()) return el;
  el.addEventListener('dragover', (e) => {
    if (!e.dataTransfer.types.includes('Files')) return;
    e.preventDefault();
    e.dataTransfer.dropEffect = 'copy';
    el.classList.add('drop-hover');
  });
  el.addEventListener('dragleave', () => el.classList.remove('drop-hover'));
  el.addEventListener('drop', (e) => {
    e.preventDefault();
    el.classList.remove('drop-hover');
    const file = e.dataTransfer.files[0];
    if (file) openFlash(file, targets(), label);
  });
  return el;
}

function pickFile(targets, label) {
  const input = h('input', { type: 'file', accept: '.elf,.hex,.ihex,.srec,.s19,.s28,.s37,.bin' });
  input.addEventListener('change', () => {
    if (input.files[0]) openFlash(input.files[0], targets(), label);
  });
  input.click();
}

export function jobLine(job) {
  if (!job) return h('div.job.none', 'no job yet');
  const p = job.progress || {};
  const finished = !(job.state === 'queued' || job.state === 'running');
  const percent = job.state === 'succeeded' ? 100 : Math.max(0, Math.min(100, p.percent || 0));
  const r = state.rates.get(job.id);
  const bar = h('div.bar', {
    role: 'progressbar', 'aria-valuemin': 0, 'aria-valuemax': 100, 'aria-valuenow': percent,
    'aria-label': `job ${job.id} progress`, class: `job-${job.state}`,
  }, h('span'));
  bar.firstChild.style.width = `${percent}%`;
  return h('div.job', { dataset: { job: job.id, state: job.state } },
    h('div.job-head',
      h('span.job-id', `#${job.id}`), ' ',
      h('span.job-op', job.spec ? job.spec.operation || 'flash' : ''), ' ',
      h(`span.badge.${job.state}`, { class: 'job-state' }, job.state),
      h('span.job-phase', finished ? (job.error ? job.error.message : '') : p.phase || ''),
      h('span.job-rate', finished ? '' : rate(r && r.rate)),
      h('span.job-pct', `${percent} %`)),
    bar);
}

function card(p) {
  const t = p.target;
  const job = state.jobs.get(p.current_job ?? state.lastJob.get(p.serial));
  const title = p.name || p.serial;
  const online = p.state !== 'offline';
  const el = h(`article.card.${p.state}`, {
    dataset: { serial: p.serial }, tabindex: 0, 'aria-label': `probe ${title}`,
  },
  h('header',
    h('span.name', { title: p.serial }, title),
    h(`span.badge.${p.state}`, { class: 'probe-state' }, p.session ? `${p.state} · ${p.session.kind}` : p.state)),
  h('dl',
    p.name ? [h('dt', 'serial'), h('dd.mono', p.serial)] : null,
    h('dt', 'probe'), h('dd', p.driver, p.firmware ? h('span.dim', ` ${p.firmware}`) : null),
    h('dt', 'chip'), h('dd', t ? t.chip : p.target_error ? h('span.err', p.target_error.message) : '–'),
    h('dt', 'flash'), h('dd', t ? bytes(t.flash_size) : '–'),
    (p.labels || []).length ? [h('dt', 'labels'), h('dd', p.labels.map((l) => h('span.tag', l)))] : null,
    p.queued_jobs ? [h('dt', 'queued'), h('dd', String(p.queued_jobs))] : null,
    p.session ? [h('dt', 'held by'), h('dd', `${p.session.kind}: ${p.session.who}`)] : null),
  jobLine(job),
  canAct() ? h('footer',
    online ? h('button.flash-btn', { type: 'button', onclick: () => pickFile(() => [p], title) }, 'Flash…') : null,
    online ? h('button', { type: 'button', onclick: () => openConsole(p.serial) }, 'Console') : null,
    // Name and labels can be set while it is unplugged too: they are kept by serial.
    h('button.edit-btn', { type: 'button', onclick: () => openProbeEdit(state.probes.get(p.serial)) }, 'Edit…'),
    online ? h('span.dim.drop-hint', 'or drop an image here') : null) : null);
  el.addEventListener('keydown', (e) => {
    if (e.target !== el || !canAct()) return;
    if (e.key === 'e') {
      e.preventDefault();  // or the key types an "e" into the dialog's name field
      openProbeEdit(state.probes.get(p.serial));
    }
    if (!online) return;
    if (e.key === 'f') pickFile(() => [p], title);
    if (e.key === 'c') openConsole(p.serial);
  });
  return online ? dropTarget(el, () => [state.probes.get(p.serial)], title) : el;
}

function groupChip(g) {
  const label = g.kind === 'chip' ? `all idle ${g.value}` : `label ${g.value}`;
  const el = h('div.group', { dataset: { group: g.id }, tabindex: 0, title: 'drop an image to flash every idle probe of this group' },
    h('span.group-name', label), ' ', h('span.dim', `${g.idle.length} idle / ${g.members.length}`));
  // Resolved at drop time: who is idle then is who gets a job.
  const idleNow = () => groups().find((x) => x.id === g.id)?.idle || [];
  return dropTarget(el, idleNow, g.kind === 'chip' ? `all idle ${g.value}` : `idle probes labelled ${g.value}`);
}

export function renderProbes() {
  const probes = sortedProbes();
  const online = probes.filter((p) => p.state !== 'offline').length;
  const focused = document.activeElement?.closest?.('[data-serial]')?.dataset.serial;
  clear(root,
    h('div.toolbar',
      h('span.count', `${probes.length} probes · ${online} online`),
      canAct() ? h('div.groups', groups().map(groupChip)) : null),
    probes.length ? h('div.cards', probes.map(card)) : h('p.empty', 'No probes. Plug one in, or start probefarmd with --simulate.'));
  // Re-rendering must not steal the keyboard focus from the card the operator is on.
  if (focused) root.querySelector(`[data-serial="${CSS.escape(focused)}"]`)?.focus();
}
