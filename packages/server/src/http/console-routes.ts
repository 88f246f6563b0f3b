/**
 * What the web console needs beyond the resource API: sign-in with a password (a session
 * token that expires), the live-update stream, a preview of a scope's devices and the
 * dashboard's summary; and the console itself, a static build served at `/` (ADR 0011).
 */
import path from 'node:path';
import type { ServerResponse } from 'node:http';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import fastifyStatic from '@fastify/static';
import rateLimit from '@fastify/rate-limit';
import { Type, type Static } from 'typebox';
import { changePassword, createSession, deleteSession, getDashboardSummary, previewScope, streamLive } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { actor } from './admin-routes.ts';
import { LiveBatch } from '../services/live-batch.ts';
import { route } from './operation.ts';
import { AppError } from '../errors.ts';
import { noRoute } from './boundary.ts';
import { bearer } from '../agent-hub/hub.ts';
import { anyAdmin, needs, publicAccess } from './access.ts';
import { Permission, reachOf } from '../services/actor.ts';

/** Sign-in is limited per address (10 attempts a minute); agents and the rest of the API are not. */
const signInAccess = { ...publicAccess, rateLimit: { max: 10, timeWindow: '1 minute' } };

/** The console's pages may load only what the server itself serves (the API documentation at /docs gets the same, see app.ts). */
export const CONSOLE_HEADERS = {
  'content-security-policy':
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
} as const;

/** Paths that belong to the API, agents or installers: never answered with the console's page. */
const NOT_CONSOLE = /^\/(api|agent|install|docs)(\/|$)/;

/** How often a live stream writes at most, and re-checks that its session is still valid. */
const LIVE_COALESCE_MS = 1000;
const LIVE_RECHECK_MS = 60_000;

export async function registerConsoleRoutes(app: FastifyInstance, s: Pick<Services, 'auth' | 'catalog' | 'deployments' | 'devices' | 'events' | 'live' | 'runs' | 'tasks'>, consoleDir: string | null): Promise<void> {
  const p = '/api/v1';
  // Only routes that ask for it are limited (sign-in); agents and the API are not.
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_req, ctx) => new AppError('RATE_LIMITED', `too many sign-in attempts; retry in ${Math.ceil(ctx.ttl / 1000)} s`),
  });

  route(app, createSession, signInAccess, async (req) => {
    const b = req.body;
    try {
      const session = await s.auth.signIn(b.name, b.password, b.otp);
      s.events.record({ severity: 'info', kind: 'admin.signed-in', message: `${session.name} signed in to the console`, actor: session.name, via: 'console', address: req.ip, data: { address: req.ip } });
      return session;
    } catch (err) {
      if (err instanceof AppError && err.code === 'UNAUTHENTICATED') {
        s.events.record({ severity: 'warning', kind: 'admin.sign-in-failed', message: `failed console sign-in as "${b.name.slice(0, 100)}"`, data: { address: req.ip } });
      }
      throw err;
    }
  });
  route(app, deleteSession, anyAdmin, async (req) => {
    await s.auth.signOut(actor(req));
  });
  route(app, changePassword, anyAdmin, async (req) => {
    const a = actor(req);
    await s.auth.changePassword(a, req.body.newPassword, req.body.currentPassword);
    await s.events.audit(a, 'admin.password-changed', `${a.name} changed their console password`, {});
  });

  route(app, previewScope, needs(Permission.read), async (req) => s.tasks.previewScope(actor(req), req.body.scope, req.body.limit));

  route(app, getDashboardSummary, needs(Permission.read), async (req) => {
    const a = actor(req);
    const [devices, runs, compliance] = await Promise.all([s.devices.counts(a), s.runs.outcomes(a, req.query.hours ?? 24), s.deployments.complianceSummary(a)]);
    return { devices, runs, compliance };
  });

  // Live updates: a server-sent event stream of topic names and run changes (see services/live-feed.ts).
  const streams = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of streams) res.end();
    streams.clear();
  });
  route(app, streamLive, needs(Permission.read), async (req, reply) => {
    const a = actor(req);
    const token = bearer(req.headers.authorization);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write('retry: 3000\n\nevent: ready\ndata: {}\n\n');
    streams.add(res);
    const pending = new LiveBatch();
    let timer: NodeJS.Timeout | null = null;
    const flush = () => {
      timer = null;
      const message = pending.take(
        (taskId) => {
          const t = s.catalog.task(taskId);
          return t !== undefined && s.tasks.canSee(a, t);
        },
        reachOf(a, Permission.read, s.catalog.tree),
        (deviceId) => s.catalog.device(deviceId)?.groupId,
      );
      if (message) res.write(`data: ${JSON.stringify(message)}\n\n`);
    };
    const unsubscribe = s.live.subscribe((topics, runs) => {
      pending.add(topics, runs);
      timer ??= setTimeout(flush, LIVE_COALESCE_MS);
    });
    // A revoked or expired session loses its stream within a minute; the comment keeps proxies from timing it out.
    const keepAlive = setInterval(() => {
      res.write(': keep-alive\n\n');
      s.auth.authenticate(token).catch(() => res.end());
    }, LIVE_RECHECK_MS);
    const close = () => {
      unsubscribe();
      clearInterval(keepAlive);
      if (timer) clearTimeout(timer);
      streams.delete(res);
    };
    res.on('close', close);
    res.on('error', close);
    return reply;
  });

  // The console: static files, and its index page for every other browser path (client-side routes).
  const notFound = (req: FastifyRequest, reply: FastifyReply) => {
    const e = noRoute(req);
    return reply.status(e.status).send(e.toBody(String(req.id)));
  };
  if (!consoleDir) {
    app.setNotFoundHandler(notFound);
    app.get('/', { config: publicAccess, schema: { hide: true } }, async (_req, reply) =>
      reply
        .type('text/html')
        .headers(CONSOLE_HEADERS)
        .send(
          '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Garrison</title></head><body><h1>Garrison</h1><p>The server is running, but the web console is not built. Run <code>npm run build:console</code> (or <code>npm install</code>), then restart. Meanwhile: the CLI (<code>garrison --help</code>) and the <a href="/docs">API documentation</a>.</p></body></html>',
        ),
    );
    return;
  }
  await app.register(fastifyStatic, {
    root: consoleDir,
    prefix: '/',
    index: false,
    wildcard: true,
    // The build writes .br and .gz beside each text file (scripts/build-console.js).
    preCompressed: true,
    setHeaders(res, file) {
      res.headers(CONSOLE_HEADERS);
      // Vite names built assets by content hash: they never change under the same name.
      res.header('cache-control', file.includes(`${path.sep}assets${path.sep}`) ? 'public, max-age=31536000, immutable' : 'no-cache');
    },
  });
  const indexPage = (_req: FastifyRequest, reply: FastifyReply) => reply.headers(CONSOLE_HEADERS).header('cache-control', 'no-cache').sendFile('index.html');
  app.get('/', { config: publicAccess, schema: { hide: true } }, indexPage);
  app.setNotFoundHandler((req, reply) => {
    const url = req.url.split('?')[0]!;
    if ((req.method === 'GET' || req.method === 'HEAD') && !NOT_CONSOLE.test(url) && !path.extname(url) && (req.headers.accept ?? '').includes('text/html')) return indexPage(req, reply);
    return notFound(req, reply);
  });
}
