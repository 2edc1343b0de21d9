/** Flag parsers for values richer than a number: durations and job statuses. They run while parsing, before connecting. */
import { ErrorCodes, JetbatchError } from '../errors.js';
import { ACTIVE_STATUSES, TERMINAL_STATUSES, type JobStatusName } from '../types.js';
import { parseDuration } from '../util/duration.js';

const BARE_NUMBER = /^\s*-?\d+(?:\.\d+)?\s*$/;

/**
 * A duration in seconds, written as the daemon config writes them (`500ms`, `30s`, `5m`, `2h`, `1d`); a bare number
 * is seconds and is passed on as given, so the submission schema reports a bad range (`-1`, `0`) as it always has.
 */
export function durationArg(name: string): (value: string) => number {
  return (value) => {
    if (BARE_NUMBER.test(value)) return Number(value);
    try {
      return parseDuration(value) / 1000;
    } catch {
      throw new JetbatchError(ErrorCodes.INVALID_SUBMISSION, `${name} must be a duration such as 500ms, 30s, 5m, 2h or 1d (a bare number is seconds), got "${value}"`);
    }
  };
}

export const JOB_STATUSES: readonly JobStatusName[] = [...ACTIVE_STATUSES, ...TERMINAL_STATUSES];

function isStatusName(value: string): value is JobStatusName {
  return (JOB_STATUSES as readonly string[]).includes(value);
}

/** One or more job statuses, comma-separated (`succeeded,completed_with_failures`); each must be a status name. */
export function statusListArg(name: string): (value: string) => JobStatusName[] {
  return (value) => {
    const names = value.split(',').map((s) => s.trim()).filter((s) => s !== '');
    const unknown = names.filter((s) => !isStatusName(s));
    if (names.length === 0 || unknown.length > 0) {
      const got = unknown.length > 0 ? unknown.map((s) => `"${s}"`).join(', ') : 'nothing';
      throw new JetbatchError(ErrorCodes.INVALID_REQUEST, `${name} takes job statuses, comma-separated (${JOB_STATUSES.join(', ')}); got ${got}`);
    }
    return names.filter(isStatusName);
  };
}
