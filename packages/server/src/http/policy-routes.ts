/**
 * Product policies over the API (ADR 0020): the operations of protocol/src/operations/policies.ts.
 * Each route declares the permission it needs at all; the policy service decides per object
 * (the groups a policy is assigned to, the target group, the devices the caller may read).
 */
import type { FastifyInstance } from 'fastify';
import {
  assignGroupPolicy,
  copyPolicy,
  createPolicy,
  deletePolicy,
  exportPolicy,
  getDevicePolicy,
  getPolicy,
  getPolicyCompliance,
  importPolicy,
  listGroupPolicies,
  listPolicies,
  listPolicyRevisions,
  listPolicyTypes,
  previewGroupPolicy,
  previewPolicy,
  unassignGroupPolicy,
  updatePolicy,
} from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { Permission } from '../services/actor.ts';
import { needs } from './access.ts';
import { actor } from './admin-routes.ts';
import { route } from './operation.ts';

const read = needs(Permission.read);
const write = needs(Permission.managePolicies);

export function registerPolicyRoutes(app: FastifyInstance, s: Pick<Services, 'policies'>): void {
  route(app, listPolicyTypes, read, async (req) => ({ items: s.policies.types(actor(req)) }));
  route(app, listPolicies, read, async (req) => s.policies.list(actor(req), req.query));
  route(app, createPolicy, write, async (req) => s.policies.create(actor(req), req.body));
  route(app, importPolicy, write, async (req) => s.policies.import(actor(req), req.body));
  route(app, getPolicy, read, async (req) => s.policies.get(actor(req), req.params.id));
  route(app, updatePolicy, write, async (req) => s.policies.update(actor(req), req.params.id, req.body));
  route(app, deletePolicy, write, async (req) => {
    await s.policies.remove(actor(req), req.params.id);
  });
  route(app, copyPolicy, write, async (req) => s.policies.copy(actor(req), req.params.id, req.body.name));
  route(app, listPolicyRevisions, read, async (req) => s.policies.revisions(actor(req), req.params.id, req.query));
  route(app, exportPolicy, read, async (req) => s.policies.export(actor(req), req.params.id));
  route(app, previewPolicy, read, async (req) => s.policies.previewPolicy(actor(req), req.params.id, req.body, req.query.limit));
  route(app, getPolicyCompliance, read, async (req) => s.policies.compliance(actor(req), req.params.id, req.query));
  route(app, listGroupPolicies, read, async (req) => s.policies.groupAssignments(actor(req), req.params.id));
  route(app, assignGroupPolicy, write, async (req) => s.policies.assign(actor(req), req.params.id, req.params.product, req.body));
  route(app, unassignGroupPolicy, write, async (req) => {
    await s.policies.unassign(actor(req), req.params.id, req.params.product);
  });
  route(app, previewGroupPolicy, read, async (req) => s.policies.previewAssignment(actor(req), req.params.id, req.params.product, req.body, req.query.limit));
  route(app, getDevicePolicy, read, async (req) => s.policies.devicePolicy(actor(req), req.params.id));
}
