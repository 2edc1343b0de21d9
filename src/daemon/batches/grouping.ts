/**
 * How a burst of received batches is split into Piscina tasks. A burst no larger than the pool's lanes goes out one
 * batch per task, so every lane gets work; a backlog goes out in groups, so one task (one main-thread dispatch and
 * one thread round trip) serves several batches. After a grouped task dies, batches go out singly for a while, so a
 * poison batch fails alone and is charged alone. A batch large enough to be moved to its thread rather than copied
 * (body.ts) always goes alone: in a group, it would be copied.
 */
import { MOVE_MIN_BYTES } from './body.js';

/** Most batches handed to one thread in one task. */
export const MAX_GROUP = 64;
/** After a grouped task dies, dispatch this many tasks one batch at a time. */
export const SINGLES_AFTER_CRASH = 256;

/** Batches per task for a burst of `burst` batches on `lanes` lanes (threads × concurrency). */
export function groupSize(burst: number, lanes: number, singly: boolean): number {
  if (singly) return 1;
  return Math.min(MAX_GROUP, Math.max(1, Math.ceil(burst / Math.max(1, lanes))));
}

/**
 * The tasks of a burst, in order: each batch of MOVE_MIN_BYTES or more alone, the others in consecutive groups of
 * groupSize(burst) (the last may be smaller).
 */
export function splitBurst<T extends { bytes: number }>(burst: readonly T[], lanes: number, singly: boolean): T[][] {
  const size = groupSize(burst.length, lanes, singly);
  const tasks: T[][] = [];
  let group: T[] = [];
  for (const b of burst) {
    if (b.bytes >= MOVE_MIN_BYTES) tasks.push([b]);
    else if (group.push(b) === size) {
      tasks.push(group);
      group = [];
    }
  }
  if (group.length > 0) tasks.push(group);
  return tasks;
}
