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
          {name: 'source', label: 'Source', value: 'git', options: [
            ['git', 'Git repository'], ['github', 'GitHub repository'], ['push', 'git push to the platform'], ['image', 'Container image']]},
          {name: 'git_repo_url', label: 'Git URL', placeholder: 'https://github.com/you/app.git'},
          {name: 'git_branch', label: 'Branch', value: 'main'},
          {name: 'github_repository', label: 'GitHub repository', options: []},
          {name: 'github_branch', label: 'Branch', options: []},
          {name: 'image', label: 'Image', placeholder: 'registry.example.com/app:1.0'},
          {name: 'port', label: 'Port the image listens on', type: 'number', placeholder: '8080'},
          {name: 'runtime_id', label: 'Runtime', options: [['', 'Detect (Dockerfile or buildpack)'], ...runtimes.map(r => [r.id, r.name])]},
        ],
        onsubmit: async values => {
          const body = {name: values.name, plan_id: Number(values.plan_id), region: values.region};
          if (values.source === 'git') {
            body.git_repo_url = values.git_repo_url;
            if (values.git_branch) body.git_branch = values.git_branch;
          } else if (values.source === 'github') {
            body.github_repository = values.github_repository;
            if (values.github_branch) body.git_branch = values.github_branch;
          } else if (values.source === 'image') {
            body.image = values.image;
            if (values.port) body.port = Number(values.port);
          }
          if (values.source !== 'image' && values.runtime_id) body.runtime_id = Number(values.runtime_id);
          const app = await post('/paas/applications', body);
          navigate(`#/apps/${app.id}`);
        },
      }),
      h('p', {id: 'create-app-github-note', class: 'hint', hidden: true}),
      h('p', {id: 'create-app-push-note', class: 'hint', hidden: true},
        'Creates the application without a source. Then, in your repository: ',
        h('code', {}, 'sky git:remote NAME'), ' and ', h('code', {}, 'git push sky main'),
        ' build and release what you push.')));
  const field = name => main.querySelector(`#create-app-${name}`);
  const source = field('source');
  const picker = githubPicker(field('github_repository'), field('github_branch'), main.querySelector('#create-app-github-note'));
  const show = () => {
    const chosen = source.value;
    const shown = {
      git: ['git_repo_url', 'git_branch', 'runtime_id'],
      github: ['github_repository', 'github_branch', 'runtime_id'],
      push: ['runtime_id'],
      image: ['image', 'port'],
    }[chosen];
    for (const name of ['git_repo_url', 'git_branch', 'github_repository', 'github_branch', 'image', 'port', 'runtime_id']) {
      field(name).parentElement.hidden = !shown.includes(name);
    }
    main.querySelector('#create-app-push-note').hidden = chosen !== 'push';
    main.querySelector('#create-app-github-note').hidden = chosen !== 'github';
    if (chosen === 'github') picker.load();
  };
  source.addEventListener('change', show);
  show();
  field('name').focus();
}

/**
 * The repository and branch pickers of the GitHub App: the repositories
 * every installation of the customer grants (each installation's pages
 * followed), then the chosen one's branches, its default branch chosen.
 * Without an installation, a link that connects GitHub.
 */
function githubPicker(repositories, branches, note) {
  let loaded = false;
  const defaults = new Map();
  const loadBranches = async () => {
    const chosen = repositories.value;
    fill(branches);
    if (!chosen) return;
    branches.disabled = true;
    try {
      const names = [];
      for (let page = 1; page; ) {
        const answer = await get(`/paas/github/repositories/${chosen}/branches?page=${page}&per_page=100`);
        names.push(...answer.branches.map(b => b.name));
        page = answer.next_page || 0;
      }
      if (repositories.value !== chosen) return;
      fill(branches, names.map(name => h('option', {value: name, selected: name === defaults.get(chosen)}, name)));
    } catch (err) {
      note.hidden = false;
      fill(note, `The branches of ${chosen} cannot be read: ${err.message}`);
    } finally {
      branches.disabled = false;
    }
  };
  repositories.addEventListener('change', loadBranches);
  return {
    async load() {
      if (loaded) return;
      loaded = true;
      fill(note, 'Loading your GitHub repositories…');
      try {
        const installations = await get('/paas/github/installations');
        if (installations.length === 0) {
          fill(note, 'GitHub is not connected yet. ',
            h('a', {href: '/api/paas/github/authorize', id: 'connect-github'}, 'Connect GitHub'),
            ' (installs the platform\'s GitHub App on the repositories you choose), then come back here.');
          return;
        }
        const options = [];
        for (const installation of installations) {
          for (let page = 1; page; ) {
            const answer = await get(`/paas/github/repositories?installation_id=${installation.installation_id}&page=${page}&per_page=100`);
            for (const r of answer.repositories) {
              defaults.set(r.full_name, r.default_branch);
              options.push(h('option', {value: r.full_name}, `${r.full_name}${r.private ? ' (private)' : ''}`));
            }
            page = answer.next_page || 0;
          }
        }
        fill(repositories, options);
        fill(note, `${options.length} repositor${options.length === 1 ? 'y' : 'ies'} granted to the platform. `,
          h('a', {href: '/api/paas/github/authorize'}, 'Grant more'));
        await loadBranches();
      } catch (err) {
        loaded = false;
        fill(note, `GitHub cannot be reached: ${err.message}`);
      }
    },
  };
}
