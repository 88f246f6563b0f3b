/**
 * Staged rollout, pure: which devices may take a new version in the current phase, and what
 * the rollout should do next given how the devices fare. Phases are the pilot group (when
 * given) followed by the percentages (default [100]); a device's percentage bucket is a
 * stable hash of its id, so growing percentages only ever add devices.
 */
import type { Rollout } from '@garrison/protocol';

export const DEFAULT_FAILURE_THRESHOLD_PERCENT = 10;

export function rolloutPhases(r: Rollout): string[] {
  return [...(r.pilotGroupId ? ['pilot'] : []), ...(r.percentages?.length ? r.percentages : [100]).map((p) => `${p}%`)];
}

/** 0-99, the same for a device id everywhere (FNV-1a). */
export function deviceBucket(deviceId: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < deviceId.length; i++) {
    h ^= deviceId.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h % 100;
}

/** Whether a device may install the new version in `phase` (an index into rolloutPhases). */
export function eligibleInPhase(r: Rollout, phase: number, device: { id: string; inPilot: boolean }): boolean {
  if (device.inPilot) return true;
  const phases = rolloutPhases(r);
  const label = phases[Math.min(phase, phases.length - 1)]!;
  if (label === 'pilot') return false;
  return deviceBucket(device.id) < Number.parseInt(label, 10);
}

export interface RolloutStats {
  /** Devices eligible in the current phase, and how many of them run the new version. */
  eligible: number;
  eligibleDone: number;
  /** Devices that tried the new version: succeeded (run it) and failed. */
  succeeded: number;
  failed: number;
}

export type RolloutDecision = { action: 'wait' } | { action: 'advance' } | { action: 'complete' } | { action: 'halt'; reason: string };

export function decideRollout(r: Rollout, phase: number, stats: RolloutStats): RolloutDecision {
  const threshold = r.failureThresholdPercent ?? DEFAULT_FAILURE_THRESHOLD_PERCENT;
  const attempted = stats.succeeded + stats.failed;
  if (stats.failed > 0 && (stats.failed * 100) / attempted > threshold) {
    return { action: 'halt', reason: `${stats.failed} of ${attempted} installs failed (over the ${threshold}% threshold)` };
  }
  if (stats.eligibleDone < stats.eligible) return { action: 'wait' };
  return phase >= rolloutPhases(r).length - 1 ? { action: 'complete' } : { action: 'advance' };
}
