// The per-probe console: the daemon's OpenOCD-style command console over a WebSocket. While
// it is open the probe runs nothing else, so it closes when the operator leaves the view.
import { h, clear } from './util.js';
import { wsJson, wsUrl } from './api.js';
import { state, canAct } from './store.js';

let root, select, out, input, connectBtn, statusEl;
let ws = null;
let prompt = '> ';
const history = [];
let histPos = 0;

function line(text, cls) {
  out.append(h(`div.${cls || 'out'}`, text));
  out.scrollTop = out.scrollHeight;
}

function setConnected(on) {
  input.disabled = !on;
  select.disabled = on;
  clear(connectBtn, on ? 'Disconnect' : 'Connect');
  if (on) input.focus();
}

export function disconnectConsole() {
  if (ws) {
    const w = ws;
    ws = null;
    w.close();
    line('— disconnected —', 'sys');
  }
  if (input) setConnected(false);
}

export function connectConsole(serial) {
  disconnectConsole();
  if (serial) select.value = serial;
  if (!select.value || !canAct()) return;
  const socket = new WebSocket(wsUrl(`/api/v1/probes/${encodeURIComponent(select.value)}/console`));
  ws = socket;
  clear(statusEl, `connecting to ${select.value}…`);
  socket.onmessage = (m) => {
    const msg = wsJson(m);
    if (!msg) return;
    if (msg.type === 'hello') {
      prompt = msg.prompt || '> ';
      if (msg.banner) line(msg.banner, 'sys');
      clear(statusEl, `connected to ${msg.probe}`);
      setConnected(true);
    } else if (msg.type === 'output') {
      // A failed command's output already carries its message and hint.
      if (msg.output) line(msg.output.replace(/\n$/, ''), msg.ok ? 'out' : 'err');
      else if (!msg.ok && msg.error) line(`${msg.error.category}: ${msg.error.message}${msg.error.hint ? ` (${msg.error.hint})` : ''}`, 'err');
    } else if (msg.type === 'error') {
      line(`${msg.error.category}: ${msg.error.message}${msg.error.hint ? ` (${msg.error.hint})` : ''}`, 'err');
    }
  };
  socket.onclose = () => {
    if (ws !== socket) return;
    ws = null;
    clear(statusEl, 'not connected');
    line('— session closed —', 'sys');
    setConnected(false);
  };
}

export function initConsole(el) {
  root = el;
  select = h('select#console-probe', { 'aria-label': 'probe' });
  connectBtn = h('button.primary#console-connect', { type: 'button', onclick: () => (ws ? disconnectConsole() : connectConsole()) }, 'Connect');
  statusEl = h('span.dim', 'not connected');
  out = h('div.console-out#console-out', { role: 'log', 'aria-live': 'polite' });
  input = h('input#console-input', { type: 'text', disabled: true, autocomplete: 'off', spellcheck: 'false', placeholder: 'halt, reg, mdw 0x08000000 4, flash banks, help …', 'aria-label': 'console command' });
  input.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && ws && input.value.trim()) {
      const cmd = input.value.trim();
      line(`${prompt}${cmd}`, 'cmd');
      ws.send(cmd);
      if (history[history.length - 1] !== cmd) history.push(cmd);
      histPos = history.length;
      input.value = '';
    } else if (e.key === 'ArrowUp' && histPos > 0) {
      input.value = history[--histPos];
      e.preventDefault();
    } else if (e.key === 'ArrowDown') {
      histPos = Math.min(history.length, histPos + 1);
      input.value = history[histPos] || '';
      e.preventDefault();
    }
  });
  clear(root,
    h('div.toolbar', select, connectBtn, statusEl,
      canAct() ? null : h('span.err', 'The console needs an operator token.')),
    out, h('div.console-in', h('span.mono.prompt', '>'), input));
  renderConsole();
}

// Refreshes the probe list (online probes only) without touching a running session.
export function renderConsole() {
  if (!select) return;
  const current = select.value;
  const online = [...state.probes.values()].filter((p) => p.state !== 'offline');
  clear(select, online.map((p) => h('option', { value: p.serial }, `${p.name || p.serial} (${p.target ? p.target.chip : p.driver})`)));
  if (online.some((p) => p.serial === current)) select.value = current;
  connectBtn.disabled = !canAct() || (!ws && !online.length);
}
