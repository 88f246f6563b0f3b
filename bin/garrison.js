#!/usr/bin/env node
// The `garrison` command: `server` and `agent` run the two processes, `restore` brings a
// server back from a backup; every other subcommand is the administration CLI over the REST API.
const [command, ...rest] = process.argv.slice(2);
let main;
if (command === 'server') main = (await import('../packages/server/src/main.ts')).serverMain;
else if (command === 'agent') main = (await import('../packages/agent/src/main.ts')).agentMain;
else if (command === 'restore') main = (await import('../packages/server/src/restore-main.ts')).restoreMain;
else main = (argv) => import('../packages/cli/src/main.ts').then((m) => m.cliMain(argv));
const args = command === 'server' || command === 'agent' || command === 'restore' ? rest : process.argv.slice(2);
try {
  process.exitCode = await main(args);
} catch (err) {
  console.error(`garrison: ${err?.message ?? err}`);
  process.exitCode = 1;
}
