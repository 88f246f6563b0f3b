// Script executor tests: real processes (sh, bash, sleep) and real files in a temp folder.
// The Windows command lines are checked through the pure buildInvocation().
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ResolvedScriptSettings } from '@garrison/protocol';
import { buildInvocation, quoteForCmd, runScript, scriptFileContent, type ScriptContext } from '../src/executors/script.ts';

const unix = process.platform !== 'win32';

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'garrison-script-'));
  try {
    await fn(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function ctx(tempDir: string, extra: Partial<ScriptContext> = {}): ScriptContext {
  return { signal: new AbortController().signal, tempDir, ...extra };
}

/** Gone, or a zombie waiting for a parent (PID 1 in a container may not reap). */
async function processGone(pid: number, withinMs = 3000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    let gone = false;
    try {
      process.kill(pid, 0);
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
      gone = / Z /.test(stat.slice(stat.lastIndexOf(')')));
    } catch {
      gone = true;
    }
    if (gone) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('a command that exits 0 succeeds, with its output', { skip: !unix }, () =>
  withDir(async (dir) => {
    const out = await runScript({ command: 'echo hello; echo oops >&2' }, ctx(dir));
    assert.equal(out.state, 'succeeded');
    assert.equal(out.exitCode, 0);
    assert.equal(out.reason, null);
    assert.match(out.outputTail, /hello\n/);
    assert.match(out.outputTail, /oops\n/);
  }));

test('a non-zero exit code fails with the code as reason', { skip: !unix }, () =>
  withDir(async (dir) => {
    const out = await runScript({ command: 'exit 3' }, ctx(dir));
    assert.deepEqual(out, { state: 'failed', exitCode: 3, reason: 'exit code 3', outputTail: '' });
  }));

test('warning exit codes give succeeded_with_warnings', { skip: !unix }, () =>
  withDir(async (dir) => {
    const out = await runScript({ command: 'exit 2', warningExitCodes: [1, 2] }, ctx(dir));
    assert.equal(out.state, 'succeeded_with_warnings');
    assert.equal(out.exitCode, 2);
  }));

test('success exit codes replace the default [0]', { skip: !unix }, () =>
  withDir(async (dir) => {
    assert.equal((await runScript({ command: 'exit 3010', successExitCodes: [0, 3010] }, ctx(dir))).state, 'failed'); // 3010 & 255 = 194
    assert.equal((await runScript({ command: 'exit 194', successExitCodes: [0, 194] }, ctx(dir))).state, 'succeeded');
    const zero = await runScript({ command: 'true', successExitCodes: [5] }, ctx(dir));
    assert.equal(zero.state, 'failed');
    assert.equal(zero.reason, 'exit code 0');
  }));

test('a bash script body runs from a temp file with args, and the file is removed', { skip: !unix }, () =>
  withDir(async (dir) => {
    const script = '#!/bin/bash\nset -e\narr=("$@")\necho "n=${#arr[@]} first=$1 second=$2"\necho "self=$0"\n';
    const out = await runScript({ shell: 'bash', script, args: ['a b', '$HOME;rm -rf /'] }, ctx(dir));
    assert.equal(out.state, 'succeeded', out.outputTail);
    assert.match(out.outputTail, /n=2 first=a b second=\$HOME;rm -rf \/\n/);
    assert.match(out.outputTail, new RegExp(`self=${dir}/garrison-script-[0-9a-f]+\\.sh`));
    assert.deepEqual(await readdir(dir), []);
  }));

test('an sh command gets args as $1…', { skip: !unix }, () =>
  withDir(async (dir) => {
    const out = await runScript({ command: 'printf "%s|" "$@"; echo "$#"', args: ['x y', '*', ''] }, ctx(dir));
    assert.equal(out.outputTail, 'x y|*||3\n');
  }));

test('env is merged over the agent environment', { skip: !unix }, () =>
  withDir(async (dir) => {
    const out = await runScript({ command: 'echo "$GARRISON_T1/$PATH_IS_SET"; [ -n "$PATH" ] && echo path-ok', env: { GARRISON_T1: 'v1', PATH_IS_SET: 'yes' } }, ctx(dir));
    assert.equal(out.outputTail, 'v1/yes\npath-ok\n');
  }));

test('the process knows its run and attempt, and the task cannot pretend to be another run', { skip: !unix }, () =>
  withDir(async (dir) => {
    const out = await runScript(
      { command: 'echo "$GARRISON_RUN_ID $GARRISON_RUN_ATTEMPT $GARRISON_TASK_ID"', env: { GARRISON_RUN_ID: 'forged' } },
      { ...ctx(dir), run: { runId: 'run-7', attempt: 2, taskId: 'task-1' } },
    );
    assert.equal(out.outputTail, 'run-7 2 task-1\n');
  }));

test('workingDirectory is the cwd; a missing one fails clearly', { skip: !unix }, () =>
  withDir(async (dir) => {
    const out = await runScript({ command: 'pwd', workingDirectory: dir }, ctx(dir));
    assert.equal(out.outputTail, `${dir}\n`);
    const missing = await runScript({ command: 'pwd', workingDirectory: join(dir, 'nope') }, ctx(dir));
    assert.equal(missing.state, 'failed');
    assert.equal(missing.reason, `working directory "${join(dir, 'nope')}" does not exist`);
  }));

test('progress lines call onProgress', { skip: !unix }, () =>
  withDir(async (dir) => {
    const seen: number[] = [];
    const script = 'echo garrison:progress=10\necho "garrison:progress=50\\r"\necho garrison:progress=50\necho not garrison:progress=60\necho garrison:progress=150\necho garrison:progress=99 >&2\nprintf garrison:progress=100\n';
    const out = await runScript({ shell: 'sh', script }, ctx(dir, { onProgress: (p) => seen.push(p) }));
    assert.equal(out.state, 'succeeded');
    assert.deepEqual(seen, [10, 50, 99, 100]);
  }));

test('5 MB of output keeps a tail of at most 16 KiB', { skip: !unix }, () =>
  withDir(async (dir) => {
    const out = await runScript({ command: 'head -c 5000000 /dev/zero | tr "\\0" a; echo; echo THE-END' }, ctx(dir));
    assert.equal(out.state, 'succeeded');
    const [marker, body] = out.outputTail.split('\n', 2);
    assert.match(marker, /^…\[truncated \d+ bytes\]$/);
    assert.ok(Buffer.byteLength(out.outputTail.slice(marker.length + 1)) <= 16 * 1024);
    assert.ok(body.startsWith('aaa'));
    assert.ok(out.outputTail.endsWith('\nTHE-END\n'));
  }));

test('a timeout kills the child and its grandchildren', { skip: !unix }, () =>
  withDir(async (dir) => {
    const started = Date.now();
    // The grandchild ignores nothing but lives in a subshell; its pid is printed first.
    const out = await runScript({ command: '(sleep 60; echo never) & echo "gc=$!"; sleep 60', timeoutSeconds: 30 }, ctx(dir, { timeoutMs: 500 }));
    assert.equal(out.state, 'timed_out');
    assert.equal(out.reason, 'timed out after 500 ms');
    assert.ok(Date.now() - started < 5000, 'SIGTERM was enough');
    const gc = Number(/gc=(\d+)/.exec(out.outputTail)?.[1]);
    assert.ok(gc > 0, out.outputTail);
    assert.ok(await processGone(gc), `grandchild ${gc} still running`);
  }));

test('a process group ignoring SIGTERM is SIGKILLed after the grace period', { skip: !unix, timeout: 20_000 }, () =>
  withDir(async (dir) => {
    const started = Date.now();
    const out = await runScript({ command: 'trap "" TERM; sh -c \'trap "" TERM; sleep 60\' & echo "gc=$!"; sleep 60' }, ctx(dir, { timeoutMs: 300 }));
    assert.equal(out.state, 'timed_out');
    assert.ok(Date.now() - started >= 5000, 'waited for the grace period');
    const gc = Number(/gc=(\d+)/.exec(out.outputTail)?.[1]);
    assert.ok(await processGone(gc), `grandchild ${gc} still running`);
  }));

test('a background process holding the output pipe does not hold the outcome', { skip: !unix }, () =>
  withDir(async (dir) => {
    const started = Date.now();
    const out = await runScript({ command: 'sleep 30 & echo "bg=$!"; exit 0' }, ctx(dir));
    const elapsed = Date.now() - started;
    const bg = Number(/bg=(\d+)/.exec(out.outputTail)?.[1]);
    try {
      assert.equal(out.state, 'succeeded');
      assert.ok(elapsed < 10_000, `took ${elapsed} ms`);
      assert.equal(await processGone(bg, 0), false, 'a normal exit leaves background processes alone');
    } finally {
      if (bg > 0) process.kill(bg, 'SIGKILL');
    }
  }));

test('aborting the signal cancels the run and kills the group', { skip: !unix }, () =>
  withDir(async (dir) => {
    const ac = new AbortController();
    const seen: number[] = [];
    const run = runScript(
      { command: 'sleep 60 & echo "gc=$!"; echo garrison:progress=5; sleep 60' },
      ctx(dir, {
        signal: ac.signal,
        onProgress: (p) => {
          seen.push(p);
          ac.abort();
        },
      }),
    );
    const out = await run;
    assert.equal(out.state, 'cancelled');
    assert.equal(out.reason, 'cancelled');
    assert.deepEqual(seen, [5]);
    const gc = Number(/gc=(\d+)/.exec(out.outputTail)?.[1]);
    assert.ok(await processGone(gc));
    // Already aborted: nothing runs.
    const before = await runScript({ command: 'echo ran' }, ctx(dir, { signal: AbortSignal.abort() }));
    assert.equal(before.state, 'cancelled');
    assert.equal(before.outputTail, '');
  }));

test('shell none runs the executable directly with args', { skip: !unix }, () =>
  withDir(async (dir) => {
    const out = await runScript({ shell: 'none', command: 'printf', args: ['%s-%s', '$HOME', 'a b'] }, ctx(dir));
    assert.equal(out.state, 'succeeded');
    assert.equal(out.outputTail, '$HOME-a b');
  }));

test('a command that cannot start fails with the reason', { skip: !unix }, () =>
  withDir(async (dir) => {
    const out = await runScript({ shell: 'none', command: '/nonexistent/garrison-tool' }, ctx(dir));
    assert.equal(out.state, 'failed');
    assert.equal(out.exitCode, null);
    assert.match(out.reason ?? '', /cannot start "\/nonexistent\/garrison-tool".*ENOENT/);
  }));

test('bad settings fail with a reason, never throw', () =>
  withDir(async (dir) => {
    assert.match((await runScript({}, ctx(dir))).reason ?? '', /neither command nor script/);
    assert.match((await runScript({ command: 'a', script: 'b' }, ctx(dir))).reason ?? '', /both command and script/);
    assert.match((await runScript({ shell: 'none', script: 'echo' }, ctx(dir))).reason ?? '', /shell "none"/);
  }));

test('runAs an unknown user fails', { skip: !unix }, () =>
  withDir(async (dir) => {
    const out = await runScript({ command: 'id', runAs: 'garrison-no-such-user' }, ctx(dir));
    assert.deepEqual(out, { state: 'failed', exitCode: null, reason: 'unknown user "garrison-no-such-user"', outputTail: '' });
  }));

test('runAs another user runs with that uid (root agent) or fails clearly (non-root agent)', { skip: !unix }, () =>
  withDir(async (dir) => {
    await chmod(dir, 0o711); // the user must reach the script file
    const out = await runScript({ shell: 'sh', script: 'id -u; echo "$USER"', runAs: 'nobody' }, ctx(dir));
    if (process.getuid?.() === 0) {
      assert.equal(out.state, 'succeeded', out.reason ?? out.outputTail);
      assert.equal(out.outputTail, '65534\nnobody\n');
    } else {
      assert.deepEqual(out, { state: 'failed', exitCode: null, reason: 'run-as needs an agent running as root', outputTail: '' });
    }
  }));

test('buildInvocation: sh, bash, none', () => {
  assert.deepEqual(buildInvocation({ command: 'echo "$1"', args: ['a'] }, 'linux'), { file: 'sh', args: ['-c', 'echo "$1"', 'sh', 'a'] });
  assert.deepEqual(buildInvocation({ shell: 'bash', script: 'x', args: ['a'] }, 'darwin', '/t/s.sh'), { file: 'bash', args: ['/t/s.sh', 'a'] });
  assert.deepEqual(buildInvocation({ shell: 'none', command: '/bin/tool', args: ['-v'] }, 'linux'), { file: '/bin/tool', args: ['-v'] });
  assert.throws(() => buildInvocation({ shell: 'bash', script: 'x' }, 'linux'), /script file/);
});

test('buildInvocation: win32 powershell (default shell) and pwsh', () => {
  const ps = ['-NoProfile', '-NonInteractive', '-ExecutionPolicy', 'Bypass', '-File', 'C:\\T\\s.ps1', 'a b', 'c'];
  assert.deepEqual(buildInvocation({ script: 'Write-Output 1', args: ['a b', 'c'] }, 'win32', 'C:\\T\\s.ps1'), { file: 'powershell', args: ps });
  assert.deepEqual(buildInvocation({ command: 'Get-Date', args: ['a b', 'c'] }, 'win32', 'C:\\T\\s.ps1', { pwsh: true }), { file: 'pwsh', args: ps });
  assert.deepEqual(buildInvocation({ shell: 'powershell', script: 'x' }, 'linux', '/t/s.ps1').file, 'pwsh');
  assert.throws(() => buildInvocation({ command: 'Get-Date' }, 'win32'), /script file/);
});

test('buildInvocation: win32 cmd', () => {
  assert.deepEqual(buildInvocation({ shell: 'cmd', script: 'echo %1', args: ['plain', 'a b', 'say "hi"', 'x&y', ''] }, 'win32', 'C:\\Temp dir\\s.cmd'), {
    file: 'cmd',
    args: ['/d', '/s', '/c', '""C:\\Temp dir\\s.cmd" plain "a b" "say ""hi""" "x&y" """'],
    windowsVerbatimArguments: true,
  });
  assert.deepEqual(buildInvocation({ shell: 'cmd', command: 'dir' }, 'win32', 'C:\\T\\s.cmd'), {
    file: 'cmd',
    args: ['/d', '/s', '/c', '"C:\\T\\s.cmd"'],
    windowsVerbatimArguments: true,
  });
  assert.equal(quoteForCmd('100%'), '"100%"');
  assert.equal(scriptFileContent('a\nb\r\nc', 'cmd'), 'a\r\nb\r\nc');
  assert.equal(scriptFileContent('a', 'powershell'), '\uFEFFa');
});
