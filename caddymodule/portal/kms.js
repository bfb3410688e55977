// Key Manager screens: the list with health and validations, the add and
// edit form (connector fields, Import from a well-known URL, ETag), and the
// actions (enable/disable, refresh keys, delete).
import { api, enc, el, view, notice, confirmDialog, showFieldErrors, clearErrors, field, words, MASK, age, rerender } from './api.js';

let connectorCache;
async function connectors() {
  if (!connectorCache) connectorCache = (await api('connectors')).body;
  return connectorCache;
}

const kmKey = (t, n) => `${t}-${n}`;

function health(st) {
  if (!st) return el('span', { class: 'muted' }, 'not running');
  const parts = [];
  const keys = st.key_ids || [];
  parts.push(el('div', {}, el('span', { class: `badge ${keys.length ? 'ok' : 'bad'}` }, `${keys.length} key${keys.length === 1 ? '' : 's'}`),
    keys.length ? el('span', { class: 'small muted' }, ' ', keys.join(', ')) : null));
  if (st.keys_fetched) parts.push(el('div', { class: 'small' }, `JWKS age ${age(st.keys_fetched)}`));
  if (st.introspection) {
    const b = st.introspection.breaker;
    parts.push(el('div', { class: 'small' }, 'breaker ', el('span', { class: `badge ${b === 'closed' ? 'ok' : 'bad'}` }, b)));
  }
  if (st.last_error) parts.push(el('div', { class: 'small' }, el('span', { class: 'badge bad' }, 'error'), ' ', st.last_error));
  return parts;
}

function validations(st) {
  if (!st || !st.validations) return '';
  const o = st.validations.outcomes || {};
  return Object.entries(o).map(([k, v]) => el('div', { class: 'small' }, `${k}: ${v}`));
}

function hitRate(st) {
  if (!st || !st.validations) return '';
  const { cache_hits: h, cache_misses: m } = st.validations;
  if (!h && !m) return el('span', { class: 'muted' }, '–');
  return `${Math.round((100 * h) / (h + m))}% (${h}/${h + m})`;
}

export async function listKMs() {
  const [kms, status] = await Promise.all([api(''), api('status')]);
  const byKey = new Map(status.body.key_managers.map((s) => [kmKey(s.tenant, s.name), s]));
  const groups = new Map();
  for (const v of kms.body) {
    if (!groups.has(v.tenant)) groups.set(v.tenant, []);
    groups.get(v.tenant).push(v);
  }
  const tenants = [...groups.keys()].sort((a, b) => (a === 'global' ? -1 : b === 'global' ? 1 : a.localeCompare(b)));
  const cache = status.body.cache;
  const sections = tenants.map((t) => el('section', { 'data-testid': `tenant-${t}` },
    el('h3', {}, t === 'global' ? 'Global Key Managers (every tenant)' : `Tenant ${t}`),
    el('table', { 'data-testid': 'km-table' },
      el('thead', {}, el('tr', {}, ['Name', 'Type', 'Source', 'Enabled', 'Health', 'Validations', 'Cache hit rate'].map((h) => el('th', {}, h)))),
      el('tbody', {}, groups.get(t).map((v) => {
        const d = v.definition;
        const st = byKey.get(kmKey(v.tenant, v.name));
        const enabled = d.enabled !== false;
        return el('tr', { 'data-testid': `km-row-${v.tenant}-${v.name}` },
          el('td', {}, el('a', { href: `#/km/${enc(v.tenant)}/${enc(v.name)}`, 'data-testid': `km-link-${v.tenant}-${v.name}` }, v.name),
            d.display_name ? el('div', { class: 'small muted' }, d.display_name) : null),
          el('td', {}, (d.connector && d.connector.type) || 'custom'),
          el('td', {}, el('span', { class: 'badge' }, v.source)),
          el('td', { 'data-testid': 'km-enabled' }, el('span', { class: `badge ${enabled ? 'ok' : 'warn'}` }, enabled ? 'enabled' : 'disabled')),
          el('td', { 'data-testid': 'km-health' }, health(st)),
          el('td', { class: 'num', 'data-testid': 'km-validations' }, validations(st)),
          el('td', { class: 'num', 'data-testid': 'km-hit-rate' }, hitRate(st)));
      }))))
  );
  view(
    el('h2', {}, 'Key Managers'),
    el('div', { class: 'toolbar' },
      el('a', { class: 'button', href: '#/km/new', id: 'add-km', 'data-testid': 'add-km' }, 'Add Key Manager'),
      el('button', { class: 'secondary', id: 'purge-cache', 'data-testid': 'purge-cache', onclick: purgeCache }, 'Purge cache'),
      el('span', { class: 'muted small' }, `result cache: ${cache.entries} entries, max TTL ${cache.max_ttl}`)),
    sections.length ? sections : el('p', { class: 'muted' }, 'No Key Manager yet.'));
}

