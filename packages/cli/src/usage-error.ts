/**
 * A command line that cannot be carried out as written (exit code 2). On its own so that the
 * pure option parsers (task-options, schedule-spec, format), which the agent's local CLI
 * reuses, pull in no client code.
 */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}
