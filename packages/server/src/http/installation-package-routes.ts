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
import { Type, type Static } from 'typebox';
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
import { actor } from './admin-routes.ts';

const FileParams = Type.Object({ file: Type.String({ minLength: 1, maxLength: 200 }) });

export function registerInstallationPackageRoutes(app: FastifyInstance, s: Services, env: InstallationPackageIndex): void {
  const p = '/api/v1/installation-packages';
  const find = async (file: string, a: Parameters<typeof reachOf>[0]): Promise<InstallationPackageInfo> => {
    const info = await findInstallationPackage(env, file);
    if (!info || !inReach(reachOf(a, Permission.read, s.catalog.tree), info.groupId)) throw new AppError('NOT_FOUND', `no installation package "${file}"`);
    return info;
  };

  app.get(p, { config: needs(Permission.read), schema: { tags: ['installation'], summary: 'Offline installation packages made by the "installation-package" server task, newest first' } }, async (req) => {
    const reach = reachOf(actor(req), Permission.read, s.catalog.tree);
    const tokens = new Map((await s.enrolment.listTokens(actor(req))).map((t) => [t.id, t.state]));
    const list = (await listInstallationPackages(env)).filter((b) => inReach(reach, b.groupId));
    return Promise.all(
      list.map(async (b) => ({
        ...b,
        tokenState: tokens.get(b.tokenId) ?? 'deleted',
        available: await installationPackageAvailable(env, b),
      })),
    );
  });

  app.get(`${p}/:file`, { config: needs(Permission.manageTokens), schema: { tags: ['installation'], summary: 'Download an offline installation package (.tar.gz); it holds an enrolment token', params: FileParams } }, async (req, reply) => {
    const info = await find((req.params as Static<typeof FileParams>).file, actor(req));
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

  app.delete(`${p}/:file`, { config: needs(Permission.manageTokens), schema: { tags: ['installation'], summary: 'Delete an offline installation package and revoke its enrolment token', params: FileParams } }, async (req, reply) => {
    const info = await find((req.params as Static<typeof FileParams>).file, actor(req));
    authorize(actor(req), Permission.manageTokens, s.catalog.tree, s.catalog.group(info.groupId) ? [info.groupId] : []);
    await removeInstallationPackage({ ...env, enrolment: s.enrolment }, info);
    await s.events.audit(actor(req), 'installation-package.deleted', `installation package ${info.name} deleted; its enrolment token was revoked`, { groupId: info.groupId, data: { name: info.name, tokenId: info.tokenId } });
    return reply.status(204).send();
  });
}
