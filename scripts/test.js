#!/usr/bin/env node
// Runs every test of the workspace with Node's test runner. PostgreSQL tests run when
// GARRISON_TEST_PG_URL is set (.ci/run sets it); otherwise they are skipped, and said so.
import { spawnSync } from 'node:child_process';

const pg = process.env.GARRISON_TEST_PG_URL;
console.log(pg ? `Databases: SQLite and PostgreSQL (${pg.replace(/\/\/[^@]*@/, '//')})` : 'Databases: SQLite only (set GARRISON_TEST_PG_URL to also run the PostgreSQL tests; they are skipped)');
const files = process.argv.slice(2).length ? process.argv.slice(2) : ['packages/*/test/**/*.test.ts'];
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=2', '--test-timeout=180000', ...files], { stdio: 'inherit', env: { ...process.env, GARRISON_CHECK_RESPONSES: '1' } });
process.exit(r.status ?? 1);
