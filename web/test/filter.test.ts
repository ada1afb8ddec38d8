import { describe, expect, it } from 'vitest';
import type { FilterGroup } from '../src/api';
import {
  arityOf,
  categoryOf,
  changeOperator,
  changeProperty,
  conditionProblems,
  filterProblems,
  fromDatetimeInput,
  inputKindFor,
  newCondition,
  normalizeFilter,
  operatorsFor,
  parseInput,
  summarizeFilter,
  toDatetimeInput,
} from '../src/lib/filter';
import { findProperty, flattenSchema } from '../src/lib/schema';
import { schema } from './fixtures';

const props = flattenSchema(schema);
const prop = (p: string) => findProperty(props, p)!;

describe('operators by type', () => {
  it('offers the string operators', () => {
    expect(operatorsFor('string')).toEqual([
      'is',
      'is not',
      'contains',
      'does not contain',
      'starts with',
      'ends with',
      'is one of',
      'is not one of',
      'is empty',
      'is not empty',
      'is null',
      'is not null',
      'exists',
      'does not exist',
    ]);
  });

  it('offers comparisons and ranges for every numeric type', () => {
    for (const t of ['int', 'float', 'decimal(12,2)']) {
      const ops = operatorsFor(t);
      expect(categoryOf(t)).toBe('number');
      expect(ops).toContain('is less than or equal to');
      expect(ops).toContain('is greater than');
      expect(ops).toContain('is between');
      expect(ops).toContain('is not between');
      expect(ops).toContain('is one of');
      expect(ops).not.toContain('contains');
      expect(ops).not.toContain('is before');
    }
  });

  it('offers before/after for datetime, date and time, and no text operators', () => {
    for (const t of ['datetime', 'date', 'time']) {
      const ops = operatorsFor(t);
      expect(ops.slice(0, 8)).toEqual(['is', 'is not', 'is before', 'is on or before', 'is after', 'is on or after', 'is between', 'is not between']);
      expect(ops).not.toContain('starts with');
      expect(ops).not.toContain('is less than');
    }
  });

  it('offers is true / is false first for booleans, then is / is not and presence', () => {
    expect(operatorsFor('boolean')).toEqual(['is true', 'is false', 'is', 'is not', 'is empty', 'is not empty', 'is null', 'is not null', 'exists', 'does not exist']);
  });

  it('offers element operators for arrays and presence only for objects and json', () => {
    expect(operatorsFor('array(string)')).toEqual(['contains', 'does not contain', 'is empty', 'is not empty', 'is null', 'is not null', 'exists', 'does not exist']);
    expect(operatorsFor('object')).toEqual(['is empty', 'is not empty', 'is null', 'is not null', 'exists', 'does not exist']);
    expect(operatorsFor('json')).toEqual(['is empty', 'is not empty', 'is null', 'is not null', 'exists', 'does not exist']);
    expect(operatorsFor('array(json)')).toEqual(['is empty', 'is not empty', 'is null', 'is not null', 'exists', 'does not exist']);
  });

  it('offers is one of on dates and times, and is empty on numbers and UUIDs, as the API accepts', () => {
    for (const t of ['datetime', 'date', 'time']) expect(operatorsFor(t)).toContain('is one of');
    for (const t of ['int', 'float', 'decimal(12,2)', 'uuid', 'boolean']) expect(operatorsFor(t)).toContain('is empty');
  });

  it('knows how many values each operator takes', () => {
    expect(arityOf('is')).toBe('one');
    expect(arityOf('is between')).toBe('two');
    expect(arityOf('is not between')).toBe('two');
    expect(arityOf('is one of')).toBe('many');
    expect(arityOf('is not empty')).toBe('none');
    expect(arityOf('is true')).toBe('none');
    expect(arityOf('does not exist')).toBe('none');
  });

  it('picks value inputs that fit the type', () => {
    expect(inputKindFor('int')).toBe('integer');
    expect(inputKindFor('float')).toBe('number');
    expect(inputKindFor('decimal(10,2)')).toBe('decimal');
    expect(inputKindFor('datetime')).toBe('datetime');
    expect(inputKindFor('date')).toBe('date');
    expect(inputKindFor('time')).toBe('time');
    expect(inputKindFor('array(int)')).toBe('integer');
    expect(inputKindFor('string')).toBe('text');
  });
});

describe('the property list', () => {
  it('has the built-ins and dotted nested paths', () => {
    const paths = props.map((p) => p.path);
    expect(paths.slice(0, 2)).toEqual(['_id', '_updated_at']);
    expect(paths).toContain('address');
    expect(paths).toContain('address.city');
    expect(paths).toContain('address.geo.lat');
    expect(prop('_updated_at').type).toBe('datetime');
  });
});

