/**
 * The dashboard: operations of protocol/src/operations/dashboard.ts. The figures need the read
 * permission (and count only what the caller may read); a layout is the caller's own.
 */
import type { FastifyInstance } from 'fastify';
import { getDashboardLayout, getDashboardMonitors, getDashboardTrend, putDashboardLayout, resetDashboardLayout } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { Permission } from '../services/actor.ts';
import { anyAdmin, needs } from './access.ts';
import { route } from './operation.ts';
import { actor } from './admin-routes.ts';

export function registerDashboardRoutes(app: FastifyInstance, s: Pick<Services, 'dashboard'>): void {
  route(app, getDashboardMonitors, needs(Permission.read), async (req) => s.dashboard.monitors(actor(req), req.query));
  route(app, getDashboardTrend, needs(Permission.read), async (req) => s.dashboard.trend(actor(req), req.query.days ?? 7));
  route(app, getDashboardLayout, anyAdmin, async (req) => s.dashboard.layout(actor(req)));
  route(app, putDashboardLayout, anyAdmin, async (req) => s.dashboard.putLayout(actor(req), req.body.monitors));
  route(app, resetDashboardLayout, anyAdmin, async (req) => s.dashboard.resetLayout(actor(req)));
}
