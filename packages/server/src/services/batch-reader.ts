/**
 * Read-side batching for lookups that come in storms (agents reconnecting to an instance
 * after another one died: thousands of credential checks a second). Each `load(key)` joins the
 * keys asked for within a few milliseconds, and one query reads them all: one round trip per
 * batch instead of one per key. A key asked twice in one batch is read once.
 *
 * The write side is BatchWriter. Batches do not wait for each other: a slow read never holds
 * the next one back.
 */
export class BatchReader<K, V> {
  readonly #delayMs: number;
  readonly #maxBatch: number;
  readonly #read: (keys: K[]) => Promise<Map<K, V>>;
  #queued = new Map<K, { resolve: (v: V | undefined) => void; reject: (err: unknown) => void }[]>();
  #timer: NodeJS.Timeout | null = null;

  constructor(opts: { read: (keys: K[]) => Promise<Map<K, V>>; delayMs?: number; maxBatch?: number }) {
    this.#read = opts.read;
    this.#delayMs = opts.delayMs ?? 2;
    this.#maxBatch = opts.maxBatch ?? 2000;
  }

  /** The value of `key` (undefined when the read finds none), read with the other keys of its batch. */
  load(key: K): Promise<V | undefined> {
    return new Promise((resolve, reject) => {
      const waiting = this.#queued.get(key);
      if (waiting) waiting.push({ resolve, reject });
      else this.#queued.set(key, [{ resolve, reject }]);
      if (this.#queued.size >= this.#maxBatch) this.#flush();
      else this.#timer ??= setTimeout(() => this.#flush(), this.#delayMs);
    });
  }

  #flush(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    const batch = this.#queued;
    if (batch.size === 0) return;
    this.#queued = new Map();
    this.#read([...batch.keys()]).then(
      (found) => {
        for (const [key, waiting] of batch) for (const w of waiting) w.resolve(found.get(key));
      },
      (err: unknown) => {
        for (const waiting of batch.values()) for (const w of waiting) w.reject(err);
      },
    );
  }
}
