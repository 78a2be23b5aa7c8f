// The dashboard in a real browser (Debian's /usr/bin/chromium driven by playwright-core; no browser
// download) against real tensorslm-servers on ephemeral loopback ports:
//  - New job page: upload the gpt2-man fixture (HF tar) with the upload progress bar, submit a
//    whole-model int8 job, land on its job page;
//  - Jobs page: the job's row and progress bar reach 100 % / succeeded without a reload;
//  - Job page: the plot has one mark per representation (the job + every reference alternative)
//    and the chosen one is labelled; downloads offered;
//  - a plan job's page: the planner's frontier drawn as a line (sampled on the canvas), one mark
//    per candidate applied uniformly plus the chosen plan, labelled;
//  - Devices page: reports posted through the API appear in the charts (one mark per report);
//  - Models page: a published version, latest, and the device that reported it;
//  - keyboard: Tab reaches a queued job's Cancel button, Enter cancels it;
//  - an API error shows the problem+json title and detail;
//  - tokens configured: the sign-in dialog appears, a device token sees a 403 problem and no New
//    job form, a ci token works; the token lives in sessionStorage, never in the URL;
//  - no page logs a JavaScript error.
// Screenshots (1280x800 and 390x844) go to TSM_ARTIFACTS.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { env, fixtureTar, sha256hex, withServer } from './server.mjs';

// playwright-core is pinned in web/package-lock.json (web/node_modules).
const { chromium } = createRequire(join(env('TSM_WEB_SRC'), 'package.json'))('playwright-core');
const CHROMIUM = process.env.TSM_CHROMIUM || '/usr/bin/chromium';
if (!existsSync(CHROMIUM)) {
  console.log(`SKIP: no ${CHROMIUM} (make test installs Debian's chromium)`);
  process.exit(77);
}
const shots = env('TSM_ARTIFACTS');
mkdirSync(shots, { recursive: true });
const HANG = 300_000;  // a hang guard, not a timing assertion
const profile = mkdtempSync(join(tmpdir(), 'tsm-chromium-'));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: CHROMIUM,
  headless: true,
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync'],
  viewport: { width: 1280, height: 800 },
});
context.setDefaultTimeout(HANG);
const jsErrors = [];
function watch(page) {
  page.on('pageerror', (e) => jsErrors.push(`pageerror: ${e.message}`));
  // Chromium logs every non-2xx fetch as "Failed to load resource"; those are the API's answers
  // (401/403/404 on purpose here), not JavaScript errors.
  page.on('console', (m) => { if (m.type() === 'error' && !m.text().startsWith('Failed to load resource')) jsErrors.push(m.text()); });
  return page;
}
async function shot(page, name) {
  await page.screenshot({ path: join(shots, `${name}-1280x800.png`), fullPage: false });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(shots, `${name}-390x844.png`), fullPage: false });
  await page.setViewportSize({ width: 1280, height: 800 });
}
const step = (s) => console.log(`- ${s}`);

