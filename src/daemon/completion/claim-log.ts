/**
 * Who won an attempt at completing a job, decided by the order in which the server stored the contenders' claims
 * (stream JETBATCH_CLAIMS, subject per job, completion round and attempt): the first claim wins, and no later claim
 * can change that. A compare-and-set on the job record cannot decide it alone: a clustered nats-server before 2.9.21
 * checks `Nats-Expected-Last-Subject-Sequence` before the write goes through Raft, so two updates that expect the
 * same revision and arrive within a few milliseconds can both be accepted (nats-server#4320; 2.9.10 on a 3-node
 * cluster accepted two of three in 216 of 300 rounds). Daemons that check a job at the moment its last batch settles
 * do exactly that.
 */
import type { MsgRequest } from '@nats-io/jetstream';
import type { FleetContext } from '../../fleet/context.js';
import { Streams, Subjects, decodeJson, encodeJson } from '../../fleet/protocol.js';

interface ClaimMessage {
  daemon: string;
  at: string;
}

/** The daemon whose claim on this attempt the server stored first, or null if nobody has claimed it. */
export async function firstClaimant(ctx: FleetContext, jobId: string, round: number, attempt: number): Promise<string | null> {
  // The first message on the subject, from the stream leader. (NATS.js types this request for direct gets only; the
  // stream's own MSG.GET answers it too, since nats-server 2.9.)
  const request = { next_by_subj: Subjects.claim(jobId, round, attempt), seq: 0 } as unknown as MsgRequest;
  const m = await ctx.jsm.streams.getMessage(Streams.claims, request);
  if (m === null) return null;
  return (decodeJson(m.data) as Partial<ClaimMessage>).daemon ?? null;
}

/** Claims the attempt unless someone has; returns the winner (this daemon or the first claimant). Idempotent. */
export async function contend(ctx: FleetContext, jobId: string, round: number, attempt: number, daemonId: string): Promise<string> {
  const first = await firstClaimant(ctx, jobId, round, attempt);
  if (first !== null) return first;
  const subject = Subjects.claim(jobId, round, attempt);
  const claim: ClaimMessage = { daemon: daemonId, at: new Date().toISOString() };
  // The message id makes a retried publish store nothing new.
  await ctx.js.publish(subject, encodeJson(claim), { msgID: `${jobId}.${round}.${attempt}.${daemonId}`, expect: { streamName: Streams.claims } });
  const winner = await firstClaimant(ctx, jobId, round, attempt);
  if (winner === null) throw new Error(`claim on ${subject} stored but not found`);
  return winner;
}
