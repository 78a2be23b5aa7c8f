// Dashboard benchmark: page weight and the time until the Jobs page shows 1,000 jobs.
// Starts a real tensorslm-server (tests/web/server.mjs) on an ephemeral loopback port, creates
// 1,000 finished jobs (fp16 on a 64x32 .npy upload) through the API, then in headless Chromium
// (Debian's /usr/bin/chromium, playwright-core from web/package-lock.json) loads #/jobs?limit=1000
// RUNS times, each in a fresh page, and takes performance.now() (ms since navigation start: HTML,
// JS, /v1/openapi.json, two GET /v1/jobs of 500, rendering) when the table first holds 1,000 rows.
// Prints one JSON object: JS bytes of the bundle (raw and gzip -9), the ms of every run and their
// median, and the same for the default page (50 rows).
// Usage: node bench/web_jobs_page.mjs   (after building tensorslm-server and tensorslm-web in
// build/release; TSM_BIN_DIR, TSM_WEB_DIR, RUNS override).
import { readdirSync, readFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
process.env.TSM_BIN_DIR ||= join(root, 'build/release/bin');
process.env.TSM_WEB_DIR ||= join(root, 'build/release/share/tensorslm/web');
const { withServer } = await import('../tests/web/server.mjs');
const { chromium } = createRequire(join(root, 'web/package.json'))('playwright-core');
const CHROMIUM = process.env.TSM_CHROMIUM || '/usr/bin/chromium';
const RUNS = Number(process.env.RUNS || 5);
const JOBS = 1000;
if (!existsSync(CHROMIUM)) throw new Error(`no ${CHROMIUM}`);

/** A little-endian float32 .npy of shape [rows, cols] (NPY 1.0, header padded to 64 bytes). */
function npy(rows, cols) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${cols}), }`;
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n';
  const pre = Buffer.alloc(10);
  Buffer.from('\x93NUMPY', 'latin1').copy(pre);
  pre[6] = 1; pre[7] = 0; pre.writeUInt16LE(header.length, 8);
  const data = new Float32Array(rows * cols).map((_, i) => Math.sin(i * 0.37) + 0.01 * i);
  return Buffer.concat([pre, Buffer.from(header, 'latin1'), Buffer.from(data.buffer)]);
}

const median = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };

// Page weight: every script of the bundle as served (the server sends it uncompressed).
const assets = join(process.env.TSM_WEB_DIR, 'assets');
const scripts = readdirSync(assets).filter((f) => f.endsWith('.js'));
const css = readdirSync(assets).filter((f) => f.endsWith('.css'));
const size = (files) => files.reduce((n, f) => n + readFileSync(join(assets, f)).length, 0);
const gz = (files) => files.reduce((n, f) => n + gzipSync(readFileSync(join(assets, f)), { level: 9 }).length, 0);

const out = {
  benchmark: 'web_jobs_page',
  js_files: scripts.length,
  js_bytes: size(scripts),
  js_gzip_bytes: gz(scripts),
  css_gzip_bytes: gz(css),
  jobs: JOBS,
  runs: RUNS,
};

const profile = mkdtempSync(join(tmpdir(), 'tsm-bench-chromium-'));
try {
  await withServer({ config: { queue_capacity: JOBS + 10 }, args: ['--web-dir', process.env.TSM_WEB_DIR] }, async (s) => {
    const up = await s.req('/v1/uploads?name=emb', { method: 'POST', body: npy(64, 32), headers: { 'Content-Type': 'application/octet-stream' } });
    if (up.status !== 201) throw new Error(`upload: ${up.status} ${up.text}`);
    const t0 = performance.now();
    for (let i = 0; i < JOBS; i += 50) {
      const batch = [];
      for (let k = i; k < Math.min(JOBS, i + 50); k++)
        batch.push(s.req('/v1/jobs', { method: 'POST', body: { upload: up.json.id, method: 'fp16' } }));
      for (const r of await Promise.all(batch)) if (r.status !== 202) throw new Error(`job: ${r.status} ${r.text}`);
    }
    for (;;) {
      const q = await s.req('/v1/jobs?state=queued&limit=1');
      const r = await s.req('/v1/jobs?state=running&limit=1');
      if (!q.json.jobs.length && !r.json.jobs.length) break;
      await new Promise((res) => setTimeout(res, 200));
    }
    out.setup_s = Number(((performance.now() - t0) / 1000).toFixed(1));
    const done = await s.req(`/v1/jobs?state=succeeded&limit=1`);
    if (!done.json.jobs.length) throw new Error('no job succeeded');

    const context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM, headless: true, viewport: { width: 1280, height: 800 },
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
        '--disable-component-update', '--disable-sync'],
    });
    // performance.now() (ms since navigation start) when the Jobs table first holds 50 and 1,000 rows.
    await context.addInitScript(() => {
      window.__rowsAt = {};
      const obs = new MutationObserver(() => {
        const n = document.querySelectorAll('tbody tr[data-job-id]').length;
        for (const k of [50, 1000]) if (n >= k && !window.__rowsAt[k]) window.__rowsAt[k] = performance.now();
      });
      obs.observe(document, { childList: true, subtree: true });
    });
    try {
      const measure = async (hash, n) => {
        const ms = [];
        for (let i = 0; i < RUNS; i++) {
          const page = await context.newPage();
          await page.goto(`${s.url}/${hash}`, { waitUntil: 'commit' });
          await page.waitForFunction((k) => window.__rowsAt[k], n, { timeout: 120_000 });
          ms.push(Number((await page.evaluate((k) => window.__rowsAt[k], n)).toFixed(1)));
          const shown = await page.locator('tbody tr[data-job-id]').count();
          if (shown !== n) throw new Error(`${hash}: ${shown} rows, expected ${n}`);
          await page.close();
        }
        return ms;
      };
      await measure('#/jobs', 50);  // warm-up: the server's page cache, Chromium's code cache
      out.ms_1000_jobs = await measure('#/jobs?limit=1000', JOBS);
      out.ms_1000_jobs_median = median(out.ms_1000_jobs);
      out.ms_50_jobs = await measure('#/jobs', 50);
      out.ms_50_jobs_median = median(out.ms_50_jobs);
    } finally {
      await context.close();
    }
  });
} finally {
  rmSync(profile, { recursive: true, force: true });
}
console.log(JSON.stringify(out));