try {
  await withServer({ args: ['--web-dir', env('TSM_WEB_DIR')] }, async (s) => {
    const tar = fixtureTar(s.dir);
    const page = watch(await context.newPage());
    step('new job page: upload with progress, submit a whole-model int8 job');
    await page.goto(`${s.url}/#/new`);
    await page.setInputFiles('#file', tar);
    await page.selectOption('#method', 'int8');
    await page.check('#whole-model');
    await shot(page, 'new-job');
    await page.click('#submit');
    await page.waitForURL(/#\/jobs\/j_[0-9a-f]{16}$/);
    const id = page.url().split('/').pop();
    assert.equal(await page.locator('#upload-progress').count(), 0, 'left the New job page');

    step('jobs page: the row and its progress bar reach 100 % without a reload');
    await page.goto(`${s.url}/#/jobs`);
    const row = page.locator(`tr[data-job-id="${id}"]`);
    await row.waitFor();
    await page.waitForSelector(`tr[data-job-id="${id}"][data-state="succeeded"] progress[data-progress="1"]`);
    assert.match(await row.textContent(), /100 %/);
    assert.match(await row.textContent(), /int8/);
    await shot(page, 'jobs');
    const job = (await s.req(`/v1/jobs/${id}`)).json;

    // A plan job, queued now so that it runs while the next pages are checked: three candidates,
    // data-free, small sensitivity and evaluation sets (seconds).
    const planned = await s.req('/v1/jobs', { method: 'POST', body: {
      upload: job.upload, evaluation: { tokens: 256, length: 65 },
      plan: { target_ratio: 4, methods: 'q8_0,q4_k,q4_0', calibrate: false, sensitivity_sequences: 2 } } });
    assert.equal(planned.status, 202, planned.text);

    step('job page: one mark per representation, the chosen one labelled');
    assert.ok(job.result.quality?.alternatives?.length > 0, 'the whole-model job measured alternatives');
    await page.goto(`${s.url}/#/jobs/${id}`);
    const plot = page.locator('#plot[data-points]');
    await plot.waitFor();
    assert.equal(Number(await plot.getAttribute('data-points')), 1 + job.result.quality.alternatives.length);
    assert.equal(await plot.getAttribute('data-chosen'), 'int8');
    assert.equal(await page.locator('#plot canvas').count(), 1);
    const inked = await page.evaluate(() => {
      const c = document.querySelector('#plot canvas');
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
      return n;
    });
    assert.ok(inked > 1000, `the canvas is drawn (${inked} pixels)`);
    assert.ok(await page.getByRole('button', { name: 'Download .tsm' }).isVisible());
    assert.ok(await page.getByRole('button', { name: 'Download safetensors' }).isVisible());
    assert.match(await page.locator('main').textContent(), /KL \(dense ‖ this\)/);
    await shot(page, 'job');

    step('devices page: posted reports appear in the charts');
    const t0 = Math.floor(Date.now() / 1000) - 3600;
    for (let k = 0; k < 3; k++) {
      const r = await s.req('/v1/devices/pi-1/reports', { method: 'POST', body: {
        model: 'gpt2-man', tag: 'v1', created_unix: t0 + 600 * k,
        runs: [{ variant: 'compressed', p50_ms: 40 + k, p90_ms: 50 + k, p99_ms: 60 + k, ttft_p50_ms: 12 + k, tokens_per_s: 25 - k,
          energy: { source: 'rapl', uncertainty_rel: 0.05, joules_per_query: 1.5 + 0.1 * k } }] } });
      assert.equal(r.status, 201, r.text);
    }
    await page.goto(`${s.url}/#/devices`);
    for (const c of ['#chart-latency', '#chart-ttft', '#chart-tps', '#chart-energy']) {
      await page.locator(`${c}[data-points]`).waitFor();
      assert.equal(await page.locator(c).getAttribute('data-points'), '3', c);
      assert.equal(await page.locator(`${c} canvas`).count(), 1);
    }
    assert.match(await page.locator('main').textContent(), /pi-1.*gpt2-man:v1/s);
    assert.match(await page.locator('main').textContent(), /energy source: rapl/);
    await shot(page, 'devices');

    step('plan job page: the frontier as a line, one mark per candidate applied uniformly, the plan labelled');
    await page.goto(`${s.url}/#/jobs/${planned.json.id}`);
    const pplot = page.locator('#plot[data-line-px]');
    await pplot.waitFor();
    const pjob = (await s.req(`/v1/jobs/${planned.json.id}`)).json;
    assert.equal(pjob.state, 'succeeded', pjob.error);
    const report = pjob.result.plan;
    assert.ok(report.frontier.length >= 2, `a frontier to draw: ${JSON.stringify(report.frontier)}`);
    assert.equal(Number(await pplot.getAttribute('data-line-points')), report.frontier.length);
    const uniform = report.uniform.filter((u) => u.kl_measured != null).map((u) => u.method);
    assert.deepEqual([...uniform].sort(), ['q4_0', 'q4_k', 'q8_0'], 'every candidate measured uniformly');
    assert.deepEqual(JSON.parse(await pplot.getAttribute('data-marks')), [...uniform, 'plan']);
    assert.equal(Number(await pplot.getAttribute('data-points')), uniform.length + 1);
    assert.equal(await pplot.getAttribute('data-chosen'), 'plan');
    // The line is drawn: between consecutive frontier vertices (canvas pixels) the canvas holds the
    // frontier's colour (#1f77b4, within 60 per channel for antialiasing; 5x5 pixels around each
    // sample), at five points along each segment.
    const segments = await page.evaluate(() => {
      const box = document.querySelector('#plot');
      const c = box.querySelector('canvas');
      const ctx = c.getContext('2d');
      const px = JSON.parse(box.dataset.linePx);
      const blue = (x, y) => {
        for (let dx = -2; dx <= 2; dx++) for (let dy = -2; dy <= 2; dy++) {
          const [r, g, b, a] = ctx.getImageData(x + dx, y + dy, 1, 1).data;
          if (a > 200 && Math.abs(r - 0x1f) < 60 && Math.abs(g - 0x77) < 60 && Math.abs(b - 0xb4) < 60) return true;
        }
        return false;
      };
      const out = [];
      for (let i = 1; i < px.length; i++) {
        const [[x0, y0], [x1, y1]] = [px[i - 1], px[i]];
        if (Math.hypot(x1 - x0, y1 - y0) < 30) continue;  // vertices too close to tell the line from the marks
        let hits = 0;
        for (const t of [0.2, 0.35, 0.5, 0.65, 0.8]) hits += blue(Math.round(x0 + t * (x1 - x0)), Math.round(y0 + t * (y1 - y0)));
        out.push(hits);
      }
      return out;
    });
    assert.ok(segments.length > 0, 'at least one frontier segment long enough to sample');
    // (a mark or the chosen label may cover a sample: 3 of 5 per segment)
    assert.ok(segments.every((h) => h >= 3), `every sampled frontier segment is inked (hits of 5: ${segments})`);
    assert.match(await page.locator('main').textContent(), /plan ratio 4×/);
    await shot(page, 'job-plan');

    step('models page: a published version, latest, and the device running it');
    const pub = await s.req('/v1/jobs?wait=600', { method: 'POST', body: { upload: job.upload, method: 'int8', publish: { model: 'gpt2-man', tag: 'v1' } } });
    assert.equal(pub.status, 200, pub.text);
    await page.goto(`${s.url}/#/models`);
    await page.locator('section h2', { hasText: 'gpt2-man' }).waitFor();
    const models = await page.locator('main').textContent();
    assert.match(models, /v1 latest/);
    assert.match(models, /pi-1/);
    await shot(page, 'models');

    step('an API error shows the problem+json title and detail');
    await page.goto(`${s.url}/#/jobs/j_0000000000000000`);
    const problem = page.locator('.problem[role="alert"]');
    await problem.waitFor();
    assert.match(await problem.textContent(), /Not Found — no job 'j_0000000000000000'/);

    step('keyboard: Tab reaches a queued job\'s Cancel button; Enter cancels it');
    // One worker: a long job runs, the next one waits in the queue behind it.
    const busy = await s.req('/v1/jobs', { method: 'POST', body: { upload: job.upload, method: 'int8', whole_model: true, evaluation: { tokens: 60000 } } });
    const queued = await s.req('/v1/jobs', { method: 'POST', body: { upload: job.upload, method: 'fp16' } });
    assert.equal(queued.status, 202);
    await page.goto(`${s.url}/#/jobs/${queued.json.id}`);
    await page.locator('button.cancel').waitFor();
    let reached = false;
    for (let i = 0; i < 40 && !reached; i++) {
      await page.keyboard.press('Tab');
      reached = await page.evaluate(() => document.activeElement?.classList.contains('cancel'));
    }
    assert.ok(reached, 'Tab reaches the Cancel button');
    await page.keyboard.press('Enter');
    await page.waitForSelector(`tr[data-job-id="${queued.json.id}"][data-state="canceled"]`);
    await s.req(`/v1/jobs/${busy.json.id}`, { method: 'DELETE' });
    await page.close();
  });

  await withServer({ config: { tokens: [
    { name: 'ci', sha256: sha256hex('ci-secret'), scopes: ['ci'] },
    { name: 'pi', sha256: sha256hex('pi-secret'), scopes: ['device'], devices: ['*'] }] }, args: ['--web-dir', env('TSM_WEB_DIR')] }, async (s) => {
    step('tokens: the sign-in dialog; a device token sees a 403 and no New job form');
    const page = watch(await context.newPage());
    await page.goto(`${s.url}/`);
    await page.locator('#signin[open]').waitFor();
    await shot(page, 'signin');
    await page.fill('#signin-token', 'pi-secret');
    await page.keyboard.press('Enter');
    const problem = page.locator('.problem[role="alert"]');
    await problem.waitFor();
    assert.match(await problem.textContent(), /Forbidden — token 'pi' lacks the scope/);
    await page.goto(`${s.url}/#/new`);
    await page.locator('.problem[role="alert"]').waitFor();
    assert.equal(await page.locator('#file').count(), 0, 'a device token gets no New job form');
    assert.ok(!page.url().includes('secret'), 'the token is not in the URL');
    assert.equal(await page.evaluate(() => sessionStorage.getItem('tensorslm.token')), 'pi-secret');
    await page.close();

    step('tokens: a wrong token is asked again; a ci token sees the jobs');
    const p2 = watch(await context.newPage());
    await p2.goto(`${s.url}/#/jobs`);
    await p2.locator('#signin[open]').waitFor();
    await p2.fill('#signin-token', 'wrong');
    await p2.keyboard.press('Enter');
    await p2.locator('#signin-why', { hasText: 'was not accepted' }).waitFor();
    await p2.fill('#signin-token', 'ci-secret');
    await p2.keyboard.press('Enter');
    await p2.locator('main p', { hasText: 'No jobs match.' }).waitFor();
    assert.equal(await p2.locator('#signin[open]').count(), 0);
    await p2.close();
  });
  assert.deepEqual(jsErrors, [], 'no JavaScript errors in any page');
  console.log(`dashboard: ok (screenshots in ${shots})`);
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
