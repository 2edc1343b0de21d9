/** Lines of a byte stream, for every reader of JSON Lines (the CLI's input, stored delimited files). */

/** Lines of a byte stream, decoded as UTF-8, numbered from 1: the complete lines of each chunk together. */
export async function* lineRuns(input: AsyncIterable<Buffer | string>): AsyncGenerator<Array<[number, string]>> {
  const decoder = new TextDecoder();
  let rest = '';
  let n = 0;
  for await (const chunk of input) {
    const text = rest + (typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    const run: Array<[number, string]> = [];
    let start = 0;
    for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', start)) {
      run.push([++n, text.slice(start, i)]);
      start = i + 1;
    }
    rest = text.slice(start);
    if (run.length > 0) yield run;
  }
  rest += decoder.decode();
  if (rest.length > 0) yield [[++n, rest]];
}
