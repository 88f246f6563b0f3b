/** The group tree: operations of protocol/src/operations/groups.ts. */
import type { FastifyInstance } from 'fastify';
import { createGroup, deleteGroup, getGroup, listGroups, updateGroup } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { Permission } from '../services/actor.ts';
import { needs } from './access.ts';
import { route } from './operation.ts';
import { actor } from './admin-routes.ts';

const read = needs(Permission.read);

export function registerGroupRoutes(app: FastifyInstance, s: Pick<Services, 'groups'>): void {
  route(app, listGroups, read, async (req) => s.groups.page(actor(req), req.query));
  route(app, createGroup, needs(Permission.manageGroups), async (req) => s.groups.create(actor(req), req.body));
  route(app, getGroup, read, async (req) => s.groups.get(actor(req), req.params.id));
  route(app, updateGroup, needs(Permission.manageGroups), async (req) => s.groups.update(actor(req), req.params.id, req.body));
  route(app, deleteGroup, needs(Permission.manageGroups), async (req) => {
    await s.groups.remove(actor(req), req.params.id);
  });
}
