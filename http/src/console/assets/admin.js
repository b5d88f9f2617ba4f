// The admin console (`/admin`): the platform at a glance, plans, runtimes,
// database engines, nodes (registration with its install command shown
// once), customers (search, their applications and wallet, credit, data
// export, suspend and resume, delete) and the audit log. The inspector of queues and actors is its own
// page, `/admin/inspector`.

import {del, get, post, put} from './api.js';
import {act, ago, badge, fill, form, h, toast, when} from './dom.js';
import {button, secretBox, table} from './account_pages.js';

export const ADMIN_VIEWS = ['overview', 'plans', 'runtimes', 'engines', 'nodes', 'customers', 'audit'];

/** Shows a view of the admin console; answers a function that stops it. */
export async function adminView(main, parts, navigate) {
  const [view, id] = parts;
  if (view === 'customers' && /^\d+$/.test(id || '')) return customerView(main, Number(id));
  switch (view) {
    case 'plans': return plansView(main);
    case 'runtimes': return runtimesView(main);
    case 'engines': return enginesView(main);
    case 'nodes': return nodesView(main);
    case 'customers': return customersView(main, navigate);
    case 'audit': return auditView(main);
    default: return overviewView(main);
  }
}

function bar(used, total) {
  const share = total > 0 ? Math.min(100, Math.round((used / total) * 100)) : 0;
  return h('div', {class: 'bar', role: 'meter', 'aria-valuenow': share, 'aria-valuemin': 0, 'aria-valuemax': 100, title: `${share} %`},
    h('span', {style: null, dataset: {share}}));
}

/** Widths cannot be inline styles under the policy: set them from script. */
function sizeBars(root) {
  root.querySelectorAll('.bar > span').forEach(s => { s.style.width = `${s.dataset.share}%`; });
}

async function overviewView(main) {
  const stats = await get('/admin/paas/stats');
  const counts = (title, map) => h('div', {class: 'stat'}, title,
    h('strong', {}, String(Object.values(map).reduce((a, b) => a + b, 0))),
    h('small', {}, Object.entries(map).map(([k, v]) => `${k} ${v}`).join(' · ')));
  fill(main, h('h1', {}, 'Platform'),
    h('div', {class: 'cards-row'},
      counts('Users', stats.users), counts('Applications', stats.applications), counts('Databases', stats.databases), counts('Nodes', stats.nodes),
      h('div', {class: 'stat'}, 'Billed this month', h('strong', {}, stats.revenue.billed_this_month)),
      h('div', {class: 'stat'}, 'Credited this month', h('strong', {}, stats.revenue.credited_this_month))),
    h('h2', {}, 'Revenue per hour'),
    table(['Hour', 'Records', 'Total'], stats.revenue.per_hour.map(r => h('tr', {}, h('td', {}, when(r.period_start)), h('td', {}, r.records), h('td', {}, r.total))), 'No hour billed yet.'),
    h('p', {}, button('Bill the past hours now', btn => act(btn, async () => {
      const start = new Date(Date.now() - 3600 * 1000);
      start.setUTCMinutes(0, 0, 0);
      const r = await post('/admin/paas/billing/run', {period_start: start.toISOString()});
      toast(`Billed ${r.records} record(s), ${r.charged}`);
    }))),
    h('h2', {}, 'Certificates expiring first'),
    table(['Host name', 'Status', 'Expires'], stats.certificates.expiring_first.map(c => h('tr', {}, h('td', {}, c.hostname), h('td', {}, badge(c.ssl_status)), h('td', {}, when(c.expires_at)))), 'No certificate.'));
}

/** Fields of a plan's form, filled from `plan` when editing. */
function planFields(plan = {}) {
  return [
    {name: 'name', label: 'Name', required: true, value: plan.name},
    {name: 'cpu_limit', label: 'CPU (millicores)', type: 'number', required: true, value: plan.cpu_limit},
    {name: 'memory_limit', label: 'Memory (MB)', type: 'number', required: true, value: plan.memory_limit},
    {name: 'storage_limit', label: 'Disk (MB)', type: 'number', required: true, value: plan.storage_limit},
    {name: 'monthly_price', label: 'Monthly price', required: true, value: plan.monthly_price, placeholder: '7.00'},
    {name: 'hourly_rate', label: 'Hourly rate', required: true, value: plan.hourly_rate, placeholder: '0.0100'},
  ];
}

