/**
 * The built-in deployment task ("Initial deployment / update"): runs the steps the server
 * planned at the last check-in (uninstalls, then installs in dependency order), one at a
 * time, stopping at the first failure so that nothing installs over a missing dependency;
 * the rest is tried again at the next check-in. Each step is reported as a run event, which
 * the server turns into the device's deployment state per product.
 *
 * Maintenance windows (ADR 0020): outside the device's windows only urgent steps run; the
 * others stay planned, and the agent fires the task again when the next window opens.
 */
import { DeploymentEventKind, type DeploymentInstruction, type RunEvent } from '@garrison/protocol';
import type { TaskExecutor } from '../plugins.ts';
import type { ProductManager, StepOutcome } from '../products.ts';

export function deploymentExecutor(deps: {
  products: ProductManager;
  plan(): DeploymentInstruction[];
  changed(): void;
  newContent(products: string[]): void;
  /** Stages an agent update; `restart` is called once the run's result is reported. */
  selfUpdate(step: DeploymentInstruction): Promise<StepOutcome>;
  restart(): void;
  /** These steps were carried out (or failed): not to be run again before the next check-in plans anew. */
  consumed(steps: DeploymentInstruction[]): void;
  /** The version installed now, as the device sees it. */
  installedVersion(product: string): Promise<string | null>;
  /** The maintenance windows: whether one is open now, and when the next opens (absent: no restriction). */
  window?(): { open: boolean; next: Date | null };
  /** Steps were held for a window opening at `at` (null: no window ahead). */
  deferred?(at: Date | null): void;
}): TaskExecutor {
  /** The steps that may run now: all of them inside a window, the urgent ones outside. */
  const due = (plan: DeploymentInstruction[]): { steps: DeploymentInstruction[]; held: number; next: Date | null } => {
    const w = deps.window?.();
    if (!w || w.open) return { steps: plan, held: 0, next: null };
    const steps = plan.filter((s) => s.urgent === true);
    return { steps, held: plan.length - steps.length, next: w.next };
  };
  return {
    shouldRun: () => {
      const d = due(deps.plan());
      if (d.held > 0) deps.deferred?.(d.next);
      return d.steps.length > 0;
    },
    async run(_task, ctx) {
      const plan = deps.plan();
      const { steps, held, next } = due(plan);
      const events: RunEvent[] = [];
      const log: string[] = [];
      if (held > 0) {
        deps.deferred?.(next);
        log.push(`held    ${held} step${held === 1 ? '' : 's'} until the next maintenance window${next ? ` (${next.toISOString()})` : ''}`);
      }
      if (steps.length === 0 && held > 0) return { state: 'succeeded', exitCode: 0, reason: null, outputTail: log.join('\n') + '\n', events };
      if (steps.length === 0) return { state: 'succeeded', exitCode: 0, reason: null, outputTail: 'every assigned product is compliant\n', events };
      let failed: { reason: string; exitCode: number | null } | null = null;
      let restart = false;
      const content = new Set<string>();
      for (const [i, step] of steps.entries()) {
        if (ctx.signal.aborted) break;
        ctx.onProgress(Math.floor((i * 100) / steps.length));
        // A plan describes a wanted state; one made before an earlier run finished may ask for
        // what is already done. Acting only on the difference keeps steps idempotent.
        const now = await deps.installedVersion(step.product);
        if (step.action === 'install' ? now === step.version : now === null) {
          log.push(`skip    ${step.action} ${step.product} ${step.version ?? ''}: already done`.trimEnd());
          continue;
        }
        const label = step.action === 'install' ? `install ${step.product} ${step.version}${step.fromVersion ? ` (over ${step.fromVersion})` : ''} [${step.reason}]` : `uninstall ${step.product} ${step.fromVersion} [${step.reason}]`;
        const selfUpdate = step.action === 'install' && step.package?.manifest.kind === 'agent';
        const out = selfUpdate ? await deps.selfUpdate(step) : step.action === 'install' ? await deps.products.install(step, ctx.signal, ctx.onProcessStarted) : await deps.products.uninstall(step.product, ctx.signal, ctx.onProcessStarted);
        if (selfUpdate && out.ok) {
          // The new agent reports itself; this one stops here and hands over to the launcher.
          log.push(`ok      ${label}: staged, restarting`);
          events.push({ severity: 'info', kind: 'deployment.agent-restarting', message: `${label}: staged; the agent restarts into it`, data: { product: step.product, version: step.version } });
          restart = true;
          break;
        }
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
      // Held steps stay planned: the plan is consumed only when all of it was due.
      if (held === 0) deps.consumed(plan);
      if (restart) setTimeout(() => deps.restart(), 0);
      if (ctx.signal.aborted) return { state: 'cancelled', exitCode: null, reason: 'stopped', outputTail, events };
      return failed ? { state: 'failed', exitCode: failed.exitCode, reason: failed.reason, outputTail, events } : { state: 'succeeded', exitCode: 0, reason: null, outputTail, events };
    },
  };
}
