// The Customer Model editor's state: properties with their type split into parts, converted to and
// from the API's wire form, and the field path of each row for the API's errors.

import type { ProfileSchema, PropertyDef } from '../api';
import { formatType, parseType, type TypeKind, type TypeSpec } from './schema';

export interface EditProp {
  uid: number;
  name: string;
  kind: TypeKind;
  precision: number;
  scale: number;
  /** Element type of an array. */
  element: TypeKind;
  elementPrecision: number;
  elementScale: number;
  nullable: boolean;
  description: string;
  /** Nested properties of an object or an array of objects. */
  properties: EditProp[];
}

let nextUid = 1;

export function newProp(name = ''): EditProp {
  return {
    uid: nextUid++,
    name,
    kind: 'string',
    precision: 12,
    scale: 2,
    element: 'string',
    elementPrecision: 12,
    elementScale: 2,
    nullable: true,
    description: '',
    properties: [],
  };
}

export function hasChildren(p: EditProp): boolean {
  return p.kind === 'object' || (p.kind === 'array' && p.element === 'object');
}

export function fromWire(defs: PropertyDef[]): EditProp[] {
  return defs.map((d) => {
    const spec = parseType(d.type);
    const el: TypeSpec = spec.element ?? { kind: 'string' };
    return {
      ...newProp(d.name),
      kind: spec.kind,
      precision: spec.precision ?? 12,
      scale: spec.scale ?? 2,
      element: el.kind === 'array' ? 'json' : el.kind,
      elementPrecision: el.precision ?? 12,
      elementScale: el.scale ?? 2,
      nullable: d.nullable !== false,
      description: d.description ?? '',
      properties: fromWire(d.properties ?? []),
    };
  });
}

export function typeOf(p: EditProp): string {
  if (p.kind === 'array') {
    const el: TypeSpec = p.element === 'decimal' ? { kind: 'decimal', precision: p.elementPrecision, scale: p.elementScale } : { kind: p.element };
    return formatType({ kind: 'array', element: el });
  }
  if (p.kind === 'decimal') return formatType({ kind: 'decimal', precision: p.precision, scale: p.scale });
  return p.kind;
}

export function toWire(props: EditProp[]): ProfileSchema {
  const conv = (ps: EditProp[]): PropertyDef[] =>
    ps.map((p) => {
      const d: PropertyDef = { name: p.name.trim(), type: typeOf(p), nullable: p.nullable };
      if (p.description.trim()) d.description = p.description.trim();
      if (hasChildren(p)) d.properties = conv(p.properties);
      return d;
    });
  return { properties: conv(props) };
}

/** Names that are empty, duplicated at one level, or not letters/digits/underscores, keyed by the
 *  API's field path (`properties[1].properties[0].name`). */
export function localModelProblems(props: EditProp[], prefix = 'properties'): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const seen = new Map<string, number>();
  props.forEach((p, i) => {
    const path = `${prefix}[${i}]`;
    const name = p.name.trim();
    if (!name) out[`${path}.name`] = ['enter a name'];
    else if (!/^[A-Za-z][A-Za-z0-9_]*$/.test(name)) out[`${path}.name`] = ['use letters, digits and _, starting with a letter'];
    else if (seen.has(name)) out[`${path}.name`] = [`\`${name}\` is already defined at this level`];
    seen.set(name, i);
    if (p.kind === 'decimal' || (p.kind === 'array' && p.element === 'decimal')) {
      const [pr, sc] = p.kind === 'decimal' ? [p.precision, p.scale] : [p.elementPrecision, p.elementScale];
      if (!(pr >= 1 && pr <= 38) || !(sc >= 0 && sc <= pr)) out[`${path}.type`] = ['precision must be 1–38 and scale between 0 and the precision'];
    }
    if (hasChildren(p)) Object.assign(out, localModelProblems(p.properties, `${path}.properties`));
  });
  return out;
}

/** Maps the API's path of a property given by dotted name (`properties.address.city`, used when the
 *  property is no longer in the model) to nothing: such errors are listed at the top. */
export function isRowPath(path: string): boolean {
  return /^properties\[\d+\]/.test(path);
}
