import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { api, type FunctionInfo, type ProfileSchema } from './api';

export interface Async<T> {
  data: T | undefined;
  error: unknown;
  loading: boolean;
  reload: () => Promise<void>;
  setData: (d: T | ((old: T | undefined) => T)) => void;
}

/** Loads data when the dependencies change; stale answers are ignored. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<unknown>(undefined);
  const [loading, setLoading] = useState(true);
  const generation = useRef(0);
  const loadRef = useRef(load);
  loadRef.current = load;

  const reload = useCallback(async () => {
    const gen = ++generation.current;
    setLoading(true);
    try {
      const d = await loadRef.current();
      if (gen === generation.current) {
        setData(() => d);
        setError(undefined);
      }
    } catch (e) {
      if (gen === generation.current) setError(e);
    } finally {
      if (gen === generation.current) setLoading(false);
    }
  }, []);

  useEffect(() => {
    void reload();
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);

  return { data, error, loading, reload, setData: setData as Async<T>['setData'] };
}

/** Calls `fn` every `ms` while `active`. */
export function useInterval(fn: () => void, ms: number, active: boolean): void {
  const ref = useRef(fn);
  ref.current = fn;
  useEffect(() => {
    if (!active) return;
    // The timer functions are taken while the page is there: a cleanup may run as the page goes away.
    const clear = window.clearInterval.bind(window);
    const t = window.setInterval(() => ref.current(), ms);
    return () => clear(t);
  }, [ms, active]);
}

/** The value after it stopped changing for `ms`. */
export function useDebounced<T>(value: T, ms: number): T {
  const [v, setV] = useState(value);
  useEffect(() => {
    const t = window.setTimeout(() => setV(value), ms);
    return () => window.clearTimeout(t);
  }, [value, ms]);
  return v;
}

// Data most pages share, fetched once per session and refreshed on demand.

let schemaCache: Promise<ProfileSchema> | null = null;
let functionsCache: Promise<FunctionInfo[]> | null = null;

export function loadSchema(fresh = false): Promise<ProfileSchema> {
  if (fresh || !schemaCache) {
    schemaCache = api.getSchema();
    schemaCache.catch(() => (schemaCache = null));
  }
  return schemaCache;
}

export function setSchemaCache(s: ProfileSchema): void {
  schemaCache = Promise.resolve(s);
}

export function loadFunctions(): Promise<FunctionInfo[]> {
  if (!functionsCache) {
    functionsCache = api.functions();
    functionsCache.catch(() => (functionsCache = null));
  }
  return functionsCache;
}

export function clearCaches(): void {
  schemaCache = null;
  functionsCache = null;
}

/** Sets the document title for the page. */
export function useTitle(title: string): void {
  useEffect(() => {
    document.title = title ? `${title} · Sluice` : 'Sluice';
  }, [title]);
}
