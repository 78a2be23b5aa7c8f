// The /v1 API client: bearer token from sessionStorage (asked once, in a dialog, when the server
// answers 401), JSON in and out, problem+json errors thrown as ApiError (title and detail kept).
const TOKEN_KEY = 'tensorslm.token';

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || problem.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export const token = () => sessionStorage.getItem(TOKEN_KEY);
export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

let pending = null;  // one sign-in dialog for every request that got a 401 meanwhile
/** Shows the sign-in dialog; resolves once a token is entered. */
export function askToken(reason) {
  if (pending) return pending;
  const dlg = document.getElementById('signin');
  const form = document.getElementById('signin-form');
  const input = document.getElementById('signin-token');
  document.getElementById('signin-why').textContent = reason;
  input.value = '';
  pending = new Promise((resolve) => {
    const keep = (e) => e.preventDefault();  // Escape: a token is needed to go on
    const done = (ev) => {
      ev.preventDefault();
      const t = input.value.trim();
      if (!t) return;
      sessionStorage.setItem(TOKEN_KEY, t);
      form.removeEventListener('submit', done);
      dlg.removeEventListener('cancel', keep);
      dlg.close();
      pending = null;
      document.getElementById('signout').hidden = false;
      resolve(t);
    };
    form.addEventListener('submit', done);
    dlg.addEventListener('cancel', keep);
    dlg.showModal();
    input.focus();
  });
  return pending;
}

async function problemOf(r) {
  const text = await r.text();
  try {
    const p = JSON.parse(text);
    if (p && typeof p === 'object') return p;
  } catch { /* not JSON */ }
  return { title: r.statusText || `HTTP ${r.status}`, detail: text.slice(0, 300), status: r.status };
}

function reasonFor401(problem) {
  return token() ? `The token was not accepted (${problem.detail || problem.title}). Enter another.`
                 : 'This server needs a bearer token.';
}

/** fetch() of a /v1 path; returns the parsed JSON (or the Response when raw). */
export async function api(path, { method = 'GET', body, raw = false } = {}) {
  for (;;) {
    const headers = { Accept: 'application/json' };
    const t = token();
    if (t) headers.Authorization = `Bearer ${t}`;
    let payload = body;
    if (body !== undefined && !(body instanceof Blob)) {
      payload = JSON.stringify(body);
      headers['Content-Type'] = 'application/json';
    }
    const r = await fetch(path, { method, headers, body: payload });
    if (r.status === 401) {
      await askToken(reasonFor401(await problemOf(r)));
      continue;
    }
    if (!r.ok) throw new ApiError(r.status, await problemOf(r));
    if (raw) return r;
    return r.status === 204 ? null : r.json();
  }
}

/** POSTs a file with XMLHttpRequest so that upload progress can be shown: onProgress(fraction). */
export function uploadFile(file, query, onProgress) {
  const send = () => new Promise((resolve, reject) => {
    const x = new XMLHttpRequest();
    x.open('POST', `/v1/uploads?${new URLSearchParams(query)}`);
    const t = token();
    if (t) x.setRequestHeader('Authorization', `Bearer ${t}`);
    x.setRequestHeader('Content-Type', 'application/octet-stream');
    x.setRequestHeader('Accept', 'application/json');
    x.upload.onprogress = (e) => { if (e.lengthComputable) onProgress(e.loaded / e.total); };
    x.onerror = () => reject(new ApiError(0, { title: 'Network error', detail: 'the upload did not reach the server' }));
    x.onload = () => {
      let body = {};
      try { body = JSON.parse(x.responseText); } catch { body = { title: `HTTP ${x.status}`, detail: x.responseText.slice(0, 300) }; }
      if (x.status === 201) resolve(body);
      else reject(new ApiError(x.status, body));
    };
    x.send(file);
  });
  return send().catch(async (e) => {
    if (!(e instanceof ApiError) || e.status !== 401) throw e;
    await askToken(reasonFor401(e.problem));
    return uploadFile(file, query, onProgress);
  });
}

/** Downloads an authenticated resource (an artifact) as a file. */
export async function download(path, filename) {
  const r = await api(path, { raw: true });
  const url = URL.createObjectURL(await r.blob());
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

let openapi = null;
/** /v1/openapi.json, fetched once. */
export async function openApi() {
  if (!openapi) openapi = await api('/v1/openapi.json');
  return openapi;
}
