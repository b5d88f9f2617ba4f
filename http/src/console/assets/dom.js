// Building the page: elements are made with their text as text (never
// parsed as HTML), so a value from the API can never become markup.

/** An element: h('a', {href: '#/apps', class: 'x', onclick: fn}, 'text', child, ...). */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'dataset') {
      Object.assign(el.dataset, value);
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces what `el` holds with `children`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** A status badge; the class follows the status. */
export function badge(status) {
  return h('span', {class: `badge badge-${String(status).replace(/[^a-z_]/g, '')}`, dataset: {status}}, status);
}

/** A date as the reader's locale writes it. */
export function when(iso) {
  if (!iso) return '—';
  const d = new Date(iso);
  return d.toLocaleString();
}

/** How long ago, roughly. */
export function ago(iso) {
  if (!iso) return '—';
  const s = Math.max(0, (Date.now() - new Date(iso).getTime()) / 1000);
  if (s < 60) return `${Math.round(s)} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} min ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

/**
 * A form whose inputs are labelled, and whose errors from the API are shown
 * next to the field they name (or above the button when they name none).
 * fields: [{name, label, type?, value?, options?: [[value, text]], required?, hint?}]
 */
export function form({id, fields, submit, onsubmit}) {
  const errors = {};
  const general = h('p', {class: 'error', role: 'alert', hidden: true});
  const inputs = {};
  const rows = fields.map(f => {
    const inputId = `${id}-${f.name}`;
    let input;
    if (f.options) {
      input = h('select', {id: inputId, name: f.name, required: f.required},
        f.options.map(([value, text]) => h('option', {value, selected: String(value) === String(f.value ?? '')}, text)));
    } else if (f.type === 'textarea') {
      input = h('textarea', {id: inputId, name: f.name, required: f.required, rows: 3});
      input.value = f.value ?? '';
    } else {
      input = h('input', {id: inputId, name: f.name, type: f.type || 'text', required: f.required,
        autocomplete: f.autocomplete || 'off', placeholder: f.placeholder, min: f.min, max: f.max});
      input.value = f.value ?? '';
    }
    inputs[f.name] = input;
    errors[f.name] = h('span', {class: 'field-error', id: `${inputId}-error`, role: 'alert', hidden: true});
    input.setAttribute('aria-describedby', `${inputId}-error`);
    return h('div', {class: 'field'}, h('label', {for: inputId}, f.label), input,
      f.hint ? h('small', {class: 'hint'}, f.hint) : null, errors[f.name]);
  });
  const button = h('button', {type: 'submit', id: `${id}-submit`}, submit);
  const el = h('form', {id, class: 'form', novalidate: true}, rows, general, button);
  const clear = () => {
    general.hidden = true;
    for (const e of Object.values(errors)) { e.hidden = true; e.textContent = ''; }
  };
  el.addEventListener('submit', async event => {
    event.preventDefault();
    clear();
    const values = {};
    for (const [name, input] of Object.entries(inputs)) values[name] = input.type === 'password' ? input.value : input.value.trim();
    button.disabled = true;
    try {
      await onsubmit(values);
    } catch (err) {
      const slot = err.field && errors[err.field];
      const target = slot || general;
      target.textContent = err.message || String(err);
      target.hidden = false;
      (slot ? inputs[err.field] : button).focus();
    } finally {
      button.disabled = false;
    }
  });
  return el;
}

/** Shows a short message at the top of the page for a few seconds. */
export function toast(message, kind = 'info') {
  const box = document.getElementById('toasts');
  const item = h('div', {class: `toast toast-${kind}`, role: kind === 'error' ? 'alert' : 'status'}, message);
  box.append(item);
  setTimeout(() => item.remove(), kind === 'error' ? 8000 : 4000);
}

/** Runs an action from a button: disables it meanwhile, reports the outcome. */
export async function act(button, work, done) {
  button.disabled = true;
  try {
    await work();
    if (done) toast(done);
  } catch (err) {
    toast(err.message || String(err), 'error');
  } finally {
    button.disabled = false;
  }
}
