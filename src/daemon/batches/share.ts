/**
 * The scheduling rule of a job's `workers`: at most `workers` batches of a job are delivered and unsettled across the
 * fleet (its consumer's max_ack_pending), so a batch one daemon holds without running it is a batch another daemon's
 * free thread cannot have. A daemon therefore holds at most as many batches of a job as it has lanes, plus a share of
 * the job's `workers` that the whole fleet could not run anyway: prefetch only where it takes nothing from anyone.
 */

/**
 * Most batches of a job (`workers`) this daemon may hold at once (running and prefetched), given its lanes for the
 * job's API and the lanes the live fleet offers for it (this daemon's included). How much of that prefetch its batch
 * durations call for is the pool's decision (Slots: none for batches of 50 ms or longer).
 */
export function localCap(workers: number, localLanes: number, fleetLanes: number): number {
  const fleet = Math.max(fleetLanes, localLanes, 1);
  // Room under max_ack_pending that no lane of the fleet could use, shared out by lanes.
  const spare = Math.max(0, workers - fleet);
  const prefetch = Math.floor((spare * localLanes) / fleet);
  return Math.max(1, Math.min(workers, localLanes + prefetch));
}
