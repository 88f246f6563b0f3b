/**
 * @garrison/core: the pure domain rules shared by server and agent — schedules and fire times,
 * scopes and effective tasks, run states and progress, version ordering. No I/O, no clock,
 * no randomness: time, randomness and data come in as arguments.
 */
export * from './zoned-time.ts';
export * from './schedule.ts';
export * from './cron.ts';
export * from './effective-tasks.ts';
export * from './run-state.ts';
export * from './version.ts';
export * from './deployment.ts';
export * from './rollout.ts';
export * from './authorization.ts';
export * from './policy.ts';
export * from './maintenance-window.ts';
