// One application's page: its tabs, each reading the REST API; the status
// and the logs follow the platform live.

import {del, follow, get, post, put} from './api.js';
import {act, ago, badge, fill, form, h, toast, when} from './dom.js';
import {button, secretBox, table} from './account_pages.js';
import {chart} from './charts.js';
import {LogView} from './logview.js';

const TABS = ['overview', 'deploys', 'environment', 'domains', 'databases', 'logs', 'settings'];
/** Lines a log view keeps: older ones leave the page as new ones come. */
const LOG_LINES_KEPT = 1000;

/** The page of application `id` at `tab`; answers a function that stops its streams. */
export function appView(main, id, tab, navigate) {
  tab = TABS.includes(tab) ? tab : 'overview';
  const stops = [];
  const head = h('div', {class: 'title-row'}, h('h1', {}, '…'));
  const body = h('section', {id: 'tab', 'aria-live': 'polite'});
  const nav = h('nav', {class: 'tabs', 'aria-label': 'Application'},
    TABS.map(t => h('a', {href: `#/apps/${id}/${t}`, 'aria-current': t === tab ? 'page' : false, id: `tab-${t}`},
      t[0].toUpperCase() + t.slice(1))));
  fill(main, head, nav, body);
  let app = null;
  const showHead = () => fill(head,
    h('h1', {}, app.name), badge(app.status),
    h('a', {href: app.url, target: '_blank', rel: 'noopener noreferrer', class: 'url'}, app.url));
  const tabs = {overview, deploys, environment, domains, databases, logs, settings};
  let started = false;
  stops.push(follow(`/paas/applications/${id}/stream`, latest => {
    app = latest;
    showHead();
    if (!started) {
      started = true;
      const stop = tabs[tab](body, app, navigate);
      if (stop) stops.push(stop);
      performance.mark('skypanel:app-drawn');
    } else if (body.onapp) {
      body.onapp(app);
    }
  }, state => {
    if (state === 'reconnecting') {
      get(`/paas/applications/${id}`).catch(err => {
        if (err.status === 404) {
          stops.forEach(s => s());
          fill(main, h('p', {class: 'empty'}, 'This application no longer exists. ', h('a', {href: '#/apps'}, 'Back to the list.')));
        }
      });
    }
  }));
  return () => stops.forEach(s => s());
}

function overview(body, app) {
  const details = h('dl', {class: 'details'});
  const instances = h('div', {});
  const charts = h('div', {class: 'charts', id: 'charts'});
  let currentVersion = '…';
  const show = a => fill(details,
    h('dt', {}, 'Status'), h('dd', {id: 'app-status'}, badge(a.status)),
    h('dt', {}, 'URL'), h('dd', {}, h('a', {href: a.url, target: '_blank', rel: 'noopener noreferrer'}, a.url)),
    h('dt', {}, 'Source'), h('dd', {}, a.image || `${a.git_repo_url || '—'} (${a.git_branch})`),
    h('dt', {}, 'Current release'), h('dd', {id: 'current-release'}, a.current_release_id ? currentVersion : 'none yet'),
    h('dt', {}, 'Instances'), h('dd', {}, String(a.instance_count)),
    h('dt', {}, 'Region'), h('dd', {}, a.region),
    a.last_error ? [h('dt', {}, 'Last error'), h('dd', {class: 'error'}, a.last_error)] : null);
  // One read draws the tab: the instances, the charts and the release.
  const load = async () => {
    const o = await get(`/paas/applications/${app.id}/overview`).catch(() => null);
    if (!o) return;
    const m = o.metrics;
    const hour = Date.now() - 3600 * 1000;
    const points = m.history.filter(p => new Date(p.at).getTime() >= hour);
    const cpuMax = (m.cpu_limit_millicores / 10) * Math.max(m.instance_count, 1);
    fill(charts,
      chart('CPU', points.map(p => p.cpu_percent), cpuMax, v => `${v.toFixed(1)} %`),
      chart('Memory', points.map(p => p.memory_used_mb), m.memory_limit_mb * Math.max(m.instance_count, 1), v => `${Math.round(v)} MB`));
    const current = o.current_release;
    currentVersion = current ? `v${current.version} — ${current.description}` : 'none yet';
    const slot = details.querySelector('#current-release');
    if (slot && app.current_release_id) slot.textContent = currentVersion;
    fill(instances, h('h2', {}, 'Instances'), table(['Instance', 'Release', 'Node', 'State', 'CPU', 'Memory', 'Restarts'],
      o.instances.map(i => h('tr', {}, h('td', {}, i.instance), h('td', {}, `v${i.release}`), h('td', {}, i.node_id),
        h('td', {}, badge(i.crash_looping ? 'crash_looping' : i.state)), h('td', {}, `${i.cpu_percent.toFixed(1)} %`),
        h('td', {}, `${i.memory_used_mb} MB`), h('td', {}, i.restart_count))),
      'No instance runs.'));
  };
  show(app);
  load();
  const timer = setInterval(load, 5000);
  fill(body, details, h('h2', {}, 'The last hour'), charts, instances);
  body.onapp = a => {
    const released = a.current_release_id !== app.current_release_id;
    app = a;
    show(a);
    if (released) load();
  };
  return () => clearInterval(timer);
}

