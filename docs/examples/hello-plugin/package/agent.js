// The agent half of the "hello" plug-in, shipped inside the product's package (manifest field
// "agentPlugin"). The agent loads it only from an installed package, i.e. after verifying the
// package's hash and the server's signature.
import { readFile } from 'node:fs/promises';
import path from 'node:path';

export default {
  product: 'hello',
  // Optional lifecycle: without these, the manifest's detect/status/start/stop commands answer.
  async isRunning(ctx) {
    return readFile(path.join(ctx.productDir, 'enabled'), 'utf8').then(() => true, () => false);
  },
  taskTypes: {
    greet: {
      async run(task, ctx) {
        ctx.onProgress(50);
        const text = `hello, ${task.settings.name}${task.settings.shout ? '!' : '.'}`;
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
