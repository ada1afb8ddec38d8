// Who is signed in (`GET /v1/me`), for the pages to hide what the role cannot do. Without a provider
// (pages rendered alone, in tests) everything is offered, as to the admin token.

import { createContext } from 'preact';
import { useContext } from 'preact/hooks';
import type { Principal } from './generated/api';
import { can, whyNot, type Action } from './lib/access';

const ADMIN: Principal = { id: 'admin', name: 'admin token', role: 'admin' };

export const AccessContext = createContext<Principal>(ADMIN);

export function useAccess() {
  const me = useContext(AccessContext);
  return {
    me,
    can: (action: Action) => can(me.role, action),
    whyNot: (action: Action) => whyNot(me.role, action),
  };
}
