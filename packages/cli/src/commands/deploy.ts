import type { Command } from 'commander';
import {
  assignDeployment,
  getDeploymentCompliance,
  listDeployments,
  listGroupDeployments,
  PAGE_LIMIT_MAX,
  resumeRollout,
  unassignDeployment,
  type ComplianceSummary,
  type DeploymentAssignBody,
  type DeploymentComplianceItem,
  type DeploymentState,
  type Rollout,
} from '@garrison/protocol';
import { UsageError } from '../client.ts';
import { act, type RunState } from '../context.ts';
import { formatTime, table } from '../format.ts';
import { Groups } from '../resolve.ts';

const STATES: readonly DeploymentState[] = ['compliant', 'pending', 'installing', 'failed', 'unavailable'];

export function registerDeployCommands(program: Command, state: RunState): void {
  const deploy = program.command('deploy').description('Product deployment: products assigned to groups, installed and kept up to date by the agents');

  act(
    deploy
      .command('assign')
      .description('Assign a product to a group (inherited by subgroups): install from a branch or a pinned version, or remove it')
      .argument('<product>', 'product id')
      .requiredOption('--group <group>', 'group id or path')
      .option('--branch <branch>', 'current (default), previous (a rollback), or evaluation')
      .option('--pin <version>', 'install exactly this version')
      .option('--unpin', 'follow the branch again')
      .option('--remove', 'uninstall the product from the devices of this group')
      .option('--remove-conflicts', "uninstall the products the package's manifest lists as conflicting first")
      .option('--urgent', "install (or remove) at once, outside the devices' maintenance windows too")
      .option('--no-urgent', 'wait for the maintenance windows again (the default)')
      .option('--pilot <group>', 'staged rollout: new versions go to this group first')
      .option('--phases <percentages>', 'staged rollout: then to these cumulative percentages of devices, e.g. 10,50,100')
      .option('--failure-threshold <percent>', 'staged rollout: halt when more than this share of installs fail (default 10)')
      .option('--max-concurrent <n>', 'staged rollout: at most this many devices of the group install at the same time')
      .option('--no-rollout', 'new versions go to every device at once'),
    state,
    async (io, opts, [product]) => {
      const client = await io.client();
      if (opts.branch && !['current', 'previous', 'evaluation'].includes(opts.branch)) throw new UsageError('--branch must be current, previous or evaluation');
      if (opts.pin && opts.unpin) throw new UsageError('give --pin or --unpin, not both');
      const groups = new Groups(client);
      const groupId = await groups.id(opts.group);
      let rollout: Rollout | null | undefined;
      if (opts.rollout === false) rollout = null;
      else if (opts.pilot || opts.phases || opts.failureThreshold || opts.maxConcurrent !== undefined) {
        const phases = opts.phases ? String(opts.phases).split(',').map((p: string) => Number(p.trim())) : undefined;
        if (phases && phases.some((p: number) => !Number.isInteger(p) || p < 1 || p > 100)) throw new UsageError('--phases takes percentages from 1 to 100, e.g. 10,50,100');
        const threshold = opts.failureThreshold !== undefined ? Number(opts.failureThreshold) : undefined;
        if (threshold !== undefined && (!Number.isInteger(threshold) || threshold < 0 || threshold > 100)) throw new UsageError('--failure-threshold is a percentage from 0 to 100');
        const maxConcurrent = opts.maxConcurrent !== undefined ? Number(opts.maxConcurrent) : undefined;
        if (maxConcurrent !== undefined && (!Number.isInteger(maxConcurrent) || maxConcurrent < 1)) throw new UsageError('--max-concurrent is a whole number of devices, 1 or more');
        rollout = {
          ...(opts.pilot ? { pilotGroupId: await groups.id(opts.pilot) } : {}),
          ...(phases ? { percentages: phases } : {}),
          ...(threshold !== undefined ? { failureThresholdPercent: threshold } : {}),
          ...(maxConcurrent !== undefined ? { maxConcurrentInstalls: maxConcurrent } : {}),
        };
      }
      const body: DeploymentAssignBody = {
        ...(rollout !== undefined ? { rollout } : {}),
        ...(opts.branch ? { branch: opts.branch as 'current' | 'previous' | 'evaluation' } : {}),
        ...(opts.pin ? { pinnedVersion: opts.pin } : opts.unpin ? { pinnedVersion: null } : {}),
        action: opts.remove ? 'remove' : 'install',
        ...(opts.removeConflicts ? { removeConflicts: true } : {}),
        ...(opts.urgent !== undefined ? { urgent: opts.urgent === true } : {}),
      };
      const a = await client.api.call(assignDeployment, { params: { id: groupId, product: product! }, body });
      io.print(a, () => `${a.product}: ${a.action === 'remove' ? 'remove' : `install ${a.pinnedVersion ? `version ${a.pinnedVersion}` : `from ${a.branch}`}`} on "${a.groupPath}" and its subgroups${a.rollout ? ` (staged rollout${a.rollout.maxConcurrentInstalls ? `, at most ${a.rollout.maxConcurrentInstalls} installing at once` : ''})` : ''}${a.urgent ? ' (urgent: ignores maintenance windows)' : ''}\n`);
    },
  );

  act(
    deploy.command('resume').description('Resume a halted staged rollout').argument('<product>', 'product id').requiredOption('--group <group>', 'the group the product is assigned to'),
    state,
    async (io, opts, [product]) => {
      const client = await io.client();
      const groupId = await new Groups(client).id(opts.group);
      const a = await client.api.call(resumeRollout, { params: { id: groupId, product: product! } });
      io.print(a, () => `rollout of ${a.product} ${a.rolloutState?.targetVersion ?? ''} resumed on "${a.groupPath}"\n`);
    },
  );

  act(
    deploy.command('unassign').description("Remove a group's own assignment of a product (inherited ones apply again)").argument('<product>', 'product id').requiredOption('--group <group>', 'group id or path'),
    state,
    async (io, opts, [product]) => {
      const client = await io.client();
      const groupId = await new Groups(client).id(opts.group);
      await client.api.call(unassignDeployment, { params: { id: groupId, product: product! } });
      io.print({ unassigned: product }, () => `${product} unassigned from the group\n`);
    },
  );

  act(
    deploy.command('list').description("Assignments: all, or what applies to one group (its own and its ancestors')").option('--group <group>', 'group id or path'),
    state,
    async (io, opts) => {
      const client = await io.client();
      const list = opts.group
        ? await client.api.call(listGroupDeployments, { params: { id: await new Groups(client).id(opts.group) } })
        : await client.api.all(listDeployments, { query: { limit: PAGE_LIMIT_MAX } });
      io.print(list, () =>
        list.length
          ? table(
              ['PRODUCT', 'ACTION', 'BRANCH', 'PINNED', 'REMOVE CONFLICTS', 'URGENT', 'ROLLOUT', 'SET ON', 'UPDATED'],
              list.map((a) => [
                a.product,
                a.action,
                a.branch,
                a.pinnedVersion ?? '-',
                a.removeConflicts ? 'yes' : 'no',
                a.urgent ? 'yes' : 'no',
                a.rolloutState
                  ? `${a.rolloutState.targetVersion}: ${a.rolloutState.state}${a.rolloutState.state === 'active' ? ` (${a.rolloutState.phases[a.rolloutState.phase]})` : ''}${a.rolloutState.reason ? ` - ${a.rolloutState.reason}` : ''}`
                  : a.rollout
                    ? 'staged'
                    : '-',
                a.groupPath,
                formatTime(a.updatedAt),
              ]),
            )
          : 'no products assigned\n',
      );
    },
  );

  act(
    deploy
      .command('status')
      .description('Deployment compliance: per product a summary, then each device (compliant, pending, failed with its return code)')
      .option('--group <group>', 'group id or path (with its subgroups)')
      .option('--product <id>', 'one product')
      .option('--state <state>', 'compliant, pending, installing, failed or unavailable'),
    state,
    async (io, opts) => {
      const client = await io.client();
      if (opts.state !== undefined && !STATES.includes(opts.state)) throw new UsageError(`--state must be one of ${STATES.join(', ')}`);
      const groupId = opts.group ? await new Groups(client).id(opts.group) : undefined;
      // Every page of rows; the summary (over the whole filter) comes with each, the first one's is kept.
      const query = { limit: PAGE_LIMIT_MAX, ...(groupId ? { groupId } : {}), ...(opts.product ? { product: opts.product } : {}), ...(opts.state ? { state: opts.state as DeploymentState } : {}) };
      let summary: ComplianceSummary[] | undefined;
      const devices: DeploymentComplianceItem[] = [];
      for await (const page of client.api.pages(getDeploymentCompliance, { query })) {
        summary ??= page.summary;
        devices.push(...page.items);
      }
      const c = { summary: summary ?? [], devices };
      io.print(c, () => {
        if (!c.devices.length) return 'no deployment state yet\n';
        const summary = table(
          ['PRODUCT', 'COMPLIANT', 'PENDING', 'FAILED', 'UNAVAILABLE', 'VERSIONS'],
          c.summary.map((s) => [s.product, s.states.compliant ?? 0, s.states.pending ?? 0, s.states.failed ?? 0, s.states.unavailable ?? 0, Object.entries(s.versions).map(([v, n]) => `${v}×${n}`).join(' ')]),
        );
        const devices = table(
          ['DEVICE', 'PRODUCT', 'STATE', 'INSTALLED', 'TARGET', 'CODE', 'DETAIL', 'UPDATED'],
          c.devices.map((d) => [d.deviceName, d.product, d.state, d.installedVersion ?? '-', d.targetVersion ?? '-', d.exitCode ?? '-', d.detail ?? '', formatTime(d.updatedAt)]),
        );
        return `${summary}\n${devices}`;
      });
    },
  );
}
