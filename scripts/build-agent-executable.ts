// Builds the single-executable agent (Node.js and the bundled agent in one file, for devices
// without Node; see packages/agent/src/sea.ts and sea-entry.ts) for this machine's platform:
//   node scripts/build-agent-executable.ts --out garrison-agent --version 0.2.0 [--node /path/to/node]
// --node: the node binary to build from (default: the one running this script; it must be
// the same Node version when it is of another platform, and only the host is tested).
import { parseArgs } from 'node:util';
import { buildAgentExecutable } from '../packages/agent/src/sea.ts';

const { values } = parseArgs({ options: { out: { type: 'string' }, version: { type: 'string' }, node: { type: 'string' } } });
if (!values.out || !values.version) {
  console.error('usage: node scripts/build-agent-executable.ts --out FILE --version V [--node NODE_BINARY]');
  process.exit(2);
}
const started = Date.now();
try {
  const exe = await buildAgentExecutable({ outFile: values.out, version: values.version, ...(values.node ? { nodeBinary: values.node } : {}) });
  console.log(`file      ${exe.file}`);
  console.log(`size      ${exe.size} bytes (${(exe.size / 1024 / 1024).toFixed(1)} MiB)`);
  console.log(`sha256    ${exe.sha256}`);
  console.log(`platform  ${exe.platform}`);
  console.log(`built in  ${((Date.now() - started) / 1000).toFixed(1)} s`);
} catch (err) {
  console.error(`build-agent-executable: ${(err as Error).message}`);
  process.exit(1);
}
