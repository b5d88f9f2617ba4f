// The customer's other pages: databases (connection details on request,
// backups and restores), the wallet and this month's usage, notices, API
// tokens, event webhooks, and the account's data export.

import {api, del, get, post, put} from './api.js';
import {act, ago, badge, fill, form, h, toast, when} from './dom.js';

export function table(headers, rows, empty) {
  if (rows.length === 0) return h('p', {class: 'empty'}, empty);
  return h('div', {class: 'table-wrap'}, h('table', {},
    h('thead', {}, h('tr', {}, headers.map(t => h('th', {scope: 'col'}, t)))),
    h('tbody', {}, rows)));
}

export function button(label, onclick, attrs = {}) {
  const b = h('button', {type: 'button', class: 'small', ...attrs});
  b.textContent = label;
  b.addEventListener('click', () => onclick(b));
  return b;
}

/** A secret shown once, with a button that copies it. */
export function secretBox(id, value, note) {
  const copy = button('Copy', async b => {
    try { await navigator.clipboard.writeText(value); toast('Copied'); } catch { toast('Select the text and copy it', 'error'); }
  });
  return h('div', {class: 'secret-box', id, role: 'status'}, h('code', {}, value), copy, note ? h('small', {}, note) : null);
}

export async function databasesView(main) {
  const list = h('div', {id: 'databases'});
  const [plans, regions, engines] = await Promise.all([get('/paas/plans'), get('/paas/regions'), get('/paas/database-engines')]);
  const load = async () => {
    const dbs = await get('/paas/databases');
    fill(list, table(['Name', 'Engine', 'Region', 'Status', 'Created'], dbs.map(d => h('tr', {dataset: {database: d.id}},
      h('td', {}, h('a', {href: `#/databases/${d.id}`}, d.name)), h('td', {}, `${d.db_type} ${d.version}`), h('td', {}, d.region),
      h('td', {}, badge(d.status), d.failure_reason ? h('div', {class: 'error small-text'}, d.failure_reason) : null), h('td', {}, ago(d.created_at)))),
    'No database yet.'));
  };
  fill(main, h('div', {class: 'title-row'}, h('h1', {}, 'Databases')), list,
    h('h2', {}, 'New database'),
    form({id: 'create-db', submit: 'Create', fields: [
      {name: 'name', label: 'Name', required: true},
      {name: 'engine', label: 'Engine', options: engines.map(e => [`${e.db_type}:${e.version}`, `${e.db_type} ${e.version}`])},
      {name: 'plan_id', label: 'Plan', options: plans.map(p => [p.id, `${p.name} — ${p.memory_limit} MB`])},
      {name: 'region', label: 'Region', options: regions.map(r => [r.region, r.region])},
    ], onsubmit: async v => {
      const [dbType, version] = v.engine.split(':');
      await post('/paas/databases', {name: v.name, db_type: dbType, version, plan_id: Number(v.plan_id), region: v.region});
      toast(`${v.name} is being provisioned`);
      main.querySelector('#create-db').reset();
      load();
    }}));
  load();
  const timer = setInterval(load, 2000);
  return () => clearInterval(timer);
}

/** What a database's latest move to another node is doing, or did. */
function moveText(m, planName) {
  const to = planName(m.to_plan_id);
  if (m.status === 'exporting') return `moving for plan ${to}: being dumped (about ${m.estimated_seconds} s in all)`;
  if (m.status === 'importing') return `moving for plan ${to}: being restored on its new node (about ${m.estimated_seconds} s in all)`;
  if (m.status === 'failed') return `the move for plan ${to} failed: ${m.error || 'no reason given'}; it runs on its node as before`;
  const took = m.finished_at ? Math.round((new Date(m.finished_at) - new Date(m.started_at)) / 1000) : null;
  return `moved for plan ${to}${took != null ? ` in ${took} s` : ''}`;
}

