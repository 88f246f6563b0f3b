/**
 * The master repository over the API (the operations of protocol/src/operations/repository.ts:
 * check in, list, promote, remove packages; an archive; the signing key) and the agents'
 * authenticated package download, which is the agent protocol's and stays out of the document.
 */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { AGENT_PACKAGES_PATH, type Branch, MAX_PACKAGE_BYTES, addPackage, deletePackage, downloadPackage, getPackage, getSigningKey, listPackages, promotePackage } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { AppError } from '../errors.ts';
import { anyAdmin, deviceAccess, needs } from './access.ts';
import { Permission } from '../services/actor.ts';
import { actor } from './admin-routes.ts';
import { route } from './operation.ts';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
const read = needs(Permission.read);
const write = needs(Permission.manageRepository);

export function registerRepositoryRoutes(app: FastifyInstance, s: Pick<Services, 'agents' | 'deployments' | 'repository'>): void {
  // Archives arrive as raw bodies and are streamed to disk, never buffered whole.
  app.addContentTypeParser(['application/gzip', 'application/x-gzip', 'application/octet-stream'], { bodyLimit: MAX_PACKAGE_BYTES }, (_req, payload, done) => done(null, payload));

  route(app, listPackages, read, async (req) => s.repository.page(actor(req), req.query));
  route(app, addPackage, write, async (req) => {
    const body = req.body as unknown;
    if (!body || typeof (body as { pipe?: unknown }).pipe !== 'function') {
      throw new AppError('BAD_REQUEST', 'send the archive as the body with Content-Type application/gzip');
    }
    const branch: Branch | null = req.query.branch === 'none' ? null : (req.query.branch ?? 'current');
    return s.repository.add(actor(req), body as NodeJS.ReadableStream as never, branch);
  });
  route(app, getPackage, read, async (req) => s.repository.get(actor(req), req.params.id));
  route(app, promotePackage, write, async (req) => s.repository.promote(actor(req), req.params.id, req.body.branch));
  route(app, deletePackage, write, async (req) => {
    await s.repository.remove(actor(req), req.params.id);
  });
  // For a downstream server pulling updates with an API token (server task "repository-download").
  route(app, downloadPackage, read, async (req, reply) => {
    await s.repository.get(actor(req), req.params.id);
    const { body, size, pkg } = await s.repository.openArchive(req.params.id);
    return reply.type('application/gzip').header('content-length', size).header('x-garrison-sha256', pkg.sha256).send(body);
  });
  route(app, getSigningKey, anyAdmin, async () => ({ publicKey: s.repository.publicKeyPem }));

  // A device downloads only what its deployment plan names, or what it has installed (NOT_ASSIGNED otherwise).
  app.get(`${AGENT_PACKAGES_PATH}/:id`, { config: deviceAccess, schema: { hide: true, params: IdParams } }, async (req, reply) => {
    const id = (req.params as Static<typeof IdParams>).id;
    s.agents.admit(req.deviceId!);
    await s.deployments.assertMayDownload(req.deviceId!, id);
    const { body, size, pkg } = await s.repository.openArchive(id);
    return reply.type('application/gzip').header('content-length', size).header('x-garrison-sha256', pkg.sha256).send(body);
  });
}
