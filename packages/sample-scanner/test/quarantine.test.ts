// The quarantine removes the file it scanned, never another one of the same name: a folder on
// the path swapped for a symlink between the scan and the removal (a local user racing the
// scanner to make it delete, say, /etc/passwd) leaves the symlink's target alone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, open, readdir, readFile, rename, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { quarantineFile } from '../src/quarantine.ts';

test('a folder swapped for a symlink after the scan: nothing outside is removed, no copy is left', async () => {
  const root = await mkdtemp(join(tmpdir(), 'garrison-quarantine-'));
  try {
    const watched = join(root, 'watched');
    const victimDir = join(root, 'etc');
    const quarantine = join(root, 'quarantine');
    await mkdir(join(watched, 'd'), { recursive: true });
    await mkdir(victimDir);
    await writeFile(join(watched, 'd', 'passwd'), 'X5O!P%@AP[4\\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*');
    await writeFile(join(victimDir, 'passwd'), 'root:x:0:0\n');
    const fh = await open(join(watched, 'd', 'passwd'), 'r');
    const st = await fh.stat();
    // The race, won by the attacker: the scanned folder now points elsewhere.
    await rename(join(watched, 'd'), join(watched, 'd.old'));
    await symlink(victimDir, join(watched, 'd'));
    try {
      await assert.rejects(quarantineFile({ fh, st, path: join(watched, 'd', 'passwd'), folder: quarantine, signatures: ['EICAR'], source: 'real-time' }));
    } finally {
      await fh.close();
    }
    assert.equal(await readFile(join(victimDir, 'passwd'), 'utf8'), 'root:x:0:0\n');
    assert.deepEqual(await readdir(quarantine), [], 'the copy is undone');
    // Without the race, the file is moved.
    const fh2 = await open(join(watched, 'd.old', 'passwd'), 'r');
    const st2 = await fh2.stat();
    try {
      await quarantineFile({ fh: fh2, st: st2, path: join(watched, 'd.old', 'passwd'), folder: quarantine, signatures: ['EICAR'], source: 'real-time' });
    } finally {
      await fh2.close();
    }
    assert.deepEqual(await readdir(join(watched, 'd.old')), []);
    assert.equal((await readdir(quarantine)).length, 2);
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});