async function purgeCache() {
  if (!(await confirmDialog('Drop every cached validation result? The next request of each token is validated again.', 'Purge'))) return;
  try {
    await api('cache', { method: 'DELETE' });
    notice('Cache purged');
    rerender();
  } catch (e) { notice(e.message, true); }
}

// The form's plain fields: [JSON name, label, options].
const PLAIN = [
  ['display_name', 'Display name'],
  ['issuer', 'Issuer', { hint: 'exact iss of its tokens' }],
  ['jwks_url', 'JWKS URL', { type: 'url' }],
  ['introspection_url', 'Introspection URL', { type: 'url' }],
  ['token_url', 'Token URL', { type: 'url', hint: 'for token generation and bearer introspection; default: from discovery' }],
  ['client_id', 'Client id', { hint: 'for introspection / registration' }],
  ['client_secret', 'Client secret', { type: 'password', secret: true }],
  ['audiences', 'Audiences', { list: true, hint: 'space separated' }],
  ['allowed_algorithms', 'Allowed algorithms', { list: true, hint: 'e.g. RS256 ES256' }],
  ['registration_endpoint', 'Registration endpoint', { type: 'url', hint: 'RFC 7591; default: from discovery' }],
  ['registration_access_token', 'Registration access token', { type: 'password', secret: true }],
];
const FLAGS = [
  ['enable_oauth_app_creation', 'Applications may be registered here (RFC 7591)'],
  ['enable_token_generation', 'The gateway may obtain tokens for its registered applications'],
];

function connectorFields(schemas, type, current) {
  const s = schemas.find((c) => c.type === type);
  const box = el('fieldset', { id: 'km-connector-fields', 'data-testid': 'km-connector-fields' }, el('legend', {}, `Connector fields (${type})`));
  if (!s || !s.fields.length) box.append(el('p', { class: 'muted small' }, 'This connector has no fields of its own: set the endpoints below or Import them.'));
  for (const f of (s ? s.fields : [])) {
    const cur = current && current[f.name];
    if (f.kind === 'bool') box.append(field('km-connector', f.name, f.name, { type: 'checkbox', checked: cur === true || cur === 'true', errorFor: `connector.${f.name}` }));
    else box.append(field('km-connector', f.name, f.name, { type: f.secret ? 'password' : 'text', errorFor: `connector.${f.name}`,
      value: f.secret ? '' : (cur ?? ''), placeholder: f.secret && cur ? 'unchanged (write-only)' : '' }));
  }
  return box;
}

// readForm turns the form into a definition, starting from base (the
// stored definition on edit, so fields the form does not show are kept).
// Empty and false values are left out; a secret left empty keeps the
// stored one (the mask is sent back and the server restores it).
function readForm(form, schemas, base) {
  const def = structuredClone(base || {});
  const val = (id) => form.querySelector(`#${id}`)?.value.trim() ?? '';
  if (!base) def.name = val('km-name');
  for (const [name, , opts = {}] of PLAIN) {
    const v = val(`km-${name}`);
    if (opts.secret) {
      if (v) def[name] = v;
      else if (def[name] !== MASK) delete def[name];
    } else if (opts.list) {
      if (words(v).length) def[name] = words(v); else delete def[name];
    } else if (v) def[name] = v; else delete def[name];
  }
  const wk = val('km-well_known_url');
  if (wk) def.well_known_url = wk; else delete def.well_known_url;
  const tv = val('km-token_validation');
  if (tv) def.token_validation = tv; else delete def.token_validation;
  if (form.querySelector('#km-enabled').checked) delete def.enabled; else def.enabled = false;
  for (const [name] of FLAGS) {
    if (form.querySelector(`#km-${name}`).checked) def[name] = true; else delete def[name];
  }
  const type = val('km-connector-type');
  const schema = schemas.find((c) => c.type === type);
  const old = (base && base.connector) || {};
  const conn = { type };
  for (const f of (schema ? schema.fields : [])) {
    const input = form.querySelector(`#km-connector-${f.name}`);
    if (f.kind === 'bool') { if (input.checked) conn[f.name] = true; continue; }
    const v = input.value.trim();
    if (v) conn[f.name] = v;
    else if (f.secret && old[f.name] === MASK && old.type === type) conn[f.name] = MASK;
  }
  if (type === 'custom' && Object.keys(conn).length === 1) delete def.connector; else def.connector = conn;
  return def;
}

