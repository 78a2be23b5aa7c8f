// New job: upload a file (XMLHttpRequest, with an upload progress bar), then either a method with
// a parameter form generated from /v1/openapi.json's x-methods schemas, or a planner target;
// submit (POST /v1/jobs) and land on the job page.
import { api, openApi, uploadFile } from '../api.js';
import { bytes, el, pct, problemBox } from '../format.js';

/** One form control per property of a method's params JSON Schema; values read back by collect(). */
export function paramFields(schema) {
  const fields = [];
  for (const [name, p] of Object.entries(schema?.properties || {})) {
    const id = `param-${name}`;
    let input;
    let read;
    if (p.enum) {
      input = el('select', { id }, el('option', { value: '' }, `default${p.default != null ? ` (${p.default})` : ''}`),
        p.enum.map((v) => el('option', { value: JSON.stringify(v) }, String(v))));
      read = () => (input.value ? JSON.parse(input.value) : undefined);
    } else if (p.type === 'boolean') {
      input = el('input', { id, type: 'checkbox', checked: p.default === true });
      read = () => (input.checked !== (p.default === true) ? input.checked : undefined);
    } else if (p.type === 'integer' || p.type === 'number') {
      input = el('input', { id, type: 'number', step: p.type === 'integer' ? '1' : 'any', min: p.minimum ?? null, max: p.maximum ?? null,
        placeholder: p.default != null ? String(p.default) : '' });
      read = () => (input.value === '' ? undefined : Number(input.value));
    } else {
      // strings, oneOf and arrays: a string, or JSON when it parses (e.g. [4, 8])
      input = el('input', { id, type: 'text', placeholder: p.default != null ? JSON.stringify(p.default) : '' });
      read = () => {
        const v = input.value.trim();
        if (!v) return undefined;
        try { return JSON.parse(v); } catch { return v; }
      };
    }
    fields.push({ name, read, node: el('div.field', {}, el('label', { for: id }, name), input, p.description ? el('small', {}, p.description) : null) });
  }
  return fields;
}

export async function newJobPage(main, _, state) {
  main.append(el('h1', {}, 'New job'));
  const box = el('div');
  main.append(box);
  // A token whose scope may not list jobs (a device token) may not create them: say so, no form.
  try {
    await api('/v1/jobs?limit=1');
  } catch (e) {
    box.replaceChildren(problemBox(e));
    return;
  }
  const doc = await openApi();
  const methods = doc['x-methods'] || {};

  const file = el('input', { type: 'file', id: 'file', required: true });
  const bar = el('progress', { max: 1, value: 0, id: 'upload-progress', 'aria-label': 'upload progress' });
  const barText = el('span.num', {}, '');
  const uploaded = el('p', { id: 'uploaded' });
  let upload = null;

  const mode = el('select', { id: 'mode' }, el('option', { value: 'method' }, 'a method'), el('option', { value: 'plan' }, 'the planner (a target)'));
  const method = el('select', { id: 'method' }, Object.entries(methods).map(([m, d]) => el('option', { value: m, title: d.summary }, m)));
  const summary = el('p.hint');
  const paramsBox = el('fieldset', {}, el('legend', {}, 'Parameters'));
  let fields = [];
  const showParams = () => {
    const d = methods[method.value];
    summary.textContent = d?.summary || '';
    fields = paramFields(d?.params);
    paramsBox.replaceChildren(el('legend', {}, `Parameters of ${method.value}`), ...(fields.length ? fields.map((f) => f.node) : [el('p', {}, 'none')]));
  };
  method.addEventListener('change', showParams);
  const wholeModel = el('input', { type: 'checkbox', id: 'whole-model' });
  const methodPart = el('div', {}, el('div.field', {}, el('label', { for: 'method' }, 'method'), method), summary, paramsBox,
    el('div.check', {}, wholeModel, el('label', { for: 'whole-model' }, 'whole model (an HF model tar: compress the token embedding, measure KL)')));
  const kind = el('select', { id: 'plan-kind' }, el('option', { value: 'target_ratio' }, 'ratio vs f32 (×)'),
    el('option', { value: 'target_bytes' }, 'stored bytes'), el('option', { value: 'max_kl' }, 'max KL (nats/token)'));
  const target = el('input', { type: 'number', id: 'plan-target', step: 'any', min: '0', value: '4' });
  const planPart = el('div', { hidden: true }, el('div.field', {}, el('label', { for: 'plan-kind' }, 'target'), kind),
    el('div.field', {}, el('label', { for: 'plan-target' }, 'value'), target));
  mode.addEventListener('change', () => { methodPart.hidden = mode.value !== 'method'; planPart.hidden = mode.value !== 'plan'; });
  const tensors = el('input', { type: 'text', id: 'tensors', placeholder: 'default: the only tensor or the token embedding' });
  const submit = el('button', { type: 'submit', id: 'submit' }, 'Upload and submit');

  const form = el('form.newjob', {
    onsubmit: async (e) => {
      e.preventDefault();
      box.replaceChildren();
      submit.disabled = true;
      try {
        if (!upload || upload.file !== file.files[0]) {
          const f = file.files[0];
          if (!f) throw new Error('choose a file');
          const u = await uploadFile(f, { name: f.name }, (p) => { bar.value = p; barText.textContent = ` ${pct(p)}`; });
          bar.value = 1;
          barText.textContent = ' 100 %';
          upload = { file: f, id: u.id };
          uploaded.textContent = `Uploaded ${u.id}: ${u.format}, ${bytes(u.size_bytes)}, ${(u.tensors || []).length} tensors`;
        }
        const req = { upload: upload.id };
        if (tensors.value.trim()) req.tensors = tensors.value.trim();
        if (mode.value === 'plan') {
          req.plan = { [kind.value]: Number(target.value) };
        } else {
          req.method = method.value;
          const params = {};
          for (const f of fields) {
            const v = f.read();
            if (v !== undefined) params[f.name] = v;
          }
          if (Object.keys(params).length) req.params = params;
          if (wholeModel.checked) req.whole_model = true;
        }
        const job = await api('/v1/jobs', { method: 'POST', body: req });
        if (state.alive) location.hash = `#/jobs/${job.id}`;
      } catch (err) {
        box.replaceChildren(problemBox(err));
      } finally {
        submit.disabled = false;
      }
    },
  },
  el('fieldset', {}, el('legend', {}, 'File'), el('div.field', {}, el('label', { for: 'file' }, 'tensor file (npy, safetensors, HF model tar, JSON)'), file),
    el('div', {}, bar, barText), uploaded),
  el('div.field', {}, el('label', { for: 'tensors' }, 'tensors (names or regexes)'), tensors),
  el('div.field', {}, el('label', { for: 'mode' }, 'compress with'), mode), methodPart, planPart, submit);
  main.append(form);
  showParams();
}
