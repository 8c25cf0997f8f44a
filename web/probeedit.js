// The probe edit dialog: a probe's name and labels (PATCH /api/v1/probes/{serial}, operator
// role, kept across restarts). The daemon checks the labels; its message is shown as it is.
import { h, clear } from './util.js';
import { api } from './api.js';
import { putProbe, changed } from './store.js';

const dialog = () => document.getElementById('probe-dialog');

// "line-a, rack 3" → ["line-a", "rack", "3"]: commas or blanks separate labels. Duplicates
// are left in, so the daemon's own message says what is wrong.
export function parseLabels(text) {
  return text.split(/[\s,]+/).filter(Boolean);
}

export function openProbeEdit(p) {
  const dlg = dialog();
  const name = h('input#probe-name', { type: 'text', value: p.name || '', placeholder: p.serial, maxlength: 200, spellcheck: 'false', autocomplete: 'off' });
  const labels = h('input#probe-labels', { type: 'text', value: (p.labels || []).join(', '), placeholder: 'line-a, rack3', spellcheck: 'false', autocomplete: 'off' });
  const error = h('div.probe-edit-error', { role: 'alert' });
  const save = h('button.primary#probe-save', { type: 'submit' }, 'Save');

  async function submit(ev) {
    ev.preventDefault();
    save.disabled = true;
    clear(error);
    try {
      const probe = await api(`/api/v1/probes/${encodeURIComponent(p.serial)}`, {
        method: 'PATCH', body: { name: name.value.trim(), labels: parseLabels(labels.value) },
      });
      putProbe(probe);
      changed();
      dlg.close();
    } catch (e) {
      clear(error, h('div.error',
        h('strong', e.category ? `${e.category}: ` : ''), e.message,
        e.hint ? h('div.hint', e.hint) : null));
      save.disabled = false;
    }
  }

  clear(dlg, h('form', { method: 'dialog', onsubmit: submit },
    h('h2', 'Edit probe ', h('span.mono', p.serial)),
    h('label', 'Name', name, h('span.dim', 'empty: the card shows the serial')),
    h('label', 'Labels', labels, h('span.dim', 'separated by commas or blanks; a group button appears per label')),
    error,
    h('div.buttons',
      h('button', { type: 'button', onclick: () => dlg.close() }, 'Cancel'),
      save)));
  dlg.showModal();
  name.focus();
  name.select();
}
