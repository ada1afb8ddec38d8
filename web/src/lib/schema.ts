// The Customer Model as the UI uses it: type names parsed into parts, and the flat list of property
// paths (dotted for nested objects, plus the built-in `_id` and `_updated_at`) that pickers offer.

import type { ProfileSchema, PropertyDef } from '../api';

export const SCALAR_TYPES = ['string', 'boolean', 'int', 'float', 'decimal', 'datetime', 'date', 'time', 'uuid', 'json'] as const;
export type ScalarKind = (typeof SCALAR_TYPES)[number];
export type TypeKind = ScalarKind | 'array' | 'object';

export interface TypeSpec {
  kind: TypeKind;
  /** `decimal(p,s)` */
  precision?: number;
  scale?: number;
  /** The element type of an `array(T)`. */
  element?: TypeSpec;
}

/** Parses `decimal(12,2)`, `array(string)`, `array(decimal(10,2))`, `object`… Unknown names parse as `json`. */
export function parseType(text: string): TypeSpec {
  const t = text.trim().toLowerCase();
  const arr = /^array\s*\((.*)\)$/.exec(t);
  if (arr) return { kind: 'array', element: parseType(arr[1]) };
  const dec = /^decimal\s*\(\s*(\d+)\s*(?:,\s*(\d+)\s*)?\)$/.exec(t);
  if (dec) return { kind: 'decimal', precision: Number(dec[1]), scale: dec[2] === undefined ? 0 : Number(dec[2]) };
  if (t === 'decimal') return { kind: 'decimal', precision: 18, scale: 2 };
  const aliases: Record<string, TypeKind> = {
    text: 'string',
    bool: 'boolean',
    integer: 'int',
    bigint: 'int',
    double: 'float',
    number: 'float',
    timestamp: 'datetime',
  };
  const k = (aliases[t] ?? t) as TypeKind;
  if ((SCALAR_TYPES as readonly string[]).includes(k) || k === 'object') return { kind: k };
  return { kind: 'json' };
}

export function formatType(spec: TypeSpec): string {
  switch (spec.kind) {
    case 'decimal':
      return `decimal(${spec.precision ?? 18},${spec.scale ?? 0})`;
    case 'array':
      return `array(${formatType(spec.element ?? { kind: 'string' })})`;
    default:
      return spec.kind;
  }
}

/** A property reachable by a path, as offered in pickers. */
export interface PropertyPath {
  path: string;
  type: string;
  nullable: boolean;
  description?: string;
  /** `_id` and `_updated_at`, which every profile has. */
  builtin?: boolean;
}

export const BUILTIN_PROPERTIES: PropertyPath[] = [
  { path: '_id', type: 'string', nullable: false, description: 'The profile identifier', builtin: true },
  { path: '_updated_at', type: 'datetime', nullable: false, description: 'When the profile last changed', builtin: true },
];

/** Every property path of the model: built-ins first, then each property and, under objects, their
 *  nested properties (`address.city`). Objects themselves are listed too (for exists / is null). */
export function flattenSchema(schema: ProfileSchema | null | undefined): PropertyPath[] {
  const out: PropertyPath[] = [...BUILTIN_PROPERTIES];
  const walk = (props: PropertyDef[], prefix: string) => {
    for (const p of props) {
      const path = prefix ? `${prefix}.${p.name}` : p.name;
      out.push({ path, type: p.type, nullable: p.nullable !== false, description: p.description ?? undefined });
      if (parseType(p.type).kind === 'object' && p.properties) walk(p.properties, path);
    }
  };
  walk(schema?.properties ?? [], '');
  return out;
}

export function findProperty(paths: PropertyPath[], path: string): PropertyPath | undefined {
  return paths.find((p) => p.path === path);
}

/** Reads a dotted path out of a profile document. */
export function getPath(doc: unknown, path: string): unknown {
  let cur: unknown = doc;
  for (const part of path.split('.')) {
    if (cur === null || typeof cur !== 'object' || Array.isArray(cur)) return undefined;
    cur = (cur as Record<string, unknown>)[part];
  }
  return cur;
}
