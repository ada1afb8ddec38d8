// The pipeline's reconcile interval in the editor: read back from a saved pipeline, sent only when set,
// chosen from a short list that still shows an interval set elsewhere, and its errors at its field.
import { render } from 'preact';
import { act } from 'preact/test-utils';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { describePath, editorState, placeOf, toPipelineInput } from '../src/lib/pipeline';
import { ReconcileField } from '../src/pages/PipelineEditor';

const base = { destination: 'd', name: 'P', table: 't', key: 'k', transformation: { mapping: { k: '_id' } } };

describe('reconcile every, in the editor state', () => {
  it('reads it back and sends it trimmed', () => {
    const s = editorState({ ...base, reconcile_every: '1w' });
    expect(s.reconcile_every).toBe('1w');
    expect(toPipelineInput({ ...s, reconcile_every: ' 1d ' }).reconcile_every).toBe('1d');
  });

  it('leaves it out when off, so that saving (a replace) turns it off', () => {
    const s = editorState({ ...base, reconcile_every: null });
    expect(s.reconcile_every).toBe('');
    expect('reconcile_every' in toPipelineInput(s)).toBe(false);
  });

  it('shows its errors at its own field', () => {
    expect(placeOf('reconcile_every')).toBe('reconcile_every');
    expect(describePath('reconcile_every')).toBe('Reconcile every');
  });
});

describe('the reconcile field', () => {
  let root: HTMLElement;
  afterEach(() => {
    render(null, root);
    root.remove();
  });

  const mount = async (value: string, errors: string[] = [], scheduled = true) => {
    const onChange = vi.fn();
    root = document.createElement('div');
    document.body.appendChild(root);
    await act(() => render(<ReconcileField value={value} scheduled={scheduled} onChange={onChange} errors={errors} />, root));
    const select = root.querySelector('select[name="reconcile_every"]') as HTMLSelectElement;
    expect(select).toBeTruthy();
    return { select, onChange };
  };

  it('offers off, a day and a week, and reports the choice', async () => {
    const { select, onChange } = await mount('');
    expect([...select.options].map((o) => [o.value, o.textContent])).toEqual([
      ['', 'Off'],
      ['1d', '1 day'],
      ['1w', '1 week'],
    ]);
    expect(select.value).toBe('');
    select.value = '1d';
    await act(() => {
      select.dispatchEvent(new Event('change', { bubbles: true }));
    });
    expect(onChange).toHaveBeenCalledWith('1d');
  });

  it('keeps an interval set through the API or CLI selectable', async () => {
    const { select } = await mount('12h');
    expect(select.value).toBe('12h');
    expect([...select.options].map((o) => o.value)).toContain('12h');
  });

  it('says when it has no effect, and shows the API error on the field', async () => {
    await mount('1d', [], false);
    expect(root.textContent).toContain('once the pipeline has a schedule');
    render(null, root);
    root.remove();
    const { select } = await mount('1d', ['`1m` is out of range']);
    expect(select.getAttribute('aria-invalid')).toBe('true');
    expect(root.textContent).toContain('`1m` is out of range');
  });
});
