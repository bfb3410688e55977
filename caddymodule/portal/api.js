// The portal's JSON API (api/ under the page's own path) and DOM helpers.
// Writes carry the CSRF token: the kmportal_csrf cookie sent back in the
// X-CSRF-Token header (the server also checks Origin / Sec-Fetch-Site).

export class APIError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.fields = (body && body.fields) || [];
  }
}

function csrfToken() {
  for (const part of document.cookie.split(';')) {
    const [k, v] = part.trim().split('=');
    if (k === 'kmportal_csrf') return decodeURIComponent(v || '');
  }
  return '';
}

// api calls api/<path>; opts: {method, body, ifMatch}. It resolves to
// {status, etag, body} and rejects with an APIError on a 4xx/5xx.
export async function api(path, opts = {}) {
  const method = opts.method || 'GET';
  const headers = { 'Accept': 'application/json' };
  if (method !== 'GET') headers['X-CSRF-Token'] = csrfToken();
  if (opts.body !== undefined) headers['Content-Type'] = 'application/json';
  if (opts.ifMatch) headers['If-Match'] = opts.ifMatch;
  const resp = await fetch(new URL('api/' + path, document.baseURI), {
    method, headers, credentials: 'same-origin',
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  let body = null;
  const text = await resp.text();
  if (text) {
    try { body = JSON.parse(text); } catch { body = { error: text }; }
  }
  if (!resp.ok) throw new APIError(resp.status, body);
  return { status: resp.status, etag: resp.headers.get('ETag'), body };
}

export const enc = encodeURIComponent;

// el builds an element: el('td', {class: 'num', 'data-testid': 'x'}, 'text', child).
// Attributes starting with "on" are event listeners; text is never parsed as HTML.
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else if (k === 'value') e.value = v;
    else if (k === 'checked') e.checked = !!v;
    else e.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

export function view(...children) {
  const v = document.getElementById('view');
  v.replaceChildren(...children.flat(Infinity));
  return v;
}

let noticeTimer;
export function notice(text, isError = false) {
  const n = document.getElementById('notice');
  n.textContent = text;
  n.classList.toggle('error', isError);
  n.hidden = false;
  clearTimeout(noticeTimer);
  noticeTimer = setTimeout(() => { n.hidden = true; }, isError ? 15000 : 6000);
}

// confirmDialog asks before a destructive action; resolves to true on "yes".
// Each call owns the buttons' handlers (not the dialog's close event, which
// arrives late and would answer the next question too).
export function confirmDialog(text, yesLabel = 'Delete') {
  const d = document.getElementById('confirm-dialog');
  const yes = document.getElementById('confirm-yes');
  const no = document.getElementById('confirm-no');
  document.getElementById('confirm-text').textContent = text;
  yes.textContent = yesLabel;
  return new Promise((resolve) => {
    const answer = (v) => (e) => {
      e.preventDefault();
      yes.onclick = no.onclick = d.oncancel = null;
      d.close();
      resolve(v);
    };
    yes.onclick = answer(true);
    no.onclick = answer(false);
    d.oncancel = answer(false);
    d.showModal();
  });
}

// showFieldErrors puts each {field, message} next to its input (an element
// with data-error-for="<field>", "connector.x" and "audiences[0]" fall back
// to their first part); the rest go to the form's general error box.
export function showFieldErrors(form, err) {
  clearErrors(form);
  const general = form.querySelector('.form-error');
  const rest = [];
  for (const fe of err.fields || []) {
    const names = [fe.field, fe.field.replace(/\[\d+\]$/, ''), fe.field.split(/[.[]/)[0]];
    const slot = names.map((n) => form.querySelector(`[data-error-for="${CSS.escape(n)}"]`)).find(Boolean);
    if (slot) {
      slot.textContent = fe.message;
      slot.parentElement.classList.add('invalid');
    } else rest.push(`${fe.field}: ${fe.message}`);
  }
  if (general && (rest.length || !(err.fields || []).length)) {
    general.hidden = false;
    general.textContent = rest.length ? `${err.message}: ${rest.join('; ')}` : err.message;
  }
}

export function clearErrors(form) {
  form.querySelectorAll('.field-error').forEach((e) => { e.textContent = ''; e.parentElement.classList.remove('invalid'); });
  form.querySelectorAll('.form-error').forEach((e) => { e.hidden = true; e.textContent = ''; });
}

// field builds a labelled input with its error slot. opts: {type, hint,
// value, placeholder, options (select), checked}.
export function field(prefix, name, label, opts = {}) {
  const id = `${prefix}-${name}`;
  let input;
  if (opts.options) {
    input = el('select', { id, name }, opts.options.map((o) => el('option', { value: o.value ?? o, selected: (o.value ?? o) === opts.value }, o.label ?? o)));
  } else if (opts.type === 'checkbox') {
    return el('label', { class: 'check', for: id },
      el('input', { type: 'checkbox', id, name, checked: opts.checked }), label,
      opts.hint && el('span', { class: 'hint' }, ' ', opts.hint),
      el('p', { class: 'field-error', 'data-error-for': opts.errorFor || name }));
  } else {
    input = el('input', { type: opts.type || 'text', id, name, value: opts.value ?? '', placeholder: opts.placeholder, autocomplete: opts.type === 'password' ? 'new-password' : 'off', list: opts.list });
  }
  return el('label', { for: id }, label, opts.hint && el('span', { class: 'hint' }, ' ', opts.hint), input,
    el('p', { class: 'field-error', 'data-error-for': opts.errorFor || name }));
}

export const words = (s) => (s || '').split(/[\s,]+/).filter(Boolean);
export const MASK = '********';

export function age(iso) {
  if (!iso) return '';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  return `${Math.round(s / 3600)}h`;
}

// rerender draws the current screen again through the router, which
// shows a load failure instead of leaving a rejected promise behind.
export function rerender() {
  window.dispatchEvent(new HashChangeEvent('hashchange'));
}
