// Hash routing (`#/destinations/dst_1`): works from any static file server and from `sluice serve`
// without server-side route knowledge.

import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'home' }
  | { page: 'destinations' }
  | { page: 'new-destination'; kind?: string }
  | { page: 'destination'; id: string }
  | { page: 'edit-destination'; id: string }
  | { page: 'new-pipeline'; destination: string }
  | { page: 'pipeline'; id: string }
  | { page: 'runs'; id: string }
  | { page: 'sources' }
  | { page: 'new-source' }
  | { page: 'source'; id: string }
  | { page: 'source-runs'; id: string }
  | { page: 'model' }
  | { page: 'profiles' }
  | { page: 'tokens' }
  | { page: 'audit' }
  | { page: 'not-found'; path: string };

export function parseRoute(hash: string): Route {
  const path = hash.replace(/^#/, '').replace(/\/+$/, '') || '/home';
  const parts = path.split('/').filter(Boolean).map(decodeURIComponent);
  const [a, b, c, d] = parts;
  if (a === 'destinations') {
    if (b === undefined) return { page: 'destinations' };
    if (b === 'new') return { page: 'new-destination', kind: c };
    if (c === undefined) return { page: 'destination', id: b };
    if (c === 'edit' && d === undefined) return { page: 'edit-destination', id: b };
    if (c === 'pipelines' && d === 'new') return { page: 'new-pipeline', destination: b };
  }
  if (a === 'pipelines' && b) {
    if (c === undefined) return { page: 'pipeline', id: b };
    if (c === 'runs' && d === undefined) return { page: 'runs', id: b };
  }
  if (a === 'sources') {
    if (b === undefined) return { page: 'sources' };
    if (b === 'new' && c === undefined) return { page: 'new-source' };
    if (c === undefined) return { page: 'source', id: b };
    if (c === 'runs' && d === undefined) return { page: 'source-runs', id: b };
  }
  if (a === 'home' && b === undefined) return { page: 'home' };
  if (a === 'model' && b === undefined) return { page: 'model' };
  if (a === 'profiles' && b === undefined) return { page: 'profiles' };
  if (a === 'tokens' && b === undefined) return { page: 'tokens' };
  if (a === 'audit' && b === undefined) return { page: 'audit' };
  return { page: 'not-found', path };
}

export function href(...parts: string[]): string {
  return '#/' + parts.map(encodeURIComponent).join('/');
}

export function navigate(to: string): void {
  if (location.hash !== to) location.hash = to;
}

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const on = () => setRoute(parseRoute(location.hash));
    window.addEventListener('hashchange', on);
    return () => window.removeEventListener('hashchange', on);
  }, []);
  return route;
}
