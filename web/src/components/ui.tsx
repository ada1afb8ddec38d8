// Small building blocks: labelled fields with their errors, alerts, status badges, a switch, dialogs,
// dropdown menus and toasts.

import type { ComponentChildren, RefObject } from 'preact';
import { createContext, Fragment } from 'preact';
import { createPortal } from 'preact/compat';
import { useCallback, useContext, useEffect, useId, useRef, useState } from 'preact/hooks';
import { errorMessage, type RunStatus } from '../api';
import { classNames } from '../lib/util';

// Fields ------------------------------------------------------------------------------------------

export function FieldErrorsText({ id, errors }: { id?: string; errors?: string[] }) {
  if (!errors || errors.length === 0) return null;
  return (
    <div class="field-error" id={id} role="alert">
      {errors.map((e, i) => (
        <div key={i}>{e}</div>
      ))}
    </div>
  );
}

interface FieldProps {
  label: ComponentChildren;
  help?: ComponentChildren;
  errors?: string[];
  required?: boolean;
  /** Renders the control; receives the id to put on it and the ids that describe it. */
  children: (id: string, describedBy: string | undefined, invalid: boolean) => ComponentChildren;
  class?: string;
}

/** A label, a control, help text and the control's errors, wired together with ids. */
export function Field({ label, help, errors, required, children, class: cls }: FieldProps) {
  const id = useId();
  const helpId = help ? `${id}-help` : undefined;
  const errId = errors && errors.length ? `${id}-err` : undefined;
  const describedBy = [helpId, errId].filter(Boolean).join(' ') || undefined;
  return (
    <div class={classNames('field', errId && 'has-error', cls)}>
      <div class="label-row">
        <label for={id}>{label}</label>
        {/* The control carries aria-required; the star is only visual. */}
        {required && (
          <span class="required" aria-hidden="true" title="required">
            *
          </span>
        )}
      </div>
      {children(id, describedBy, !!errId)}
      {help && (
        <div class="help" id={helpId}>
          {help}
        </div>
      )}
      <FieldErrorsText id={errId} errors={errors} />
    </div>
  );
}

// Feedback ----------------------------------------------------------------------------------------

export function Alert({ kind = 'error', title, children }: { kind?: 'error' | 'success' | 'info' | 'warning'; title?: string; children?: ComponentChildren }) {
  return (
    <div class={`alert alert-${kind}`} role={kind === 'error' ? 'alert' : 'status'}>
      {title && <strong class="alert-title">{title}</strong>}
      {children && <div>{children}</div>}
    </div>
  );
}

