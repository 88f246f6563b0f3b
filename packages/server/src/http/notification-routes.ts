/** Notification rules, their delivery history and the mail server: operations of protocol/src/operations/notifications.ts. */
import type { FastifyInstance } from 'fastify';
import { createNotificationRule, deleteNotificationRule, getNotificationRule, getSmtpSettings, listNotificationDeliveries, listNotificationRules, putSmtpSettings, testNotificationRule, updateNotificationRule } from '@garrison/protocol';
import type { Services } from '../services/services.ts';
import { Permission } from '../services/actor.ts';
import { needs } from './access.ts';
import { route } from './operation.ts';
import { actor } from './admin-routes.ts';

const read = needs(Permission.read);
const write = needs(Permission.manageNotifications);
const settings = needs(Permission.manageSettings);

export function registerNotificationRoutes(app: FastifyInstance, s: Pick<Services, 'notifications'>): void {
  route(app, listNotificationRules, read, async (req) => s.notifications.page(actor(req), req.query));
  route(app, createNotificationRule, write, async (req) => s.notifications.create(actor(req), req.body));
  route(app, getNotificationRule, read, async (req) => s.notifications.get(actor(req), req.params.id));
  route(app, updateNotificationRule, write, async (req) => s.notifications.update(actor(req), req.params.id, req.body));
  route(app, deleteNotificationRule, write, async (req) => {
    await s.notifications.remove(actor(req), req.params.id);
  });
  route(app, testNotificationRule, write, async (req) => s.notifications.test(actor(req), req.params.id));
  route(app, listNotificationDeliveries, read, async (req) => s.notifications.deliveries(actor(req), req.query));
  route(app, getSmtpSettings, settings, async (req) => s.notifications.getSmtp(actor(req)));
  route(app, putSmtpSettings, settings, async (req) => s.notifications.putSmtp(actor(req), req.body));
}
