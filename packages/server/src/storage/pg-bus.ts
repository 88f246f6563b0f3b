/**
 * The domain-event bus across instances on one PostgreSQL database: NOTIFY to send, one
 * dedicated connection that LISTENs (ADR 0019). No broker: the database every instance already
 * depends on carries the events, in commit order, to every listener.
 *
 * The channel is named after the schema, so that servers on other schemas of the same database
 * (the test suite runs one per test) never hear each other. NOTIFY payloads are limited to
 * 8000 bytes; the bus splits larger events. When the listening connection drops, it is
 * reopened with backoff and the bus is told to resync (notifications sent meanwhile are lost).
 */
import pg from 'pg';
import type { Logger } from 'pino';
import type { BusTransport } from '../services/domain-bus.ts';
import type { Db } from './database.ts';
import { sql } from 'kysely';

/** PostgreSQL's limit is 8000 bytes; some room is left for the quoting of the channel. */
const MAX_PAYLOAD = 7900;

export function busChannel(schema: string | undefined): string {
  return `garrison_bus_${(schema ?? 'public').replace(/[^A-Za-z0-9_]/g, '_')}`.slice(0, 63);
}

export class PgBusTransport implements BusTransport {
  readonly maxPayloadBytes = MAX_PAYLOAD;
  readonly #db: Db;
  readonly #log: Logger;
  readonly #channel: string;
  #client: pg.Client | null = null;
  #closed = false;
  #retry: NodeJS.Timeout | null = null;
  #onPayload: (p: string) => void = () => {};
  #onResync: () => void = () => {};

  readonly #applicationName: string;

  /** `instanceId` names the listening connection (`application_name` in pg_stat_activity). */
  constructor(db: Db, log: Logger, instanceId: string) {
    this.#applicationName = `garrison bus ${instanceId}`.slice(0, 63);
    if (!db.url) throw new Error('the PostgreSQL bus needs the database URL');
    this.#db = db;
    this.#log = log;
    this.#channel = busChannel(db.schema);
  }

  async send(payload: string): Promise<void> {
    await sql`select pg_notify(${this.#channel}, ${payload})`.execute(this.#db.kysely);
  }

  async start(onPayload: (payload: string) => void, onResync: () => void): Promise<void> {
    this.#onPayload = onPayload;
    this.#onResync = onResync;
    await this.#listen();
  }

  async #listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.#db.url, application_name: this.#applicationName, ...(this.#db.schema ? { options: `-c search_path=${this.#db.schema}` } : {}) });
    client.on('notification', (n) => {
      if (n.channel === this.#channel && n.payload) this.#onPayload(n.payload);
    });
    client.on('error', (err) => {
      this.#log.warn({ err }, 'the event bus connection to PostgreSQL failed; reconnecting');
      this.#lost(client);
    });
    client.on('end', () => this.#lost(client));
    try {
      await client.connect();
      await client.query(`LISTEN "${this.#channel}"`);
    } catch (err) {
      void client.end().catch(() => {});
      throw err;
    }
    if (this.#closed) {
      await client.end().catch(() => {});
      return;
    }
    this.#client = client;
  }

  #lost(client: pg.Client): void {
    if (this.#client !== client || this.#closed) return;
    this.#client = null;
    client.removeAllListeners('end');
    void client.end().catch(() => {});
    this.#reconnect(500);
  }
  #reconnect(delayMs: number): void {
    this.#retry = setTimeout(() => {
      this.#retry = null;
      if (this.#closed) return;
      this.#listen().then(
        () => this.#onResync(),
        (err: unknown) => {
          this.#log.warn({ err }, 'the event bus could not reconnect to PostgreSQL; retrying');
          this.#reconnect(Math.min(delayMs * 2, 10_000));
        },
      );
    }, delayMs);
    this.#retry.unref();
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    const c = this.#client;
    this.#client = null;
    if (c) {
      c.removeAllListeners('end');
      await c.end().catch(() => {});
    }
  }
}
