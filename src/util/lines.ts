/** Lines of a byte stream, for every reader of JSON Lines (the CLI's input, stored delimited files). */

/**
 * The longest line a JSON Lines reader of stored data holds, in characters (UTF-16 code units; = bytes for ASCII):
 * 64 Mi, above the largest batch NATS can carry (max_payload is at most 64 MB), so a longer line could never be an
 * item of a batch. Without a cap, a file with no newline would grow one string until the process runs out of memory.
 */
export const MAX_LINE_CHARS = 64 * 1024 * 1024;

/**
 * A numbered line: its text, or null for a line longer than the reader's cap (its text was dropped as it was read;
 * the reader reports it as a malformed line with its number).
 */
export type Line = [n: number, text: string] | [n: number, text: null];

/**
 * Lines of a byte stream, decoded as UTF-8, numbered from 1: the complete lines of each chunk together. A line
 * longer than `maxLineChars` is yielded as `[n, null]` once it is known to be too long, and the rest of it is skipped
 * up to its newline: memory stays bounded by the cap, whatever the input.
 */
export async function* lineRuns(input: AsyncIterable<Buffer | string>, maxLineChars: number): AsyncGenerator<Line[]> {
  const decoder = new TextDecoder();
  // The start of the current line (chunks without a newline are only appended: never searched again).
  let rest = '';
  /** Inside a line already reported too long: everything up to its newline is dropped. */
  let skipping = false;
  let n = 0;
  for await (const chunk of input) {
    const text = typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    const run: Line[] = [];
    let start = 0;
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', start)) {
      if (skipping) skipping = false;
      else if (rest.length + (i - start) > maxLineChars) run.push([++n, null]);
      else run.push([++n, rest + text.slice(start, i)]);
      rest = '';
      start = i + 1;
    }
    if (!skipping && start < text.length) {
      if (rest.length + (text.length - start) > maxLineChars) {
        run.push([++n, null]);
        rest = '';
        skipping = true;
      } else rest += text.slice(start);
    }
    if (run.length > 0) yield run;
  }
  if (!skipping) {
    rest += decoder.decode();
    if (rest.length > maxLineChars) yield [[++n, null]];
    else if (rest.length > 0) yield [[++n, rest]];
  }
}

/** The message of a line longer than the cap. */
/**
 * One line of JSON Lines as its value: `{ value }`, `{ problem }` (too long, or not valid JSON: the reader counts it as
 * a malformed line), or null for a blank line. The one rule of the CLI's input and of stored delimited files.
 */
export function lineValue(text: string | null, maxLineChars: number): { value: unknown } | { problem: string } | null {
  if (text === null) return { problem: tooLongMessage(maxLineChars) };
  if (text.trim().length === 0) return null;
  try {
    return { value: JSON.parse(text) as unknown };
  } catch (err) {
    return { problem: `not valid JSON: ${(err as Error).message}` };
  }
}

export function tooLongMessage(maxLineChars: number): string {
  return `line longer than ${maxLineChars} characters (not read)`;
}
