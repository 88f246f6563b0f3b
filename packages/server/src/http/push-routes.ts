/** Push installation over the API: operations of protocol/src/operations/push.ts. */
import type { FastifyInstance } from 'fastify';
import { cancelPushInstall, getPushInstall, listPushInstalls, startPushInstall } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { Permission } from '../services/actor.ts';
import { needs } from './access.ts';
import { route } from './operation.ts';
import { actor } from './admin-routes.ts';

export function registerPushRoutes(app: FastifyInstance, s: Pick<Services, 'push'>): void {
  route(app, startPushInstall, needs(Permission.pushInstall), async (req) => s.push.create(actor(req), req.body));
  route(app, listPushInstalls, needs(Permission.read), async (req) => s.push.list(actor(req), req.query));
  route(app, getPushInstall, needs(Permission.read), async (req) => s.push.get(actor(req), req.params.id));
  route(app, cancelPushInstall, needs(Permission.pushInstall), async (req) => s.push.cancel(actor(req), req.params.id));
}
