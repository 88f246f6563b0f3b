/**
 * `garrison server`: runs the administration server on a data folder. With `--demo` (what
 * `npm start` uses) it also enrols a local agent into a "Demo" group and gives that group a
 * sample task, so that a newcomer sees a device and results at once.
 */
import { parseArgs } from 'node:util';
import { createSecureContext } from 'node:tls';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { startServer, type GarrisonServer } from './app.ts';
import { AppError } from './errors.ts';
import { WebhookAddresses } from './services/webhook-address.ts';
import { systemActor } from './services/actor.ts';
import { buildScannerPackages } from '@garrison/sample-scanner/build-packages';
import { SAMPLE_HEX_MARKER } from '@garrison/sample-scanner/definitions';
import { stopService } from '@garrison/sample-scanner/control';

const DEMO_SCAN_TASK = 'Demo: scan the sample folder';

/**
 * The seed's story for the demo: the sample scanner and its definitions in the repository,
 * assigned to Demo (the demo agent installs them at enrolment), and a scan task over a folder
 * holding the scanner's harmless test marker.
 */
async function setUpDemoProducts(server: GarrisonServer, dataDir: string, groupId: string): Promise<void> {
  const s = server.services;
  if (!(await s.repository.list(systemActor, { product: 'sample-scanner' })).length) {
    const built = await buildScannerPackages(path.join(dataDir, 'demo-packages'));
    await s.repository.add(systemActor, createReadStream(built.application), 'current');
    await s.repository.add(systemActor, createReadStream(built.definitions), 'current');
  }
  const assigned = s.deployments.list(systemActor, groupId).map((a) => a.product);
  for (const product of ['sample-scanner', 'sample-scanner-definitions']) {
    if (!assigned.includes(product)) await s.deployments.assign(systemActor, groupId, { product });
  }
  const folder = path.join(dataDir, 'demo-scan');
  await mkdir(path.join(folder, 'nested'), { recursive: true });
  await writeFile(path.join(folder, 'clean.txt'), 'nothing to find here\n');
  await writeFile(path.join(folder, 'nested', 'marked.bin'), `a harmless file carrying the scanner's test marker: ${SAMPLE_HEX_MARKER}\n`);
  if (!s.tasks.list(systemActor).some((t) => t.name === DEMO_SCAN_TASK)) {
    await s.tasks.create(systemActor, {
      name: DEMO_SCAN_TASK,
      description: 'On-demand scan with the sample security application; the marked file is reported as a detection event.',
      product: 'sample-scanner',
      type: 'scan',
      settings: { paths: [folder] },
      schedule: { triggers: [{ type: 'on-demand' }] },
      scope: { type: 'group', groupId },
    });
  }
}

const USAGE = `usage: garrison server [--data DIR] [--host HOST] [--port PORT] [--database-url postgres://…] [--secret-key-file FILE] [--demo]
  --data DIR           data folder (database, keys, admin token); default ./data or GARRISON_DATA
  --host, --port       where to listen; default 127.0.0.1:8420 (GARRISON_HOST, GARRISON_PORT)
  --database-url URL   PostgreSQL instead of the embedded SQLite (GARRISON_DATABASE_URL)
  --secret-key-file FILE
                       the secret-store key (32 bytes, base64) from this file instead of DATA/secret.key;
                       or GARRISON_SECRET_KEY=<base64>. It never enters the database.
  --plugin PATH|NAME   load a management plug-in (a file, folder or npm package; repeatable; GARRISON_PLUGINS)
                       plug-ins in DATA/plugins/ are loaded too
  --demo               enrol a local agent into a "Demo" group with a sample task
TLS (HTTPS is the default; the server creates its own CA and certificate in DATA/tls/):
  --tls-name NAME      an extra DNS name or address the certificate must cover (repeatable; GARRISON_TLS_NAMES)
  --tls-groups LIST    key-exchange groups, OpenSSL's form (GARRISON_TLS_GROUPS; default Node's, post-quantum
                       X25519MLKEM768 first; X25519:P-256 saves ~8 KB of memory per connected agent)
  --tls-cert FILE --tls-key FILE --tls-ca FILE
                       use this certificate (chain), key and issuing CA instead (agents pin the CA)
  --http               serve plain HTTP, only behind a reverse proxy that terminates TLS
  --public-url URL     the https:// address machines reach the server at, for push installation
  --webhook-allow CIDR a network notification webhooks may reach though it is the server's own
                       or its link (loopback, link-local); repeatable (GARRISON_WEBHOOK_ALLOW, comma-separated)
                       (GARRISON_PUBLIC_URL; default: where it listens, by host name when on 0.0.0.0)
Several instances on one PostgreSQL database (behind a load balancer): start each with the same
--database-url and the same secret-store key, on its own data folder. The first stores its package
signing key, CA, TLS key and certificate in the database, sealed with the secret-store key; a new
instance with an empty data folder takes them from there. One whose keys differ refuses to start
(INSTANCE_KEY_MISMATCH, exit code 78) and says what to remove or give it. To join:
  GARRISON_SECRET_KEY=$(cat FIRST/secret.key) garrison server --data NEW --database-url URL --host 0.0.0.0 --tls-name LB-NAME`;

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/garrison.js');

