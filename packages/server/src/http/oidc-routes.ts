/**
 * Sign-in with OpenID Connect (services/oidc-service.ts): its settings, and the browser leg of
 * the console's sign-in. The login and callback routes are navigations of the browser, not
 * API calls: they always answer with a redirect, errors as `/?oidc-error=<CODE>` for the
 * console to explain. A cookie scoped to /api/v1 binds the sign-in to the browser that started
 * it; it holds a random value, never a token.
 */
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Type } from 'typebox';
import { exchangeOidcSession, getOidcSettings, getOidcStatus, OIDC_CALLBACK_PATH, OIDC_CODE_PARAM, OIDC_ERROR_PARAM, OIDC_LOGIN_PATH, putOidcSettings } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { Permission } from '../services/actor.ts';
import { OIDC_STATE_TTL_MS } from '../services/oidc-service.ts';
import { AppError } from '../errors.ts';
import { actor } from './admin-routes.ts';
import { needs, publicAccess } from './access.ts';
import { requestServerUrl } from './install-routes.ts';
import { route } from './operation.ts';

const COOKIE = 'garrison-oidc';
const COOKIE_ATTRS = 'Path=/api/v1; HttpOnly; Secure; SameSite=Lax';
// Lenient on purpose: the provider decides what it appends (iss, session_state, error_uri…), and a
// schema error here would show the browser a JSON body instead of the console.
const CallbackQuery = Type.Record(Type.String(), Type.String({ maxLength: 8192 }));

function cookieOf(req: FastifyRequest): string | undefined {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === COOKIE) return v.join('=') || undefined;
  }
  return undefined;
}
function toConsole(reply: FastifyReply, param: string, value: string) {
  return reply.header('cache-control', 'no-store').redirect(`/?${param}=${encodeURIComponent(value)}`, 302);
}
function errorCode(err: unknown): string {
  return err instanceof AppError ? err.code : 'INTERNAL';
}

export function registerOidcRoutes(app: FastifyInstance, s: Pick<Services, 'oidc'>): void {
  route(app, getOidcSettings, needs(Permission.read), async (req) => s.oidc.getSettings(actor(req)));
  route(app, putOidcSettings, needs(Permission.manageAdmins), async (req) => s.oidc.putSettings(actor(req), req.body));
  route(app, getOidcStatus, publicAccess, async () => s.oidc.status());

  // The browser's legs of the sign-in are navigations answered with redirects, not API operations.
  app.get(OIDC_LOGIN_PATH, { config: publicAccess, schema: { hide: true, summary: "Browser only: starts a sign-in at the organisation's OpenID provider (a redirect there; errors redirect to /?oidc-error=CODE)" } }, async (req, reply) => {
    try {
      // Unless the settings name the callback, it is on the address the browser reached the server at
      // (always https: behind a TLS-terminating proxy too); the provider accepts only registered ones.
      const origin = requestServerUrl(req, '');
      const { url, binding } = await s.oidc.beginLogin(origin ? `${origin}${OIDC_CALLBACK_PATH}` : null);
      return reply.header('set-cookie', `${COOKIE}=${binding}; Max-Age=${OIDC_STATE_TTL_MS / 1000}; ${COOKIE_ATTRS}`).header('cache-control', 'no-store').redirect(url, 302);
    } catch (err) {
      if (!(err instanceof AppError)) req.log.error({ err, reqId: req.id }, 'starting an OpenID Connect sign-in failed');
      return toConsole(reply, OIDC_ERROR_PARAM, errorCode(err));
    }
  });

  app.get(
    OIDC_CALLBACK_PATH,
    { config: publicAccess, schema: { hide: true, summary: 'Browser only: where the OpenID provider sends the browser back; redirects to /?oidc=<one-time code> (or /?oidc-error=CODE)', querystring: CallbackQuery } },
    async (req, reply) => {
      try {
        const code = await s.oidc.completeLogin(req.query as Record<string, string>, cookieOf(req), req.ip);
        return toConsole(reply, OIDC_CODE_PARAM, code);
      } catch (err) {
        if (!(err instanceof AppError)) req.log.error({ err, reqId: req.id }, 'an OpenID Connect sign-in failed');
        return toConsole(reply, OIDC_ERROR_PARAM, errorCode(err));
      }
    },
  );

  route(app, exchangeOidcSession, publicAccess, async (req, reply) => {
    const session = await s.oidc.exchange(req.body.code, cookieOf(req), req.ip);
    reply.header('set-cookie', `${COOKIE}=; Max-Age=0; ${COOKIE_ATTRS}`);
    return session;
  });
}
