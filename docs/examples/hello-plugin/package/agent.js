// The agent half of the "hello" plug-in, shipped inside the product's package (manifest field
// "agentPlugin"). The agent loads it only from an installed package, i.e. after verifying the
// package's hash and the server's signature.
import { readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';

// The product's configuration on the device: a file a local user may also edit by hand.
const configFile = (ctx) => path.join(ctx.productDir, 'config.json');
async function readConfig(ctx) {
  try {
    return JSON.parse(await readFile(configFile(ctx), 'utf8'));
  } catch {
    return {};
  }
}

export default {
  product: 'hello',
  // Optional lifecycle: without these, the manifest's detect/status/start/stop commands answer.
  async isRunning(ctx) {
    return readFile(path.join(ctx.productDir, 'enabled'), 'utf8').then(() => true, () => false);
  },
  // Called with the device's effective policy when it changes and at every policy enforcement
  // interval. policy.reconcile(found) decides against what was applied last: a locked setting
  // changed on the device is put back, an unlocked one the local user changed stands. The agent
  // reports the outcome as the product's compliance; the plug-in tells the central log about each
  // locked setting it put back.
  async applyPolicy(policy, ctx) {
    const { target, drift, drifted } = policy.reconcile(await readConfig(ctx));
    const tmp = `${configFile(ctx)}.tmp`;
    await writeFile(tmp, JSON.stringify(target, null, 2) + '\n');
    await rename(tmp, configFile(ctx));
    for (const d of drift.filter((x) => x.action === 'restored' && x.fresh && policy.locked.includes(x.setting))) {
      await ctx.emit({ severity: 'warning', kind: 'policy.restored', message: `${d.setting} was changed on the device and put back`, data: { setting: d.setting } });
    }
    return { state: drifted ? 'drifted' : 'compliant', drift: drift.map(({ fresh, ...rest }) => rest), applied: target };
  },
  taskTypes: {
    greet: {
      async run(task, ctx) {
        ctx.onProgress(50);
        const config = { greeting: 'hello', punctuation: '.', ...(await readConfig(ctx)) };
        const text = `${config.greeting}, ${task.settings.name}${task.settings.shout ? '!' : config.punctuation}`;
        return {
          state: 'succeeded',
          exitCode: 0,
          reason: null,
          outputTail: `${task.settings.shout ? text.toUpperCase() : text}\n`,
          events: [{ severity: 'info', kind: 'greeted', message: text, data: { name: task.settings.name } }],
        };
      },
    },
  },
};
