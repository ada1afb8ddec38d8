// The dropdown menu: a table's scrolling wrapper must not clip it, and it stays on screen.
import { act } from 'preact/test-utils';
import { afterEach, describe, expect, it } from 'vitest';
import { Menu, menuPlacement } from '../src/components/ui';
import { mount, unmount } from './mount';

describe('the dropdown menu', () => {
  let root: HTMLElement;
  afterEach(() => unmount(root));

  it('opens outside the scrolling wrapper of the table it sits in', async () => {
    const items = ['Off', 'Every 5 minutes', 'Every 15 minutes', 'Every hour', 'Every 24 hours'].map((label) => ({ label, onSelect: () => {} }));
    root = await mount(
      <div class="table-wrap" style="overflow-x: auto">
        <table>
          <tbody>
            <tr>
              <td>
                <Menu button="Schedule" label="Schedule of Export" items={items} />
              </td>
            </tr>
          </tbody>
        </table>
      </div>,
    );
    const button = root.querySelector<HTMLButtonElement>('button[aria-label="Schedule of Export"]')!;
    await act(() => button.click());
    const menu = document.querySelector<HTMLElement>('[role="menu"]');
    expect(menu).toBeTruthy();
    // Inside an element with overflow other than visible, an absolutely placed menu is cut off at its edge.
    expect(root.querySelector('.table-wrap')!.contains(menu)).toBe(false);
    expect(menu!.parentElement).toBe(document.body);
    expect(menu!.querySelectorAll('[role="menuitem"]').length).toBe(5);
    // Escape closes it and gives the focus back to the button.
    await act(() => {
      menu!.dispatchEvent(new KeyboardEvent('keydown', { key: 'Escape', bubbles: true }));
    });
    expect(document.querySelector('[role="menu"]')).toBeNull();
    expect(document.activeElement).toBe(button);
  });

  it('drops below the button when there is room and flips above near the bottom of the screen', () => {
    const viewport = { width: 1280, height: 800 };
    const size = { width: 200, height: 400 };
    const high = menuPlacement({ top: 100, bottom: 130, left: 900, right: 1000 }, size, viewport, 'right');
    expect(high).toEqual({ top: 134, left: 800, maxHeight: 800 - 130 - 4 - 8 });
    const low = menuPlacement({ top: 700, bottom: 730, left: 900, right: 1000 }, size, viewport, 'right');
    expect(low.top).toBe(700 - 4 - 400);
    expect(low.top + size.height).toBeLessThanOrEqual(700);
    // Left-aligned at the right edge of the screen: pulled back inside it.
    const edge = menuPlacement({ top: 100, bottom: 130, left: 1200, right: 1260 }, size, viewport, 'left');
    expect(edge.left).toBe(1280 - 200 - 8);
    // Taller than the screen: it scrolls inside the room there is.
    const tall = menuPlacement({ top: 380, bottom: 410, left: 10, right: 60 }, { width: 200, height: 2000 }, viewport, 'left');
    expect(tall.maxHeight).toBeLessThan(800);
    expect(tall.top).toBeGreaterThanOrEqual(8);
  });
});