export async function databaseView(main, id, navigate) {
  const head = h('div', {class: 'title-row'});
  const details = h('dl', {class: 'details'});
  const backups = h('div', {id: 'backups'});
  const connection = h('div', {id: 'connection'});
  const power = h('p', {id: 'db-power'});
  const plans = await get('/paas/plans');
  const planName = planId => (plans.find(p => p.id === planId) || {name: `plan ${planId}`}).name;
  const planSelect = h('select', {id: 'db-plan', 'aria-label': 'Plan'},
    plans.map(p => h('option', {value: String(p.id)}, `${p.name} — ${p.cpu_limit} millicores, ${p.memory_limit} MB`)));
  let planShown = null;
  const load = async () => {
    const d = await get(`/paas/databases/${id}`);
    const health = d.health || {};
    fill(head, h('h1', {}, d.name), badge(d.status));
    fill(details, h('dt', {}, 'Engine'), h('dd', {}, `${d.db_type} ${d.version}`), h('dt', {}, 'Region'), h('dd', {}, d.region),
      h('dt', {}, 'Plan'), h('dd', {}, planName(d.plan_id)),
      h('dt', {}, 'Size'), h('dd', {id: 'db-size'}, health.size_bytes != null ? `${(health.size_bytes / 1048576).toFixed(1)} MB` : 'not measured yet'),
      h('dt', {}, 'Connections'), h('dd', {id: 'db-connections'}, health.connections != null ? String(health.connections) : '—'),
      h('dt', {}, 'Last backup'), h('dd', {}, health.last_backup ? [when(health.last_backup.created_at), ' ', badge(health.last_backup.status)] : 'none yet'),
      h('dt', {}, 'Created'), h('dd', {}, when(d.created_at)),
      d.last_move ? [h('dt', {}, 'Move to another node'), h('dd', {id: 'db-move'}, moveText(d.last_move, planName))] : null,
      d.failure_reason ? [h('dt', {}, 'Failure'), h('dd', {class: 'error'}, d.failure_reason)] : null);
    if (planShown !== d.plan_id) {
      planSelect.value = String(d.plan_id);
      planShown = d.plan_id;
    }
    fill(power, d.status === 'running'
      ? button('Stop', btn => {
        if (confirm(`Stop ${d.name}? Its data stays; applications linked to it cannot reach it until you start it.`)) act(btn, () => post(`/paas/databases/${id}/stop`), 'Stopped').then(load);
      }, {id: 'db-stop'})
      : ['stopped', 'failed'].includes(d.status)
        ? button('Start', btn => act(btn, () => post(`/paas/databases/${id}/start`), 'Starting').then(load), {id: 'db-start'})
        : null);
    const bs = await get(`/paas/databases/${id}/backups`);
    fill(backups, table(['When', 'Origin', 'Status', 'Size', ''], bs.map(b => h('tr', {},
      h('td', {}, when(b.created_at)), h('td', {}, b.origin), h('td', {}, badge(b.status), b.error ? h('div', {class: 'error small-text'}, b.error) : null),
      h('td', {}, b.size_bytes ? `${(b.size_bytes / 1048576).toFixed(1)} MB` : '—'),
      h('td', {}, b.status === 'succeeded' ? button('Restore', btn => {
        if (!confirm(`Restore ${d.name} from the backup of ${when(b.created_at)}? Its current data is replaced.`)) return;
        act(btn, () => post(`/paas/databases/${id}/restore`, {backup_id: b.id}), 'Restore started');
      }) : null))), 'No backup yet.'));
  };
  fill(main, head, details,
    h('h2', {}, 'Connection'),
    h('p', {}, button('Show connection details', async btn => {
      await act(btn, async () => {
        const d = await get(`/paas/databases/${id}`);
        fill(connection, d.connection ? h('dl', {class: 'details'},
          h('dt', {}, 'Host'), h('dd', {}, `${d.connection.host}:${d.connection.port}`),
          h('dt', {}, 'User'), h('dd', {}, d.connection.username),
          h('dt', {}, 'Password'), h('dd', {}, h('code', {}, d.connection.password)),
          h('dt', {}, 'Database'), h('dd', {}, d.connection.database),
          h('dt', {}, 'URL'), h('dd', {}, h('code', {}, d.connection.url))) : h('p', {class: 'empty'}, 'Not available until the database runs.'));
      });
    }, {id: 'reveal-connection'})), connection,
    h('h2', {}, 'Power and plan'), power,
    h('p', {}, planSelect, ' ', button('Change plan', btn => {
      if (confirm('Change the plan? A running database restarts on its data with the new limits (a short interruption).')) {
        act(btn, () => put(`/paas/databases/${id}`, {plan_id: Number(planSelect.value)}), 'Plan changed').then(load);
      }
    }, {id: 'db-resize'})),
    h('h2', {}, 'Backups'), h('p', {}, button('Back up now', btn => act(btn, () => post(`/paas/databases/${id}/backup`), 'Backup started').then(load))), backups,
    h('h2', {}, 'Delete'),
    h('p', {}, button('Delete, keeping the data on the node', btn => {
      if (confirm('Delete this database? Its volume is kept on the node for the operator.')) act(btn, () => del(`/paas/databases/${id}`), 'Deleting').then(() => navigate('#/databases'));
    }), button('Delete with its data', btn => {
      if (confirm('Delete this database and its data for good?')) act(btn, () => del(`/paas/databases/${id}?purge=true`), 'Deleting').then(() => navigate('#/databases'));
    })));
  await load();
  const timer = setInterval(load, 3000);
  return () => clearInterval(timer);
}

