// Where the agent's local API listens: pure naming rules (no agent needed). The end-to-end
// side (a long state folder, the local CLI finding the socket) is in
// packages/server/test/agent-local-cli.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalSocketError, MAX_SOCKET_PATH_BYTES, localSocketPath, preparePrivateSocketDir, shortSocketDir } from '../src/local-api.ts';

test('Windows: a named pipe named after a hash of the whole state folder, case-insensitive', () => {
  const a = localSocketPath('C:\\ProgramData\\Garrison\\state', { platform: 'win32' });
  assert.match(a, /^\\\\\.\\pipe\\garrison-agent-[0-9a-f]{24}$/);
  assert.equal(localSocketPath('c:\\programdata\\garrison\\STATE', { platform: 'win32' }), a, 'the same folder in another case');
  assert.equal(localSocketPath('C:\\ProgramData\\Garrison\\state\\', { platform: 'win32' }), a, 'a trailing separator');
  // The old name kept only the last 16 bytes of the path: these two shared one pipe.
  assert.notEqual(localSocketPath('D:\\ProgramData\\Garrison\\state', { platform: 'win32' }), a);
  assert.notEqual(localSocketPath('C:\\Users\\ann\\Garrison\\state', { platform: 'win32' }), a);
  const long = `C:\\${'very-long-folder-name\\'.repeat(10)}state`;
  assert.match(localSocketPath(long, { platform: 'win32' }), /^\\\\\.\\pipe\\garrison-agent-[0-9a-f]{24}$/, 'a long path changes nothing');
});

test('POSIX: in the state folder while it fits, else in the private folder of the agent user', () => {
  assert.equal(localSocketPath('/var/lib/garrison-agent/state', { platform: 'linux', uid: 0 }), '/var/lib/garrison-agent/state/agent.sock');
  const dir = `/srv/${'x'.repeat(150)}`;
  const p = localSocketPath(dir, { platform: 'linux', uid: 1234 });
  assert.match(p, /^\/tmp\/garrison-agent-1234\/[0-9a-f]{24}\.sock$/);
  assert.equal(shortSocketDir(1234), '/tmp/garrison-agent-1234');
  assert.ok(Buffer.byteLength(p) <= MAX_SOCKET_PATH_BYTES);
  assert.equal(localSocketPath(dir, { platform: 'linux', uid: 1234 }), p, 'stable');
  assert.notEqual(localSocketPath(`${dir}2`, { platform: 'linux', uid: 1234 }), p, 'one socket per state folder');
  // The limit is on bytes: a path of 60 three-byte characters is 180 bytes.
  assert.match(localSocketPath(`/srv/${'é'.repeat(30)}${'字'.repeat(20)}`, { platform: 'darwin', uid: 501 }), /^\/tmp\/garrison-agent-501\//);
  const edge = `/${'a'.repeat(MAX_SOCKET_PATH_BYTES - '/agent.sock'.length - 1)}`;
  assert.equal(localSocketPath(edge, { platform: 'linux', uid: 1 }), `${edge}/agent.sock`, 'exactly at the limit stays in the state folder');
  assert.match(localSocketPath(`${edge}b`, { platform: 'linux', uid: 1 }), /^\/tmp\//);
});

test('the private socket folder is made 0700, and one that is not a private folder of this user is refused', async () => {
  const { mkdtemp, mkdir, rm, stat, symlink } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const root = await mkdtemp(join(tmpdir(), 'garrison-socket-dir-'));
  try {
    const fresh = join(root, 'fresh');
    await preparePrivateSocketDir(fresh);
    assert.equal((await stat(fresh)).mode & 0o777, 0o700);
    await preparePrivateSocketDir(fresh); // again: it is ours
    const open = join(root, 'open');
    await mkdir(open, { mode: 0o755 });
    await assert.rejects(preparePrivateSocketDir(open), (err: Error) => err instanceof LocalSocketError && /not a private folder/.test(err.message));
    const link = join(root, 'link');
    await symlink(fresh, link);
    await assert.rejects(preparePrivateSocketDir(link), LocalSocketError, 'a symbolic link, even to a private folder');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('the local CLI refuses a socket outside the state folder that the agent user does not own alone (a planted folder or socket)', { skip: process.getuid?.() !== 0 ? 'needs root, to play the agent user and another user' : false }, async () => {
  const { chown, chmod, mkdir, mkdtemp, rm, writeFile } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { dirname, join } = await import('node:path');
  const { findLocalSocket } = await import('../src/local-api.ts');
  // The agent's user: an unused uid that owns the state folder. The planted things belong to root.
  const agentUid = 40_000 + (process.pid % 20_000);
  const root = await mkdtemp(join(tmpdir(), 'garrison-socket-planted-'));
  const stateDir = join(root, 'x'.repeat(120));
  const privateDir = dirname(localSocketPath(stateDir, { uid: agentUid }));
  try {
    await mkdir(stateDir, { mode: 0o700 });
    await chown(stateDir, agentUid, agentUid);
    const socket = localSocketPath(stateDir, { uid: agentUid });
    assert.equal(findLocalSocket(stateDir), socket, 'no private folder yet: the agent is just not running');
    await mkdir(privateDir, { mode: 0o700 }); // planted by another user (root here)
    assert.throws(() => findLocalSocket(stateDir), LocalSocketError, 'a folder of another user');
    await chown(privateDir, agentUid, agentUid);
    await chmod(privateDir, 0o777);
    assert.throws(() => findLocalSocket(stateDir), LocalSocketError, 'a folder others may write to');
    await chmod(privateDir, 0o700);
    assert.equal(findLocalSocket(stateDir), socket, 'the agent user’s private folder');
    await writeFile(socket, ''); // something of root's where the socket goes
    assert.throws(() => findLocalSocket(stateDir), LocalSocketError, 'a socket path that is not the agent user’s socket');
  } finally {
    await rm(privateDir, { recursive: true, force: true });
    await rm(root, { recursive: true, force: true });
  }
});
