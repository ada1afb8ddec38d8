// What each role may do, as the server enforces it (see the `x-sluice-role` of each operation in the
// OpenAPI document): the UI hides what a role cannot do, or disables it with the reason.

import type { Role } from '../generated/api';

export type { Role };

/** What the UI offers: reading, changing pipelines/runs/profiles/the Customer Model, and the admin's
 *  own (destinations, where secrets go; tokens; the audit log). */
export type Action = 'read' | 'edit' | 'admin';

const RANK: Record<Role, number> = { viewer: 0, editor: 1, admin: 2 };
const NEEDS: Record<Action, Role> = { read: 'viewer', edit: 'editor', admin: 'admin' };

export function can(role: Role, action: Action): boolean {
  return RANK[role] >= RANK[NEEDS[action]];
}

/** Why a role cannot do something, in words; `null` when it can. */
export function whyNot(role: Role, action: Action): string | null {
  if (can(role, action)) return null;
  return action === 'admin'
    ? `Only an admin token can do this; you are signed in with a${role === 'editor' ? 'n editor' : ' viewer'} token.`
    : 'Your token can only read: ask for an editor or admin token to make changes.';
}

export const ROLE_LABELS: Record<Role, string> = { viewer: 'Viewer', editor: 'Editor', admin: 'Admin' };
