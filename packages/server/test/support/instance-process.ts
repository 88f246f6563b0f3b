/**
 * One server instance in a process of its own, so that a test can kill it (SIGKILL: a crash,
 * not a clean stop). argv[2] is the data folder, argv[3] the database configuration as JSON;
 * the secret-store key comes from GARRISON_SECRET_KEY, as an operator joining an instance
 * gives it; argv[4], optional, more server configuration as JSON. Prints the line `READY { url, port, instanceId }` when it listens (logs go to stdout too).
 */
import { pino } from 'pino';
import { startServer, type ServerConfig } from '../../src/app.ts';
import type { DatabaseConfig } from '../../src/storage/database.ts';

const [dataDir, database, more] = [process.argv[2]!, JSON.parse(process.argv[3]!) as DatabaseConfig, JSON.parse(process.argv[4] ?? '{}') as Partial<ServerConfig>];
const server = await startServer({
  ...more,
  dataDir,
  database,
  port: 0,
  logger: pino({ level: process.env.GARRISON_TEST_LOG ?? 'silent' }),
  serverTaskTickMs: 200,
});
process.stdout.write(`READY ${JSON.stringify({ url: server.url, port: server.port, instanceId: server.instanceId })}\n`);
process.on('SIGTERM', () => void server.close().then(() => process.exit(0)));
