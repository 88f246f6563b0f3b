// Where the agent's local API listens: pure naming rules (no agent needed). The end-to-end
// side (a long state folder, the local CLI finding the socket) is in
// packages/server/test/agent-local-cli.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalSocketError, MAX_SOCKET_PATH_BYTES, RUN_SOCKET_DIR, listenOnPrivateSocket, localSocketPath, preparePrivateSocketDir, shortSocketDir, shortSocketDirs, socketDirFacts, type SocketDirFacts } from '../src/local-api.ts';

const bare: SocketDirFacts = { run: false, runtimeDirs: [] };
const asRoot = process.getuid?.() !== 0 ? 'needs root, to play the agent user and another user' : false;

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
  const p = localSocketPath(dir, { platform: 'linux', uid: 1234, facts: bare });
  assert.match(p, /^\/tmp\/garrison-agent-1234\/[0-9a-f]{24}\.sock$/);
  assert.equal(shortSocketDir(1234), '/tmp/garrison-agent-1234');
  assert.ok(Buffer.byteLength(p) <= MAX_SOCKET_PATH_BYTES);
  assert.equal(localSocketPath(dir, { platform: 'linux', uid: 1234, facts: bare }), p, 'stable');
  assert.notEqual(localSocketPath(`${dir}2`, { platform: 'linux', uid: 1234, facts: bare }), p, 'one socket per state folder');
  // The limit is on bytes: a path of 60 three-byte characters is 180 bytes.
  assert.match(localSocketPath(`/srv/${'é'.repeat(30)}${'字'.repeat(20)}`, { platform: 'darwin', uid: 501 }), /^\/tmp\/garrison-agent-501\//);
  const edge = `/${'a'.repeat(MAX_SOCKET_PATH_BYTES - '/agent.sock'.length - 1)}`;
  assert.equal(localSocketPath(edge, { platform: 'linux', uid: 1 }), `${edge}/agent.sock`, 'exactly at the limit stays in the state folder');
  assert.match(localSocketPath(`${edge}b`, { platform: 'linux', uid: 1, facts: bare }), /^\/tmp\//);
});

test('POSIX: outside the state folder, /run for root, the runtime folder for another user, /tmp only as the last resort (anyone may make a folder there first)', () => {
  assert.deepEqual(shortSocketDirs(0, { run: true, runtimeDirs: ['/run/user/0'] }), [RUN_SOCKET_DIR, '/tmp/garrison-agent-0']);
  assert.deepEqual(shortSocketDirs(0, { run: false, runtimeDirs: [] }), ['/tmp/garrison-agent-0']);
  assert.deepEqual(shortSocketDirs(1000, { run: true, runtimeDirs: ['/run/user/1000'] }), ['/run/user/1000/garrison-agent', '/tmp/garrison-agent-1000']);
  assert.deepEqual(shortSocketDirs(1000, { run: true, runtimeDirs: [] }), ['/tmp/garrison-agent-1000'], 'no runtime folder: /run is root’s');
  const dir = `/srv/${'x'.repeat(150)}`;
  const name = localSocketPath(dir, { platform: 'linux', uid: 1000, facts: bare }).split('/').pop();
  assert.equal(localSocketPath(dir, { platform: 'linux', uid: 0, facts: { run: true, runtimeDirs: [] } }), `${RUN_SOCKET_DIR}/${name}`);
  assert.equal(localSocketPath(dir, { platform: 'linux', uid: 1000, facts: { run: true, runtimeDirs: ['/run/user/1000'] } }), `/run/user/1000/garrison-agent/${name}`);
  // A runtime folder too deep for a socket address is passed over.
  assert.equal(localSocketPath(dir, { platform: 'linux', uid: 1000, facts: { run: false, runtimeDirs: [`/home/u/${'r'.repeat(80)}`] } }), `/tmp/garrison-agent-1000/${name}`);
});

