// The portal's router: #/ (Key Managers), #/km/new, #/km/{tenant}/{name},
// #/apps[/{tenant}[/new|/{id}]], #/revoke.
import { api, el, view, notice, showFieldErrors, clearErrors, field } from './api.js';
import { listKMs, newKM, editKM } from './kms.js';
import { listApps, newApp, editApp } from './apps.js';

function revokeScreen() {
  const out = el('div', { id: 'revoke-result', 'data-testid': 'revoke-result' });
  const form = el('form', { class: 'card', id: 'revoke-form', novalidate: true },
    el('div', { class: 'alert form-error', hidden: true }),
    el('p', { class: 'muted' }, 'Revoke one token (pasted whole), or every token with an issuer and jti. The gateway refuses it at once, on every instance that shares the storage.'),
    el('label', { for: 'revoke-token' }, 'Token', el('textarea', { id: 'revoke-token', rows: 3 }), el('p', { class: 'field-error', 'data-error-for': 'token' })),
    el('div', { class: 'grid' }, field('revoke', 'issuer', 'Issuer'), field('revoke', 'jti', 'jti')),
    el('div', { class: 'toolbar' }, el('button', { type: 'submit', id: 'revoke-submit', 'data-testid': 'revoke-submit' }, 'Revoke')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form);
    const body = {};
    for (const k of ['token', 'issuer', 'jti']) {
      const v = form.querySelector(`#revoke-${k}`).value.trim();
      if (v) body[k] = v;
    }
    try {
      const rv = (await api('revoke', { method: 'POST', body })).body;
      form.querySelector('#revoke-token').value = '';
      notice('Revoked');
      out.replaceChildren(el('dl', { class: 'kv' }, Object.entries(rv).map(([k, v]) => [el('dt', {}, k), el('dd', {}, String(v))])));
    } catch (err) { showFieldErrors(form, err); }
  });
  view(el('h2', {}, 'Revoke a token'), form, out);
}

async function route() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  document.querySelectorAll('nav a').forEach((a) => a.classList.remove('active'));
  const nav = { km: 'nav-kms', apps: 'nav-apps', revoke: 'nav-revoke' }[parts[0] || 'km'];
  document.getElementById(nav || 'nav-kms').classList.add('active');
  try {
    if (parts.length === 0) await listKMs();
    else if (parts[0] === 'km' && parts[1] === 'new') await newKM();
    else if (parts[0] === 'km' && parts.length === 3) await editKM(parts[1], parts[2]);
    else if (parts[0] === 'apps' && parts.length <= 2) await listApps(parts[1]);
    else if (parts[0] === 'apps' && parts[2] === 'new') await newApp(parts[1]);
    else if (parts[0] === 'apps' && parts.length === 3) await editApp(parts[1], parts[2]);
    else if (parts[0] === 'revoke') revokeScreen();
    else view(el('p', {}, 'No such page. '), el('a', { href: '#/' }, 'Key Managers'));
  } catch (e) {
    view(el('div', { class: 'alert', id: 'load-error', 'data-testid': 'load-error' }, `Loading failed: ${e.message}`));
  }
  document.body.dataset.ready = location.hash || '#/';
}

window.addEventListener('hashchange', route);
route();
