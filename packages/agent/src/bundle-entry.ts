// The entry point of the bundled agent (runtime/<version>/agent.mjs): `node agent.mjs [args]`
// is `garrison agent [args]`.
import { agentMain } from './main.ts';

process.exitCode = await agentMain(process.argv.slice(2));
