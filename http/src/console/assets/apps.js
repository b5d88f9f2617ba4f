// The applications: a card grid whose badges follow the platform live, the
// quick actions, and the create form.

import {follow, get, post} from './api.js';
import {act, badge, fill, form, h} from './dom.js';

/** The actions a card offers in each status. */
function actions(app) {
  const running = ['running', 'building'].includes(app.status);
  return [
    ['Deploy', 'deploy', 'Deploy started'],
    ['Restart', 'restart', 'Restart requested'],
    running ? ['Stop', 'stop', 'Stop requested'] : ['Start', 'start', 'Start requested'],
  ];
}

function card(app) {
  const buttons = actions(app).map(([label, command, done]) => {
    const button = h('button', {type: 'button', class: 'small', dataset: {command}}, label);
    button.addEventListener('click', () => act(button, () => post(`/paas/applications/${app.id}/${command}`), `${app.name}: ${done}`));
    return button;
  });
  return h('article', {class: 'card', dataset: {app: app.id}},
    h('header', {},
      h('h2', {}, h('a', {href: `#/apps/${app.id}`}, app.name)),
      badge(app.status)),
    h('p', {class: 'url'}, h('a', {href: app.url, target: '_blank', rel: 'noopener noreferrer'}, app.url)),
    h('p', {class: 'meta'}, `${app.region} · ${app.instance_count} instance${app.instance_count === 1 ? '' : 's'}`,
      app.current_release_id ? '' : ' · not deployed yet'),
    app.last_error ? h('p', {class: 'error small-text'}, app.last_error) : null,
    h('footer', {}, buttons));
}

/** The list view; answers a function that stops its live stream. */
export function appsView(main) {
  const grid = h('div', {class: 'grid', id: 'apps', 'aria-live': 'polite'}, h('p', {}, 'Loading…'));
  const live = h('span', {class: 'live', id: 'live-state'}, 'connecting…');
  fill(main,
    h('div', {class: 'title-row'},
      h('h1', {}, 'Applications'), live,
      h('a', {href: '#/apps/new', class: 'button', id: 'new-app'}, 'New application')),
    grid);
  let drawn = false;
  return follow('/paas/applications/stream?limit=200', list => {
    if (!drawn) { drawn = true; queueMicrotask(() => performance.mark('skypanel:apps-drawn')); }
    if (list.length === 0) {
      fill(grid, h('p', {class: 'empty'}, 'No applications yet. ', h('a', {href: '#/apps/new'}, 'Create one.')));
    } else {
      fill(grid, list.map(card));
    }
  }, state => {
    live.textContent = state === 'live' ? 'live' : 'reconnecting…';
    live.className = `live live-${state}`;
  });
}

/** The create form: every field the API needs, its errors beside them. */
export async function newAppView(main, navigate) {
  fill(main, h('p', {}, 'Loading…'));
  const [plans, regions, runtimes] = await Promise.all([
    get('/paas/plans'), get('/paas/regions'), get('/paas/runtimes')]);
  fill(main,
    h('section', {class: 'narrow'},
      h('h1', {}, 'New application'),
      form({
        id: 'create-app', submit: 'Create',
        fields: [
          {name: 'name', label: 'Name', required: true, hint: 'Lower-case letters, digits and dashes; it names the URL.'},
          {name: 'plan_id', label: 'Plan', required: true,
            options: plans.map(p => [p.id, `${p.name} — ${p.cpu_limit} m CPU, ${p.memory_limit} MB, ${p.monthly_price}/month`])},
          {name: 'region', label: 'Region', required: true,
            options: regions.map(r => [r.region, `${r.region}${r.available ? '' : ' (no room now)'}`])},
          {name: 'source', label: 'Source', options: [['git', 'Git repository'], ['image', 'Container image']], value: 'git'},
          {name: 'git_repo_url', label: 'Git URL', placeholder: 'https://github.com/you/app.git'},
          {name: 'git_branch', label: 'Branch', value: 'main'},
          {name: 'image', label: 'Image', placeholder: 'registry.example.com/app:1.0'},
          {name: 'port', label: 'Port the image listens on', type: 'number', placeholder: '8080'},
          {name: 'runtime_id', label: 'Runtime', options: [['', 'Detect (Dockerfile or buildpack)'], ...runtimes.map(r => [r.id, r.name])]},
        ],
        onsubmit: async values => {
          const body = {name: values.name, plan_id: Number(values.plan_id), region: values.region};
          if (values.source === 'git') {
            body.git_repo_url = values.git_repo_url;
            if (values.git_branch) body.git_branch = values.git_branch;
            if (values.runtime_id) body.runtime_id = Number(values.runtime_id);
          } else {
            body.image = values.image;
            if (values.port) body.port = Number(values.port);
          }
          const app = await post('/paas/applications', body);
          navigate(`#/apps/${app.id}`);
        },
      })));
  const source = main.querySelector('#create-app-source');
  const show = () => {
    const git = source.value === 'git';
    for (const name of ['git_repo_url', 'git_branch', 'runtime_id']) main.querySelector(`#create-app-${name}`).parentElement.hidden = !git;
    for (const name of ['image', 'port']) main.querySelector(`#create-app-${name}`).parentElement.hidden = git;
  };
  source.addEventListener('change', show);
  show();
  main.querySelector('#create-app-name').focus();
}
