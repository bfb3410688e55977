// Application screens: list per tenant, create (optionally registered at
// the Key Manager by RFC 7591 DCR, its client_secret shown once), edit
// scopes and subscriptions (If-Match), delete, and generate a token.
import { api, enc, el, view, notice, confirmDialog, showFieldErrors, clearErrors, field, words, MASK, rerender } from './api.js';

async function tenantsAndKMs() {
  const kms = (await api('')).body;
  const tenants = [...new Set(kms.map((v) => v.tenant).filter((t) => t !== 'global'))].sort();
  return { kms, tenants };
}

export async function listApps(tenant) {
  const { tenants } = await tenantsAndKMs();
  if (!tenant) tenant = tenants[0];
  const picker = field('apps', 'tenant', 'Tenant', { options: tenants, value: tenant });
  picker.querySelector('select').addEventListener('change', (e) => { location.hash = `#/apps/${enc(e.target.value)}`; });
  if (!tenant) { view(el('h2', {}, 'Applications'), el('p', { class: 'muted' }, 'No tenant yet.')); return; }
  const apps = (await api(`${enc(tenant)}/applications/`)).body;
  view(el('h2', {}, 'Applications'),
    el('div', { class: 'toolbar' }, picker,
      el('a', { class: 'button', href: `#/apps/${enc(tenant)}/new`, id: 'add-app', 'data-testid': 'add-app' }, 'Create application')),
    el('table', { id: 'apps-table', 'data-testid': 'apps-table' },
      el('thead', {}, el('tr', {}, ['Id', 'Key Manager', 'Client id', 'Scopes', 'Deny scopes', 'Subscriptions', 'Source'].map((h) => el('th', {}, h)))),
      el('tbody', {}, apps.length ? apps.map((v) => {
        const a = v.application;
        return el('tr', { 'data-testid': `app-row-${a.id}` },
          el('td', {}, el('a', { href: `#/apps/${enc(tenant)}/${enc(a.id)}`, 'data-testid': `app-link-${a.id}` }, a.id)),
          el('td', {}, a.key_manager), el('td', {}, a.client_id, a.registered ? el('span', { class: 'badge ok' }, ' registered') : null),
          el('td', {}, (a.scopes || []).join(' ')), el('td', {}, (a.deny_scopes || []).join(' ')),
          el('td', {}, (a.subscriptions || []).join(' ')), el('td', {}, el('span', { class: 'badge' }, v.source)));
      }) : el('tr', {}, el('td', { colspan: 7, class: 'muted' }, 'No application in this tenant.')))));
}

const LISTS = [['scopes', 'Scopes', 'granted to its own tokens'], ['deny_scopes', 'Deny scopes', 'removed from every token'], ['subscriptions', 'Subscriptions', 'API names']];
const DCR = [['client_name', 'Client name'], ['grant_types', 'Grant types', 'default client_credentials', true],
  ['redirect_uris', 'Redirect URIs', 'space separated', true], ['registration_scopes', 'Registration scopes', 'scope asked for at registration', true]];

function appForm(tenant, kms, a) {
  const visible = kms.filter((v) => v.tenant === tenant || v.tenant === 'global').map((v) => v.name);
  const readOnly = a && a.source === 'config';
  const ap = a ? a.application : {};
  const form = el('form', { class: 'card', id: 'app-form', 'data-testid': 'app-form', novalidate: true },
    el('div', { class: 'alert form-error', id: 'app-form-error', 'data-testid': 'app-form-error', hidden: true }),
    el('div', { class: 'grid' },
      a ? null : field('app', 'id', 'Id'),
      field('app', 'key_manager', 'Key Manager', { options: visible, value: ap.key_manager }),
      field('app', 'client_id', 'Client id', { value: ap.client_id, hint: ap.registered ? 'registered at the Key Manager' : undefined }),
      LISTS.map(([n, l, h]) => field('app', n, l, { hint: h, value: (ap[n] || []).join(' ') }))),
    a ? null : el('fieldset', {}, el('legend', {}, 'Register at the Key Manager'),
      field('app', 'register', 'Register at the Key Manager', { type: 'checkbox', hint: 'create the OAuth client at the IdP (RFC 7591); its secret is shown once' }),
      el('div', { class: 'grid', id: 'app-dcr-fields', hidden: true }, DCR.map(([n, l, h]) => field('app', n, l, { hint: h })))),
    el('div', { class: 'toolbar' }, readOnly ? el('p', { class: 'muted' }, 'From the Caddy config: read-only here.')
      : el('button', { type: 'submit', id: 'app-save', 'data-testid': 'app-save' }, a ? 'Save' : 'Create')));
  if (readOnly) form.querySelectorAll('input, select').forEach((i) => { i.disabled = true; });
  // The Key Manager issued this client: its id is not the portal's to change.
  if (ap.registered) form.querySelector('#app-client_id').disabled = true;
  const reg = form.querySelector('#app-register');
  if (reg) reg.addEventListener('change', () => {
    form.querySelector('#app-dcr-fields').hidden = !reg.checked;
    form.querySelector('#app-client_id').disabled = reg.checked;
  });
  return form;
}

