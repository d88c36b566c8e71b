// Schema validation problems in words a person can act on: the allowed values of a choice and the
// nearest known name for a misspelt one ("did you mean"), instead of TypeBox's "Expected union value".
import type { TSchema } from '@sinclair/typebox';
import { ValueErrorType, type ValueError } from '@sinclair/typebox/value';

/** Levenshtein distance, case-insensitive (recipe keys differ from their misspellings by case too). */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const cur = [i];
    for (let j = 1; j <= y.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[y.length]!;
}

/** The closest candidate when it is close enough to be a likely misspelling (a third of the word, at least 2 edits). */
export function nearestName(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) {
      best = c;
      bestDistance = d;
    }
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

const quote = (v: unknown) => JSON.stringify(v);
const didYouMean = (word: unknown, candidates: readonly string[]): string => {
  const near = typeof word === 'string' ? nearestName(word, candidates) : undefined;
  return near !== undefined ? `; did you mean ${quote(near)}?` : '';
};

/** The constant values of a union of literals (the schema of a choice), or undefined for other unions. */
function literalChoices(schema: TSchema): unknown[] | undefined {
  const options = (schema as { anyOf?: TSchema[] }).anyOf;
  if (!options) return undefined;
  const literals = options.filter((o) => 'const' in o).map((o) => (o as unknown as { const: unknown }).const);
  return literals.length > 0 ? literals : undefined;
}

/** A short shape of each member of a union that is not a literal (e.g. "a number" for a rank fraction). */
function describeMember(schema: TSchema): string {
  const s = schema as { type?: string; const?: unknown; minimum?: number; maximum?: number; exclusiveMinimum?: number; exclusiveMaximum?: number };
  if ('const' in s) return quote(s.const);
  const bounds = [
    s.minimum !== undefined ? `≥ ${s.minimum}` : s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : '',
    s.maximum !== undefined ? `≤ ${s.maximum}` : s.exclusiveMaximum !== undefined ? `< ${s.exclusiveMaximum}` : '',
  ].filter(Boolean);
  if (s.type === 'array') return 'an array';
  if (s.type === 'object') return 'an object';
  return `${s.type === 'integer' ? 'an integer' : s.type === 'number' ? 'a number' : s.type === 'string' ? 'a string' : s.type === 'boolean' ? 'true or false' : 'a value'}${bounds.length ? ` ${bounds.join(' and ')}` : ''}`;
}

/** The message for one validation error, naming what is allowed. */
export function describeSchemaError(e: ValueError): string {
  if (e.type === ValueErrorType.ObjectAdditionalProperties) {
    const key = e.path.split('/').pop() ?? '';
    const known = Object.keys((e.schema as { properties?: Record<string, unknown> }).properties ?? {});
    return `unknown option ${quote(key)}${didYouMean(key, known)}${known.length ? ` (options: ${known.join(', ')})` : ''}`;
  }
  if (e.type === ValueErrorType.Union) {
    const literals = literalChoices(e.schema);
    const options = (e.schema as { anyOf?: TSchema[] }).anyOf ?? [];
    const others = options.filter((o) => !('const' in o)).map(describeMember);
    const allowed = [...(literals ?? []).map(quote), ...others];
    const near = literals ? didYouMean(e.value, literals.filter((l): l is string => typeof l === 'string')) : '';
    return `${quote(e.value)} is not allowed: expected ${allowed.length > 1 ? `one of ${allowed.join(', ')}` : allowed[0] ?? 'another value'}${near}`;
  }
  return e.message;
}
