/**
 * Write-behind batching for the hot paths (events, run reports, check-ins, deployment states):
 * callers queue in memory, and one write per batch goes to the database a few milliseconds
 * later, or at once when the queue is full. Batches are written one after another, in order.
 *
 * The owner keeps its own queue (an array, a map: whatever merges best) and gives `take`,
 * which hands over what is queued and empties it (undefined when there is nothing), and
 * `write`. A write that fails goes to `onError` with its batch, and the writes after it go on:
 * one failed batch never stops the ones behind it.
 */
export class BatchWriter<B> {
  readonly #delayMs: number;
  readonly #take: () => B | undefined;
  readonly #write: (batch: B) => Promise<void>;
  readonly #onError: (err: unknown, batch: B) => void;
  readonly #freshTurn: boolean;
  #timer: NodeJS.Timeout | null = null;
  #chain: Promise<void> = Promise.resolve();

  constructor(opts: {
    delayMs: number;
    take: () => B | undefined;
    write: (batch: B) => Promise<void>;
    onError: (err: unknown, batch: B) => void;
    /**
     * Start each write on a fresh turn of the event loop, so that a flood of batches cannot
     * starve timers (heartbeats, other flushes) for longer than one batch.
     */
    freshTurn?: boolean;
  }) {
    this.#delayMs = opts.delayMs;
    this.#take = opts.take;
    this.#write = opts.write;
    this.#onError = opts.onError;
    this.#freshTurn = opts.freshTurn ?? false;
  }

  /** A flush within the delay, unless one is already due. */
  schedule(): void {
    this.#timer ??= setTimeout(() => void this.flush(), this.#delayMs);
  }

  /** Writes what is queued now after the writes before it; resolves when all of them are done. Never rejects. */
  flush(): Promise<void> {
    if (this.#timer) {
      clearTimeout(this.#timer);
      this.#timer = null;
    }
    const batch = this.#take();
    if (batch === undefined) return this.#chain;
    const before = this.#freshTurn ? this.#chain.then(() => new Promise<void>((resolve) => setImmediate(resolve))) : this.#chain;
    this.#chain = before.then(() => this.#write(batch)).catch((err: unknown) => this.#onError(err, batch));
    return this.#chain;
  }
}
