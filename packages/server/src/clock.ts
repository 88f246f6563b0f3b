/** Time comes from here so that tests can drive it; core takes it as an argument. */
export interface Clock {
  now(): Date;
}
export const systemClock: Clock = { now: () => new Date() };
export function iso(date: Date): string {
  return date.toISOString();
}
