// Models: each published model's versions (tag, size, artifact, job), which one is latest, and
// which devices reported running which version (from GET /v1/reports/summary).
import { api } from '../api.js';
import { bytes, el, problemBox, table, when } from '../format.js';

export async function modelsPage(main) {
  main.append(el('h1', {}, 'Models'));
  const { models } = await api('/v1/models');
  if (!models.length) {
    main.append(el('p', {}, 'No model published yet: submit a job with publish {model, tag}.'));
    return;
  }
  let groups = [];
  try {
    groups = (await api('/v1/reports/summary')).groups;
  } catch (e) {
    main.append(problemBox(e));  // a device token may list models but not reports
  }
  for (const m of models) {
    const { versions } = await api(`/v1/models/${encodeURIComponent(m.name)}`);
    const rows = versions.map((v) => {
      const devices = groups.filter((g) => g.model === m.name && g.tag === v.tag).map((g) => g.device);
      return el('tr', {}, el('td', {}, v.tag, v.tag === m.latest.tag ? el('span.badge', {}, ' latest') : ''),
        el('td.num', {}, bytes(v.size_bytes)), el('td', {}, el('code', {}, v.sha256.slice(0, 12))),
        el('td', {}, v.job ? el('a', { href: `#/jobs/${v.job}` }, v.job) : '–'), el('td', {}, when(v.created_unix)),
        el('td', {}, devices.length ? devices.join(', ') : 'none reported'));
    });
    main.append(el('section', {}, el('h2', {}, m.name),
      table(['tag', 'size', 'artifact', 'job', 'published', 'devices running it'], rows, `${m.versions} versions`)));
  }
}
