/**
 * Product policies over the API (ADR 0020): policies, their revisions, export and import,
 * previews and compliance; a group's assignments; a device's effective policy with origins.
 * Each route declares the permission it needs at all; the policy service decides per object
 * (the groups a policy is assigned to, the target group, the devices the caller may read).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Type, type Static, type TSchema } from 'typebox';
import { PolicyAssignmentInput, PolicyInput, PolicyPatch, PolicyPreviewInput } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { Permission } from '../services/actor.ts';
import { needs, type RouteAccess } from './access.ts';
import { actor } from './admin-routes.ts';

const IdParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }) });
type IdParams = Static<typeof IdParams>;
const GroupProductParams = Type.Object({ id: Type.String({ minLength: 1, maxLength: 100 }), product: Type.String({ pattern: '^[a-z0-9][a-z0-9._-]{0,63}$' }) });
type GroupProductParams = Static<typeof GroupProductParams>;
const ListQuery = Type.Object(
  { product: Type.Optional(Type.String({ maxLength: 100 })), cursor: Type.Optional(Type.String({ maxLength: 100 })), limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) },
  { additionalProperties: false },
);
const LimitQuery = Type.Object({ limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })) }, { additionalProperties: false });
const ComplianceQuery = Type.Object(
  {
    state: Type.Optional(Type.Union([Type.Literal('compliant'), Type.Literal('drifted'), Type.Literal('failed'), Type.Literal('pending')])),
    cursor: Type.Optional(Type.String({ maxLength: 100 })),
    limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 5000 })),
  },
  { additionalProperties: false },
);
const CopyBody = Type.Object({ name: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });

function doc(summary: string, access: { access: RouteAccess }, parts: { body?: TSchema; params?: TSchema; querystring?: TSchema } = {}) {
  return { config: access, schema: { tags: ['policies'], summary, ...parts } };
}
const read = needs(Permission.read);
const write = needs(Permission.managePolicies);

export function registerPolicyRoutes(app: FastifyInstance, s: Pick<Services, 'policies'>): void {
  const p = '/api/v1';
  const id = (req: FastifyRequest) => (req.params as IdParams).id;
  const gp = (req: FastifyRequest) => req.params as GroupProductParams;

  app.get(`${p}/policy-types`, doc("The installed plug-ins' policy types: settings schema, defaults, lockable settings", read), async (req) => ({ items: s.policies.types(actor(req)) }));
  app.get(`${p}/policies`, doc('Policies, by name', read, { querystring: ListQuery }), async (req) => s.policies.list(actor(req), req.query as Static<typeof ListQuery>));
  app.post(`${p}/policies`, doc('Create a policy', write, { body: PolicyInput }), async (req, reply) => reply.status(201).send(await s.policies.create(actor(req), req.body as PolicyInput)));
  app.post(`${p}/policies/import`, doc('Import a policy from its export document', write), async (req, reply) => reply.status(201).send(await s.policies.import(actor(req), req.body)));
  app.get(`${p}/policies/:id`, doc('One policy and the groups it is assigned to', read, { params: IdParams }), async (req) => s.policies.get(actor(req), id(req)));
  app.patch(`${p}/policies/:id`, doc('Change a policy (from the revision named: POLICY_REVISION_CONFLICT otherwise)', write, { params: IdParams, body: PolicyPatch }), async (req) =>
    s.policies.update(actor(req), id(req), req.body as PolicyPatch),
  );
  app.delete(`${p}/policies/:id`, doc('Delete a policy that no group has assigned', write, { params: IdParams }), async (req, reply) => {
    await s.policies.remove(actor(req), id(req));
    return reply.status(204).send();
  });
  app.post(`${p}/policies/:id/copy`, doc('Copy a policy (revision 1, not assigned)', write, { params: IdParams, body: CopyBody }), async (req, reply) =>
    reply.status(201).send(await s.policies.copy(actor(req), id(req), (req.body as Static<typeof CopyBody>).name)),
  );
  app.get(`${p}/policies/:id/revisions`, doc("A policy's revisions, newest first, each as its export document", read, { params: IdParams }), async (req) => s.policies.revisions(actor(req), id(req)));
  app.get(`${p}/policies/:id/export`, doc('A policy as a portable document', read, { params: IdParams }), async (req) => s.policies.export(actor(req), id(req)));
  app.post(`${p}/policies/:id/preview`, doc('Which devices a change of the policy would change, and how', read, { params: IdParams, body: PolicyPreviewInput, querystring: LimitQuery }), async (req) =>
    s.policies.previewPolicy(actor(req), id(req), req.body as PolicyPreviewInput, (req.query as Static<typeof LimitQuery>).limit),
  );
  app.get(`${p}/policies/:id/compliance`, doc('What the devices the policy reaches reported', read, { params: IdParams, querystring: ComplianceQuery }), async (req) =>
    s.policies.compliance(actor(req), id(req), req.query as Static<typeof ComplianceQuery>),
  );
  app.get(`${p}/groups/:id/policies`, doc("A group's own policy assignments", read, { params: IdParams }), async (req) => s.policies.groupAssignments(actor(req), id(req)));
  app.put(`${p}/groups/:id/policies/:product`, doc("Assign a policy to a group for a product, or block its ancestors' policies", write, { params: GroupProductParams, body: PolicyAssignmentInput }), async (req) =>
    s.policies.assign(actor(req), gp(req).id, gp(req).product, req.body as PolicyAssignmentInput),
  );
  app.delete(`${p}/groups/:id/policies/:product`, doc("Remove a group's policy assignment for a product", write, { params: GroupProductParams }), async (req, reply) => {
    await s.policies.unassign(actor(req), gp(req).id, gp(req).product);
    return reply.status(204).send();
  });
  app.post(`${p}/groups/:id/policies/:product/preview`, doc('Which devices an assignment would change, and how', read, { params: GroupProductParams, body: PolicyAssignmentInput, querystring: LimitQuery }), async (req) =>
    s.policies.previewAssignment(actor(req), gp(req).id, gp(req).product, req.body as PolicyAssignmentInput, (req.query as Static<typeof LimitQuery>).limit),
  );
  app.get(`${p}/devices/:id/policy`, doc("A device's effective policy of every product, with the origin of every value, and what it reported", read, { params: IdParams }), async (req) =>
    s.policies.devicePolicy(actor(req), id(req)),
  );
}
