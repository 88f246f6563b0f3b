/** Push installation over the API: start a job (hosts, group, SSH credentials), follow it, cancel it. */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { PushInstallCreate, PushInstallListQuery } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { Permission } from '../services/actor.ts';
import { needs } from './access.ts';

const JobParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });

export function registerPushRoutes(app: FastifyInstance, s: Pick<Services, 'push'>): void {
  const p = '/api/v1/push-installs';
  app.post(
    p,
    {
      config: needs(Permission.pushInstall),
      schema: {
        tags: ['push'],
        summary: 'Start a push installation: connect to each host over SSH, check it, install the agent and enrol it into the group',
        description:
          'Answers 202 with the job as it starts; follow it with GET /api/v1/push-installs/{id}. The credentials (password, or private key and passphrase) are used for this job only and never stored or shown. Errors: HOSTS_INVALID, CREDENTIALS_INVALID, VALIDATION_FAILED, NOT_FOUND (group), FORBIDDEN, UNAVAILABLE.',
        body: PushInstallCreate,
      },
    },
    async (req, reply) => reply.status(202).send(await s.push.create(req.actor!, req.body as PushInstallCreate)),
  );
  app.get(p, { config: needs(Permission.read), schema: { tags: ['push'], summary: 'Push installations, newest first, with a summary of their hosts', querystring: PushInstallListQuery } }, async (req) =>
    s.push.list(req.actor!, req.query as PushInstallListQuery),
  );
  app.get(`${p}/:id`, { config: needs(Permission.read), schema: { tags: ['push'], summary: "A push installation with each host's state, steps, outcome, exit code and output tail", params: JobParams } }, async (req) =>
    s.push.get(req.actor!, (req.params as Static<typeof JobParams>).id),
  );
  app.post(
    `${p}/:id/cancel`,
    { config: needs(Permission.pushInstall), schema: { tags: ['push'], summary: 'Cancel a running push installation: pending hosts are not started, running ones are disconnected', params: JobParams } },
    async (req) => s.push.cancel(req.actor!, (req.params as Static<typeof JobParams>).id),
  );
}