describe('editing conditions', () => {
  it('starts a condition with the first operator of its type', () => {
    expect(newCondition(prop('orders'))).toEqual({ property: 'orders', operator: 'is', values: [''] });
    expect(newCondition(prop('subscribed'))).toEqual({ property: 'subscribed', operator: 'is true' });
  });

  it('resizes the values when the operator changes', () => {
    const c = { property: 'orders', operator: 'is', values: [3] };
    expect(changeOperator(c, 'is between')).toEqual({ property: 'orders', operator: 'is between', values: [3, ''] });
    expect(changeOperator(c, 'is one of')).toEqual({ property: 'orders', operator: 'is one of', values: [3] });
    expect(changeOperator(c, 'is null')).toEqual({ property: 'orders', operator: 'is null' });
  });

  it('keeps a fitting operator and drops values of another input kind when the property changes', () => {
    const c = { property: 'orders', operator: 'is greater than', values: [3] };
    expect(changeProperty(c, prop('orders'), prop('score'))).toEqual({ property: 'score', operator: 'is greater than', values: [''] });
    expect(changeProperty(c, prop('orders'), prop('email'))).toEqual({ property: 'email', operator: 'is', values: [''] });
    const s = { property: 'email', operator: 'contains', values: ['@'] };
    expect(changeProperty(s, prop('email'), prop('country'))).toEqual({ property: 'country', operator: 'contains', values: ['@'] });
  });

  it('turns typed text into API values', () => {
    expect(parseInput('42', 'integer')).toBe(42);
    expect(parseInput('4.5', 'number')).toBe(4.5);
    expect(parseInput('4x', 'number')).toBe('4x');
    expect(parseInput('1234.50', 'decimal')).toBe('1234.50');
    expect(parseInput('2024-05-13T15:30', 'datetime')).toBe('2024-05-13T15:30:00Z');
    expect(parseInput('08:30', 'time')).toBe('08:30:00');
    expect(fromDatetimeInput('2024-05-13T15:30:12')).toBe('2024-05-13T15:30:12Z');
    expect(toDatetimeInput('2024-05-13T15:30:00Z')).toBe('2024-05-13T15:30:00');
  });

  it('finds missing and malformed values locally, by API path', () => {
    expect(conditionProblems({ property: 'orders', operator: 'is between', values: [1, ''] }, prop('orders'))).toEqual(['enter both bounds']);
    expect(conditionProblems({ property: 'orders', operator: 'is', values: ['x'] }, prop('orders'))).toEqual(['“x” is not a number']);
    expect(conditionProblems({ property: 'orders', operator: 'starts with', values: ['1'] }, prop('orders'))[0]).toMatch(/does not apply/);
    expect(conditionProblems({ property: 'nope', operator: 'is', values: ['1'] }, undefined)[0]).toMatch(/not a property/);
    const f: FilterGroup = {
      logical: 'and',
      conditions: [
        { property: 'email', operator: 'is not empty' },
        { logical: 'or', conditions: [{ property: 'country', operator: 'is one of', values: [] }] },
      ],
    };
    expect(filterProblems(f, props)).toEqual({ 'filter.conditions[1].conditions[0]': ['add at least one value'] });
  });
});

describe('summaries', () => {
  it('reads like the API example', () => {
    const f: FilterGroup = {
      logical: 'and',
      conditions: [
        { property: 'country', operator: 'is one of', values: ['IT', 'FR'] },
        { logical: 'or', conditions: [{ property: 'email', operator: 'is not empty' }] },
      ],
    };
    expect(summarizeFilter(f)).toBe('country is one of IT, FR and (email is not empty)');
  });

  it('writes ranges, nested or-groups and booleans', () => {
    const f: FilterGroup = {
      logical: 'or',
      conditions: [
        { property: 'ltv', operator: 'is between', values: ['10.00', '99.50'] },
        { property: 'subscribed', operator: 'is true' },
        { logical: 'and', conditions: [{ property: 'orders', operator: 'is greater than', values: [3] }, { property: 'tags', operator: 'contains', values: ['vip'] }] },
      ],
    };
    expect(summarizeFilter(f)).toBe('ltv is between 10.00 and 99.50 or subscribed is true or (orders is greater than 3 and tags contains vip)');
  });

  it('says "All profiles" without conditions and drops empty groups', () => {
    expect(summarizeFilter(null)).toBe('All profiles');
    expect(summarizeFilter({ logical: 'and', conditions: [] })).toBe('All profiles');
    expect(normalizeFilter({ logical: 'and', conditions: [{ logical: 'or', conditions: [] }] })).toBeNull();
  });
});
