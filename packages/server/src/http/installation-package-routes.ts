/**
 * Offline installation packages made by the server task "installation-package": listed,
 * downloaded and deleted by administrators. A bundle holds a live enrolment token, so
 * downloading and deleting need the right to manage the group's tokens, a download is
 * audited, and a deletion revokes the token. The file is named by the caller but found only
 * through the server's own index (BUNDLE_NAME, then the index entry): no path comes from the
 * request. The index and the bytes are in the database (issue 14), so every instance on it
 * lists, serves and deletes every bundle; a download comes from the file when this instance
 * made the bundle, else from the database.
 */
import type { FastifyInstance } from 'fastify';
import { deleteInstallationPackage, downloadInstallationPackage, listInstallationPackages as listInstallationPackagesOp } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import { authorize, inReach, Permission, reachOf } from '../services/actor.ts';
import { needs } from './access.ts';
import type { Services } from '../services/services.ts';
import {
  findInstallationPackage,
  installationPackageAvailable,
  listInstallationPackages,
  openInstallationPackage,
  removeInstallationPackage,
  type InstallationPackageIndex,
  type InstallationPackageInfo,
} from '../server-tasks/installation-package.ts';
import { pageOf } from '../paging.ts';
import { actor } from './admin-routes.ts';
import { route } from './operation.ts';

export function registerInstallationPackageRoutes(app: FastifyInstance, s: Services, env: InstallationPackageIndex): void {
  const find = async (file: string, a: Parameters<typeof reachOf>[0]): Promise<InstallationPackageInfo> => {
    const info = await findInstallationPackage(env, file);
    if (!info || !inReach(reachOf(a, Permission.read, s.catalog.tree), info.groupId)) throw new AppError('NOT_FOUND', `no installation package "${file}"`);
    return info;
  };

  route(app, listInstallationPackagesOp, needs(Permission.read), async (req) => {
    const reach = reachOf(actor(req), Permission.read, s.catalog.tree);
    const list = (await listInstallationPackages(env)).filter((b) => inReach(reach, b.groupId));
    // Paged in memory (the index is a few hundred bundles at most, kept for their tokens' lifetime); the
    // token states and availability are looked up for the page only.
    const page = pageOf(list, { key: (b) => [b.createdAt, b.name], descending: true }, req.query);
    const tokens = page.items.length ? new Map((await s.enrolment.listTokens(actor(req))).map((t) => [t.id, t.state])) : new Map<string, string>();
    return {
      ...page,
      items: await Promise.all(
        page.items.map(async (b) => ({
          ...b,
          tokenState: (tokens.get(b.tokenId) ?? 'deleted') as 'active' | 'expired' | 'revoked' | 'exhausted' | 'deleted',
          available: await installationPackageAvailable(env, b),
        })),
      ),
    };
  });

  route(app, downloadInstallationPackage, needs(Permission.manageTokens), async (req, reply) => {
    const info = await find(req.params.file, actor(req));
    authorize(actor(req), Permission.manageTokens, s.catalog.tree, s.catalog.group(info.groupId) ? [info.groupId] : []);
    const bytes = await openInstallationPackage(env, info);
    if (!bytes) throw new AppError('NOT_FOUND', `the bytes of installation package "${info.name}" are neither in ${info.file} on this server nor in the database`);
    await s.events.audit(actor(req), 'installation-package.downloaded', `installation package ${info.name} downloaded`, { groupId: info.groupId, data: { name: info.name, tokenId: info.tokenId } });
    return reply
      .header('content-length', String(bytes.size))
      .header('content-disposition', `attachment; filename="${info.name}"`)
      .header('x-checksum-sha256', info.sha256)
      .header('cache-control', 'no-store')
      .type('application/gzip')
      .send(bytes.stream);
  });

  route(app, deleteInstallationPackage, needs(Permission.manageTokens), async (req) => {
    const info = await find(req.params.file, actor(req));
    authorize(actor(req), Permission.manageTokens, s.catalog.tree, s.catalog.group(info.groupId) ? [info.groupId] : []);
    await removeInstallationPackage({ ...env, enrolment: s.enrolment }, info);
    await s.events.audit(actor(req), 'installation-package.deleted', `installation package ${info.name} deleted; its enrolment token was revoked`, { groupId: info.groupId, data: { name: info.name, tokenId: info.tokenId } });
  });
}
