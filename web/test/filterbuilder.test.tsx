import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FilterGroup } from '../src/api';
import { FilterBuilder } from '../src/components/FilterBuilder';
import { flattenSchema } from '../src/lib/schema';
import { schema } from './fixtures';

const props = flattenSchema(schema);
let root: HTMLElement;
beforeEach(() => {
  root = document.createElement('div');
  document.body.appendChild(root);
});
afterEach(() => {
  render(null, root);
  root.remove();
});

async function show(filter: FilterGroup | null, errors = {}) {
  const onChange = vi.fn();
  await act(() => render(<FilterBuilder filter={filter} onChange={onChange} properties={props} errors={errors} />, root));
  return onChange;
}

describe('the filter builder', () => {
  it('offers the operators of the property type', async () => {
    await show({ logical: 'and', conditions: [{ property: 'signed_up_at', operator: 'is after', values: ['2024-05-13T15:30:00Z'] }] });
    const op = root.querySelector<HTMLSelectElement>('select[aria-label="Operator of condition 1"]')!;
    expect([...op.options].map((o) => o.value)).toContain('is on or before');
    expect([...op.options].map((o) => o.value)).not.toContain('contains');
    const value = root.querySelector<HTMLInputElement>('input[aria-label^="Value of condition 1"]')!;
    expect(value.type).toBe('datetime-local');
    expect(value.value).toMatch(/^2024-05-13T15:30(:00)?$/);
  });

  it('shows two inputs for between and chips for is one of', async () => {
    await show({
      logical: 'and',
      conditions: [
        { property: 'orders', operator: 'is between', values: [1, 5] },
        { property: 'country', operator: 'is one of', values: ['IT', 'FR'] },
      ],
    });
    expect(root.querySelector<HTMLInputElement>('input[aria-label="Lower bound of condition 1"]')!.type).toBe('number');
    expect(root.querySelector<HTMLInputElement>('input[aria-label="Upper bound of condition 1"]')!.value).toBe('5');
    const chips = [...root.querySelectorAll('[aria-label="Values of condition 2"] .chip')].map((c) => c.firstChild?.textContent);
    expect(chips).toEqual(['IT', 'FR']);
  });

  it('nests groups and shows each error under its condition', async () => {
    await show(
      { logical: 'and', conditions: [{ property: 'email', operator: 'is not empty' }, { logical: 'or', conditions: [{ property: 'ltv', operator: 'is', values: [''] }] }] },
      { 'filter.conditions[1].conditions[0].values': ['a value is missing'] },
    );
    const group = root.querySelector('[aria-label="Condition group 2"]')!;
    expect(group).toBeTruthy();
    expect(group.querySelector('select[aria-label="Property of condition 2.1"]')).toBeTruthy();
    expect(group.querySelector('.field-error')?.textContent).toBe('a value is missing');
    expect(root.querySelector('select[aria-label="How the conditions of group 2 combine"]')).toBeTruthy();
  });

  it('adds a condition on the first property', async () => {
    const onChange = await show(null);
    const add = [...root.querySelectorAll('button')].find((b) => b.textContent?.includes('Add condition'))!;
    await act(() => add.click());
    expect(onChange).toHaveBeenCalledWith({ logical: 'and', conditions: [{ property: '_id', operator: 'is', values: [''] }] });
  });
});