export function ErrorAlert({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  return <Alert title={title}>{errorMessage(error)}</Alert>;
}

export function Spinner({ label = 'Loading' }: { label?: string }) {
  return <span class="spinner" role="status" aria-label={label} />;
}

export function Loading({ label = 'Loading…' }: { label?: string }) {
  return (
    <div class="loading">
      <Spinner label={label} /> <span>{label}</span>
    </div>
  );
}

const STATUS_LABEL: Record<string, string> = {
  queued: 'Queued',
  running: 'Running',
  succeeded: 'Succeeded',
  failed: 'Failed',
  cancelled: 'Cancelled',
};

export function StatusBadge({ status }: { status: RunStatus | string }) {
  return <span class={`badge badge-${status}`}>{STATUS_LABEL[status] ?? status}</span>;
}

export function Badge({ children, kind = 'neutral', title }: { children: ComponentChildren; kind?: string; title?: string }) {
  return (
    <span class={`badge badge-${kind}`} title={title}>
      {children}
    </span>
  );
}

export function ProgressBar({ value, total, label }: { value: number; total: number | null; label: string }) {
  const pct = total && total > 0 ? Math.min(100, Math.round((value / total) * 100)) : null;
  return (
    <div
      class={classNames('progress', pct === null && 'indeterminate')}
      role="progressbar"
      aria-label={label}
      aria-valuemin={0}
      aria-valuemax={100}
      aria-valuenow={pct ?? undefined}
    >
      <div class="progress-fill" style={{ width: pct === null ? '40%' : `${pct}%` }} />
    </div>
  );
}

// Controls ----------------------------------------------------------------------------------------

export function Switch({ checked, onChange, label, disabled }: { checked: boolean; onChange: (v: boolean) => void; label: string; disabled?: boolean }) {
  return (
    <button
      type="button"
      role="switch"
      class={classNames('switch', checked && 'on')}
      aria-checked={checked}
      aria-label={label}
      disabled={disabled}
      onClick={() => onChange(!checked)}
    >
      <span class="switch-knob" />
    </button>
  );
}

// Dialogs -----------------------------------------------------------------------------------------

const FOCUSABLE = 'a[href], button:not([disabled]), input:not([disabled]), select:not([disabled]), textarea:not([disabled]), [tabindex]:not([tabindex="-1"])';

interface DialogProps {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  footer?: ComponentChildren;
  wide?: boolean;
}

/** A modal dialog: focus moves in and is kept inside, Escape closes, focus returns where it was. */
export function Dialog({ title, onClose, children, footer, wide }: DialogProps) {
  const ref = useRef<HTMLDivElement>(null);
  const titleId = useId();
  const closeRef = useRef(onClose);
  closeRef.current = onClose;
  useEffect(() => {
    const before = document.activeElement as HTMLElement | null;
    const el = ref.current;
    const first = el?.querySelector<HTMLElement>('[data-autofocus]') ?? el?.querySelector<HTMLElement>(FOCUSABLE);
    first?.focus();
    // Focus can leave the dialog (a button that becomes disabled while working drops it): Escape still
    // closes, and Tab brings focus back in.
    const onDocKey = (e: KeyboardEvent) => {
      if (!el || el.contains(document.activeElement)) return;
      if (e.key === 'Escape') {
        e.preventDefault();
        closeRef.current();
      } else if (e.key === 'Tab') {
        e.preventDefault();
        el.querySelector<HTMLElement>(FOCUSABLE)?.focus();
      }
    };
    document.addEventListener('keydown', onDocKey);
    return () => {
      document.removeEventListener('keydown', onDocKey);
      before?.focus?.();
    };
  }, []);
  const onKey = (e: KeyboardEvent) => {
    if (e.key === 'Escape') {
      e.stopPropagation();
      onClose();
    } else if (e.key === 'Tab' && ref.current) {
      const items = Array.from(ref.current.querySelectorAll<HTMLElement>(FOCUSABLE));
      if (!items.length) return;
      const first = items[0];
      const last = items[items.length - 1];
      if (e.shiftKey && document.activeElement === first) {
        e.preventDefault();
        last.focus();
      } else if (!e.shiftKey && document.activeElement === last) {
        e.preventDefault();
        first.focus();
      }
    }
  };
  return (
    <div class="overlay" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div ref={ref} class={classNames('dialog', wide && 'wide')} role="dialog" aria-modal="true" aria-labelledby={titleId} onKeyDown={onKey}>
        <div class="dialog-head">
          <h2 id={titleId}>{title}</h2>
          <button type="button" class="icon-button" aria-label="Close" onClick={onClose}>
            ×
          </button>
        </div>
        <div class="dialog-body">{children}</div>
        {footer && <div class="dialog-foot">{footer}</div>}
      </div>
    </div>
  );
}

interface ConfirmProps {
  title: string;
  children: ComponentChildren;
  confirmLabel: string;
  danger?: boolean;
  onConfirm: () => Promise<void> | void;
  onClose: () => void;
}

/** A confirmation; the action's error is shown in the dialog, which stays open. */
export function ConfirmDialog({ title, children, confirmLabel, danger, onConfirm, onClose }: ConfirmProps) {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const confirm = async () => {
    setBusy(true);
    setError(null);
    try {
      await onConfirm();
      onClose();
    } catch (e) {
      setError(e);
    } finally {
      setBusy(false);
    }
  };
  return (
    <Dialog
      title={title}
      onClose={onClose}
      footer={
        <>
          <button type="button" class="button" onClick={onClose} data-autofocus>
            Cancel
          </button>
          <button type="button" class={classNames('button', danger ? 'danger' : 'primary')} onClick={confirm} disabled={busy}>
            {busy ? 'Working…' : confirmLabel}
          </button>
        </>
      }
    >
      {children}
      <ErrorAlert error={error} />
    </Dialog>
  );
}

/** A confirmed deletion: `remove` runs, a toast says `done`, then `after` (reload the list, leave the page). */
export function DeleteDialog({
  title,
  confirmLabel,
  remove,
  done,
  after,
  onClose,
  children,
}: {
  title: string;
  confirmLabel: string;
  remove: () => Promise<unknown>;
  done: string;
  after: () => Promise<void> | void;
  onClose: () => void;
  children: ComponentChildren;
}) {
  const toast = useToast();
  return (
    <ConfirmDialog
      title={title}
      confirmLabel={confirmLabel}
      danger
      onClose={onClose}
      onConfirm={async () => {
        await remove();
        toast('success', done);
        await after();
      }}
    >
      {children}
    </ConfirmDialog>
  );
}

// Tables ------------------------------------------------------------------------------------------

/** The header of a column without a visible title (a row's actions or details), named for screen readers. */
export function HiddenHeader({ label }: { label: string }) {
  return (
    <th scope="col">
      <span class="sr-only">{label}</span>
    </th>
  );
}

// Menus -------------------------------------------------------------------------------------------

export interface MenuItem {
  label: string;
  onSelect: () => void;
  danger?: boolean;
  checked?: boolean;
  disabled?: boolean;
  separatorBefore?: boolean;
}

interface MenuProps {
  /** Content of the button that opens the menu. */
  button: ComponentChildren;
  /** Accessible name of the button. */
  label: string;
  items: MenuItem[];
  buttonClass?: string;
  align?: 'left' | 'right';
  disabled?: boolean;
}

/** Where an open menu goes on screen: below its button, or above it when there is more room there, aligned
 *  to the button's right or left edge and kept inside the viewport; `maxHeight` makes a long menu scroll
 *  inside itself rather than run off the screen. Coordinates are the viewport's (the menu is `fixed`). */
export function menuPlacement(
  button: { top: number; bottom: number; left: number; right: number },
  menu: { width: number; height: number },
  viewport: { width: number; height: number },
  align: 'left' | 'right',
): { top: number; left: number; maxHeight: number } {
  const gap = 4;
  const margin = 8;
  const below = viewport.height - button.bottom - gap - margin;
  const above = button.top - gap - margin;
  const up = menu.height > below && above > below;
  const room = Math.max(up ? above : below, 80);
  const height = Math.min(menu.height, room);
  const top = up ? button.top - gap - height : button.bottom + gap;
  let left = align === 'right' ? button.right - menu.width : button.left;
  left = Math.min(left, viewport.width - menu.width - margin);
  left = Math.max(left, margin);
  return { top: Math.max(top, margin), left, maxHeight: room };
}

/** A button that opens a menu: arrow keys move, Enter selects, Escape closes and returns focus.
 *  The open menu is drawn into the document's body at a fixed position, so that a scrolling container
 *  around the button (a table's wrapper) cannot clip it. */
export function Menu({ button, label, items, buttonClass, align = 'right', disabled }: MenuProps) {
  const [open, setOpen] = useState(false);
  const [place, setPlace] = useState<{ top: number; left: number; maxHeight: number } | null>(null);
  const rootRef = useRef<HTMLDivElement>(null);
  const menuRef = useRef<HTMLDivElement>(null);
  const buttonRef = useRef<HTMLButtonElement>(null);
  const menuId = useId();

  const focusItem = useCallback((index: number) => {
    const els = menuRef.current?.querySelectorAll<HTMLElement>('[role^="menuitem"]:not([aria-disabled="true"])');
    if (!els || !els.length) return;
    const i = ((index % els.length) + els.length) % els.length;
    els[i].focus();
  }, []);

  useEffect(() => {
    if (!open) {
      setPlace(null);
      return;
    }
    const b = buttonRef.current?.getBoundingClientRect();
    const m = menuRef.current;
    if (b && m) {
      // The natural size, measured before a max-height applies.
      const size = { width: m.offsetWidth, height: m.scrollHeight };
      setPlace(menuPlacement(b, size, { width: window.innerWidth, height: window.innerHeight }, align));
    }
    focusItem(Math.max(0, items.findIndex((i) => i.checked)));
    const inside = (t: EventTarget | null) =>
      !!t && t instanceof Node && (!!rootRef.current?.contains(t) || !!menuRef.current?.contains(t));
    const onDoc = (e: MouseEvent) => {
      if (!inside(e.target)) setOpen(false);
    };
    // A fixed menu would stay behind while the page under it moves: close it instead.
    const onScroll = (e: Event) => {
      if (!inside(e.target)) setOpen(false);
    };
    const onResize = () => setOpen(false);
    document.addEventListener('mousedown', onDoc);
    document.addEventListener('scroll', onScroll, true);
    window.addEventListener('resize', onResize);
    return () => {
      document.removeEventListener('mousedown', onDoc);
      document.removeEventListener('scroll', onScroll, true);
      window.removeEventListener('resize', onResize);
    };
  }, [open]);

  const close = (refocus = true) => {
    setOpen(false);
    if (refocus) buttonRef.current?.focus();
  };

  const onMenuKey = (e: KeyboardEvent) => {
    const els = Array.from(menuRef.current?.querySelectorAll<HTMLElement>('[role^="menuitem"]:not([aria-disabled="true"])') ?? []);
    const idx = els.indexOf(document.activeElement as HTMLElement);
    if (e.key === 'ArrowDown') {
      e.preventDefault();
      focusItem(idx + 1);
    } else if (e.key === 'ArrowUp') {
      e.preventDefault();
      focusItem(idx - 1);
    } else if (e.key === 'Home') {
      e.preventDefault();
      focusItem(0);
    } else if (e.key === 'End') {
      e.preventDefault();
      focusItem(-1);
    } else if (e.key === 'Escape') {
      e.preventDefault();
      e.stopPropagation();
      close();
    } else if (e.key === 'Tab') {
      close(false);
    }
  };

  const style = place
    ? { top: `${place.top}px`, left: `${place.left}px`, maxHeight: `${place.maxHeight}px` }
    : { top: '0px', left: '0px', visibility: 'hidden' as const };

  return (
    <div class="menu-root" ref={rootRef}>
      <button
        ref={buttonRef}
        type="button"
        class={buttonClass ?? 'button'}
        aria-haspopup="menu"
        aria-expanded={open}
        aria-controls={open ? menuId : undefined}
        aria-label={label}
        disabled={disabled}
        onClick={() => setOpen(!open)}
        onKeyDown={(e) => {
          if (e.key === 'ArrowDown' && !open) {
            e.preventDefault();
            setOpen(true);
          }
        }}
      >
        {button}
      </button>
      {open &&
        createPortal(
          <div ref={menuRef} class="menu" role="menu" id={menuId} aria-label={label} onKeyDown={onMenuKey} style={style}>
            {items.map((item, i) => (
              <Fragment key={i}>
                {item.separatorBefore && <div class="menu-sep" role="separator" />}
                <button
                  type="button"
                  role={item.checked !== undefined ? 'menuitemradio' : 'menuitem'}
                  aria-checked={item.checked}
                  aria-disabled={item.disabled || undefined}
                  tabIndex={-1}
                  class={classNames('menu-item', item.danger && 'danger', item.checked && 'checked')}
                  onClick={() => {
                    if (item.disabled) return;
                    close();
                    item.onSelect();
                  }}
                >
                  <span class="menu-check" aria-hidden="true">
                    {item.checked ? '✓' : ''}
                  </span>
                  {item.label}
                </button>
              </Fragment>
            ))}
          </div>,
          document.body,
        )}
    </div>
  );
}

// Toasts ------------------------------------------------------------------------------------------

interface Toast {
  id: number;
  kind: 'success' | 'error' | 'info';
  text: string;
}

type Notify = (kind: Toast['kind'], text: string) => void;

const ToastContext = createContext<Notify>(() => {});

export function useToast(): Notify {
  return useContext(ToastContext);
}

export function ToastProvider({ children }: { children: ComponentChildren }) {
  const [toasts, setToasts] = useState<Toast[]>([]);
  const next = useRef(1);
  const notify = useCallback<Notify>((kind, text) => {
    const id = next.current++;
    setToasts((t) => [...t.slice(-3), { id, kind, text }]);
    window.setTimeout(() => setToasts((t) => t.filter((x) => x.id !== id)), kind === 'error' ? 9000 : 5000);
  }, []);
  return (
    <ToastContext.Provider value={notify}>
      {children}
      <div class="toasts" aria-live="polite" aria-atomic="false">
        {toasts.map((t) => (
          <div key={t.id} class={`toast toast-${t.kind}`} role={t.kind === 'error' ? 'alert' : 'status'}>
            <span>{t.text}</span>
            <button type="button" class="icon-button" aria-label="Dismiss" onClick={() => setToasts((all) => all.filter((x) => x.id !== t.id))}>
              ×
            </button>
          </div>
        ))}
      </div>
    </ToastContext.Provider>
  );
}

// Layout helpers ----------------------------------------------------------------------------------

export function PageHeader({ title, subtitle, actions, crumbs }: { title: ComponentChildren; subtitle?: ComponentChildren; actions?: ComponentChildren; crumbs?: { label: string; href?: string }[] }) {
  return (
    <header class="page-header">
      {crumbs && crumbs.length > 0 && (
        <nav class="crumbs" aria-label="Breadcrumb">
          {crumbs.map((c, i) => (
            <span key={i}>
              {c.href ? <a href={c.href}>{c.label}</a> : <span aria-current="page">{c.label}</span>}
              {i < crumbs.length - 1 && <span class="crumb-sep" aria-hidden="true"> / </span>}
            </span>
          ))}
        </nav>
      )}
      <div class="page-header-row">
        <div class="page-header-text">
          <h1>{title}</h1>
          {subtitle && <p class="subtitle">{subtitle}</p>}
        </div>
        {actions && <div class="page-actions">{actions}</div>}
      </div>
    </header>
  );
}

export function Section({ title, description, children, id, actions }: { title: string; description?: ComponentChildren; children: ComponentChildren; id?: string; actions?: ComponentChildren }) {
  const headingId = useId();
  return (
    <section class="card section" id={id} aria-labelledby={headingId}>
      <div class="section-head">
        <div>
          <h2 id={headingId}>{title}</h2>
          {description && <p class="section-desc">{description}</p>}
        </div>
        {actions && <div class="section-actions">{actions}</div>}
      </div>
      {children}
    </section>
  );
}

export function EmptyState({ title, children }: { title: string; children?: ComponentChildren }) {
  return (
    <div class="empty">
      <p class="empty-title">{title}</p>
      {children}
    </div>
  );
}

/** Focuses the element when the condition becomes true. */
export function useFocusWhen(ref: RefObject<HTMLElement>, when: boolean): void {
  useEffect(() => {
    if (when) ref.current?.focus();
  }, [when]);
}

