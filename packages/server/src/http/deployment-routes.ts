/** Product deployment over the API: assignments per group and deployment state per device. */
import type { FastifyInstance } from 'fastify';
import { Type, type Static } from 'typebox';
import { DeploymentAssign } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { Permission } from '../services/actor.ts';
import { needs } from './access.ts';

const GroupParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
const AssignParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }), product: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' }) });
/** The protocol's DeploymentAssign without the product (it is in the path), so a new field reaches the route and the OpenAPI document. */
const AssignBody = Type.Omit(DeploymentAssign, ['product'], { additionalProperties: false });
const ListQuery = Type.Object({ groupId: Type.Optional(Type.String()) }, { additionalProperties: false });
const ComplianceQuery = Type.Object(
  {
    groupId: Type.Optional(Type.String()),
    product: Type.Optional(Type.String()),
    state: Type.Optional(Type.Union(['compliant', 'pending', 'installing', 'failed', 'unavailable'].map((s) => Type.Literal(s)))),
  },
  { additionalProperties: false },
);

export function registerDeploymentRoutes(app: FastifyInstance, s: Pick<Services, 'deployments'>): void {
  const p = '/api/v1';
  app.get(`${p}/deployments`, { config: needs(Permission.read), schema: { tags: ['deployment'], summary: 'Product assignments (all, or those set on one group)', querystring: ListQuery } }, async (req) =>
    s.deployments.list(req.actor!, (req.query as Static<typeof ListQuery>).groupId),
  );
  app.get(`${p}/groups/:id/deployments`, { config: needs(Permission.read), schema: { tags: ['deployment'], summary: "The products that apply to a group: its own and its ancestors' assignments", params: GroupParams } }, async (req) =>
    s.deployments.effective(req.actor!, (req.params as Static<typeof GroupParams>).id),
  );
  app.put(
    `${p}/groups/:id/deployments/:product`,
    { config: needs(Permission.manageDeployments), schema: { tags: ['deployment'], summary: 'Assign a product to a group (install from a branch or a pinned version, or remove it); inherited by subgroups', params: AssignParams, body: AssignBody } },
    async (req) => {
      const { id, product } = req.params as Static<typeof AssignParams>;
      return s.deployments.assign(req.actor!, id, { product, ...(req.body as Static<typeof AssignBody>) });
    },
  );
  app.delete(`${p}/groups/:id/deployments/:product`, { config: needs(Permission.manageDeployments), schema: { tags: ['deployment'], summary: "Remove a group's own assignment of a product", params: AssignParams } }, async (req, reply) => {
    const { id, product } = req.params as Static<typeof AssignParams>;
    await s.deployments.unassign(req.actor!, id, product);
    return reply.status(204).send();
  });
  app.post(
    `${p}/groups/:id/deployments/:product/rollout/resume`,
    { config: needs(Permission.manageDeployments), schema: { tags: ['deployment'], summary: 'Resume a halted staged rollout', params: AssignParams } },
    async (req) => {
      const { id, product } = req.params as Static<typeof AssignParams>;
      return s.deployments.resumeRollout(req.actor!, id, product);
    },
  );
  app.get(`${p}/deployments/compliance`, { config: needs(Permission.read), schema: { tags: ['deployment'], summary: 'Deployment state per device and product, with a summary per product', querystring: ComplianceQuery } }, async (req) =>
    s.deployments.compliance(req.actor!, req.query as Static<typeof ComplianceQuery>),
  );
}
