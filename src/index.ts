/** The public API of the `jetbatch` package: the client, the handler contract, errors and record types. */
export { JetbatchClient, type ResultsOptions, type StreamSubmitClientOptions, type SubmitOptions, type WaitOptions } from './client/client.js';
export type { StreamProgress } from './fleet/stream-submit.js';
export type { StreamSettingsInput } from './fleet/stream-settings.js';
export type { SubmitProgress } from './fleet/submit.js';
export type { StoredDeadLetter } from './client/dead-letters.js';
export type { Deployment } from './fleet/deployments.js';
export type { NatsOptions } from './fleet/connect.js';
export { ErrorCodes, JetbatchError, type ErrorCode } from './errors.js';
export { PermanentError, type Handler, type HandlerClass, type HandlerContext } from './handler.js';
export type { SubmissionInput } from './fleet/submission.js';
export type {
  BatchMetrics,
  BatchResult,
  DeadLetter,
  EnqueueCheckpoint,
  ErrorInfo,
  JobRecord,
  JobSpec,
  JobStatus,
  JobStatusName,
  JobSummary,
  ApiRecord,
} from './types.js';
export { TERMINAL_STATUSES, isTerminal } from './types.js';
