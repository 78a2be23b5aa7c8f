// Test helper: a real tensorslm-server child process on 127.0.0.1 with an ephemeral port (read from
// --port-file), a temp data dir, optional config file, extra flags and environment variables;
// stop() sends SIGTERM and waits.
// Paths come from the environment ctest sets: TSM_BIN_DIR, TSM_WEB_DIR, TSM_FIXTURES_DIR, TSM_ARTIFACTS.
import { spawn, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import net from 'node:net';

export const env = (k) => {
  const v = process.env[k];
  if (!v) throw new Error(`${k} is not set (run through ctest)`);
  return v;
};

export const sha256hex = (s) => createHash('sha256').update(s).digest('hex');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export class Server {
  constructor({ config, args = [], environment = {} } = {}) {
    this.dir = mkdtempSync(join(tmpdir(), 'tsm-web-'));
    this.config = config;
    this.args = args;
    this.environment = environment;
  }
  async start() {
    const data = join(this.dir, 'data');
    mkdirSync(data, { recursive: true });
    const portFile = join(this.dir, 'port');
    const a = ['--listen', '127.0.0.1:0', '--data-dir', data, '--port-file', portFile, '--workers', '1', ...this.args];
    if (this.config) {
      writeFileSync(join(this.dir, 'server.json'), JSON.stringify(this.config));
      a.push('--config', join(this.dir, 'server.json'));
    }
    this.logFile = join(this.dir, 'server.log');
    const log = openSync(this.logFile, 'w');
    this.proc = spawn(join(env('TSM_BIN_DIR'), 'tensorslm-server'), a, { stdio: ['ignore', log, log], env: { ...process.env, OMP_WAIT_POLICY: 'PASSIVE', ...this.environment } });
    this.exited = new Promise((r) => this.proc.on('exit', r));
    for (let i = 0; i < 1000; i++) {
      if (existsSync(portFile)) {
        const p = Number(readFileSync(portFile, 'utf8'));
        if (p > 0) { this.port = p; this.url = `http://127.0.0.1:${p}`; return this; }
      }
      if (this.proc.exitCode != null) break;
      await sleep(10);
    }
    throw new Error(`tensorslm-server did not start: ${this.log()}`);
  }
  log() { try { return readFileSync(this.logFile, 'utf8'); } catch { return ''; } }
  async stop() {
    if (this.proc && this.proc.exitCode == null) {
      this.proc.kill('SIGTERM');
      await this.exited;
    }
    rmSync(this.dir, { recursive: true, force: true });
  }
  /** fetch() of a path with an optional bearer token; returns {status, headers, json, text}. */
  async req(path, { method = 'GET', body, token, headers = {} } = {}) {
    const h = { ...headers };
    if (token) h.Authorization = `Bearer ${token}`;
    if (body !== undefined && !(body instanceof Buffer)) { h['Content-Type'] = 'application/json'; body = JSON.stringify(body); }
    const r = await fetch(this.url + path, { method, headers: h, body });
    const text = await r.text();
    let json = null;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: r.status, headers: r.headers, json, text };
  }
  /** One raw HTTP/1.1 request, the target sent exactly as given (no URL normalization). */
  raw(target) {
    return new Promise((resolve, reject) => {
      const s = net.connect(this.port, '127.0.0.1', () => s.end(`GET ${target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`));
      let buf = '';
      s.on('data', (d) => { buf += d.toString('latin1'); });
      s.on('end', () => resolve({ status: Number(buf.split(' ')[1]), text: buf }));
      s.on('error', reject);
    });
  }
}

/** The gpt2-man fixture as an HF model tar (the layout the upload checks expect). */
export function fixtureTar(dir) {
  const tar = join(dir, 'gpt2-man.tar');
  execFileSync('tar', ['-C', env('TSM_FIXTURES_DIR'), '-cf', tar, 'gpt2-man']);
  return tar;
}

/** Runs `fn` with a server, always stopping it; the log is printed when fn throws. */
export async function withServer(opts, fn) {
  const s = await new Server(opts).start();
  try {
    return await fn(s);
  } catch (e) {
    console.error(`--- server log ---\n${s.log().slice(-4000)}`);
    throw e;
  } finally {
    await s.stop();
  }
}
