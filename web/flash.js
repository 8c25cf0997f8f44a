// The flash dialog: upload the dropped image (the daemon validates it; a bad one is refused
// with a message naming the line or address), then queue one flash job per target probe with
// the chosen verify / reset / erase mode.
import { h, clear, bytes, shortSha, randomKey } from './util.js';
import { api } from './api.js';
import { putJob, changed } from './store.js';

const dialog = () => document.getElementById('flash-dialog');

function errorBox(e) {
  return h('div.error', { role: 'alert' },
    h('strong', e.category ? `${e.category}: ` : ''), e.message,
    e.hint ? h('div.hint', e.hint) : null);
}

export function openFlash(file, targets, label) {
  const dlg = dialog();
  const isBin = /\.bin$/i.test(file.name);
  let image = null;

  const status = h('div.upload-status', isBin ? 'A raw binary needs its start address.' : 'Uploading…');
  const address = h('input#flash-address', { type: 'text', placeholder: '0x08000000', value: '0x08000000', size: 12 });
  const verify = h('input#flash-verify', { type: 'checkbox', checked: true });
  const reset = h('input#flash-reset', { type: 'checkbox', checked: true });
  const erase = h('select#flash-erase',
    h('option', { value: 'automatic', selected: true }, 'automatic (only the sectors the image touches)'),
    h('option', { value: 'sectors' }, 'sectors (erase every sector written)'),
    h('option', { value: 'all' }, 'all (mass erase)'));
  const submit = h('button.primary#flash-submit', { type: 'submit', disabled: true },
    `Flash ${targets.length} probe${targets.length === 1 ? '' : 's'}`);
  const result = h('div.flash-result');

  async function upload() {
    clear(status, 'Uploading…');
    submit.disabled = true;
    const q = new URLSearchParams({ name: file.name });
    if (isBin) {
      q.set('format', 'bin');
      q.set('address', address.value.trim());
    }
    try {
      image = await api(`/api/v1/images?${q}`, { method: 'POST', body: file });
      clear(status, h('div.ok',
        `${image.format.toUpperCase()} · ${bytes(image.data_bytes ?? image.size)} in ${image.segments.length} segment${image.segments.length === 1 ? '' : 's'} · `,
        h('span.mono', shortSha(image.sha256)), image.existed ? ' (already stored)' : ''));
      submit.disabled = targets.length === 0;
    } catch (e) {
      image = null;
      clear(status, errorBox(e));
    }
  }

  async function flash(ev) {
    ev.preventDefault();
    if (!image) return;
    submit.disabled = true;
    const queued = [];
    const failed = [];
    for (const p of targets) {
      try {
        const job = await api('/api/v1/jobs', {
          method: 'POST',
          headers: { 'Idempotency-Key': randomKey() },
          body: {
            operation: 'flash', probe: { serial: p.serial }, image: image.sha256,
            verify: verify.checked, reset: reset.checked, erase: erase.value,
          },
        });
        putJob(job);
        queued.push(job.id);
      } catch (e) {
        failed.push(h('li', `${p.name || p.serial}: `, errorBox(e)));
      }
    }
    changed();
    if (!failed.length) {
      dlg.close();
      return;
    }
    clear(result, queued.length ? h('p', `Queued job${queued.length > 1 ? 's' : ''} ${queued.map((i) => `#${i}`).join(', ')}.`) : null,
      h('ul.failures', failed));
  }

  clear(dlg, h('form', { method: 'dialog', onsubmit: flash },
    h('h2', 'Flash ', h('span.mono', file.name)),
    h('p.dim', `${bytes(file.size)} onto ${label}`),
    status,
    isBin ? h('label', 'Start address ', address, ' ', h('button', { type: 'button', onclick: upload }, 'Upload')) : null,
    h('fieldset',
      h('legend', 'Options'),
      h('label', verify, ' verify after programming'),
      h('label', reset, ' reset and run when done'),
      h('label', 'erase ', erase)),
    h('div.targets',
      h('strong', `${targets.length} target${targets.length === 1 ? '' : 's'}: `),
      targets.length ? targets.map((p) => h('span.tag', p.name || p.serial)) : h('span.err', 'no idle probe in this group')),
    result,
    h('div.buttons',
      h('button', { type: 'button', onclick: () => dlg.close() }, 'Cancel'),
      submit)));
  dlg.showModal();
  if (!isBin) upload();
  else address.focus();
}