function planBody(v) {
  return {name: v.name, cpu_limit: Number(v.cpu_limit), memory_limit: Number(v.memory_limit), storage_limit: Number(v.storage_limit),
    monthly_price: v.monthly_price, hourly_rate: v.hourly_rate};
}

/** A dialog holding `content`; closed by its button or Escape. */
function dialog(title, content) {
  const close = h('button', {type: 'button', class: 'small'}, 'Close');
  const box = h('dialog', {'aria-label': title}, h('h2', {}, title), content, close);
  close.addEventListener('click', () => box.close());
  box.addEventListener('close', () => box.remove());
  document.body.append(box);
  box.showModal();
  return box;
}

async function plansView(main) {
  const list = h('div', {id: 'plans'});
  const load = async () => {
    const plans = await get('/admin/paas/plans');
    fill(list, table(['Name', 'CPU', 'Memory', 'Disk', 'Price', 'Rate', 'Active', ''], plans.map(p => h('tr', {dataset: {plan: p.id}},
      h('td', {}, p.name), h('td', {}, `${p.cpu_limit} m`), h('td', {}, `${p.memory_limit} MB`), h('td', {}, `${p.storage_limit} MB`),
      h('td', {}, p.monthly_price), h('td', {}, p.hourly_rate), h('td', {}, p.is_active ? 'yes' : 'no'),
      h('td', {},
        button('Edit', () => {
          const box = dialog(`Edit ${p.name}`, form({id: 'edit-plan', submit: 'Save', fields: planFields(p),
            onsubmit: async v => { await put(`/admin/paas/plans/${p.id}`, planBody(v)); box.close(); toast('Saved'); load(); }}));
        }),
        button(p.is_active ? 'Deactivate' : 'Activate', btn => act(btn, () => put(`/admin/paas/plans/${p.id}`, {is_active: !p.is_active})).then(load)),
        button('Delete', btn => { if (confirm(`Delete plan ${p.name}?`)) act(btn, () => del(`/admin/paas/plans/${p.id}`), 'Deleted').then(load); })))),
    'No plan yet: customers cannot create anything until there is one.'));
  };
  fill(main, h('h1', {}, 'Plans'), list, h('h2', {}, 'New plan'),
    form({id: 'create-plan', submit: 'Create plan', fields: planFields(),
      onsubmit: async v => { await post('/admin/paas/plans', planBody(v)); toast(`Plan ${v.name} created`); main.querySelector('#create-plan').reset(); load(); }}));
  await load();
}

async function runtimesView(main) {
  const list = h('div', {id: 'runtimes'});
  const load = async () => {
    const runtimes = await get('/admin/paas/runtimes');
    fill(list, table(['Name', 'Type', 'Version', 'Base image', 'Build', 'Start', 'Active', ''], runtimes.map(r => h('tr', {dataset: {runtime: r.id}},
      h('td', {}, r.name), h('td', {}, r.runtime_type), h('td', {}, r.version), h('td', {}, h('code', {}, r.base_image)),
      h('td', {}, r.default_build_cmd || '—'), h('td', {}, r.default_start_cmd || '—'), h('td', {}, r.is_active ? 'yes' : 'no'),
      h('td', {},
        button(r.is_active ? 'Deactivate' : 'Activate', btn => act(btn, () => put(`/admin/paas/runtimes/${r.id}`, {is_active: !r.is_active})).then(load)),
        button('Delete', btn => { if (confirm(`Delete runtime ${r.name}?`)) act(btn, () => del(`/admin/paas/runtimes/${r.id}`), 'Deleted').then(load); })))),
    'No runtime.'));
  };
  fill(main, h('h1', {}, 'Runtimes'), list, h('h2', {}, 'New runtime'),
    form({id: 'create-runtime', submit: 'Create runtime', fields: [
      {name: 'name', label: 'Name', required: true}, {name: 'runtime_type', label: 'Type', options: ['node', 'python', 'php', 'static', 'docker'].map(t => [t, t])},
      {name: 'version', label: 'Version', required: true}, {name: 'base_image', label: 'Base image', required: true},
      {name: 'default_build_cmd', label: 'Build command'}, {name: 'default_start_cmd', label: 'Start command'}],
    onsubmit: async v => {
      const body = {name: v.name, runtime_type: v.runtime_type, version: v.version, base_image: v.base_image};
      if (v.default_build_cmd) body.default_build_cmd = v.default_build_cmd;
      if (v.default_start_cmd) body.default_start_cmd = v.default_start_cmd;
      await post('/admin/paas/runtimes', body);
      toast(`Runtime ${v.name} created`);
      main.querySelector('#create-runtime').reset();
      load();
    }}));
  await load();
}