function deploys(body, app) {
  const releases = h('div', {});
  const builds = h('div', {});
  const log = h('pre', {class: 'log', id: 'build-log', tabindex: 0});
  const view = new LogView(log, LOG_LINES_KEPT);
  const logTitle = h('h2', {}, 'Build log');
  let stopLog = null;
  const showLog = build => {
    if (stopLog) stopLog();
    fill(logTitle, `Build #${build.build_number} log`);
    view.clear();
    stopLog = follow(`/paas/applications/${app.id}/builds/${build.id}/logs?follow=true`, event => {
      if (event.line !== null && event.line !== undefined) view.push(event.line);
      if (event.status) { view.push(`— build ${event.status} —`); if (stopLog) { stopLog(); stopLog = null; } load(); }
    });
  };
  const load = async () => {
    const [bs, rs] = await Promise.all([
      get(`/paas/applications/${app.id}/builds`), get(`/paas/applications/${app.id}/releases`)]);
    fill(builds, h('h2', {}, 'Builds'), table(['#', 'Status', 'Commit', 'Started', ''],
      bs.map(b => h('tr', {dataset: {build: b.id}},
        h('td', {}, b.build_number), h('td', {}, badge(b.status), b.failure_reason ? h('div', {class: 'error small-text'}, b.failure_reason) : null),
        h('td', {}, (b.git_commit_sha || '').slice(0, 8), ' ', b.git_commit_message || ''),
        h('td', {}, ago(b.created_at)),
        h('td', {},
          button('Log', () => showLog(b)),
          ['pending', 'building', 'queued'].includes(b.status)
            ? button('Cancel', btn => act(btn, () => post(`/paas/applications/${app.id}/builds/${b.id}/cancel`), 'Cancel requested').then(load))
            : null))),
      'No build yet.'));
    fill(releases, h('h2', {}, 'Releases'), table(['Version', 'What', 'When', ''],
      rs.map(r => h('tr', {dataset: {release: r.version}},
        h('td', {}, `v${r.version}`, r.current ? [' ', badge('current')] : null),
        h('td', {}, r.description), h('td', {}, ago(r.created_at)),
        h('td', {}, r.current ? null : button(`Roll back to v${r.version}`, btn => {
          if (!confirm(`Roll ${app.name} back to release v${r.version}?`)) return;
          act(btn, () => post(`/paas/applications/${app.id}/rollback`, {release: r.version}), `Rolling back to v${r.version}`).then(load);
        })))),
      'No release yet.'));
    const running = bs.find(b => ['pending', 'building', 'queued'].includes(b.status));
    if (running && !stopLog) showLog(running);
  };
  fill(body,
    h('p', {}, button('Deploy now', btn => act(btn, () => post(`/paas/applications/${app.id}/deploy`), 'Deploy started').then(load), {id: 'deploy-now'})),
    builds, logTitle, log, releases);
  load();
  body.onapp = () => load();
  return () => { if (stopLog) stopLog(); };
}

