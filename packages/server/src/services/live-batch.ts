/**
 * What one console's live stream gathers between two writes (a second): the topics, and the
 * run changes by task, bounded: past LIVE_DEVICES_MAX devices of a task it keeps only that
 * the task changed, past LIVE_TASKS_MAX tasks only that runs changed. However fast results
 * arrive, a message stays a few kilobytes.
 */
import { LIVE_DEVICES_MAX, LIVE_TASKS_MAX, type LiveMessage } from '@garrison/protocol';
import type { GroupReach } from '@garrison/core';
import { inReach } from './actor.ts';
import type { LiveTopic, RunChanges } from './live-feed.ts';

export class LiveBatch {
  #topics = new Set<LiveTopic>();
  /** Per task, its changed devices; null: too many to list. */
  #tasks = new Map<string, Set<string> | null>();
  /** Runs changed that are not listed. */
  #more = false;

  add(topics: ReadonlySet<LiveTopic>, runs?: RunChanges): void {
    for (const t of topics) this.#topics.add(t);
    if (!topics.has('runs')) return;
    if (!runs || runs.more) this.#more = true;
    for (const c of runs?.pairs ?? []) {
      let devices = this.#tasks.get(c.taskId);
      if (devices === undefined) {
        if (this.#tasks.size >= LIVE_TASKS_MAX) {
          this.#more = true;
          continue;
        }
        devices = new Set();
        this.#tasks.set(c.taskId, devices);
      }
      if (devices === null) continue;
      devices.add(c.deviceId);
      if (devices.size > LIVE_DEVICES_MAX) this.#tasks.set(c.taskId, null);
    }
  }

  /**
   * The message to write, or null when nothing this console may see changed; the batch is
   * empty afterwards. Tasks the caller may not see, and devices outside its reach, are left out.
   */
  take(canSeeTask: (taskId: string) => boolean, reach: GroupReach, groupOf: (deviceId: string) => string | undefined): LiveMessage | null {
    const topics = this.#topics;
    const tasks = this.#tasks;
    const more = this.#more;
    this.#topics = new Set();
    this.#tasks = new Map();
    this.#more = false;
    const listed: NonNullable<LiveMessage['runs']>['tasks'] = [];
    for (const [taskId, devices] of tasks) {
      if (!canSeeTask(taskId)) continue;
      if (devices === null) {
        listed.push({ taskId, deviceIds: null });
        continue;
      }
      const visible = [...devices].filter((d) => inReach(reach, groupOf(d)));
      if (visible.length) listed.push({ taskId, deviceIds: visible });
    }
    // Runs changed only where this console cannot look: it is not told.
    if (topics.has('runs') && !more && listed.length === 0) topics.delete('runs');
    if (topics.size === 0) return null;
    return { topics: [...topics], ...(topics.has('runs') ? { runs: { tasks: listed, more } } : {}) };
  }
}