test('the runtime folder is taken only when it is a real folder of the agent user with no access for others', { skip: asRoot }, async () => {
  const { chown, chmod, mkdir, mkdtemp, rm, symlink } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const root = await mkdtemp(join(tmpdir(), 'garrison-runtime-'));
  try {
    const mine = join(root, 'mine');
    await mkdir(mine, { mode: 0o700 });
    assert.deepEqual(socketDirFacts(0, { env: { XDG_RUNTIME_DIR: mine } }).runtimeDirs, [mine]);
    assert.deepEqual(socketDirFacts(0, { env: { XDG_RUNTIME_DIR: 'relative/dir' } }).runtimeDirs, [], 'not absolute');
    await chmod(mine, 0o755);
    assert.deepEqual(socketDirFacts(0, { env: { XDG_RUNTIME_DIR: mine } }).runtimeDirs, [], 'others may enter');
    await chmod(mine, 0o700);
    await chown(mine, 40_001, 40_001);
    assert.deepEqual(socketDirFacts(0, { env: { XDG_RUNTIME_DIR: mine } }).runtimeDirs, [], 'another user’s');
    const link = join(root, 'link');
    await mkdir(join(root, 'target'), { mode: 0o700 });
    await symlink(join(root, 'target'), link);
    assert.deepEqual(socketDirFacts(0, { env: { XDG_RUNTIME_DIR: link } }).runtimeDirs, [], 'a symbolic link');
    // Another user's XDG_RUNTIME_DIR is not ours to read: only the agent's own is looked at.
    assert.deepEqual(socketDirFacts(40_001, { env: { XDG_RUNTIME_DIR: mine } }).runtimeDirs, []);
    if (process.platform === 'linux') assert.equal(socketDirFacts(0).run, true, '/run here is root’s');
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test('the socket is never connectable with a wider mode than 0600, even with umask 0 in a folder others may enter; close removes it', { skip: process.platform === 'win32' && 'Unix sockets' }, async (t) => {
  const http = await import('node:http');
  const { Worker } = await import('node:worker_threads');
  const { chmod, mkdtemp, readdir, rm, stat } = await import('node:fs/promises');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const dir = await mkdtemp(join(tmpdir(), 'garrison-socket-mode-'));
  await chmod(dir, 0o755);
  const oldMask = process.umask(0);
  t.after(async () => {
    process.umask(oldMask);
    await rm(dir, { recursive: true, force: true });
  });
  const socketPath = join(dir, 'agent.sock');
  // A watcher on another thread looks at the folder's entries as fast as it can while the socket
  // is made: listen-then-chmod showed agent.sock with mode 0777 for a moment.
  const flags = new Int32Array(new SharedArrayBuffer(8));
  const watcher = new Worker(
    `const { workerData } = require('node:worker_threads'); const fs = require('node:fs'); const path = require('node:path');
     const { flags, dir } = workerData; const seen = new Set();
     Atomics.store(flags, 1, 1);
     while (Atomics.load(flags, 0) === 0) {
       let names = []; try { names = fs.readdirSync(dir); } catch {}
       for (const n of names) { try { const st = fs.lstatSync(path.join(dir, n)); if (st.isSocket() && (st.mode & 0o077)) seen.add(n + ' ' + (st.mode & 0o777).toString(8)); } catch {} }
     }
     require('node:worker_threads').parentPort.postMessage([...seen]);`,
    { eval: true, workerData: { flags, dir } },
  );
  const reported = new Promise<string[]>((resolve, reject) => {
    watcher.once('message', resolve);
    watcher.once('error', reject);
  });
  const server = http.createServer((_req, res) => res.end('ok'));
  t.after(async () => {
    Atomics.store(flags, 0, 1);
    await watcher.terminate();
    if (server.listening) await new Promise((r) => server.close(r));
  });
  while (Atomics.load(flags, 1) === 0) await new Promise((r) => setImmediate(r));
  const close = await listenOnPrivateSocket(server, socketPath);
  Atomics.store(flags, 0, 1);
  assert.deepEqual(await reported, [], 'a socket others could connect to was seen');
  assert.equal((await stat(socketPath)).mode & 0o777, 0o600);
  assert.deepEqual(await readdir(dir), ['agent.sock'], 'no staging folder is left');
  // It still answers under its new name.
  const body = await new Promise<string>((resolve, reject) => {
    http.get({ socketPath, path: '/' }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolve(text));
    }).on('error', reject);
  });
  assert.equal(body, 'ok');
  await close();
  assert.deepEqual(await readdir(dir), [], 'close removes the socket');
});

test('root’s local CLI finds another user’s agent in /run/user/UID, even with a folder planted in /tmp', { skip: asRoot || (process.platform !== 'linux' && 'Linux paths') }, async () => {
  const net = await import('node:net');
  const { chown, mkdir, mkdtemp, rm } = await import('node:fs/promises');
  const { existsSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { dirname, join } = await import('node:path');
  const { findLocalSocket } = await import('../src/local-api.ts');
  const agentUid = 40_000 + ((process.pid + 7) % 20_000);
  const runtime = `/run/user/${agentUid}`;
  assert.equal(existsSync(runtime), false, `${runtime} is in use`);
  const root = await mkdtemp(join(tmpdir(), 'garrison-socket-runtime-'));
  const stateDir = join(root, 'x'.repeat(120));
  const name = localSocketPath(stateDir, { uid: agentUid, facts: bare }).split('/').pop()!;
  const tmpFolder = shortSocketDir(agentUid);
  const server = net.createServer();
  try {
    await mkdir(stateDir, { mode: 0o700 });
    await chown(stateDir, agentUid, agentUid);
    await mkdir(tmpFolder, { mode: 0o700 }); // planted by another user (root here)
    assert.throws(() => findLocalSocket(stateDir), LocalSocketError, 'nothing better: the planted folder is refused');
    // The agent user's runtime folder, as systemd-logind makes it, and the agent's socket in it.
    await mkdir(runtime, { recursive: true, mode: 0o700 });
    await chown(runtime, agentUid, agentUid);
    const folder = join(runtime, 'garrison-agent');
    await mkdir(folder, { mode: 0o700 });
    await chown(folder, agentUid, agentUid);
    assert.equal(localSocketPath(stateDir, { uid: agentUid, facts: { run: true, runtimeDirs: [runtime] } }), join(folder, name), 'where such an agent listens');
    const socket = join(folder, name);
    await new Promise<void>((resolve) => server.listen(socket, resolve));
    assert.throws(() => findLocalSocket(stateDir), LocalSocketError, 'a socket there that is not the agent user’s');
    await chown(socket, agentUid, agentUid);
    assert.equal(findLocalSocket(stateDir), socket);
    assert.equal(dirname(findLocalSocket(stateDir)), folder);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await rm(runtime, { recursive: true, force: true });
    await rm(tmpFolder, { recursive: true, force: true });
    await rm(root, { recursive: true, force: true });
  }
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

test('the local CLI refuses a socket outside the state folder that the agent user does not own alone (a planted folder or socket)', { skip: asRoot }, async () => {
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
