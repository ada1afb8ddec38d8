// Every operator the API accepts on every kind of property type — the table `GET /v1/filters/operators`
// serves, committed as `src/generated/filter-operators.json` — can be shown and edited in the filter
// builder: the picker offers exactly the table's operators, a saved condition shows with its operator
// and values, the values can be changed, and picking the operator gives a condition of the right shape.

import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { Condition, FilterGroup, ProfileSchema } from '../src/api';
import { FilterBuilder } from '../src/components/FilterBuilder';
import { arityOf, conditionProblems, FILTER_OPERATORS, inputKindFor, operatorsFor, typeKey, type InputKind } from '../src/lib/filter';
import { findProperty, flattenSchema } from '../src/lib/schema';

/** A value as the API stores it, and what a user types to change it, for each kind of input. */
const VALUES: Record<InputKind, { stored: unknown; typed: string; parsed: unknown }> = {
  text: { stored: 'a', typed: 'b', parsed: 'b' },
  integer: { stored: 7, typed: '8', parsed: 8 },
  number: { stored: 1.5, typed: '2.5', parsed: 2.5 },
  decimal: { stored: '1.50', typed: '2.25', parsed: '2.25' },
  datetime: { stored: '2024-05-13T15:30:00Z', typed: '2024-06-01T08:00', parsed: '2024-06-01T08:00:00Z' },
  date: { stored: '2024-05-13', typed: '2024-06-01', parsed: '2024-06-01' },
  time: { stored: '15:30:00', typed: '08:45', parsed: '08:45:00' },
  uuid: { stored: '0b5f3c52-0d6a-4a4f-9c39-9e1f2f7d1a11', typed: '7d2c1a9e-5b1f-4c6e-8a3d-2f9e1b7c4d10', parsed: '7d2c1a9e-5b1f-4c6e-8a3d-2f9e1b7c4d10' },
  boolean: { stored: true, typed: 'false', parsed: false },
};

function schemaWith(type: string): ProfileSchema {
  const nested = type === 'object' || type === 'array(object)' ? [{ name: 'x', type: 'string' }] : undefined;
  return { properties: [{ name: 'p', type, properties: nested }] };
}

function storedValues(operator: string, kind: InputKind): unknown[] | undefined {
  const v = VALUES[kind].stored;
  switch (arityOf(operator)) {
    case 'none':
      return undefined;
    case 'one':
    case 'many':
      return [v];
    case 'two':
      return [v, v];
  }
}

let root: HTMLElement;
beforeEach(() => {
  root = document.createElement('div');
  document.body.appendChild(root);
});
afterEach(() => {
  render(null, root);
  root.remove();
});

async function show(type: string, cond: Condition) {
  const onChange = vi.fn();
  const filter: FilterGroup = { logical: 'and', conditions: [cond] };
  await act(() => render(<FilterBuilder filter={filter} onChange={onChange} properties={flattenSchema(schemaWith(type))} errors={{}} />, root));
  return onChange;
}

/** Types `text` into a field as a user would: the value, then the events the browser sends. */
async function type(el: HTMLInputElement | HTMLSelectElement, text: string) {
  await act(() => {
    el.value = text;
    el.dispatchEvent(new Event(el instanceof HTMLSelectElement ? 'change' : 'input', { bubbles: true }));
  });
}

const lastCondition = (onChange: ReturnType<typeof vi.fn>): Condition => (onChange.mock.lastCall![0] as FilterGroup).conditions[0] as Condition;

describe('the operator table', () => {
  it('knows every operator the types use, and each type finds its row', () => {
    const names = FILTER_OPERATORS.operators.map((o) => o.name);
    expect(FILTER_OPERATORS.types.length).toBeGreaterThanOrEqual(20);
    for (const row of FILTER_OPERATORS.types) {
      expect(typeKey(row.example), row.example).toBe(row.type);
      for (const op of row.operators) expect(names).toContain(op);
    }
    expect(typeKey('decimal(3,1)')).toBe('decimal');
    expect(typeKey('array(decimal(3,1))')).toBe('array(decimal)');
    expect(typeKey('array(array(array(int)))')).toBe('array(array)');
  });
});

describe('the filter builder', () => {
  for (const row of FILTER_OPERATORS.types) {
    it(`offers, shows and edits every operator on ${row.example}`, async () => {
      expect([...operatorsFor(row.example)].sort()).toEqual([...row.operators].sort());
      const kind = inputKindFor(row.example);
      const prop = findProperty(flattenSchema(schemaWith(row.example)), 'p')!;
      for (const operator of row.operators) {
        const what = `${row.example} ${operator}`;
        const values = storedValues(operator, kind);
        const cond: Condition = values ? { property: 'p', operator, values } : { property: 'p', operator };
        expect(conditionProblems(cond, prop), what).toEqual([]);

        // Shown as saved.
        const onChange = await show(row.example, cond);
        const picker = root.querySelector<HTMLSelectElement>('select[aria-label="Operator of condition 1"]')!;
        expect(picker.value, what).toBe(operator);
        expect([...picker.options].map((o) => o.value), what).toEqual(operatorsFor(row.example));
        const inputs = root.querySelectorAll('.condition-values input, .condition-values select');
        const arity = arityOf(operator);
        if (arity === 'none') expect(inputs.length, what).toBe(0);
        if (arity === 'many') {
          const chips = root.querySelectorAll('[aria-label="Values of condition 1"] .chip');
          expect(chips.length, what).toBe(1);
        }

        // Edited.
        const v = VALUES[kind];
        if (arity === 'one') {
          await type(root.querySelector<HTMLInputElement>('[aria-label^="Value of condition 1"]')!, v.typed);
          expect(lastCondition(onChange), what).toEqual({ property: 'p', operator, values: [v.parsed] });
        } else if (arity === 'two') {
          await type(root.querySelector<HTMLInputElement>('[aria-label^="Upper bound of condition 1"]')!, v.typed);
          expect(lastCondition(onChange), what).toEqual({ property: 'p', operator, values: [v.stored, v.parsed] });
        } else if (arity === 'many') {
          const add = root.querySelector<HTMLInputElement>('input[aria-label^="Add a value to values of condition 1"]')!;
          await type(add, v.typed);
          await act(() => {
            add.dispatchEvent(new KeyboardEvent('keydown', { key: 'Enter', bubbles: true }));
          });
          expect(lastCondition(onChange), what).toEqual({ property: 'p', operator, values: [v.stored, v.parsed] });
        }

        // Picked from another operator of the type.
        const other = row.operators.find((o) => o !== operator);
        if (other) {
          const otherValues = storedValues(other, kind);
          const onPick = await show(row.example, otherValues ? { property: 'p', operator: other, values: otherValues } : { property: 'p', operator: other });
          await type(root.querySelector<HTMLSelectElement>('select[aria-label="Operator of condition 1"]')!, operator);
          const picked = lastCondition(onPick);
          expect(picked.operator, what).toBe(operator);
          expect(picked.values === undefined, what).toBe(arity === 'none');
          if (arity === 'two') expect(picked.values, what).toHaveLength(2);
        }
        await act(() => render(null, root));
      }
    });
  }
});
