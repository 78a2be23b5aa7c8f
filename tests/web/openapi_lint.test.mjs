// /v1/openapi.json as the running server serves it passes `redocly lint` (recommended rules, the
// version pinned in web/package-lock.json) with 0 errors and 0 warnings; every operation has an
// operationId, a security requirement and a problem+json 4xx response.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { env, withServer } from './server.mjs';

await withServer({}, async (s) => {
  const r = await s.req('/v1/openapi.json');
  assert.equal(r.status, 200);
  const doc = r.json;
  assert.ok(doc.servers?.length, 'servers');
  const ids = new Set();
  let ops = 0;
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [verb, op] of Object.entries(item)) {
      ops++;
      const where = `${verb.toUpperCase()} ${path}`;
      assert.ok(op.operationId, `${where}: operationId`);
      assert.ok(!ids.has(op.operationId), `${where}: operationId unique`);
      ids.add(op.operationId);
      assert.ok(Array.isArray(op.security), `${where}: security`);
      assert.equal(op['x-scope'] === 'public', op.security.length === 0, `${where}: public iff no security requirement`);
      const fours = Object.keys(op.responses).filter((c) => /^4\d\d$/.test(c));
      assert.ok(fours.length, `${where}: a 4xx response`);
      for (const c of fours) {
        const ref = op.responses[c].$ref;
        assert.ok(doc.components.responses[ref.split('/').pop()].content['application/problem+json'], `${where} ${c}: problem+json`);
      }
    }
  }
  assert.ok(ops >= 18, `${ops} operations`);
  assert.ok(!doc.paths['/'], 'the dashboard is not an API path');
  // Statuses the handlers really return are documented (read from server/api/*_api.cpp).
  assert.ok(doc.paths['/v1/jobs'].post.responses['409'] && doc.paths['/v1/jobs'].post.responses['422']);
  assert.ok(doc.paths['/v1/uploads'].post.responses['413'] && doc.paths['/v1/uploads'].post.responses['507']);
  assert.ok(doc.paths['/v1/jobs/{id}'].delete.responses['409'] && doc.paths['/v1/jobs/{id}'].get.responses['404']);

  const file = join(s.dir, 'openapi.json');
  writeFileSync(file, r.text);
  const redocly = join(env('TSM_WEB_SRC'), 'node_modules', '.bin', 'redocly');
  let out;
  try {
    out = execFileSync(redocly, ['lint', '--extends', 'recommended', '--format', 'json', file], { encoding: 'utf8', env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true' } });
  } catch (e) {
    out = e.stdout;  // exit 1 on errors: the JSON still says which
  }
  const report = JSON.parse(out);
  for (const p of report.problems || []) console.error(`${p.severity} ${p.ruleId}: ${p.message}`);
  assert.equal(report.totals.errors, 0, 'redocly errors');
  assert.equal(report.totals.warnings, 0, 'redocly warnings');
  console.log(`openapi lint: ${ops} operations, 0 errors, 0 warnings`);
});
