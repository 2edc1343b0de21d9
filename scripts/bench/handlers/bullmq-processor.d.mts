/** Types of bullmq-processor.mjs (kept in JavaScript, see there). */
export interface BullData {
  /** Padding so the job's data has the scenario's size. */
  p: string;
  iterations: number;
}
export declare function burn(iterations: number): number;
export default function processor(job: { data: BullData }): Promise<void>;
