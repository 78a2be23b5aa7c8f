// Bundles src/main.js (and its CSS, uPlot's included) with esbuild into OUT/assets/ under
// content-hashed names, then writes OUT/index.html that references them (no inline script or
// style: the server's Content-Security-Policy forbids both). OUT: argv[2], else web/dist.
import * as esbuild from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const out = resolve(process.argv[2] || join(here, 'dist'));
rmSync(join(out, 'assets'), { recursive: true, force: true });
mkdirSync(join(out, 'assets'), { recursive: true });

const result = await esbuild.build({
  entryPoints: [join(here, 'src/main.js')],
  bundle: true,
  format: 'esm',
  target: ['es2022'],
  minify: true,
  sourcemap: 'linked',
  outdir: join(out, 'assets'),
  entryNames: '[name]-[hash]',
  assetNames: '[name]-[hash]',
  metafile: true,
  logLevel: 'warning',
});
let js = '', css = '';
for (const [file, meta] of Object.entries(result.metafile.outputs)) {
  if (meta.entryPoint && file.endsWith('.js')) js = basename(file);
  if (file.endsWith('.css')) css = basename(file);
}
if (!js || !css) throw new Error('esbuild produced no entry script or stylesheet');
const html = readFileSync(join(here, 'index.html'), 'utf8').replace('%JS%', js).replace('%CSS%', css);
writeFileSync(join(out, 'index.html'), html);
const kib = (f) => (readFileSync(join(out, 'assets', f)).length / 1024).toFixed(1);
console.log(`web: ${out}/index.html, assets/${js} (${kib(js)} KiB), assets/${css} (${kib(css)} KiB)`);
