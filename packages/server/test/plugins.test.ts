/**
 * Third-party management plug-ins, with the worked example of docs/plugins.md
 * (docs/examples/hello-plugin): the server half loaded from a folder, the agent half shipped
 * in the product's signed package and loaded by the agent once installed.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import path from 'node:path';
import * as tar from 'tar';
import type { Run, Task } from '@garrison/protocol';
import { loadServerPlugins, PluginLoadError } from '../src/plugins/loader.ts';
import { ROOT, agentCli, dbKinds, startAgent, startTestServer, tempDir, waitFor, type AgentProcess, type TestServer } from './helpers.ts';

const EXAMPLE = path.join(ROOT, 'docs/examples/hello-plugin');

for (const kind of dbKinds) {
  describe(`management plug-ins from a folder and from a package (${kind.name})`, () => {
    let t: TestServer;
    let agent: (AgentProcess & { deviceId: string }) | undefined;
    before(async () => {
      t = await startTestServer(kind, { plugins: [EXAMPLE] });
    });
    after(async () => {
      await agent?.kill('SIGKILL');
      await t.close();
    });

    it('refuses tasks for products without a plug-in, and validates a plug-in task type\'s settings', async () => {
      const products = await t.api<{ id: string; taskTypes: { id: string }[] }[]>('GET', '/api/v1/products');
      assert.deepEqual(products.body.find((p) => p.id === 'hello')?.taskTypes.map((x) => x.id), ['greet']);
      const g = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Plugins' })).body.id;
      const base = { name: 'x', schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: g } };
      assert.equal((await t.api<{ error: { code: string } }>('POST', '/api/v1/tasks', { ...base, product: 'nope', type: 'greet', settings: {} })).body.error.code, 'PRODUCT_NOT_INSTALLED');
      assert.equal((await t.api<{ error: { code: string } }>('POST', '/api/v1/tasks', { ...base, product: 'hello', type: 'greet', settings: {} })).body.error.code, 'SETTINGS_INVALID');
      assert.equal((await t.api<{ error: { code: string } }>('POST', '/api/v1/tasks', { ...base, product: 'hello', type: 'greet', settings: { name: 'nobody' } })).body.error.code, 'SETTINGS_INVALID');
    });

    it('deploys the product, whose package carries the agent half, and runs its task type on the device', async () => {
      const dir = await tempDir('garrison-hello-');
      const archive = path.join(dir, 'hello-1.0.0.tgz');
      await tar.c({ gzip: true, file: archive, cwd: path.join(EXAMPLE, 'package') }, ['.']);
      const up = await t.fetch(`${t.server.url}/api/v1/repository/packages`, { method: 'POST', headers: { authorization: `Bearer ${t.token}`, 'content-type': 'application/gzip' }, body: await readFile(archive) });
      assert.equal(up.status, 201, await up.text());
      const g = (await t.api<{ id: string }>('POST', '/api/v1/groups', { name: 'Hello world' })).body.id;
      await t.api('PUT', `/api/v1/groups/${g}/deployments/hello`, {});
      agent = await startAgent(t, g, 'hello-device');
      const a = agent;
      await waitFor(async () => (await t.api<{ products: { id: string; running?: boolean }[] }>('GET', `/api/v1/devices/${a.deviceId}`)).body.products.some((p) => p.id === 'hello' && p.running), { what: 'hello installed and running', output: a.output, timeoutMs: 30_000 });
      const greet = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'greet', product: 'hello', type: 'greet', settings: { name: 'world', shout: true }, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: g } })).body;
      await t.api('POST', `/api/v1/tasks/${greet.id}/run`, {});
      const run = await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/tasks/${greet.id}/results`)).body.items.find((r) => r.state === 'succeeded'), { what: 'greeted', output: a.output });
      assert.equal(run.outputTail, 'HELLO, WORLD!\n');
      const events = await t.api<{ items: { message: string }[] }>('GET', `/api/v1/events?taskId=${greet.id}&kind=hello.greeted`);
      assert.deepEqual(events.body.items.map((e) => e.message), ['hello, world!']);
      // The product's stop task (its package's stop command) ends the execution condition.
      const stop = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'stop hello', product: 'hello', type: 'stop', settings: {}, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: g } })).body;
      await t.api('POST', `/api/v1/tasks/${stop.id}/run`, {});
      await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/tasks/${stop.id}/results`)).body.items[0]?.state === 'succeeded', { what: 'stopped', output: a.output });
      await t.api('POST', `/api/v1/tasks/${greet.id}/run`, {});
      await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/tasks/${greet.id}/results`)).body.items[0]?.state === 'skipped', { what: 'greet skipped', output: a.output });
      // Its policy type (docs/plugins.md): the greeting set and locked for the group, applied by the agent half.
      const start = (await t.api<Task>('POST', '/api/v1/tasks', { name: 'start hello', product: 'hello', type: 'start', settings: {}, schedule: { triggers: [{ type: 'on-demand' }] }, scope: { type: 'group', groupId: g } })).body;
      await t.api('POST', `/api/v1/tasks/${start.id}/run`, {});
      await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/tasks/${start.id}/results`)).body.items[0]?.state === 'succeeded', { what: 'started', output: a.output });
      assert.equal((await t.api<{ error: { code: string } }>('POST', '/api/v1/policies', { name: 'farewell', product: 'hello', settings: { greeting: 'goodbye' } })).body.error.code, 'POLICY_INVALID');
      const policy = await t.api<{ id: string }>('POST', '/api/v1/policies', { name: 'French', product: 'hello', settings: { greeting: 'bonjour' }, locked: ['greeting'] });
      assert.equal(policy.status, 201, JSON.stringify(policy.body));
      await t.api('PUT', `/api/v1/groups/${g}/policies/hello`, { policyId: policy.body.id, blockInheritance: false });
      const configFile = path.join(a.stateDir, 'products', 'hello', 'config.json');
      const config = async () => JSON.parse(await readFile(configFile, 'utf8').catch(() => '{}')) as { greeting?: string };
      await waitFor(async () => (await config()).greeting === 'bonjour', { what: 'the policy applied on the device', output: a.output });
      await t.api('POST', `/api/v1/tasks/${greet.id}/run`, {});
      const french = await waitFor(async () => (await t.api<{ items: Run[] }>('GET', `/api/v1/tasks/${greet.id}/results`)).body.items.find((r) => r.state === 'succeeded' && r.outputTail?.startsWith('BONJOUR')), { what: 'greeted in French', output: a.output });
      assert.equal(french.outputTail, 'BONJOUR, WORLD!\n');
      // The locked greeting edited on the device is put back at an enforcement, and the event reaches the central log.
      await writeFile(configFile, JSON.stringify({ ...(await config()), greeting: 'hi' }));
      assert.equal((await agentCli(a.stateDir, ['policy', 'enforce'])).code, 0);
      assert.equal((await config()).greeting, 'bonjour');
      await waitFor(async () => (await t.api<{ items: unknown[] }>('GET', `/api/v1/events?deviceId=${a.deviceId}&kind=hello.policy.restored`)).body.items.length === 1, { what: 'hello.policy.restored', output: a.output });
    });

    it('stops the server start with a clear error for a broken plug-in', async () => {
      const dir = await tempDir('garrison-badplugin-');
      await mkdir(path.join(dir, 'bad'));
      await writeFile(path.join(dir, 'bad', 'index.js'), 'export default { product: { id: "Bad Id", name: "x" }, taskTypes: [] };');
      await assert.rejects(loadServerPlugins([path.join(dir, 'bad')]), (e: unknown) => e instanceof PluginLoadError && /lower-case id/.test((e as Error).message));
      await assert.rejects(loadServerPlugins(['garrison-plugin-that-does-not-exist']), PluginLoadError);
    });
  });
}
