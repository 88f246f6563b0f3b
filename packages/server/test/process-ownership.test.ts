/**
 * A run interrupted by kill -9 of its agent: the restarted agent ends what the killed attempt
 * left running (its process group) before it resumes the run as the next attempt, and the
 * central event log tells both. Real server, real agent processes, a real script whose
 * background child appends its script's pid to a file every 100 ms.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import type { Run, Task } from '@garrison/protocol';
import { dbKinds, spawnAgent, startAgent, tempDir, useTestServer, waitFor } from './helpers.ts';

/** Appends the script's pid to $1 every 100 ms from a background child, until the file $2 exists. */
const SCRIPT = [
  'out="$1"; go="$2"',
  '( while :; do echo "$$" >> "$out"; sleep 0.1; done ) &',
  'while [ ! -f "$go" ]; do sleep 0.05; done',
  'kill $! 2>/dev/null',
  'echo "finished by $$"',
].join('\n');

async function linesBy(file: string): Promise<Map<number, number>> {
  const text = existsSync(file) ? await readFile(file, 'utf8') : '';
  const counts = new Map<number, number>();
  for (const l of text.split('\n')) if (/^\d+$/.test(l)) counts.set(Number(l), (counts.get(Number(l)) ?? 0) + 1);
  return counts;
}

/** Whether process group `pgid` has a member that is not a zombie (read from /proc, independently of the agent's code). */
async function groupRunning(pgid: number): Promise<boolean> {
  if (process.platform !== 'linux') {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => '');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (f[0] && f[0] !== 'Z' && Number(f[2]) === pgid) return true;
  }
  return false;
}

for (const kind of dbKinds) {
  describe(`process ownership across an agent crash (${kind.name})`, { skip: process.platform === 'win32' && 'POSIX shell script' }, () => {
    const t = useTestServer(kind);

    it('kill -9 mid-run: the earlier attempt\'s process group is ended, the run resumes as attempt 2 and finishes, the events say so', async () => {
      const g = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Crashing' })).body.id;
      const stateDir = await tempDir('garrison-agent-');
      const first = t.track(await startAgent(t, g, 'crash-1', { stateDir }));
      const work = await tempDir('garrison-work-');
      const out = path.join(work, 'lines');
      const go = path.join(work, 'go');
      const task = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'appender', type: 'script', schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'local', deviceId: first.deviceId }, settings: { shell: 'sh', script: SCRIPT, args: [out, go] } })).body;
      await t.api('POST', `/api/v1/tasks/${task.id}/run`, {});
      const oldPid = await waitFor(async () => [...(await linesBy(out)).entries()].find(([, n]) => n >= 3)?.[0], { what: 'the first attempt writing', output: first.output });
      // Recorded in the tick of its spawn, before it could write anything.
      assert.equal((await readdir(path.join(stateDir, 'processes'))).length, 1);

      await first.kill('SIGKILL');
      // Nothing ends the killed agent's script: it goes on writing.
      const atKill = (await linesBy(out)).get(oldPid) ?? 0;
      await waitFor(async () => ((await linesBy(out)).get(oldPid) ?? 0) > atKill + 2, { what: 'the orphaned attempt still writing' });
      assert.equal(await groupRunning(oldPid), true);

      const second = t.track(spawnAgent([], stateDir));
      const newPid = await waitFor(async () => [...(await linesBy(out)).keys()].find((p) => p !== oldPid), { what: 'the resumed attempt writing', output: second.output });
      // The old group was ended before the new attempt started.
      assert.equal(await groupRunning(oldPid), false, 'the earlier attempt\'s process group is gone');
      const oldLines = (await linesBy(out)).get(oldPid)!;
      const newAt = (await linesBy(out)).get(newPid)!;
      await waitFor(async () => ((await linesBy(out)).get(newPid) ?? 0) >= newAt + 5, { what: 'the resumed attempt going on', output: second.output });
      assert.equal((await linesBy(out)).get(oldPid), oldLines, 'no line from the earlier attempt since');

      await writeFile(go, '');
      const run = await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/tasks/${task.id}/results`)).body.items.find((r) => r.state === 'succeeded'), { what: 'the resumed run succeeded', output: second.output, timeoutMs: 20_000 });
      assert.equal(run.attempt, 2);
      assert.match(run.outputTail ?? '', new RegExp(`finished by ${newPid}`));

      const events = await waitFor(async () => {
        const evs = (await t.api<{ items: { kind: string; severity: string; message: string; data: Record<string, unknown> | null }[] }>('GET', `/api/v1/events?runId=${run.id}`)).body.items;
        return evs.some((e) => e.kind === 'run.succeeded') ? evs : undefined;
      }, { what: 'the run events' });
      const kinds = events.map((e) => e.kind);
      assert.ok(kinds.includes('run.interrupted'), kinds.join());
      assert.ok(kinds.includes('run.resumed'), kinds.join());
      const interrupted = events.find((e) => e.kind === 'run.interrupted')!;
      assert.equal(interrupted.severity, 'warning');
      assert.equal(interrupted.data?.attempt, 1);
      assert.equal(interrupted.data?.cleanStop, false);
      assert.deepEqual((interrupted.data?.leftovers as { pid: number; outcome: string }[]).map((l) => [l.pid, l.outcome]), [[oldPid, 'ended']]);
      assert.match(interrupted.message, /ended without stopping .*process group \d+ .* was still running: ended/);
      assert.equal(events.find((e) => e.kind === 'run.resumed')!.data?.attempt, 2);
      // The process records of the finished run are gone.
      assert.deepEqual(await readdir(path.join(stateDir, 'processes')), []);
      await second.stop();
    });
  });
}
