// Small DOM and formatting helpers. Everything the daemon sends is put in the page as text
// (textContent, attributes), never as HTML: probe names, labels and error messages come
// from users and from USB descriptors.

// h('div#id.card.busy', {dataset: {serial}}, child, 'text', [more children])
export function h(tag, props, ...children) {
  const id = /#([\w-]+)/.exec(tag);
  const [name, ...classes] = tag.replace(/#[\w-]+/, '').split('.');
  const el = document.createElementNS(
    SVG_TAGS.has(name) ? 'http://www.w3.org/2000/svg' : 'http://www.w3.org/1999/xhtml', name);
  if (classes.length) el.setAttribute('class', classes.join(' '));
  if (id) el.id = id[1];
  if (props && (typeof props !== 'object' || props instanceof Node || Array.isArray(props))) {
    children.unshift(props);
    props = null;
  }
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.setAttribute('class', [el.getAttribute('class'), v].filter(Boolean).join(' '));
    else if (k === 'value' || k === 'checked' || k === 'disabled' || k === 'selected') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

const SVG_TAGS = new Set(['svg', 'rect', 'g', 'text', 'title', 'line']);

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export function clear(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

export function bytes(n) {
  if (n === null || n === undefined) return '–';
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${+(n / 1024).toFixed(1)} KiB`;
  return `${+(n / 1024 / 1024).toFixed(2)} MiB`;
}

export function rate(bytesPerSecond) {
  if (!isFinite(bytesPerSecond) || bytesPerSecond <= 0) return '';
  return `${bytes(Math.round(bytesPerSecond))}/s`;
}

export function seconds(s) {
  if (s === null || s === undefined || !isFinite(s)) return '–';
  if (s < 1) return `${Math.round(s * 1000)} ms`;
  if (s < 60) return `${s.toFixed(2)} s`;
  return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
}

// ISO 8601 from the daemon → local "2026-11-21 17:20:03"
export function when(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (isNaN(d)) return iso;
  const p = (x) => String(x).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function shortSha(sha) {
  return sha ? sha.slice(0, 12) : '–';
}

// An Idempotency-Key; crypto.randomUUID needs a secure context, and a farm host reached over
// plain http by name is not one.
export function randomKey() {
  const b = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
}

// True when a key press is meant for a text field, not for the page's shortcuts.
export function typing(event) {
  const t = event.target;
  return t instanceof HTMLInputElement || t instanceof HTMLTextAreaElement ||
    t instanceof HTMLSelectElement || (t && t.isContentEditable);
}