function kmForm(schemas, v, tenants) {
  const d = v ? v.definition : {};
  const readOnly = v && v.source === 'config';
  const type = (d.connector && d.connector.type) || 'custom';
  const form = el('form', { class: 'card', id: 'km-form', 'data-testid': 'km-form', novalidate: true },
    el('div', { class: 'alert form-error', id: 'km-form-error', 'data-testid': 'km-form-error', hidden: true }),
    el('div', { class: 'grid' },
      v ? null : field('km', 'tenant', 'Tenant', { value: 'global', list: 'km-tenants', hint: '"global" for every tenant' }),
      v ? null : field('km', 'name', 'Name', { hint: 'a-z 0-9 . _ -' }),
      field('km', 'connector-type', 'Connector type', { options: schemas.map((c) => c.type), value: type, errorFor: 'connector' }),
      el('div', {}, field('km', 'well_known_url', 'Well-known URL', { type: 'url', value: d.well_known_url }),
        el('button', { type: 'button', class: 'secondary', id: 'km-import', 'data-testid': 'km-import' }, 'Import'))),
    connectorFields(schemas, type, d.connector),
    el('fieldset', {}, el('legend', {}, 'Endpoints and validation'),
      el('div', { class: 'grid' },
        PLAIN.map(([name, label, opts = {}]) => field('km', name, label, {
          ...opts, list: undefined,
          value: opts.secret ? '' : (opts.list ? (d[name] || []).join(' ') : d[name]),
          placeholder: opts.secret && d[name] ? 'unchanged (write-only)' : undefined,
        })),
        field('km', 'token_validation', 'Token validation', { options: [{ value: '', label: 'auto (default)' }, 'jwt', 'introspection', 'auto'], value: d.token_validation || '' }),
        field('km', 'enabled', 'Enabled', { type: 'checkbox', checked: d.enabled !== false }),
        FLAGS.map(([name, label]) => field('km', name, label, { type: 'checkbox', checked: d[name] === true })))),
    el('datalist', { id: 'km-tenants' }, tenants.map((t) => el('option', { value: t }))),
    el('div', { class: 'toolbar' }, readOnly ? el('p', { class: 'muted' }, 'From the Caddy config: read-only here.')
      : el('button', { type: 'submit', id: 'km-save', 'data-testid': 'km-save' }, v ? 'Save' : 'Create')));
  if (readOnly) form.querySelectorAll('input, select').forEach((i) => { i.disabled = true; });
  form.querySelector('#km-connector-type').addEventListener('change', (e) => {
    form.querySelector('#km-connector-fields').replaceWith(connectorFields(schemas, e.target.value, null));
  });
  form.querySelector('#km-import').addEventListener('click', async () => {
    clearErrors(form);
    const def = readForm(form, schemas, null);
    // The flags ask discovery for the registration and token endpoints too.
    const probe = { name: def.name || 'discovered', well_known_url: def.well_known_url, connector: def.connector,
      enable_oauth_app_creation: def.enable_oauth_app_creation, enable_token_generation: def.enable_token_generation };
    try {
      const got = (await api('discover', { method: 'POST', body: probe })).body;
      for (const name of ['issuer', 'jwks_url', 'introspection_url', 'token_url', 'well_known_url', 'registration_endpoint']) {
        const input = form.querySelector(`#km-${name}`);
        if (input && got[name] && !input.value) input.value = got[name];
      }
      notice(`Imported from ${got.well_known_url}`);
    } catch (e) { showFieldErrors(form, e); }
  });
  return form;
}

export async function newKM() {
  const [schemas, kms] = await Promise.all([connectors(), api('')]);
  const tenants = [...new Set(['global', ...kms.body.map((v) => v.tenant)])];
  const form = kmForm(schemas, null, tenants);
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    const tenant = form.querySelector('#km-tenant').value.trim();
    const def = readForm(form, schemas, null);
    try {
      await api(`${enc(tenant)}/`, { method: 'POST', body: def });
      notice(`Created ${def.name}`);
      location.hash = `#/km/${enc(tenant)}/${enc(def.name)}`;
    } catch (err) { showFieldErrors(form, err); }
  });
  view(el('h2', {}, 'Add Key Manager'), form);
}

