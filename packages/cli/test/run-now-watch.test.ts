/**
 * `garrison task run --watch` follows the run-now it made (issue 13): it ends when the devices
 * the run-now was given to have finished, and shows apart a device that joined the task's
 * targets afterwards, instead of waiting for it until the time-out. Real server (both
 * databases), real agents, the real binary.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { RunNowProgress, Task, TaskProgress } from '@garrison/protocol';
import { dbKinds, startAgent, useTestServer, waitFor } from '../../server/test/helpers.ts';
import { cliProcess } from './support/run-cli.ts';

for (const kind of dbKinds) {
  describe(`task run --watch with devices joining later (${kind.name})`, () => {
    const t = useTestServer(kind);
    let home: string;
    before(async () => {
      home = await mkdtemp(path.join(os.tmpdir(), 'garrison-cli-home-'));
    });
    after(async () => {
      await rm(home, { recursive: true, force: true });
    });

    it('ends when the devices the run-now was given to have finished, and shows the late one apart', async () => {
      const g = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Watched' })).body.id;
      t.track(await startAgent(t, g, 'watch-a'));
      t.track(await startAgent(t, g, 'watch-b'));
      // The runs wait for a file, so that the third device joins while they are running.
      const go = path.join(home, 'go');
      const task = (await t.api<Task>('POST', '/api/v1/tasks', {
        name: 'watched run',
        type: 'script',
        settings: { shell: 'sh', script: 'while [ ! -e "$GO" ]; do sleep 0.1; done; echo done', env: { GO: go } },
        schedule: { triggers: [{ type: 'on-demand' }] },
        scope: { type: 'group', groupId: g },
      })).body;
      const progress = async () => (await t.api<TaskProgress>('GET', `/api/v1/tasks/${task.id}/progress`)).body;

      const env = { HOME: home, XDG_CONFIG_HOME: home, GARRISON_URL: t.server.url, GARRISON_TOKEN: t.token, GARRISON_CA: t.caFile };
      const watch = cliProcess(['task', 'run', task.id, '--watch', '--watch-timeout', '120'], env);
      await waitFor(async () => (await progress()).states.running === 2, { what: 'both runs running' });
      t.track(await startAgent(t, g, 'watch-late'));
      await waitFor(async () => (await progress()).targets === 3, { what: 'the late device among the targets' });
      await writeFile(go, '');

      const r = await watch;
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.match(r.stdout, /run requested on 2 devices/);
      assert.match(r.stdout, /^2\/2 finished: succeeded 2 \(\+1 joined the targets later, not in this run: not run 1\)$/m);
      assert.match(r.stdout, new RegExp(`^1 device joined the targets after this run-now and is not part of it \\(not run 1\\); see: garrison task progress ${task.id}$`, 'm'));
      // The task's own progress still counts every target now, the late one as not run.
      const all = await progress();
      assert.deepEqual([all.targets, all.notRun, all.finished], [3, 1, false]);

      // The API: the run-now's progress, by its request id.
      const runs = (await t.api<{ items: { requestId: string | null }[] }>('GET', `/api/v1/runs?taskId=${task.id}`)).body.items;
      const requestId = runs[0]!.requestId!;
      const p = await t.api<RunNowProgress>('GET', `/api/v1/tasks/${task.id}/run-requests/${requestId}/progress`);
      assert.equal(p.status, 200);
      assert.deepEqual([p.body.targets, p.body.notRun, p.body.states.succeeded, p.body.finished], [2, 0, 2, true]);
      assert.deepEqual([p.body.joinedLater.targets, p.body.joinedLater.notRun], [1, 1]);
      assert.equal(p.body.requestId, requestId);
      const unknown = await t.api<{ error: { code: string } }>('GET', `/api/v1/tasks/${task.id}/run-requests/no-such-request/progress`);
      assert.equal(unknown.status, 404);
      assert.equal(unknown.body.error.code, 'NOT_FOUND');
    });
  });
}
