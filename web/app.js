// probefarm dashboard: login, views, the event stream, keyboard shortcuts. Plain ES modules
// served as they are: no build step, nothing from a CDN (production-line hosts are often
// offline).
import { h, clear, typing } from './util.js';
import { api, token, setToken, EventStream } from './api.js';
import { state, onChange, changed, putProbe, putJob, progress } from './store.js';
import { initProbes, renderProbes } from './probes.js';
import { initJobs, renderJobs, loadJobs } from './jobs.js';
import { initAudit, loadAudit } from './audit.js';
import { initConsole, renderConsole, connectConsole, disconnectConsole } from './console.js';

const VIEWS = ['probes', 'jobs', 'audit', 'console'];
const $ = (id) => document.getElementById(id);
let view = 'probes';
let events = null;

function showView(name, arg) {
  if (!VIEWS.includes(name)) name = 'probes';
  if (view === 'console' && name !== 'console') disconnectConsole();
  view = name;
  for (const v of VIEWS) {
    $(`view-${v}`).hidden = v !== name;
    const tab = document.querySelector(`nav a[data-view="${v}"]`);
    tab.classList.toggle('active', v === name);
    if (v === name) tab.setAttribute('aria-current', 'page');
    else tab.removeAttribute('aria-current');
  }
  if (location.hash !== `#${name}`) history.replaceState(null, '', `#${name}`);
  if (name === 'audit') loadAudit();
  if (name === 'console' && arg) connectConsole(arg);
  render();
}

function render() {
  clear($('link'), state.link);
  $('link').className = `link ${state.link}`;
  if (view === 'probes') renderProbes();
  else if (view === 'jobs') renderJobs();
  else if (view === 'console') renderConsole();
}

function onEvent(e) {
  const d = e.data;
  if (!d) return;
  if (e.type.startsWith('probe.')) {
    putProbe(d);
    // A state change can come with a session or a queue change the event does not carry.
    if (e.type === 'probe.state') refreshProbe(d.serial);
  }
  else if (e.type === 'job.progress') progress(d);
  else if (e.type.startsWith('job.')) {
    putJob(d);
    // The audit row is written when the job finishes.
    if (e.type === 'job.finished' && view === 'audit') loadAudit();
  }
  changed();
}

const refreshing = new Map();
function refreshProbe(serial) {
  if (refreshing.has(serial)) return;
  // At most one fetch per probe per 250 ms, however many events arrive.
  refreshing.set(serial, setTimeout(async () => {
    refreshing.delete(serial);
    try {
      putProbe(await api(`/api/v1/probes/${encodeURIComponent(serial)}`));
      changed();
    } catch { /* gone or offline: the next event says so */ }
  }, 250));
}

async function reload() {
  const [{ probes }] = await Promise.all([api('/api/v1/probes'), loadJobs()]);
  state.probes.clear();
  for (const p of probes) putProbe(p);
  changed();
}

async function login(value) {
  setToken(value);
  try {
    const status = await api('/api/v1/status');
    state.me = status.you;
  } catch (e) {
    setToken('');
    showLogin(e.status === 401 ? 'That token is not known to this daemon.' : e.message);
    return;
  }
  document.body.dataset.role = state.me.role;
  clear($('who'), h('span', state.me.name), ' ', h(`span.badge.role`, state.me.role));
  $('login').hidden = true;
  $('app').hidden = false;
  initProbes($('view-probes'), { onConsole: (serial) => showView('console', serial) });
  initJobs($('view-jobs'));
  initAudit($('view-audit'));
  initConsole($('view-console'));
  events = new EventStream({
    onEvent,
    onOpen: () => reload().catch((e) => console.error(e)),
    onStatus: (s) => {
      state.link = s;
      changed();
      // A revoked token fails the WebSocket handshake too; ask once why, and log out on 401.
      if (s === 'disconnected') {
        api('/api/v1/status').catch((e) => {
          if (e.status === 401) {
            logout();
            clear($('login-error'), 'The token was revoked or the daemon forgot it; log in again.');
          }
        });
      }
    },
  });
  events.start();
  showView(location.hash.slice(1) || 'probes');
}

function showLogin(message) {
  if (events) events.stop();
  events = null;
  $('app').hidden = true;
  $('login').hidden = false;
  clear($('login-error'), message || '');
  $('token').value = '';
  $('token').focus();
}

function logout() {
  disconnectConsole();
  setToken('');
  state.me = null;
  state.probes.clear();
  state.jobs.clear();
  state.lastJob.clear();
  showLogin('');
}

document.addEventListener('DOMContentLoaded', () => {
  onChange(render);
  $('login-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const t = $('token').value.trim();
    if (t) login(t);
  });
  $('logout').addEventListener('click', logout);
  for (const a of document.querySelectorAll('nav a[data-view]'))
    a.addEventListener('click', (e) => { e.preventDefault(); showView(a.dataset.view); });
  document.addEventListener('keydown', (e) => {
    if (typing(e) || e.ctrlKey || e.metaKey || e.altKey || !state.me || document.querySelector('dialog[open]')) return;
    const n = '1234'.indexOf(e.key);
    if (n >= 0) showView(VIEWS[n]);
    else if (e.key === '?') $('help').showModal();
    else if (e.key === '/') {
      const f = $(`view-${view}`).querySelector('input:not([disabled]), select:not([disabled])');
      if (f) { e.preventDefault(); f.focus(); }
    } else if (e.key === 'j' || e.key === 'k') {
      // Move between probe cards.
      const cards = [...document.querySelectorAll('#view-probes .card')];
      const i = cards.indexOf(document.activeElement);
      const next = cards[Math.max(0, Math.min(cards.length - 1, i + (e.key === 'j' ? 1 : -1)))];
      if (next) next.focus();
    }
  });
  if (token()) login(token());
  else showLogin('');
});
