// A pass's options in words, read from its schema (the one the recipe validator uses): for
// `modelpress passes <name>` and anything else that lists options without restating them.
import type { TSchema } from '@sinclair/typebox';
import type { PassDefinition } from '../pipeline/pass.js';

export interface PassOption {
  name: string;
  /** What values it takes: the choices of a union, a type with its bounds, or a nested object's keys. */
  accepts: string;
  default?: unknown;
  description?: string;
}

type SchemaLike = TSchema & {
  type?: string;
  const?: unknown;
  anyOf?: SchemaLike[];
  items?: SchemaLike;
  properties?: Record<string, SchemaLike>;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  default?: unknown;
  description?: string;
};

/** The values a schema accepts, in a few words. */
export function describeAccepted(schema: TSchema): string {
  const s = schema as SchemaLike;
  if ('const' in s) return JSON.stringify(s.const);
  if (s.anyOf) return s.anyOf.map(describeAccepted).join(' | ');
  const bounds = [
    s.minimum !== undefined ? `≥ ${s.minimum}` : s.exclusiveMinimum !== undefined ? `> ${s.exclusiveMinimum}` : '',
    s.maximum !== undefined ? `≤ ${s.maximum}` : s.exclusiveMaximum !== undefined ? `< ${s.exclusiveMaximum}` : '',
  ].filter(Boolean);
  switch (s.type) {
    case 'array':
      return `[${s.items ? describeAccepted(s.items) : ''}, …]`;
    case 'object':
      return `{ ${Object.keys(s.properties ?? {}).join(', ')} }`;
    case 'integer':
    case 'number':
    case 'string':
    case 'boolean':
      return `${s.type}${bounds.length ? ` ${bounds.join(', ')}` : ''}`;
    default:
      return 'any';
  }
}

/** Every option of a pass but `pass` itself, in schema order. */
export function passOptions(def: PassDefinition): PassOption[] {
  const props = (def.schema as SchemaLike).properties ?? {};
  return Object.entries(props)
    .filter(([name]) => name !== 'pass')
    .map(([name, s]) => ({
      name,
      accepts: describeAccepted(s),
      ...(s.default !== undefined ? { default: s.default } : {}),
      ...(s.description ? { description: s.description } : {}),
    }));
}

/** `modelpress passes <name>`: the summary, then each option with what it accepts, its default and what it does. */
export function formatPassHelp(def: PassDefinition): string {
  const lines = [`${def.name} — ${def.summary}`, '', 'options (recipe step keys):'];
  for (const o of passOptions(def)) {
    lines.push(`  ${o.name}: ${o.accepts}${o.default !== undefined ? `  (default ${JSON.stringify(o.default)})` : ''}`);
    if (o.description) lines.push(`      ${o.description}`);
  }
  lines.push('', `example step: ${JSON.stringify({ pass: def.name })}`);
  return `${lines.join('\n')}\n`;
}