async function enginesView(main) {
  const list = h('div', {id: 'engines'});
  const load = async () => {
    const engines = await get('/admin/paas/database-engines');
    fill(list, table(['Type', 'Version', 'Image', 'Active', ''], engines.map(e => h('tr', {},
      h('td', {}, e.db_type), h('td', {}, e.version), h('td', {}, h('code', {}, e.image)), h('td', {}, e.is_active ? 'yes' : 'no'),
      h('td', {}, button('Delete', btn => { if (confirm(`Delete ${e.db_type} ${e.version}?`)) act(btn, () => del(`/admin/paas/database-engines/${e.id}`), 'Deleted').then(load); })))),
    'No engine.'));
  };
  fill(main, h('h1', {}, 'Database engines'), list, h('h2', {}, 'New engine'),
    form({id: 'create-engine', submit: 'Add engine', fields: [
      {name: 'db_type', label: 'Type', options: ['postgresql', 'mysql', 'redis', 'mongodb'].map(t => [t, t])},
      {name: 'version', label: 'Version', required: true}, {name: 'image', label: 'Image', required: true}],
    onsubmit: async v => { await post('/admin/paas/database-engines', v); toast('Engine added'); main.querySelector('#create-engine').reset(); load(); }}));
  await load();
}

async function nodesView(main) {
  const list = h('div', {id: 'nodes'});
  const shown = h('div', {id: 'registration'});
  const load = async () => {
    const capacity = await get('/admin/paas/capacity');
    const nodes = await get('/admin/paas/nodes');
    fill(list, table(['Name', 'Region', 'Status', 'CPU allocated', 'Memory allocated', 'Disk used', 'Containers', 'Heartbeat', ''], nodes.map(n => {
      const c = capacity.nodes.find(x => x.node_id === n.id) || {cpu_allocated: 0, memory_allocated: 0};
      return h('tr', {dataset: {node: n.id}},
        h('td', {}, n.name), h('td', {}, n.region), h('td', {}, badge(n.status)),
        h('td', {}, bar(c.cpu_allocated, n.cpu_total), h('small', {}, `${c.cpu_allocated} of ${n.cpu_total} m`)),
        h('td', {}, bar(c.memory_allocated, n.memory_total), h('small', {}, `${c.memory_allocated} of ${n.memory_total} MB`)),
        h('td', {}, bar(n.disk_used, n.disk_total), h('small', {}, `${n.disk_used} of ${n.disk_total} MB`)),
        h('td', {}, n.container_count), h('td', {}, ago(n.last_heartbeat)),
        h('td', {},
          button(n.status === 'disabled' ? 'Enable' : 'Disable', btn => act(btn, () => put(`/admin/paas/nodes/${n.id}`, {disabled: n.status !== 'disabled'})).then(load)),
          button('Delete', btn => { if (confirm(`Delete node ${n.name}?`)) act(btn, () => del(`/admin/paas/nodes/${n.id}`), 'Deleted').then(load); })));
    }), 'No node yet: register one below and run its install command on the machine.'));
    sizeBars(list);
  };
  fill(main, h('h1', {}, 'Nodes'), list, h('h2', {}, 'Register a node'), shown,
    form({id: 'register-node', submit: 'Register', fields: [
      {name: 'name', label: 'Name', required: true, placeholder: 'worker-1'}, {name: 'region', label: 'Region', required: true, placeholder: 'eu-1'},
      {name: 'host_address', label: 'Address customers reach it at', required: true, placeholder: '203.0.113.10'}],
    onsubmit: async v => {
      const r = await post('/admin/paas/nodes/register', v);
      fill(shown, h('p', {}, `Run this on ${v.name} as root; the one-time token expires ${when(r.expires_at)}.`),
        secretBox('install-command', r.install_command, 'Then paste the token when it asks:'),
        secretBox('registration-token', r.registration_token, 'Shown once.'));
      main.querySelector('#register-node').reset();
      load();
    }}));
  await load();
  const timer = setInterval(load, 2000);
  return () => clearInterval(timer);
}

