import type { Logger } from 'pino';

/**
 * A background loop that runs `work` every `intervalMs`, never overlapping itself. Errors are
 * logged and the loop goes on: a failing loop never takes the server down. `stop` resolves
 * once the run in flight, if any, has finished.
 */
export interface Loop {
  stop(): Promise<void>;
  /** Runs the work now (tests, admin actions) and waits for it. */
  runNow(): Promise<void>;
}

export function startLoop(name: string, intervalMs: number, work: () => Promise<unknown>, log: Logger): Loop {
  let inFlight: Promise<void> | null = null;
  let stopped = false;
  const tick = (): Promise<void> => {
    if (inFlight) return inFlight;
    inFlight = (async () => {
      try {
        await work();
      } catch (err) {
        log.error({ err, loop: name }, 'background loop failed; it will try again');
      } finally {
        inFlight = null;
      }
    })();
    return inFlight;
  };
  const timer = setInterval(() => {
    if (!stopped) void tick();
  }, intervalMs);
  timer.unref();
  return {
    async stop() {
      stopped = true;
      clearInterval(timer);
      if (inFlight) await inFlight;
    },
    runNow: tick,
  };
}
