// The console's entry: reads the session, routes `#/…` views, keeps the
// header's user and log-out button.

import {api, del, setSession, whenLoggedOut} from './api.js';
import {fill, h, toast} from './dom.js';
import {loginView, signupView} from './account.js';
import {appsView, newAppView} from './apps.js';
import {appView} from './app.js';
import {accountView, databaseView, databasesView, notificationsView, walletView} from './account_pages.js';
import {ADMIN_VIEWS, adminView} from './admin.js';

const main = document.getElementById('main');
const user = document.getElementById('user');
const menu = document.getElementById('menu');
/** The admin console is the same page at /admin. */
const adminConsole = location.pathname.replace(/\/+$/, '') === '/admin';
let session = null;
let stopView = null;
/** Counts routes: a view that finished loading after another began is dropped. */
let generation = 0;

function navigate(hash) {
  if (location.hash === hash) route(); else location.hash = hash;
}

function showMenu() {
  if (adminConsole) {
    fill(menu, ADMIN_VIEWS.map(v => h('a', {href: `#/${v}`}, v[0].toUpperCase() + v.slice(1))),
      h('a', {href: '/admin/inspector'}, 'Inspector'), h('a', {href: '/'}, 'Customer console'));
    document.title = 'SkyPanel admin';
  } else if (session && session.user.role === 'admin' && !menu.querySelector('a[href="/admin"]')) {
    menu.append(h('a', {href: '/admin'}, 'Admin'));
  }
}

function showUser() {
  showMenu();
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
  const asked = /^#\/(login|signup)?$/.test(location.hash) ? '' : location.hash;
  navigate(asked || (adminConsole ? '#/overview' : '#/apps'));
}

async function route() {
  if (stopView) { stopView(); stopView = null; }
  const mine = ++generation;
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);
  window.scrollTo(0, 0);
  // Each view draws into an area of its own: one still loading when the
  // next begins draws into an area that is no longer on the page.
  const area = h('div', {});
  main.replaceChildren(...[suspendedBanner(), area].filter(Boolean));
  let stop = null;
  try {
    stop = await show(area, parts);
  } catch (err) {
    fill(area, h('p', {class: 'error', role: 'alert'}, err.message || String(err)));
  }
  if (typeof stop !== 'function') return;
  if (mine === generation) stopView = stop; else stop();
}

/** While an admin holds the customer's account suspended: why, above every view. */
function suspendedBanner() {
  if (adminConsole || !session || !session.user.suspended_at) return null;
  return h('p', {class: 'error', role: 'alert', id: 'suspended-banner'},
    `Your account is suspended: ${session.user.suspension_reason || 'no reason given'}. `,
    'Your applications and databases are stopped with their data kept, and nothing new can be created or deployed; contact the platform\'s operator.');
}

/** Draws the view `parts` names into `area`; may answer a function that stops it. */
async function show(area, parts) {
  if (!session) {
    if (parts[0] === 'signup') return signupView(area, loggedIn);
    return loginView(area, loggedIn);
  }
  const here = `#/${parts[0] || (adminConsole ? 'overview' : 'apps')}`;
  document.querySelectorAll('#menu a').forEach(a =>
    a.setAttribute('aria-current', a.getAttribute('href') === here ? 'page' : 'false'));
  if (adminConsole) {
    if (session.user.role !== 'admin') {
      return fill(area, h('p', {class: 'error', role: 'alert'}, 'The admin console needs an admin account. ', h('a', {href: '/'}, 'Go to your console.')));
    }
    return adminView(area, parts, navigate);
  }
  if (parts[0] === 'apps' && parts[1] === 'new') return newAppView(area, navigate);
  if (parts[0] === 'apps' && /^\d+$/.test(parts[1] || '')) return appView(area, Number(parts[1]), parts[2], navigate);
  if (parts[0] === 'databases' && /^\d+$/.test(parts[1] || '')) return databaseView(area, Number(parts[1]), navigate);
  if (parts[0] === 'databases') return databasesView(area);
  if (parts[0] === 'wallet') return walletView(area);
  if (parts[0] === 'notifications') return notificationsView(area);
  if (parts[0] === 'account') return accountView(area, session);
  return appsView(area);
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
// A page the browser keeps for its back button holds no event stream (each
// would keep one of the six connections a browser opens to the platform);
// it draws its view again when it is shown again.
window.addEventListener('pagehide', () => { if (stopView) { stopView(); stopView = null; } });
window.addEventListener('pageshow', event => { if (event.persisted) route(); });

/** The session the page came with (empty: logged out); asked for when it did not come. */
async function firstSession() {
  const meta = document.querySelector('meta[name="skypanel-session"]');
  if (meta) return meta.content ? JSON.parse(meta.content) : null;
  try { return await api('GET', '/auth/session'); } catch { return null; }
}

(async () => {
  session = await firstSession();
  setSession(session);
  showUser();
  route();
})();
