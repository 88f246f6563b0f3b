/** Saved selections: operations of protocol/src/operations/saved-selections.ts (any signed-in administrator, their own only). */
import type { FastifyInstance } from 'fastify';
import { createSavedSelection, deleteSavedSelection, listSavedSelections } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { anyAdmin } from './access.ts';
import { route } from './operation.ts';
import { actor } from './admin-routes.ts';

export function registerSavedSelectionRoutes(app: FastifyInstance, s: Pick<Services, 'savedSelections'>): void {
  route(app, listSavedSelections, anyAdmin, async (req) => {
    const { page, ...paging } = req.query;
    return s.savedSelections.list(actor(req), page, paging);
  });
  route(app, createSavedSelection, anyAdmin, async (req) => s.savedSelections.create(actor(req), req.body));
  route(app, deleteSavedSelection, anyAdmin, async (req) => {
    await s.savedSelections.remove(actor(req), req.params.id);
  });
}