// readApp builds the application body; empty lists and false flags are
// left out (the DCR fields are sent only with register).
function readApp(form, base) {
  const ap = structuredClone(base || {});
  // Response-only fields (DCR): never sent back.
  delete ap.client_secret;
  delete ap.registered;
  const val = (id) => form.querySelector(`#${id}`)?.value.trim() ?? '';
  if (!base) ap.id = val('app-id');
  ap.key_manager = val('app-key_manager');
  const reg = form.querySelector('#app-register');
  if (reg && reg.checked) {
    ap.register = true;
    delete ap.client_id;
    for (const [n, , , list] of DCR) {
      const v = val(`app-${n}`);
      if (list ? words(v).length : v) ap[n] = list ? words(v) : v;
    }
  } else ap.client_id = val('app-client_id');
  for (const [n] of LISTS) {
    const w = words(val(`app-${n}`));
    if (w.length) ap[n] = w; else delete ap[n];
  }
  return ap;
}

export async function newApp(tenant) {
  const { kms } = await tenantsAndKMs();
  const form = appForm(tenant, kms, null);
  const secret = el('div', { id: 'app-secret-box', hidden: true });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    const ap = readApp(form, null);
    try {
      const r = await api(`${enc(tenant)}/applications/`, { method: 'POST', body: ap });
      const got = { ...r.body, ...(r.body.application || {}) };
      got.client_secret = got.client_secret || r.body.client_secret;
      notice(`Created application ${ap.id}`);
      if (got.client_secret && got.client_secret !== MASK) {
        secret.replaceChildren(el('div', { class: 'alert warn' }, 'The client secret is shown once: copy it now.'),
          el('dl', { class: 'kv' }, el('dt', {}, 'client_id'), el('dd', { id: 'app-client-id-once', 'data-testid': 'app-client-id-once' }, got.client_id),
            el('dt', {}, 'client_secret'), el('dd', { class: 'secret-once', id: 'app-secret', 'data-testid': 'app-secret' }, got.client_secret)),
          el('a', { class: 'button', href: `#/apps/${enc(tenant)}/${enc(ap.id)}`, id: 'app-continue' }, 'Continue'));
        secret.hidden = false;
        form.hidden = true;
      } else location.hash = `#/apps/${enc(tenant)}/${enc(ap.id)}`;
    } catch (err) { showFieldErrors(form, err); }
  });
  view(el('h2', {}, `Create application in ${tenant}`), form, secret);
}

export async function editApp(tenant, id) {
  const [{ kms }, got] = await Promise.all([tenantsAndKMs(), api(`${enc(tenant)}/applications/${enc(id)}`)]);
  const a = got.body;
  const etag = got.etag || a.etag;
  const form = appForm(tenant, kms, a);
  const conflict = el('div', { class: 'alert warn', id: 'app-conflict', 'data-testid': 'app-conflict', hidden: true },
    'This application was changed by someone else since you opened it; your change was not saved. ',
    el('button', { type: 'button', id: 'app-reload', onclick: rerender }, 'Reload'));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    try {
      await api(`${enc(tenant)}/applications/${enc(id)}`, { method: 'PUT', body: readApp(form, a.application), ifMatch: etag });
      notice(`Saved application ${id}`);
      rerender();
    } catch (err) {
      if (err.status === 412) conflict.hidden = false; else showFieldErrors(form, err);
    }
  });
  const tokenOut = el('div', { id: 'app-token-result', 'data-testid': 'app-token-result' });
  const scopesIn = field('app-token', 'scopes', 'Scopes', { hint: 'space separated; empty: the registration scopes' });
  const token = el('section', { class: 'card', id: 'app-token' }, el('h3', {}, 'Try it: generate a token'), scopesIn,
    el('button', { type: 'button', id: 'app-token-generate', 'data-testid': 'app-token-generate', onclick: async () => {
      const sc = words(scopesIn.querySelector('input').value);
      try {
        const r = (await api(`${enc(tenant)}/applications/${enc(id)}/token`, { method: 'POST', body: sc.length ? { scopes: sc } : {} })).body;
        tokenOut.replaceChildren(el('p', { class: 'small' }, `${r.token_type} token, expires in ${r.expires_in}s, scope "${r.scope || ''}"`),
          el('pre', { class: 'token', id: 'app-access-token', 'data-testid': 'app-access-token' }, r.access_token));
      } catch (err) { tokenOut.replaceChildren(el('div', { class: 'alert', id: 'app-token-error' }, err.message)); }
    } }, 'Generate token'), tokenOut);
  const del = a.source === 'api' && el('button', { type: 'button', class: 'danger', id: 'app-delete', 'data-testid': 'app-delete', onclick: async () => {
    if (!(await confirmDialog(`Delete application ${id} of ${tenant}?`))) return;
    const path = `${enc(tenant)}/applications/${enc(id)}`;
    try {
      try {
        await api(path, { method: 'DELETE', ifMatch: etag });
      } catch (err) {
        // 502: the Key Manager did not delete the client (RFC 7592), so
        // nothing was deleted. Offer to delete it here only, leaving the
        // client at the Key Manager.
        if (err.status !== 502 || !(await confirmDialog(`${err.message}. Delete application ${id} here anyway, leaving its client at the Key Manager?`))) throw err;
        await api(`${path}?force=true`, { method: 'DELETE', ifMatch: etag });
      }
      notice(`Deleted application ${id}`);
      location.hash = `#/apps/${enc(tenant)}`;
    } catch (err) { if (err.status === 412) conflict.hidden = false; else notice(err.message, true); }
  } }, 'Delete');
  view(el('h2', {}, `Application ${tenant} / ${id} `, el('span', { class: 'badge' }, a.source)), conflict,
    el('div', { class: 'toolbar' }, del), form, token);
}
