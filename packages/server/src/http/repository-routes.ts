/**
 * The master repository over the API (check in, list, promote, remove packages; the signing
 * key) and the agents' authenticated package download.
 */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { AGENT_PACKAGES_PATH, BranchSchema, type Branch, MAX_PACKAGE_BYTES } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { AppError } from '../errors.ts';
import { anyAdmin, deviceAccess, needs } from './access.ts';
import { Permission } from '../services/actor.ts';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
const ListQuery = Type.Object({ product: Type.Optional(Type.String({ maxLength: 64 })), branch: Type.Optional(BranchSchema) }, { additionalProperties: false });
const AddQuery = Type.Object(
  { branch: Type.Optional(Type.Union([BranchSchema, Type.Literal('none')], { description: 'Default current; "none" keeps the package out of the branches' })) },
  { additionalProperties: false },
);
const PromoteBody = Type.Object({ branch: Type.Union([BranchSchema, Type.Null()]) }, { additionalProperties: false });

export function registerRepositoryRoutes(app: FastifyInstance, s: Pick<Services, 'agents' | 'deployments' | 'repository'>): void {
  const p = '/api/v1/repository';
  // Archives arrive as raw bodies and are streamed to disk, never buffered whole.
  app.addContentTypeParser(['application/gzip', 'application/x-gzip', 'application/octet-stream'], { bodyLimit: MAX_PACKAGE_BYTES }, (_req, payload, done) => done(null, payload));

  app.get(`${p}/packages`, { config: needs(Permission.read), schema: { tags: ['repository'], summary: 'Packages of the master repository, newest version first', querystring: ListQuery } }, async (req) =>
    s.repository.list(req.actor!, req.query as Static<typeof ListQuery>),
  );
  app.post(
    `${p}/packages`,
    {
      config: needs(Permission.manageRepository),
      schema: {
        tags: ['repository'],
        summary: 'Check a package archive (.tar.gz with garrison-package.json at its root) into a branch; the server signs it',
        querystring: AddQuery,
        consumes: ['application/gzip', 'application/octet-stream'],
      },
    },
    async (req, reply) => {
      const q = req.query as Static<typeof AddQuery>;
      if (!req.body || typeof (req.body as { pipe?: unknown }).pipe !== 'function') {
        throw new AppError('BAD_REQUEST', 'send the archive as the body with Content-Type application/gzip');
      }
      const branch: Branch | null = q.branch === 'none' ? null : (q.branch ?? 'current');
      return reply.status(201).send(await s.repository.add(req.actor!, req.body as NodeJS.ReadableStream as never, branch));
    },
  );
  app.get(`${p}/packages/:id`, { config: needs(Permission.read), schema: { tags: ['repository'], summary: 'One package with its manifest, hash and signature', params: IdParams } }, async (req) =>
    s.repository.get(req.actor!, (req.params as Static<typeof IdParams>).id),
  );
  app.post(`${p}/packages/:id/promote`, { config: needs(Permission.manageRepository), schema: { tags: ['repository'], summary: 'Move a package to a branch (or out of the branches with null)', params: IdParams, body: PromoteBody } }, async (req) =>
    s.repository.promote(req.actor!, (req.params as Static<typeof IdParams>).id, (req.body as Static<typeof PromoteBody>).branch),
  );
  app.delete(`${p}/packages/:id`, { config: needs(Permission.manageRepository), schema: { tags: ['repository'], summary: 'Remove a package and, if unshared, its archive', params: IdParams } }, async (req, reply) => {
    await s.repository.remove(req.actor!, (req.params as Static<typeof IdParams>).id);
    return reply.status(204).send();
  });
  // For a downstream server pulling updates with an API token (server task "repository-download").
  app.get(`${p}/packages/:id/archive`, { config: needs(Permission.read), schema: { tags: ['repository'], summary: 'The archive (.tar.gz) of a package, for a downstream server pulling updates', params: IdParams } }, async (req, reply) => {
    const id = (req.params as Static<typeof IdParams>).id;
    await s.repository.get(req.actor!, id);
    const { body, size, pkg } = await s.repository.openArchive(id);
    return reply.type('application/gzip').header('content-length', size).header('x-garrison-sha256', pkg.sha256).send(body);
  });
  app.get(`${p}/signing-key`, { config: anyAdmin, schema: { tags: ['repository'], summary: "The server's Ed25519 package-signing public key (PEM)" } }, async () => ({ publicKey: s.repository.publicKeyPem }));

  // A device downloads only what its deployment plan names, or what it has installed (NOT_ASSIGNED otherwise).
  app.get(`${AGENT_PACKAGES_PATH}/:id`, { config: deviceAccess, schema: { hide: true, params: IdParams } }, async (req, reply) => {
    const id = (req.params as Static<typeof IdParams>).id;
    s.agents.admit(req.deviceId!);
    await s.deployments.assertMayDownload(req.deviceId!, id);
    const { body, size, pkg } = await s.repository.openArchive(id);
    return reply.type('application/gzip').header('content-length', size).header('x-garrison-sha256', pkg.sha256).send(body);
  });
}