async function customersView(main, navigate) {
  const list = h('div', {id: 'customers'});
  const search = h('input', {id: 'customer-search', type: 'search', placeholder: 'part of an e-mail', autocomplete: 'off'});
  let timer = null;
  const load = async () => {
    const q = search.value.trim();
    const users = await get(`/admin/users?limit=200${q ? `&q=${encodeURIComponent(q)}` : ''}`);
    fill(list, table(['E-mail', 'Role', 'Balance', 'Applications', 'Databases', 'Since'], users.map(u => h('tr', {dataset: {user: u.user.id}},
      h('td', {}, h('a', {href: `/admin#/customers/${u.user.id}`}, u.user.email)),
      h('td', {}, u.user.role, u.user.suspended_at ? [' ', badge('suspended')] : null, u.user.deleted_at ? [' ', badge('deleted')] : null),
      h('td', {}, `${u.balance} ${u.currency}`),
      h('td', {}, u.applications), h('td', {}, u.databases), h('td', {}, when(u.user.created_at)))), 'Nobody matches.'));
  };
  search.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(load, 250); });
  fill(main, h('h1', {}, 'Customers'), h('div', {class: 'field'}, h('label', {for: 'customer-search'}, 'Search by e-mail'), search), list);
  await load();
}

async function customerView(main, id) {
  const load = async () => {
    const c = await get(`/admin/users/${id}`);
    fill(main, h('h1', {}, c.user.email), h('p', {class: 'muted'}, `${c.user.role} since ${when(c.user.created_at)}`),
      h('div', {class: 'cards-row'}, h('div', {class: 'stat', id: 'customer-balance'}, 'Balance', h('strong', {}, `${c.wallet.balance} ${c.wallet.currency}`))),
      h('h2', {}, 'Credit the wallet'),
      form({id: 'credit', submit: 'Credit', fields: [
        {name: 'amount', label: 'Amount', required: true, placeholder: '25.00'},
        {name: 'description', label: 'Shown to the customer', required: true, value: 'Credit'},
        {name: 'reference', label: 'Payment reference (makes it idempotent)'}],
      onsubmit: async v => {
        const body = {amount: v.amount, description: v.description};
        if (v.reference) body.reference = v.reference;
        const r = await post(`/admin/wallets/${id}/credit`, body);
        toast(`Credited; the balance is ${r.balance}`);
        load();
      }}),
      suspension(c, load),
      h('h2', {}, 'Applications'),
      table(['Name', 'Status', 'Region', 'URL'], c.applications.map(a => h('tr', {dataset: {app: a.id}},
        h('td', {}, h('a', {href: `/admin/inspector#app/${a.id}`}, a.name)), h('td', {}, badge(a.status)), h('td', {}, a.region), h('td', {}, a.url))), 'No application.'),
      h('h2', {}, 'Databases'),
      table(['Name', 'Engine', 'Status'], c.databases.map(d => h('tr', {}, h('td', {}, d.name), h('td', {}, `${d.db_type} ${d.version}`), h('td', {}, badge(d.status)))), 'No database.'),
      h('h2', {}, 'Ledger'),
      table(['When', 'What', 'Amount', 'Balance after'], c.wallet.transactions.map(t => h('tr', {},
        h('td', {}, when(t.created_at)), h('td', {}, t.description), h('td', {}, t.amount), h('td', {}, t.balance_after))), 'No entry.'),
      h('h2', {}, 'Data'),
      h('p', {}, button('Download their data (JSON)', btn => act(btn, async () => {
        const data = await get(`/admin/users/${id}/export`);
        const link = h('a', {href: URL.createObjectURL(new Blob([JSON.stringify(data, null, 2)], {type: 'application/json'})), download: `skypanel-export-${id}.json`});
        document.body.append(link); link.click(); link.remove();
      }))));
  };
  await load();
}

