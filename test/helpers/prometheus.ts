/** A strict reader of the Prometheus text exposition format (0.0.4), for tests. */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export interface Exposition {
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
}

const METRIC = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const SAMPLE = new RegExp(`^(${METRIC})(\\{(.*)\\})? (\\S+)( -?\\d+)?$`);
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;

/** Parses the text; throws with the line number on anything invalid. */
export function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  const lines = text.split('\n');
  lines.forEach((line, i) => {
    if (line === '') return;
    const fail = (why: string): never => {
      throw new Error(`line ${i + 1}: ${why}: ${line.slice(0, 200)}`);
    };
    if (line.startsWith('# HELP ')) {
      const m = new RegExp(`^# HELP (${METRIC}) (.*)$`).exec(line) ?? fail('bad HELP');
      help.set(m[1]!, m[2]!);
      return;
    }
    if (line.startsWith('# TYPE ')) {
      const m = new RegExp(`^# TYPE (${METRIC}) (counter|gauge|histogram|summary|untyped)$`).exec(line) ?? fail('bad TYPE');
      if (types.has(m[1]!)) fail('duplicate TYPE');
      types.set(m[1]!, m[2]!);
      return;
    }
    if (line.startsWith('#')) return;
    const m = SAMPLE.exec(line) ?? fail('bad sample');
    const labels: Record<string, string> = {};
    const body = m[3] ?? '';
    LABEL.lastIndex = 0;
    while (LABEL.lastIndex < body.length) {
      const l = LABEL.exec(body) ?? fail('bad labels');
      labels[l[1]!] = l[2]!.replace(/\\n/g, '\n').replace(/\\"/g, '"').replace(/\\\\/g, '\\');
    }
    const raw = m[4]!;
    const value = raw === '+Inf' ? Infinity : raw === '-Inf' ? -Infinity : raw === 'NaN' ? NaN : Number(raw);
    if (Number.isNaN(value) && raw !== 'NaN') fail('bad value');
    samples.push({ name: m[1]!, labels, value });
  });
  return { types, help, samples };
}

/** The value of the one sample with this name and (a superset of) these labels; undefined if none. */
export function valueOf(exp: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  const matches = exp.samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v));
  if (matches.length > 1) throw new Error(`${matches.length} samples match ${name} ${JSON.stringify(labels)}`);
  return matches[0]?.value;
}
