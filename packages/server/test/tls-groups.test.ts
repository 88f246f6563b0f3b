/**
 * The key-exchange groups the server accepts (`--tls-groups`): Node's default offers the
 * post-quantum hybrid first; a narrower list is what a client negotiates; a list OpenSSL does
 * not know is refused before the server starts.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:tls';
import pino from 'pino';
import { startServer } from '../src/app.ts';
import { serverMain } from '../src/main.ts';
import { tempDir } from './helpers.ts';

const quiet = pino({ level: 'silent' });

/** The group a client that offers everything (Node's default) ends up with. */
async function negotiatedGroup(url: string, ca: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = connect({ host: hostname, port: Number(port), ca, servername: 'localhost' }, () => {
      const info = socket.getEphemeralKeyInfo() as { name?: string; type?: string };
      socket.end();
      resolve(info.name ?? info.type ?? 'unknown');
    });
    socket.on('error', reject);
  });
}

describe('TLS key-exchange groups', () => {
  it('negotiates the group the server was told to accept, and the default otherwise', async () => {
    const narrow = await startServer({ dataDir: await tempDir(), port: 0, logger: quiet, tls: { groups: 'P-256' } });
    try {
      assert.equal(await negotiatedGroup(narrow.url, narrow.tls!.caPem), 'prime256v1');
    } finally {
      await narrow.close();
    }
    const byDefault = await startServer({ dataDir: await tempDir(), port: 0, logger: quiet });
    try {
      assert.equal(await negotiatedGroup(byDefault.url, byDefault.tls!.caPem), 'X25519MLKEM768', 'the post-quantum hybrid by default');
    } finally {
      await byDefault.close();
    }
  });

  it('refuses a list OpenSSL does not know, before starting', async () => {
    const errors: string[] = [];
    const error = console.error;
    console.error = (...args: unknown[]) => void errors.push(args.join(' '));
    try {
      assert.equal(await serverMain(['--data', await tempDir(), '--port', '0', '--tls-groups', 'X25519:not-a-group']), 2);
    } finally {
      console.error = error;
    }
    assert.match(errors.join('\n'), /--tls-groups "X25519:not-a-group": not a list of key-exchange groups/);
  });
});