export async function editKM(tenant, name) {
  const [schemas, got, st] = await Promise.all([connectors(), api(`${enc(tenant)}/${enc(name)}`),
    api(`${enc(tenant)}/${enc(name)}/status`).catch(() => null)]);
  const v = got.body;
  let etag = got.etag || v.etag;
  const form = kmForm(schemas, v, [tenant]);
  const conflict = el('div', { class: 'alert warn', id: 'km-conflict', 'data-testid': 'km-conflict', hidden: true },
    'This Key Manager was changed by someone else since you opened it; your change was not saved. ',
    el('button', { type: 'button', id: 'km-reload', 'data-testid': 'km-reload', onclick: rerender }, 'Reload'));
  const save = async (def, what) => {
    try {
      const r = await api(`${enc(tenant)}/${enc(name)}`, { method: 'PUT', body: def, ifMatch: etag });
      etag = r.etag || r.body.etag;
      v.definition = r.body.definition;
      notice(what);
      return true;
    } catch (err) {
      if (err.status === 412) { conflict.hidden = false; return false; }
      showFieldErrors(form, err);
      return false;
    }
  };
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    if (await save(readForm(form, schemas, v.definition), `Saved ${name}`)) rerender();
  });
  const api_ = v.source === 'api';
  const enabled = v.definition.enabled !== false;
  const actions = el('div', { class: 'toolbar' },
    api_ && el('button', { type: 'button', class: 'secondary', id: 'km-toggle', 'data-testid': 'km-toggle', onclick: async () => {
      const def = structuredClone(v.definition);
      if (enabled) def.enabled = false; else delete def.enabled;
      if (await save(def, `${name} ${enabled ? 'disabled' : 'enabled'}`)) rerender();
    } }, enabled ? 'Disable' : 'Enable'),
    el('button', { type: 'button', class: 'secondary', id: 'km-refresh', 'data-testid': 'km-refresh', onclick: async () => {
      try {
        await api(`${enc(tenant)}/${enc(name)}/refresh`, { method: 'POST' });
        notice(`Keys of ${name} refreshed`);
        rerender();
      } catch (e) { notice(e.message, true); }
    } }, 'Refresh keys'),
    api_ && el('button', { type: 'button', class: 'danger', id: 'km-delete', 'data-testid': 'km-delete', onclick: async () => {
      if (!(await confirmDialog(`Delete Key Manager ${name} of ${tenant}? Its tokens stop working at once.`))) return;
      try {
        await api(`${enc(tenant)}/${enc(name)}`, { method: 'DELETE', ifMatch: etag });
        notice(`Deleted ${name}`);
        location.hash = '#/';
      } catch (err) {
        if (err.status === 412) conflict.hidden = false; else notice(err.message, true);
      }
    } }, 'Delete'));
  const s = st && st.body.key_manager;
  const status = el('section', { class: 'card', id: 'km-status', 'data-testid': 'km-status' },
    el('h3', {}, 'Health'),
    s ? el('dl', { class: 'kv' },
      el('dt', {}, 'Issuer'), el('dd', {}, s.issuer || ''),
      el('dt', {}, 'JWKS'), el('dd', {}, s.jwks_url || ''),
      el('dt', {}, 'Key ids'), el('dd', { 'data-testid': 'km-key-ids' }, (s.key_ids || []).join(', ') || 'none'),
      el('dt', {}, 'JWKS age'), el('dd', {}, s.keys_fetched ? age(s.keys_fetched) : 'never fetched'),
      el('dt', {}, 'Fetches'), el('dd', {}, `${s.jwks_fetches} (${s.jwks_fetch_failures} failed)`),
      el('dt', {}, 'Last error'), el('dd', {}, s.last_error || 'none'),
      el('dt', {}, 'Breaker'), el('dd', {}, s.introspection ? s.introspection.breaker : 'no introspection'),
      el('dt', {}, 'Validations'), el('dd', { 'data-testid': 'km-status-validations' }, validations(s)),
      el('dt', {}, 'Cache hit rate'), el('dd', {}, hitRate(s))) : el('p', { class: 'muted' }, 'Not running.'));
  view(el('h2', {}, `Key Manager ${tenant} / ${name} `, el('span', { class: 'badge' }, v.source), ' ',
    el('span', { class: `badge ${enabled ? 'ok' : 'warn'}`, 'data-testid': 'km-enabled-badge' }, enabled ? 'enabled' : 'disabled')),
  conflict, actions, status, form);
}
