// The dashboard's entry: hash routes (#/jobs, #/jobs/<id>, #/new, #/models, #/devices). Each page
// renders into <main> and returns a cleanup function (stops its polling) called on navigation.
import './style.css';
import { forgetToken, token } from './api.js';
import { problemBox } from './format.js';
import { jobsPage } from './pages/jobs.js';
import { jobPage } from './pages/job.js';
import { newJobPage } from './pages/new_job.js';
import { modelsPage } from './pages/models.js';
import { devicesPage } from './pages/devices.js';

const routes = [
  [/^#\/jobs\/(j_[0-9a-zA-Z_]+)$/, jobPage, 'jobs'],
  [/^#\/jobs(\?.*)?$/, jobsPage, 'jobs'],
  [/^#\/new$/, newJobPage, 'new'],
  [/^#\/models$/, modelsPage, 'models'],
  [/^#\/devices$/, devicesPage, 'devices'],
];

let cleanup = null;
async function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const hash = location.hash || '#/jobs';
  const main = document.getElementById('main');
  for (const [re, page, nav] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll('[data-nav]')) {
      if (a.dataset.nav === nav) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    const state = { alive: true, timers: [] };
    cleanup = () => {
      state.alive = false;
      state.timers.forEach(clearTimeout);
    };
    main.replaceChildren();
    try {
      await page(main, m.slice(1), state);
    } catch (e) {
      if (state.alive) main.replaceChildren(problemBox(e));
    }
    return;
  }
  location.hash = '#/jobs';
}

window.addEventListener('hashchange', route);
document.getElementById('signout').hidden = !token();
document.getElementById('signout').addEventListener('click', () => {
  forgetToken();
  location.reload();
});
route();