function environment(body, app) {
  const list = h('div', {id: 'env'});
  const load = async () => {
    const vars = await get(`/paas/applications/${app.id}/env`);
    fill(list, table(['Name', 'Value', ''], vars.map(v => {
      const value = h('code', {class: 'masked'}, v.value);
      return h('tr', {dataset: {key: v.key}},
        h('th', {scope: 'row'}, v.key), h('td', {}, value),
        h('td', {},
          button('Reveal', async btn => {
            await act(btn, async () => {
              const one = await get(`/paas/applications/${app.id}/env/${encodeURIComponent(v.key)}?reveal=true`);
              value.textContent = one.value;
              value.className = 'revealed';
            });
          }),
          button('Edit', () => {
            const next = prompt(`New value of ${v.key}`);
            if (next === null) return;
            put(`/paas/applications/${app.id}/env/${encodeURIComponent(v.key)}`, {value: next})
              .then(r => { toast(changed(r, `${v.key} changed`)); load(); }, err => toast(err.message, 'error'));
          }),
          button('Delete', btn => {
            if (!confirm(`Delete ${v.key}?`)) return;
            act(btn, async () => { const r = await del(`/paas/applications/${app.id}/env/${encodeURIComponent(v.key)}`); toast(changed(r, `${v.key} deleted`)); }).then(load);
          })));
    }), 'No variable set.'));
  };
  fill(body, list, h('h2', {}, 'Add a variable'),
    form({
      id: 'add-env', submit: 'Add',
      fields: [{name: 'key', label: 'Name', required: true, placeholder: 'DATABASE_POOL'},
        {name: 'value', label: 'Value', type: 'textarea'}],
      onsubmit: async values => {
        const r = await post(`/paas/applications/${app.id}/env`, {key: values.key, value: values.value});
        toast(changed(r, `${values.key} added`));
        body.querySelector('#add-env').reset();
        load();
      },
    }));
  load();
}

/** What a configuration change made: a release, or a place in the queue. */
function changed(answer, what) {
  if (answer && answer.release) return `${what}: release v${answer.release}`;
  if (answer && answer.waiting) return `${what}: waiting behind ${answer.waiting.behind}`;
  return what;
}

function domains(body, app) {
  const list = h('div', {id: 'domains'});
  const load = async () => {
    const ds = await get(`/paas/applications/${app.id}/domains`);
    fill(list, table(['Host name', 'Certificate', 'Expires', ''], ds.map(d => h('tr', {dataset: {domain: d.hostname}},
      h('td', {}, d.hostname), h('td', {}, badge(d.ssl_status), d.ssl_error ? h('div', {class: 'error small-text'}, d.ssl_error) : null),
      h('td', {}, when(d.certificate_expires_at)),
      h('td', {}, d.is_system ? 'system' : [
        d.ssl_status === 'failed' ? button('Retry', btn => act(btn, () => post(`/paas/applications/${app.id}/domains/${d.hostname}/ssl/retry`), 'Retrying').then(load)) : null,
        button('Remove', btn => { if (confirm(`Remove ${d.hostname}?`)) act(btn, () => del(`/paas/applications/${app.id}/domains/${d.hostname}`), 'Removed').then(load); }),
      ]))), 'No domain.'));
  };
  fill(body, list, h('h2', {}, 'Add a domain'),
    form({id: 'add-domain', submit: 'Add', fields: [{name: 'hostname', label: 'Host name', required: true, placeholder: 'shop.example.com'}],
      onsubmit: async values => { await post(`/paas/applications/${app.id}/domains`, {hostname: values.hostname}); body.querySelector('#add-domain').reset(); load(); }}));
  load();
}

function databases(body, app) {
  const list = h('div', {id: 'links'});
  const choose = h('div', {});
  const load = async () => {
    const [links, all] = await Promise.all([get(`/paas/applications/${app.id}/databases`), get('/paas/databases')]);
    fill(list, table(['Database', 'Engine', 'Variables', ''], links.map(l => h('tr', {},
      h('td', {}, h('a', {href: `#/databases/${l.database_id}`}, l.database_name)), h('td', {}, l.db_type), h('td', {}, l.variables.join(', ')),
      h('td', {}, button('Unlink', btn => { if (confirm(`Unlink ${l.database_name}? Its variables leave the next release.`)) act(btn, () => del(`/paas/applications/${app.id}/databases/${l.database_id}`), 'Unlinked').then(load); })))),
    'No database linked.'));
    const free = all.filter(d => !links.some(l => l.database_id === d.id));
    fill(choose, free.length === 0 ? h('p', {class: 'empty'}, 'No other database to link. ', h('a', {href: '#/databases'}, 'Create one.')) :
      form({id: 'link-db', submit: 'Link', fields: [
        {name: 'db', label: 'Database', options: free.map(d => [d.id, `${d.name} (${d.db_type})`])},
        {name: 'env_var_prefix', label: 'Variable prefix (empty: DATABASE)'}],
      onsubmit: async v => {
        const body = {};
        if (v.env_var_prefix) body.env_var_prefix = v.env_var_prefix;
        await post(`/paas/applications/${app.id}/databases/${v.db}`, body);
        toast('Linked: the application restarts with its variables');
        load();
      }}));
  };
  fill(body, list, h('h2', {}, 'Link a database'), choose);
  load();
}

