/**
 * The built-in deployment task ("Initial deployment / update"): runs the steps the server
 * planned at the last check-in (uninstalls, then installs in dependency order), one at a
 * time, stopping at the first failure so that nothing installs over a missing dependency;
 * the rest is tried again at the next check-in. Each step is reported as a run event, which
 * the server turns into the device's deployment state per product.
 */
import { DeploymentEventKind, type DeploymentInstruction, type RunEvent } from '@garrison/protocol';
import type { TaskExecutor } from '../plugins.ts';
import type { ProductManager } from '../products.ts';

export function deploymentExecutor(deps: { products: ProductManager; plan(): DeploymentInstruction[]; changed(): void; newContent(products: string[]): void }): TaskExecutor {
  return {
    shouldRun: () => deps.plan().length > 0,
    async run(_task, ctx) {
      const steps = deps.plan();
      const events: RunEvent[] = [];
      const log: string[] = [];
      if (steps.length === 0) return { state: 'succeeded', exitCode: 0, reason: null, outputTail: 'every assigned product is compliant\n', events };
      let failed: { reason: string; exitCode: number | null } | null = null;
      const content = new Set<string>();
      for (const [i, step] of steps.entries()) {
        if (ctx.signal.aborted) break;
        ctx.onProgress(Math.floor((i * 100) / steps.length));
        const label = step.action === 'install' ? `install ${step.product} ${step.version}${step.fromVersion ? ` (over ${step.fromVersion})` : ''} [${step.reason}]` : `uninstall ${step.product} ${step.fromVersion} [${step.reason}]`;
        const out = step.action === 'install' ? await deps.products.install(step, ctx.signal) : await deps.products.uninstall(step.product, ctx.signal);
        const data = { product: step.product, version: step.version, action: step.action, exitCode: out.exitCode, ...(out.outputTail ? { outputTail: out.outputTail.slice(-4096) } : {}) };
        if (out.ok) {
          if (step.action === 'install') {
            content.add(step.product);
            if (step.package?.manifest.contentFor) content.add(step.package.manifest.contentFor);
          }
          log.push(`ok      ${label}`);
          events.push({ severity: 'info', kind: step.action === 'install' ? DeploymentEventKind.installed : DeploymentEventKind.uninstalled, message: `${label}: done`, data });
          continue;
        }
        const why = out.exitCode !== null ? `return code ${out.exitCode}` : (out.reason ?? 'failed');
        log.push(`FAILED  ${label}: ${why}`, ...(out.outputTail ? [out.outputTail.trimEnd()] : []));
        events.push({
          severity: 'error',
          kind: out.refused ? DeploymentEventKind.refused : DeploymentEventKind.failed,
          message: `${label} failed: ${out.refused ? out.reason : why}`,
          data,
        });
        failed = { reason: `${step.action} of ${step.product} ${step.version ?? ''} failed: ${out.refused ? out.reason : why}`.replace('  ', ' '), exitCode: out.exitCode };
        break;
      }
      if (content.size) deps.newContent([...content]);
      if (events.some((e) => e.severity === 'info')) deps.changed();
      const outputTail = log.join('\n') + '\n';
      if (ctx.signal.aborted) return { state: 'cancelled', exitCode: null, reason: 'stopped', outputTail, events };
      return failed ? { state: 'failed', exitCode: failed.exitCode, reason: failed.reason, outputTail, events } : { state: 'succeeded', exitCode: 0, reason: null, outputTail, events };
    },
  };
}
