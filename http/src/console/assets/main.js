// The console's entry: reads the session, routes `#/…` views, keeps the
// header's user and log-out button.

import {api, del, setSession, whenLoggedOut} from './api.js';
import {fill, h, toast} from './dom.js';
import {loginView, signupView} from './account.js';
import {appsView, newAppView} from './apps.js';
import {appView} from './app.js';

const main = document.getElementById('main');
const user = document.getElementById('user');
let session = null;
let stopView = null;

function navigate(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

function showUser() {
  if (!session) { fill(user); return; }
  const out = h('button', {type: 'button', class: 'link', id: 'logout'}, 'Log out');
  out.addEventListener('click', async () => {
    try { await del('/auth/session'); } catch (err) { toast(err.message, 'error'); return; }
    session = null;
    setSession(null);
    showUser();
    navigate('#/login');
  });
  fill(user, h('span', {id: 'user-email'}, session.user.email), ' ', out);
}

function loggedIn(s) {
  session = s;
  showUser();
  navigate('#/apps');
}

async function route() {
  if (stopView) { stopView(); stopView = null; }
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  window.scrollTo(0, 0);
  if (!session) {
    if (parts[0] === 'signup') return signupView(main, loggedIn);
    return loginView(main, loggedIn);
  }
  document.querySelectorAll('#menu a').forEach(a =>
    a.setAttribute('aria-current', a.getAttribute('href') === `#/${parts[0] || 'apps'}` ? 'page' : 'false'));
  try {
    if (parts[0] === 'apps' && parts[1] === 'new') return await newAppView(main, navigate);
    if (parts[0] === 'apps' && /^\d+$/.test(parts[1] || '')) {
      stopView = appView(main, Number(parts[1]), parts[2], navigate);
      return;
    }
    stopView = appsView(main);
  } catch (err) {
    fill(main, h('p', {class: 'error', role: 'alert'}, err.message || String(err)));
  }
}

whenLoggedOut(() => {
  if (!session) return;
  session = null;
  setSession(null);
  showUser();
  toast('Your session has ended; log in again.', 'error');
  navigate('#/login');
});

window.addEventListener('hashchange', route);

(async () => {
  try {
    session = await api('GET', '/auth/session');
    setSession(session);
  } catch {
    session = null;
  }
  showUser();
  route();
})();
