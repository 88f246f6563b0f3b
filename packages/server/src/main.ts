/**
 * `garrison server`: runs the administration server on a data folder. With `--demo` (what
 * `npm start` uses) it also enrols a local agent into a "Demo" group and gives that group a
 * sample task, so that a newcomer sees a device and results at once.
 */
import { parseArgs } from 'node:util';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startServer, type GarrisonServer } from './app.ts';
import { systemActor } from './services/actor.ts';

const USAGE = `usage: garrison server [--data DIR] [--host HOST] [--port PORT] [--database-url postgres://…] [--demo]
  --data DIR           data folder (database, keys, admin token); default ./data or GARRISON_DATA
  --host, --port       where to listen; default 127.0.0.1:8420 (GARRISON_HOST, GARRISON_PORT)
  --database-url URL   PostgreSQL instead of the embedded SQLite (GARRISON_DATABASE_URL)
  --demo               enrol a local agent into a "Demo" group with a sample task`;

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/garrison.js');

async function setUpDemo(server: GarrisonServer, dataDir: string): Promise<ChildProcess> {
  const s = server.services;
  let demo = s.groups.list(systemActor).find((g) => g.path === 'My Organization/Demo');
  demo ??= await s.groups.create(systemActor, { name: 'Demo' });
  const agentState = path.join(dataDir, 'demo-agent');
  const args = [BIN, 'agent', '--state', agentState];
  if (!existsSync(path.join(agentState, 'credential.json'))) {
    const token = await s.enrolment.createToken(systemActor, { groupId: demo.id, name: 'demo agent', expiresInMinutes: 10, maxUses: 1 });
    args.push('--server', server.url, '--token', token.token, '--name', 'demo-device');
  }
  if (!s.tasks.list(systemActor).some((t) => t.name === 'Demo: system summary')) {
    await s.tasks.create(systemActor, {
      name: 'Demo: system summary',
      description: 'A sample group task: runs at every check-in and every 15 minutes on the Demo group.',
      type: 'script',
      settings: { shell: 'sh', script: 'echo "host: $(hostname)"\nuptime\ndf -h / | tail -1\n', timeoutSeconds: 60 },
      schedule: { triggers: [{ type: 'check-in' }, { type: 'interval', every: 15, unit: 'minutes' }] },
      scope: { type: 'group', groupId: demo.id },
    });
  }
  const child = spawn(process.execPath, [...args, '--quiet'], { stdio: ['ignore', 'inherit', 'inherit'] });
  child.on('exit', (code, signal) => {
    if (signal !== 'SIGTERM') console.error(`demo agent exited (${signal ?? code})`);
  });
  return child;
}

export async function serverMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      data: { type: 'string' },
      host: { type: 'string' },
      port: { type: 'string' },
      'database-url': { type: 'string' },
      demo: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  const dataDir = path.resolve(values.data ?? process.env.GARRISON_DATA ?? './data');
  const port = Number(values.port ?? process.env.GARRISON_PORT ?? 8420);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error('garrison server: --port must be 0-65535');
    return 2;
  }
  const dbUrl = values['database-url'] ?? process.env.GARRISON_DATABASE_URL;
  const server = await startServer({
    dataDir,
    host: values.host ?? process.env.GARRISON_HOST ?? '127.0.0.1',
    port,
    ...(dbUrl ? { database: { kind: 'postgres' as const, url: dbUrl } } : {}),
  });
  const lines = [
    '',
    `Garrison server listening on ${server.url} (${dbUrl ? 'PostgreSQL' : `SQLite in ${dataDir}`})`,
    `  API documentation: ${server.url}/docs`,
  ];
  if (server.initialAdminToken) {
    lines.push(
      `  First start: an administrator API token was created and saved to ${server.adminTokenFile} (mode 0600).`,
      `  Sign in from a shell:  export GARRISON_URL=${server.url} GARRISON_TOKEN=$(cat ${server.adminTokenFile})`,
    );
  } else lines.push(`  Sign in with the API token in ${server.adminTokenFile}:  export GARRISON_URL=${server.url} GARRISON_TOKEN=$(cat ${server.adminTokenFile})`);
  lines.push('  Then, for example:  npx garrison device list   npx garrison task list   npx garrison events');
  let demoAgent: ChildProcess | null = null;
  if (values.demo) {
    demoAgent = await setUpDemo(server, dataDir);
    lines.push('  Demo: a local agent is enrolled into "My Organization/Demo", which has the task "Demo: system summary".');
  }
  console.log(lines.join('\n') + '\n');
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', () => resolve());
    process.once('SIGINT', () => resolve());
  });
  if (demoAgent && demoAgent.exitCode === null) {
    demoAgent.kill('SIGTERM');
    await new Promise((r) => demoAgent!.once('exit', r));
  }
  await server.close();
  return 0;
}
