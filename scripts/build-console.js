#!/usr/bin/env node
// Builds the web console (packages/console) into packages/console/dist with Vite, unless the
// build there was made from the same sources. Runs after `npm install`/`npm ci` and before
// `npm start`, so a fresh clone needs no extra step; `--force` rebuilds anyway.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const consoleDir = path.join(root, 'packages/console');
const dist = path.join(consoleDir, 'dist');
const stamp = path.join(dist, '.build-hash');

function files(dir) {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? files(p) : [p];
  });
}

function sourceHash() {
  const h = createHash('sha256');
  const inputs = [
    ...['index.html', 'vite.config.ts', 'package.json'].map((f) => path.join(consoleDir, f)),
    ...files(path.join(consoleDir, 'src')),
    // The console imports the wire contract and the typed client.
    ...files(path.join(root, 'packages/protocol/src')),
    ...files(path.join(root, 'packages/client/src')),
  ].sort();
  for (const f of inputs) {
    if (!existsSync(f) || !statSync(f).isFile()) continue;
    h.update(path.relative(root, f)).update('\0').update(readFileSync(f)).update('\0');
  }
  return h.digest('hex');
}

const force = process.argv.includes('--force');
const hash = sourceHash();
if (!force && existsSync(stamp) && readFileSync(stamp, 'utf8').trim() === hash && existsSync(path.join(dist, 'index.html'))) {
  process.exit(0);
}
let build;
try {
  ({ build } = await import('vite'));
} catch {
  console.error('build-console: vite is not installed (run npm install); the server will say the console is not built');
  process.exit(process.argv.includes('--optional') ? 0 : 1);
}
const started = Date.now();
await build({ root: consoleDir, configFile: path.join(consoleDir, 'vite.config.ts'), logLevel: 'warn' });
// Brotli and gzip copies beside each text file: the server sends the one the browser accepts
// (@fastify/static's preCompressed), a quarter of the bytes of the console's code.
for (const f of files(dist).filter((x) => /\.(js|css|html|svg|json)$/.test(x))) {
  const bytes = readFileSync(f);
  writeFileSync(`${f}.br`, brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } }));
  writeFileSync(`${f}.gz`, gzipSync(bytes, { level: 9 }));
}
writeFileSync(stamp, `${hash}\n`);
console.log(`web console built in ${((Date.now() - started) / 1000).toFixed(1)} s (packages/console/dist)`);
