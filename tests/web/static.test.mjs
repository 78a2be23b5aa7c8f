// The dashboard's static handler (server/api/web_api.cpp) against a real server: MIME types, cache
// headers (hashed assets immutable, index.html no-cache), the Content-Security-Policy, path
// traversal and symlinks out of the web dir refused, a clear 404 problem when no build exists, and
// the web dir taken from the config file, the environment or the flag (each overriding the one before).
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { env, withServer } from './server.mjs';

// The real build: index.html and its hashed assets.
await withServer({ args: ['--web-dir', env('TSM_WEB_DIR')] }, async (s) => {
  const index = await s.req('/');
  assert.equal(index.status, 200, index.text);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  assert.equal(index.headers.get('cache-control'), 'no-cache');
  const csp = index.headers.get('content-security-policy');
  assert.match(csp, /default-src 'none'/);
  assert.match(csp, /script-src 'self'(;|$)/);  // no 'unsafe-inline', no other origin
  assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
  assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
  assert.doesNotMatch(index.text, /<script>|<script(?![^>]*\bsrc=)[^>]*>|\sstyle=|\son[a-z]+=/i, 'no inline script, style or handler');
  const assets = readdirSync(join(env('TSM_WEB_DIR'), 'assets'));
  const js = assets.find((f) => /^main-[A-Z0-9]{8}\.js$/.test(f));
  const css = assets.find((f) => /^main-[A-Z0-9]{8}\.css$/.test(f));
  assert.ok(js && css, `hashed assets in ${assets}`);
  assert.ok(index.text.includes(`/assets/${js}`) && index.text.includes(`/assets/${css}`));
  for (const [f, type] of [[js, /^text\/javascript/], [css, /^text\/css/]]) {
    const r = await s.req(`/assets/${f}`);
    assert.equal(r.status, 200);
    assert.match(r.headers.get('content-type'), type);
    assert.equal(r.headers.get('cache-control'), 'public, max-age=31536000, immutable');
  }
  const head = await fetch(`${s.url}/assets/${js}`, { method: 'HEAD' });
  assert.equal(head.status, 200);
  // Traversal: encoded dots and slashes, absolute paths, backslashes, dot files: never 200.
  for (const t of ['/assets/..%2F..%2F..%2Fetc%2Fpasswd', '/assets/%2e%2e', '/assets/..', '/assets/.%2e%2fpasswd',
    '/../../etc/passwd', '/assets/../../etc/passwd', '/assets/%2Fetc%2Fpasswd', '/assets/..%5C..%5Cetc%5Cpasswd',
    '/assets/.hidden.js', '/assets/index.html%00.js', '/assets/', '/assets/nope-ABCDEFGH.js', '/index.html/..']) {
    const r = await s.raw(t);
    assert.notEqual(r.status, 200, `${t} must not be served`);
    assert.doesNotMatch(r.text, /root:x:0:0/, `${t} leaked /etc/passwd`);
  }
  const api = await s.req('/v1/nothing');
  assert.equal(api.status, 404, 'the API 404 is unchanged');
});

// A web dir with a symlink out of it and a file of an unknown type: neither is served.
await withServer({ args: [] }, async (s0) => {
  // (no --web-dir and none beside a test binary dir: the default path has no build) -> clear 404
  const dir = join(s0.dir, 'web');
  mkdirSync(join(dir, 'assets'), { recursive: true });
  writeFileSync(join(dir, 'index.html'), '<!doctype html><title>t</title>');
  writeFileSync(join(s0.dir, 'secret-ABCDEFGH.js'), 'SECRET');
  symlinkSync(join(s0.dir, 'secret-ABCDEFGH.js'), join(dir, 'assets', 'leak-ABCDEFGH.js'));
  writeFileSync(join(dir, 'assets', 'data.bin'), 'x');
  writeFileSync(join(dir, 'assets', 'ok-ABCDEFGH.js'), 'ok');
  await withServer({ args: ['--web-dir', dir] }, async (s) => {
    assert.equal((await s.req('/assets/ok-ABCDEFGH.js')).status, 200);
    const leak = await s.req('/assets/leak-ABCDEFGH.js');
    assert.equal(leak.status, 404);
    assert.doesNotMatch(leak.text, /SECRET/);
    assert.equal((await s.req('/assets/data.bin')).status, 404, 'unknown types are not served');
  });
  await withServer({ args: ['--web-dir', join(s0.dir, 'missing')] }, async (s) => {
    const r = await s.req('/');
    assert.equal(r.status, 404);
    assert.match(r.headers.get('content-type'), /application\/problem\+json/);
    assert.match(r.json.detail, /dashboard is not built.*--web-dir/);
    assert.equal((await s.req('/assets/main-ABCDEFGH.js')).status, 404);
    assert.equal((await s.req('/healthz')).status, 200, 'the API still works');
  });
  // Where the web dir comes from: config key web_dir < env TENSORSLM_WEB_DIR < flag --web-dir.
  const dirs = {};
  for (const from of ['config', 'env', 'flag']) {
    dirs[from] = join(s0.dir, `web-${from}`);
    mkdirSync(dirs[from]);
    writeFileSync(join(dirs[from], 'index.html'), `<!doctype html><title>${from}</title>`);
  }
  const served = async (opts) => withServer(opts, async (s) => {
    const r = await s.req('/');
    assert.equal(r.status, 200, r.text);
    return r.text.match(/<title>(\w+)<\/title>/)[1];
  });
  const config = { web_dir: dirs.config };
  const environment = { TENSORSLM_WEB_DIR: dirs.env };
  assert.equal(await served({ config }), 'config');
  assert.equal(await served({ environment }), 'env');
  assert.equal(await served({ config, environment }), 'env', 'the environment overrides the config file');
  assert.equal(await served({ config, environment, args: ['--web-dir', dirs.flag] }), 'flag', 'the flag overrides both');
});
console.log('static: ok');
