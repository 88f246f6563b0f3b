/**
 * Offline installation packages made by the server task "installation-package": listed,
 * downloaded and deleted by administrators. A bundle holds a live enrolment token, so
 * downloading and deleting need the right to manage the group's tokens, a download is
 * audited, and a deletion revokes the token. The file is named by the caller but found only
 * through the server's own index (BUNDLE_NAME, then the index entry): no path comes from the
 * request.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { AppError } from '../errors.ts';
import { authorize, inReach, Permission, reachOf } from '../services/actor.ts';
import { needs } from './access.ts';
import type { Services } from '../services/services.ts';
import { findInstallationPackage, listInstallationPackages, removeInstallationPackage, type InstallationPackageInfo } from '../server-tasks/installation-package.ts';
import { actor } from './admin-routes.ts';

const FileParams = Type.Object({ file: Type.String({ minLength: 1, maxLength: 200 }) });

export function registerInstallationPackageRoutes(app: FastifyInstance, s: Services, env: { dataDir: string }): void {
  const p = '/api/v1/installation-packages';
  const find = async (file: string, a: Parameters<typeof reachOf>[0]): Promise<InstallationPackageInfo> => {
    const info = await findInstallationPackage(env.dataDir, file);
    if (!info || !inReach(reachOf(a, Permission.read, s.catalog.tree), info.groupId)) throw new AppError('NOT_FOUND', `no installation package "${file}"`);
    return info;
  };

  app.get(p, { config: needs(Permission.read), schema: { tags: ['installation'], summary: 'Offline installation packages made by the "installation-package" server task, newest first' } }, async (req) => {
    const reach = reachOf(actor(req), Permission.read, s.catalog.tree);
    const tokens = new Map((await s.enrolment.listTokens(actor(req))).map((t) => [t.id, t.state]));
    const list = (await listInstallationPackages(env.dataDir)).filter((b) => inReach(reach, b.groupId));
    return Promise.all(
      list.map(async (b) => ({
        ...b,
        tokenState: tokens.get(b.tokenId) ?? 'deleted',
        available: !!(await stat(b.file).catch(() => null)),
      })),
    );
  });

  app.get(`${p}/:file`, { config: needs(Permission.manageTokens), schema: { tags: ['installation'], summary: 'Download an offline installation package (.tar.gz); it holds an enrolment token', params: FileParams } }, async (req, reply) => {
    const info = await find((req.params as Static<typeof FileParams>).file, actor(req));
    authorize(actor(req), Permission.manageTokens, s.catalog.tree, s.catalog.group(info.groupId) ? [info.groupId] : []);
    const st = await stat(info.file).catch(() => null);
    if (!st) throw new AppError('NOT_FOUND', `the file of installation package "${info.name}" is gone from ${info.file}`);
    await s.events.audit(actor(req), 'installation-package.downloaded', `installation package ${info.name} downloaded`, { groupId: info.groupId, data: { name: info.name, tokenId: info.tokenId } });
    return reply
      .header('content-length', String(st.size))
      .header('content-disposition', `attachment; filename="${info.name}"`)
      .header('x-checksum-sha256', info.sha256)
      .header('cache-control', 'no-store')
      .type('application/gzip')
      .send(createReadStream(info.file));
  });

  app.delete(`${p}/:file`, { config: needs(Permission.manageTokens), schema: { tags: ['installation'], summary: 'Delete an offline installation package and revoke its enrolment token', params: FileParams } }, async (req, reply) => {
    const info = await find((req.params as Static<typeof FileParams>).file, actor(req));
    authorize(actor(req), Permission.manageTokens, s.catalog.tree, s.catalog.group(info.groupId) ? [info.groupId] : []);
    await removeInstallationPackage(s, env.dataDir, info);
    await s.events.audit(actor(req), 'installation-package.deleted', `installation package ${info.name} deleted; its enrolment token was revoked`, { groupId: info.groupId, data: { name: info.name, tokenId: info.tokenId } });
    return reply.status(204).send();
  });
}