function logs(body, app) {
  const pre = h('pre', {class: 'log', id: 'app-log', tabindex: 0, 'aria-label': 'Application log'});
  const view = new LogView(pre, LOG_LINES_KEPT);
  const count = h('span', {class: 'muted', id: 'log-held'});
  view.onheld = n => { count.textContent = n ? `${n} lines held` : ''; };
  const pause = button('Pause', () => {
    if (view.paused) view.resume(); else view.pause();
    pause.textContent = view.paused ? 'Resume' : 'Pause';
  }, {id: 'log-pause'});
  fill(body, h('p', {}, pause, ' ', count, ` The page keeps the last ${LOG_LINES_KEPT} lines.`), pre);
  return follow(`/paas/applications/${app.id}/logs?follow=true&tail=200`, line => {
    view.push(`${line.timestamp.slice(11, 19)} [${line.instance}] ${line.line}`);
  });
}

function settings(body, app, navigate) {
  const confirmName = h('input', {id: 'delete-confirm', autocomplete: 'off'});
  const remove = h('button', {type: 'button', class: 'danger', id: 'delete-app', disabled: true}, 'Delete this application');
  confirmName.addEventListener('input', () => { remove.disabled = confirmName.value !== app.name; });
  remove.addEventListener('click', () => act(remove, async () => {
    await del(`/paas/applications/${app.id}`);
    navigate('#/apps');
  }, `${app.name} is being deleted`));
  const plan = h('div', {});
  get('/paas/plans').then(plans => fill(plan, form({id: 'plan', submit: 'Change plan',
    fields: [{name: 'plan_id', label: 'Plan', value: app.plan_id,
      options: plans.map(p => [p.id, `${p.name} — ${p.cpu_limit} m CPU, ${p.memory_limit} MB, ${p.monthly_price}/month`])}],
    onsubmit: async v => {
      await put(`/paas/applications/${app.id}`, {plan_id: Number(v.plan_id)});
      toast('Plan changed: a running application is rolled out again with its limits');
    }})), err => fill(plan, h('p', {class: 'error'}, err.message)));
  const hook = h('div', {id: 'deploy-hook'});
  const showHook = answer => fill(hook,
    h('p', {}, 'Give the git host (GitHub: Settings → Webhooks, content type application/json, the push event) this URL and secret: a push to the branch deploys.'),
    secretBox('deploy-hook-url', answer.url), secretBox('deploy-hook-secret', answer.secret, 'The secret signs the pushes.'),
    h('p', {}, button('Rotate the secret', btn => {
      if (!confirm('Replace the secret? The git host must be given the new one.')) return;
      act(btn, async () => showHook(await post(`/paas/applications/${app.id}/deploy-hook/rotate`)), 'Rotated');
    })));
  fill(body,
    h('h2', {}, 'Scale'),
    form({id: 'scale', submit: 'Scale', fields: [{name: 'instance_count', label: 'Instances', type: 'number', value: app.instance_count, min: 0, max: 10}],
      onsubmit: async v => { await post(`/paas/applications/${app.id}/scale`, {instance_count: Number(v.instance_count)}); toast('Scaling'); }}),
    h('h2', {}, 'Plan'), plan,
    h('h2', {}, 'Health check'),
    form({id: 'health', submit: 'Save', fields: [{name: 'health_check_path', label: 'Path (empty: the port answering is enough)', value: app.health_check_path || ''}],
      onsubmit: async v => { await put(`/paas/applications/${app.id}`, {health_check_path: v.health_check_path || null}); toast('Saved; it applies from the next deploy'); }}),
    app.git_repo_url ? [h('h2', {}, 'Deploy on push'), hook,
      h('p', {}, button('Show the push webhook', btn => act(btn, async () => showHook(await get(`/paas/applications/${app.id}/deploy-hook`))), {id: 'show-deploy-hook'}))] : null,
    h('h2', {}, 'Delete'),
    h('div', {class: 'danger-zone'},
      h('label', {for: 'delete-confirm'}, `Type the application's name (${app.name}) to confirm`), confirmName, remove));
}