export async function walletView(main) {
  const [wallet, usage] = await Promise.all([get('/wallet?limit=100'), get('/paas/billing/usage')]);
  fill(main, h('h1', {}, 'Wallet'),
    h('div', {class: 'cards-row'},
      h('div', {class: 'stat', id: 'balance'}, 'Balance', h('strong', {}, `${wallet.balance} ${wallet.currency}`)),
      h('div', {class: 'stat'}, 'Charged this month', h('strong', {}, usage.charged_this_month)),
      h('div', {class: 'stat'}, 'Estimated month total', h('strong', {}, usage.estimated_month_total))),
    wallet.negative_since ? h('p', {class: 'error'}, `Below zero since ${when(wallet.negative_since)}: add credit before your applications are suspended.`) : null,
    h('h2', {}, 'This month, per resource'),
    table(['Resource', 'Hours billed', 'Charged', 'Running', 'Estimate'], usage.resources.map(r => h('tr', {},
      h('td', {}, `${r.resource_type} ${r.name || r.resource_id}`), h('td', {}, r.hours_billed), h('td', {}, r.charged),
      h('td', {}, r.running_instances), h('td', {}, r.estimated_month_total))), 'Nothing billed this month.'),
    h('h2', {}, 'Ledger'),
    table(['When', 'What', 'Amount', 'Balance after'], wallet.transactions.map(t => h('tr', {},
      h('td', {}, when(t.created_at)), h('td', {}, t.description), h('td', {}, t.amount), h('td', {}, t.balance_after))), 'No entry yet.'));
}

export async function notificationsView(main) {
  const list = await get('/paas/notifications?limit=100');
  fill(main, h('h1', {}, 'Notifications'),
    table(['When', 'Kind', 'Message'], list.map(n => h('tr', {}, h('td', {}, ago(n.created_at)), h('td', {}, badge(n.kind)), h('td', {}, n.message))),
      'Nothing to report.'));
}

export async function accountView(main, session) {
  const tokens = h('div', {id: 'tokens'});
  const hooks = h('div', {id: 'webhooks'});
  const shown = h('div', {});
  const loadTokens = async () => {
    const list = await get('/auth/tokens');
    fill(tokens, table(['Name', 'Token', 'Last used', 'Expires', ''], list.map(t => h('tr', {},
      h('td', {}, t.name), h('td', {}, h('code', {}, t.hint)), h('td', {}, ago(t.last_used_at)), h('td', {}, when(t.expires_at)),
      h('td', {}, button('Revoke', btn => { if (confirm(`Revoke ${t.name}?`)) act(btn, () => del(`/auth/tokens/${t.id}`), 'Revoked').then(loadTokens); })))),
    'No API token.'));
  };
  const loadHooks = async () => {
    const list = await get('/paas/webhooks');
    fill(hooks, table(['URL', 'Events', ''], list.map(w => h('tr', {},
      h('td', {}, w.url), h('td', {}, w.events.join(', ')),
      h('td', {}, button('Delete', btn => { if (confirm(`Delete the webhook to ${w.url}?`)) act(btn, () => del(`/paas/webhooks/${w.id}`), 'Deleted').then(loadHooks); })))),
    'No webhook.'));
  };
  const download = button('Download my data (JSON)', btn => act(btn, async () => {
    const data = await get('/account/export');
    const blob = new Blob([JSON.stringify(data, null, 2)], {type: 'application/json'});
    const link = h('a', {href: URL.createObjectURL(blob), download: `skypanel-export-${session.user.id}.json`});
    document.body.append(link);
    link.click();
    link.remove();
  }), {id: 'export'});
  fill(main, h('h1', {}, 'Account'),
    h('p', {}, `Logged in as ${session.user.email}.`),
    h('h2', {}, 'API tokens'), tokens, shown,
    form({id: 'create-token', submit: 'Create token', fields: [{name: 'name', label: 'Name', required: true},
      {name: 'expires_in_days', label: 'Expires after (days, empty: never)', type: 'number', min: 1}],
    onsubmit: async v => {
      const body = {name: v.name};
      if (v.expires_in_days) body.expires_in_days = Number(v.expires_in_days);
      const created = await post('/auth/tokens', body);
      fill(shown, secretBox('new-token', created.token, 'Shown once: keep it now.'));
      main.querySelector('#create-token').reset();
      loadTokens();
    }}),
    h('h2', {}, 'Event webhooks'), hooks,
    form({id: 'create-webhook', submit: 'Add webhook', fields: [{name: 'url', label: 'URL', required: true, placeholder: 'https://example.com/hooks/skypanel'}],
      onsubmit: async v => {
        const created = await post('/paas/webhooks', {url: v.url});
        fill(shown, secretBox('new-webhook-secret', created.secret, 'The signing secret, shown once.'));
        main.querySelector('#create-webhook').reset();
        loadHooks();
      }}),
    h('h2', {}, 'Your data'), h('p', {}, download),
    h('h2', {}, 'Delete your account'),
    h('div', {class: 'danger-zone'},
      h('p', {}, 'Your applications and databases (with their data and backups) are removed from the nodes, your tokens and webhooks are deleted and you are logged out. Your ledger and billing records are kept for accounting, without your e-mail. Download your data first if you want it.'),
      form({id: 'delete-account', submit: 'Delete my account for good', fields: [
        {name: 'confirm', label: `Type your e-mail (${session.user.email}) to confirm`, autocomplete: 'off'},
        {name: 'password', label: 'Your password', type: 'password', autocomplete: 'current-password'}],
      onsubmit: async v => {
        if (v.confirm !== session.user.email) {
          throw Object.assign(new Error('type your e-mail exactly as shown'), {field: 'confirm'});
        }
        await api('DELETE', '/account', {password: v.password});
        location.hash = '#/login';
        location.reload();
      }})));
  loadTokens();
  loadHooks();
}
