// Logging in, signing up and out.

import {api, post, setSession} from './api.js';
import {fill, form, h} from './dom.js';

export function loginView(main, onLoggedIn) {
  fill(main,
    h('section', {class: 'narrow'},
      h('h1', {}, 'Log in'),
      form({
        id: 'login', submit: 'Log in',
        fields: [
          {name: 'email', label: 'E-mail', type: 'email', required: true, autocomplete: 'username'},
          {name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'current-password'},
        ],
        onsubmit: async values => {
          const session = await api('POST', '/auth/session', values);
          setSession(session);
          onLoggedIn(session);
        },
      }),
      h('p', {}, 'No account yet? ', h('a', {href: '#/signup'}, 'Sign up'))));
  main.querySelector('#login-email').focus();
}

export function signupView(main, onLoggedIn) {
  fill(main,
    h('section', {class: 'narrow'},
      h('h1', {}, 'Sign up'),
      form({
        id: 'signup', submit: 'Create account',
        fields: [
          {name: 'email', label: 'E-mail', type: 'email', required: true, autocomplete: 'username'},
          {name: 'name', label: 'Name (optional)', autocomplete: 'name'},
          {name: 'password', label: 'Password', type: 'password', required: true, autocomplete: 'new-password',
            hint: '8 to 128 characters.'},
        ],
        onsubmit: async values => {
          const body = {email: values.email, password: values.password};
          if (values.name) body.name = values.name;
          await post('/auth/register', body);
          const session = await api('POST', '/auth/session', {email: values.email, password: values.password});
          setSession(session);
          onLoggedIn(session);
        },
      }),
      h('p', {}, 'Have an account? ', h('a', {href: '#/login'}, 'Log in'))));
  main.querySelector('#signup-email').focus();
}