async function setUpDemo(server: GarrisonServer, dataDir: string): Promise<ChildProcess> {
  const s = server.services;
  let demo = s.groups.list(systemActor).find((g) => g.path === 'My Organization/Demo');
  demo ??= await s.groups.create(systemActor, { name: 'Demo' });
  const agentState = path.join(dataDir, 'demo-agent');
  const args = [BIN, 'agent', '--state', agentState];
  // The enrolment token goes on the agent's standard input, never on its command line.
  let enrolToken: string | null = null;
  if (!existsSync(path.join(agentState, 'credential.json'))) {
    const token = await s.enrolment.createToken(systemActor, { groupId: demo.id, name: 'demo agent', expiresInMinutes: 10, maxUses: 1 });
    enrolToken = token.token;
    args.push('--server', server.url, '--token-stdin', '--name', 'demo-device', '--ca', server.tls!.caFile);
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
  await setUpDemoProducts(server, dataDir, demo.id);
  const child = spawn(process.execPath, [...args, '--quiet'], { stdio: [enrolToken === null ? 'ignore' : 'pipe', 'inherit', 'inherit'] });
  if (enrolToken !== null) {
    child.stdin!.on('error', () => {});
    child.stdin!.end(`${enrolToken}\n`);
  }
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
      plugin: { type: 'string', multiple: true },
      'tls-name': { type: 'string', multiple: true },
      'tls-groups': { type: 'string' },
      'tls-cert': { type: 'string' },
      'tls-key': { type: 'string' },
      'tls-ca': { type: 'string' },
      http: { type: 'boolean' },
      'public-url': { type: 'string' },
      'webhook-allow': { type: 'string', multiple: true },
      'secret-key-file': { type: 'string' },
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
  const tlsNames = [...(values['tls-name'] ?? []), ...(process.env.GARRISON_TLS_NAMES ?? '').split(',').filter(Boolean)];
  const publicUrl = values['public-url'] ?? process.env.GARRISON_PUBLIC_URL;
  const webhookAllow = [...(values['webhook-allow'] ?? []), ...(process.env.GARRISON_WEBHOOK_ALLOW ?? '').split(',').filter(Boolean)];
  try {
    new WebhookAddresses(webhookAllow);
  } catch (err) {
    console.error(`garrison server: --webhook-allow: ${(err as Error).message}`);
    return 2;
  }
  const tlsGroups = values['tls-groups'] ?? process.env.GARRISON_TLS_GROUPS;
  if (tlsGroups !== undefined) {
    try {
      createSecureContext({ ecdhCurve: tlsGroups });
    } catch {
      console.error(`garrison server: --tls-groups ${JSON.stringify(tlsGroups)}: not a list of key-exchange groups this OpenSSL knows (for example X25519MLKEM768:X25519:P-256)`);
      return 2;
    }
  }
  let secretKey: Buffer | undefined;
  if (values['secret-key-file']) {
    secretKey = Buffer.from((await readFile(values['secret-key-file'], 'utf8')).trim(), 'base64');
    if (secretKey.length !== 32) {
      console.error(`garrison server: ${values['secret-key-file']} must hold a 32-byte key, base64-encoded (as DATA/secret.key)`);
      return 2;
    }
  }
  const started = await startServer({
    dataDir,
    ...(secretKey ? { secretKey } : {}),
    ...(publicUrl ? { publicUrl: publicUrl.replace(/\/+$/, '') } : {}),
    ...(webhookAllow.length ? { webhookAllow } : {}),
    tls: values.http
      ? false
      : { names: tlsNames, ...(tlsGroups ? { groups: tlsGroups } : {}), ...(values['tls-cert'] ? { certFile: values['tls-cert'] } : {}), ...(values['tls-key'] ? { keyFile: values['tls-key'] } : {}), ...(values['tls-ca'] ? { caFile: values['tls-ca'] } : {}) },
    host: values.host ?? process.env.GARRISON_HOST ?? '127.0.0.1',
    port,
    ...(dbUrl ? { database: { kind: 'postgres' as const, url: dbUrl } } : {}),
    plugins: [...(values.plugin ?? []), ...(process.env.GARRISON_PLUGINS ?? '').split(',').filter(Boolean)],
  }).catch((err: unknown) => {
    if (!(err instanceof AppError) || (err.code !== 'DATA_FOLDER_IN_USE' && err.code !== 'INSTANCE_KEY_MISMATCH')) throw err;
    console.error(`garrison server: ${err.code}: ${err.message}`);
    return err.code;
  });
  // Another server runs on this data folder (EX_CANTCREAT, as the agent on a state folder in use);
  // keys that are not the database's are a configuration error (EX_CONFIG).
  if (started === 'DATA_FOLDER_IN_USE') return 73;
  if (started === 'INSTANCE_KEY_MISMATCH') return 78;
  const server = started;
  const lines = [
    '',
    `Garrison server listening on ${server.url} (${dbUrl ? 'PostgreSQL' : `SQLite in ${dataDir}`})`,
    `  Web console: ${server.url}/${server.consoleBuilt ? '' : '  (not built: run npm run build:console)'}`,
    `  API documentation: ${server.url}/docs`,
  ];
  if (server.initialPassword) {
    lines.push(`  Console sign-in: name "${server.initialPassword.name}", password in ${server.initialPassword.file} (mode 0600); change it under Account.`);
  }
  if (server.tls) {
    lines.push(
      `  TLS: CA ${server.tls.caFile}, fingerprint (SHA-256) ${server.tls.caFingerprint}`,
      `  The CLI trusts it with:  export GARRISON_CA=${server.tls.caFile}   (or: garrison login --server URL --ca-fingerprint ${server.tls.caFingerprint})`,
    );
  } else lines.push('  Plain HTTP (--http): put a TLS-terminating reverse proxy in front; agents refuse plain HTTP.');
  if (server.initialAdminToken) {
    lines.push(
      `  First start: an administrator API token was created and saved to ${server.adminTokenFile} (mode 0600).`,
      `  Sign in from a shell:  export GARRISON_URL=${server.url} GARRISON_TOKEN=$(cat ${server.adminTokenFile})${server.tls ? ` GARRISON_CA=${server.tls.caFile}` : ''}`,
    );
  } else if (existsSync(server.adminTokenFile)) {
    lines.push(`  Sign in with the API token in ${server.adminTokenFile}:  export GARRISON_URL=${server.url} GARRISON_TOKEN=$(cat ${server.adminTokenFile})${server.tls ? ` GARRISON_CA=${server.tls.caFile}` : ''}`);
  } else {
    // Another instance on this database made the first administrator and wrote its token.
    lines.push(`  Sign in with an administrator's API token (this instance joined a database that has administrators; the first one's token is in the admin-token file of the instance that created it):  export GARRISON_URL=${server.url} GARRISON_TOKEN=…`);
  }
  lines.push('  Then, for example:  npx garrison device list   npx garrison task list   npx garrison events');
  let demoAgent: ChildProcess | null = null;
  if (values.demo && !server.tls) lines.push('  Demo: no local agent with --http (agents talk TLS only).');
  else if (values.demo) {
    demoAgent = await setUpDemo(server, dataDir);
    lines.push(
      '  Demo: a local agent is enrolled into "My Organization/Demo". Its initial deployment installs the sample scanner',
      '  and its definitions from the signed repository; then try:',
      '    npx garrison deploy status --group Demo',
      `    npx garrison task run "${DEMO_SCAN_TASK}" --watch && npx garrison events --kind sample-scanner.detection`,
    );
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
  if (demoAgent) {
    // The scanner service outlives its agent, as a real product would; the demo takes it down.
    await stopService(path.join(dataDir, 'demo-agent', 'products', 'sample-scanner')).catch(() => {});
  }
  await server.close();
  return 0;
}
