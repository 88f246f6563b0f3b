// Builds an agent package for the master repository:
//   node scripts/build-agent-package.ts --version 0.2.0 [--out garrison-agent-0.2.0.tgz]
// then `garrison repo add FILE` and `garrison deploy assign garrison --group G`.
import { parseArgs } from 'node:util';
import { buildAgentPackage } from '../packages/agent/src/bundle.ts';

const { values } = parseArgs({ options: { version: { type: 'string' }, out: { type: 'string' } } });
if (!values.version) {
  console.error('usage: node scripts/build-agent-package.ts --version V [--out FILE]');
  process.exit(2);
}
const out = await buildAgentPackage(values.out ?? `garrison-agent-${values.version}.tgz`, { version: values.version });
console.log(`agent package written to ${out}`);
