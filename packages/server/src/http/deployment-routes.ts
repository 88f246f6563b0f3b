/** Product deployment over the API: the operations of protocol/src/operations/deployments.ts. */
import type { FastifyInstance } from 'fastify';
import { assignDeployment, getDeploymentCompliance, listDeployments, listGroupDeployments, resumeRollout, unassignDeployment } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { Permission } from '../services/actor.ts';
import { needs } from './access.ts';
import { actor } from './admin-routes.ts';
import { route } from './operation.ts';

const read = needs(Permission.read);
const write = needs(Permission.manageDeployments);

export function registerDeploymentRoutes(app: FastifyInstance, s: Pick<Services, 'deployments'>): void {
  route(app, listDeployments, read, async (req) => s.deployments.page(actor(req), req.query));
  route(app, listGroupDeployments, read, async (req) => s.deployments.effective(actor(req), req.params.id));
  route(app, assignDeployment, write, async (req) => s.deployments.assign(actor(req), req.params.id, { product: req.params.product, ...req.body }));
  route(app, unassignDeployment, write, async (req) => {
    await s.deployments.unassign(actor(req), req.params.id, req.params.product);
  });
  route(app, resumeRollout, write, async (req) => s.deployments.resumeRollout(actor(req), req.params.id, req.params.product));
  route(app, getDeploymentCompliance, read, async (req) => s.deployments.compliance(actor(req), req.query));
}
