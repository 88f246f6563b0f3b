/**
 * Who may call each route, declared where the route is declared (ADR 0013). Every route
 * carries `config.access`; a route without one makes the server refuse to start, so nothing is
 * reachable by omission. The decision is taken on the route the router matched, never on the
 * raw URL, so that percent-encoding, double slashes or case cannot steer a request around it.
 *
 * - `public`: no credential (health, error codes, sign-in, installer scripts whose path token
 *   is the credential, the console's static files, the API documentation);
 * - `device`: a device credential; the handler gets `req.deviceId`;
 * - `admin`: an API token or console session, and, when given, a permission the caller must
 *   hold on at least one group (server-wide ones: on the root). The service then decides per
 *   object; this first check only keeps callers without the right out of the handler.
 */
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import type { Permission } from '@garrison/protocol';
import { AppError } from '../errors.ts';
import { bearer } from '../agent-hub/hub.ts';
import { holdsAnywhere, type Actor } from '../services/actor.ts';
import type { Services } from '../services/services.ts';

export type RouteAccess = { kind: 'public' } | { kind: 'device' } | { kind: 'admin'; permission: Permission | null };

declare module 'fastify' {
  interface FastifyContextConfig {
    access?: RouteAccess;
  }
  interface FastifyRequest {
    actor?: Actor;
    deviceId?: string;
  }
}

export const publicAccess = { access: { kind: 'public' } } as const satisfies { access: RouteAccess };
export const deviceAccess = { access: { kind: 'device' } } as const satisfies { access: RouteAccess };
/** Any administrator (what they then see is filtered by their grants). */
export const anyAdmin = { access: { kind: 'admin', permission: null } } as const satisfies { access: RouteAccess };
export function needs(permission: Permission): { access: RouteAccess } {
  return { access: { kind: 'admin', permission } };
}

/** Routes that plug-ins register (the API documentation, the console's static files): public by nature. */
function pluginRouteAccess(route: RouteOptions): RouteAccess | undefined {
  if (route.url === '/docs' || route.url.startsWith('/docs/')) return { kind: 'public' };
  // @fastify/static's wildcard for the console's files.
  if (route.url === '/*' && (route.method === 'GET' || route.method === 'HEAD' || (Array.isArray(route.method) && route.method.every((m) => m === 'GET' || m === 'HEAD')))) return { kind: 'public' };
  return undefined;
}

export interface DeclaredRoute {
  method: string;
  url: string;
  access: RouteAccess;
}

/**
 * Installs the declaration check (at registration) and the decision (at each request). Call
 * before any route is added. Returns every route with its declaration as they are added, for
 * the test that proves none is missing and that each refuses whom it must.
 */
export function installAccessControl(app: FastifyInstance, s: Pick<Services, 'auth' | 'catalog' | 'enrolment'>): DeclaredRoute[] {
  const declaredRoutes: DeclaredRoute[] = [];
  app.addHook('onRoute', (route) => {
    const declared = route.config?.access ?? pluginRouteAccess(route);
    if (!declared) throw new Error(`route ${String(route.method)} ${route.url} declares no access (config.access): every route says who may call it`);
    route.config = { ...(route.config ?? {}), access: declared };
    for (const m of [route.method].flat()) declaredRoutes.push({ method: m, url: route.url, access: declared });
  });
  app.addHook('onRequest', async (req: FastifyRequest) => {
    const access = req.routeOptions.config?.access;
    // An unmatched URL reaches the not-found handler, which answers 404 (or the console's page).
    if (!access) {
      if (req.is404) return;
      throw new AppError('FORBIDDEN', 'this route declares no access');
    }
    if (access.kind === 'public') return;
    if (access.kind === 'device') {
      req.deviceId = await s.enrolment.authenticateDevice(bearer(req.headers.authorization));
      return;
    }
    const ua = req.headers['user-agent'];
    const actor = await s.auth.authenticate(bearer(req.headers.authorization), { address: req.ip, cli: typeof ua === 'string' && ua.startsWith('garrison-cli/') });
    req.actor = actor;
    if (access.permission && !holdsAnywhere(actor, access.permission, s.catalog.tree)) {
      throw new AppError('FORBIDDEN', `this needs the ${access.permission} permission, which none of your roles grants`, { permission: access.permission });
    }
  });
  return declaredRoutes;
}