/** A customer's account: suspend with a reason, resume, delete; a deleted one says so. */
function suspension(c, load) {
  const u = c.user;
  if (u.deleted_at) return h('p', {class: 'muted', id: 'account-deleted'}, `This account was deleted ${when(u.deleted_at)}; its ledger is kept.`);
  if (u.role !== 'customer') return null;
  const remove = button('Delete this account', btn => {
    if (!confirm(`Delete ${u.email}? Their applications and databases are removed from the nodes; the ledger is kept.`)) return;
    act(btn, () => del(`/admin/users/${u.id}`), 'Account deleted').then(load);
  }, {class: 'danger', id: 'delete-user'});
  if (u.suspended_at) {
    return h('section', {id: 'suspension'}, h('h2', {}, 'Suspended'),
      h('p', {}, badge('suspended'), ` since ${when(u.suspended_at)}: `, u.suspension_reason || ''),
      h('p', {}, button('Resume the account', btn => act(btn, () => post(`/admin/users/${u.id}/resume`), 'Resumed; their resources come back').then(load), {id: 'resume-user'}), ' ', remove));
  }
  return h('section', {id: 'suspension'}, h('h2', {}, 'Suspend the account'),
    h('p', {class: 'muted'}, 'Stops their applications and databases with their data kept, whatever the balance, until resumed; they read the reason.'),
    form({id: 'suspend', submit: 'Suspend', fields: [{name: 'reason', label: 'Why (shown to the customer)', required: true}],
      onsubmit: async v => {
        await post(`/admin/users/${u.id}/suspend`, {reason: v.reason});
        toast('Suspended; their resources are stopping');
        load();
      }}),
    h('p', {}, remove));
}

async function auditView(main) {
  const list = h('div', {id: 'audit'});
  const filters = form({id: 'audit-filter', submit: 'Filter', fields: [
    {name: 'action', label: 'Action (exact, or a family such as env.*)'},
    {name: 'actor_user_id', label: 'By user id', type: 'number'},
    {name: 'target_type', label: 'Target type'}, {name: 'target_id', label: 'Target id', type: 'number'}],
  onsubmit: async v => load(v)});
  const load = async (v = {}) => {
    const query = Object.entries(v).filter(([, x]) => x).map(([k, x]) => `${k}=${encodeURIComponent(x)}`).join('&');
    const entries = await get(`/admin/paas/audit?limit=200${query ? `&${query}` : ''}`);
    fill(list, table(['When', 'Action', 'By', 'Target', 'Details', 'From'], entries.map(e => h('tr', {},
      h('td', {}, when(e.created_at)), h('td', {}, e.action),
      h('td', {}, e.actor_user_id ? `user ${e.actor_user_id}` : e.actor_node_id ? `node ${e.actor_node_id}` : 'platform'),
      h('td', {}, e.target_type ? `${e.target_type} ${e.target_id ?? ''}` : '—'),
      h('td', {}, h('code', {}, JSON.stringify(e.details))), h('td', {}, e.ip_address || '—'))), 'No entry matches.'));
  };
  fill(main, h('h1', {}, 'Audit log'), filters, list);
  await load();
}
