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
import { Scope, type DashboardSummary } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { actor } from './admin-routes.ts';
import { PASSWORD_MIN_LENGTH } from '../services/auth-service.ts';
import type { LiveTopic } from '../services/live-feed.ts';
import { AppError } from '../errors.ts';
import { noRoute } from './boundary.ts';
import { bearer } from '../agent-hub/hub.ts';
import { anyAdmin, needs, publicAccess } from './access.ts';
import { Permission } from '../services/actor.ts';

const SignInBody = Type.Object(
  { name: Type.String({ minLength: 1, maxLength: 100 }), password: Type.String({ minLength: 1, maxLength: 1024 }), otp: Type.Optional(Type.String({ maxLength: 10, description: 'The current code of the authenticator app, for an administrator with a second factor' })) },
  { additionalProperties: false },
);
const PasswordBody = Type.Object(
  { currentPassword: Type.Optional(Type.String({ maxLength: 1024 })), newPassword: Type.String({ minLength: PASSWORD_MIN_LENGTH, maxLength: 1024 }) },
  { additionalProperties: false },
);
const PreviewBody = Type.Object({ scope: Scope, limit: Type.Optional(Type.Integer({ minimum: 1, maximum: 1000 })) }, { additionalProperties: false });
const SummaryQuery = Type.Object({ hours: Type.Optional(Type.Integer({ minimum: 1, maximum: 720 })) }, { additionalProperties: false });

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

export async function registerConsoleRoutes(app: FastifyInstance, s: Pick<Services, 'auth' | 'deployments' | 'devices' | 'events' | 'live' | 'runs' | 'tasks'>, consoleDir: string | null): Promise<void> {
  const p = '/api/v1';
  // Only routes that ask for it are limited (sign-in); agents and the API are not.
  await app.register(rateLimit, {
    global: false,
    errorResponseBuilder: (_req, ctx) => new AppError('RATE_LIMITED', `too many sign-in attempts; retry in ${Math.ceil(ctx.ttl / 1000)} s`),
  });

  app.post(
    `${p}/session`,
    {
      schema: { tags: ['auth'], summary: 'Sign in with a name and password (and the second-factor code when set); returns a session token (12 h) used as a bearer token', security: [], body: SignInBody },
      config: { ...publicAccess, rateLimit: { max: 10, timeWindow: '1 minute' } },
    },
    async (req, reply) => {
      const b = req.body as Static<typeof SignInBody>;
      try {
        const session = await s.auth.signIn(b.name, b.password, b.otp);
        s.events.record({ severity: 'info', kind: 'admin.signed-in', message: `${session.name} signed in to the console`, actor: session.name, via: 'console', address: req.ip, data: { address: req.ip } });
        return reply.status(201).send(session);
      } catch (err) {
        if (err instanceof AppError && err.code === 'UNAUTHENTICATED') {
          s.events.record({ severity: 'warning', kind: 'admin.sign-in-failed', message: `failed console sign-in as "${b.name.slice(0, 100)}"`, data: { address: req.ip } });
        }
        throw err;
      }
    },
  );
  app.delete(`${p}/session`, { config: anyAdmin, schema: { tags: ['auth'], summary: 'Sign out: ends the console session used for this request' } }, async (req, reply) => {
    await s.auth.signOut(actor(req));
    return reply.status(204).send();
  });
  app.put(
    `${p}/me/password`,
    { config: anyAdmin, schema: { tags: ['auth'], summary: "Set the caller's console password (the current one is needed from a console session); other sessions end", body: PasswordBody } },
    async (req, reply) => {
      const a = actor(req);
      const b = req.body as Static<typeof PasswordBody>;
      await s.auth.changePassword(a, b.newPassword, b.currentPassword);
      await s.events.audit(a, 'admin.password-changed', `${a.name} changed their console password`, {});
      return reply.status(204).send();
    },
  );

  app.post(`${p}/scopes/preview`, { config: needs(Permission.read), schema: { tags: ['tasks'], summary: 'The devices a scope targets now (first `limit`, default 200) and their total', body: PreviewBody } }, async (req) => {
    const b = req.body as Static<typeof PreviewBody>;
    return s.tasks.previewScope(actor(req), b.scope, b.limit);
  });

  app.get(`${p}/summary`, { config: needs(Permission.read), schema: { tags: ['server'], summary: "The dashboard: devices online and offline, run outcomes of the last hours, deployment compliance, recent failures", querystring: SummaryQuery } }, async (req) => {
    const a = actor(req);
    const hours = (req.query as Static<typeof SummaryQuery>).hours ?? 24;
    const [devices, runs, compliance] = await Promise.all([s.devices.counts(a), s.runs.outcomes(a, hours), s.deployments.complianceSummary(a)]);
    const summary: DashboardSummary = { devices, runs, compliance };
    return summary;
  });

  // Live updates: a server-sent event stream of topic names (see services/live-feed.ts).
  const streams = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of streams) res.end();
    streams.clear();
  });
  app.get(`${p}/live`, { config: needs(Permission.read), schema: { tags: ['server'], summary: 'Server-sent events naming what changed (runs, presence, events, config, deployments, repository, push), at most once a second' } }, (req, reply) => {
    actor(req);
    const token = bearer(req.headers.authorization);
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write('retry: 3000\n\nevent: ready\ndata: {}\n\n');
    streams.add(res);
    const pending = new Set<LiveTopic>();
    let timer: NodeJS.Timeout | null = null;
    const flush = () => {
      timer = null;
      if (!pending.size) return;
      res.write(`data: ${JSON.stringify({ topics: [...pending] })}\n\n`);
      pending.clear();
    };
    const unsubscribe = s.live.subscribe((topics) => {
      for (const t of topics) pending.add(t);
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
