#!/usr/bin/env node
// End-to-end test of the admin UI in headless Chromium, following the seed step by step against a
// running `sluice serve` and a real PostgreSQL destination:
//
//   sign in → Destinations → Add a new destination → PostgreSQL card → connection form
//   → Test connection with a wrong password (the database's error is shown) → Test connection (server
//   version) → Add → Add pipeline… → filter (_id starts with <run prefix> and country is one of IT, FR)
//   → a table that does not exist (refused) → the real table → Confirm → matching column
//   → visual mapping, with an invalid expression first (inline error) → preview → Add → Enable
//   → Run now → the run finishes → its counts on the runs page → the rows are in the table
//   → Schedule menu: every 15 minutes shows the next run time (then Off again)
//   → Manage: a Python transformation previewed on sample profiles; an invalid alert webhook is
//     refused with the error next to its field (nothing saved)
//   → Sources → Add source: a PostgreSQL table the test creates, picked from the connection's tables
//     → Inspect (columns, sample rows) → the proposed Customer Model, edited and applied → the proposed
//     mapping, an unknown column refused at its row → preview → Add → Run now → counts on the source's
//     runs page → the profiles arrived → delete the source
//   → deleting the destination while it has a pipeline is refused with the server's message
//   → clean up (pipeline and destination deleted through the UI, test profiles through the API)
//   → the same walk for MariaDB (when SLUICE_E2E_MYSQL_URL is set): the connection URL pasted into the
//     form fills it, the table picked from the destination's list, a JavaScript transformation, a run,
//     its rows read back from MariaDB.
// The window is 1280×800; every page the walk visits is checked, screen by screen, for interactive
// elements hidden behind others (a menu cut off by its table, content under a sticky footer): the
// element at the centre of each visible control must be that control.
//
// A screenshot of every step goes to $SLUICE_E2E_ARTIFACTS (default artifacts/e2e).
//
// Environment:
//   SLUICE_URL               the server (default http://127.0.0.1:7878)
//   SLUICE_TOKEN             its admin token (required)
//   SLUICE_E2E_PG_HOST, SLUICE_E2E_PG_PORT (5432), SLUICE_E2E_PG_USER, SLUICE_E2E_PG_PASSWORD (may be
//   empty), SLUICE_E2E_PG_DATABASE, SLUICE_E2E_PG_SCHEMA (public)
//                            the PostgreSQL database the destination points at, as Sluice reaches it
//   SLUICE_E2E_TABLE         a table in it, created beforehand by the caller:
//                              CREATE TABLE <name> (customer_id text PRIMARY KEY, email text,
//                                                   full_name text, country text)
//                            (created with that shape when missing)
//   SLUICE_E2E_MYSQL_URL     mysql://user:password@host:port/database of a MariaDB/MySQL server for the
//                            second walk (skipped, with a note, when unset); needs the `mysql` client
//   SLUICE_E2E_ARTIFACTS     screenshot folder (default artifacts/e2e)
//   SLUICE_E2E_CHROMIUM      browser binary (default /usr/bin/chromium)
//   SLUICE_E2E_HEADED=1      show the browser (for debugging)
//
// The test adds the properties it needs (email, first_name, last_name, country: strings) to the
// Customer Model when they are missing, and loads five profiles whose ids start with a random prefix,
// so it can run against a workspace that already holds other data.

import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import process from 'node:process';
import { chromium } from 'playwright-core';
import pg from 'pg';

// ----------------------------------------------------------------------------------------------------
// Settings

const env = process.env;
const BASE = (env.SLUICE_URL || 'http://127.0.0.1:7878').replace(/\/$/, '');
const TOKEN = env.SLUICE_TOKEN || '';
const PG = {
  host: env.SLUICE_E2E_PG_HOST || '127.0.0.1',
  port: Number(env.SLUICE_E2E_PG_PORT || 5432),
  user: env.SLUICE_E2E_PG_USER || 'postgres',
  password: env.SLUICE_E2E_PG_PASSWORD ?? '',
  database: env.SLUICE_E2E_PG_DATABASE || 'postgres',
  schema: env.SLUICE_E2E_PG_SCHEMA || 'public',
};
const TABLE = env.SLUICE_E2E_TABLE || '';
const MYSQL_URL = env.SLUICE_E2E_MYSQL_URL || '';
const ARTIFACTS = path.resolve(env.SLUICE_E2E_ARTIFACTS || 'artifacts/e2e');
const CHROMIUM = env.SLUICE_E2E_CHROMIUM || '/usr/bin/chromium';

const RUN = Math.random().toString(36).slice(2, 8);
const PREFIX = `e2e-${RUN}-`;
const DEST_NAME = `E2E PostgreSQL ${RUN}`;
const PIPE_NAME = `E2E export ${RUN}`;
const PROFILES = [
  { _id: `${PREFIX}1`, email: 'Ada.Lovelace@Example.com', first_name: 'Ada', last_name: 'Lovelace', country: 'IT' },
  { _id: `${PREFIX}2`, email: 'GRACE@example.com', first_name: 'Grace', last_name: 'Hopper', country: 'FR' },
  { _id: `${PREFIX}3`, email: 'alan@example.com', first_name: 'Alan', last_name: 'Turing', country: 'IT' },
  { _id: `${PREFIX}4`, email: 'linus@example.com', first_name: 'Linus', last_name: 'Torvalds', country: 'DE' },
  { _id: `${PREFIX}5`, email: 'edsger@example.com', first_name: 'Edsger', last_name: 'Dijkstra', country: 'US' },
];
const SRC_NAME = `E2E source ${RUN}`;
const SRC_TABLE = `${(process.env.SLUICE_E2E_TABLE || 'e2e').slice(0, 40)}_src_${RUN}`;
const SOURCE_ROWS = [
  { id: `e2e-src-${RUN}-1`, email: 'mary@example.com', points: 120 },
  { id: `e2e-src-${RUN}-2`, email: 'john@example.com', points: 7 },
  { id: `e2e-src-${RUN}-3`, email: 'kate@example.com', points: 0 },
];
let PROPERTIES_BEFORE = null;
const EXPECTED = PROFILES.filter((p) => ['IT', 'FR'].includes(p.country));

function fail(msg) {
  console.error(`e2e: ${msg}`);
  process.exit(2);
}
if (!TOKEN) fail('set SLUICE_TOKEN to the admin token of the server at ' + BASE);
if (!TABLE) fail('set SLUICE_E2E_TABLE to the name of a table created beforehand');
if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(TABLE)) fail(`SLUICE_E2E_TABLE must be a plain identifier, got ${TABLE}`);
if (!fs.existsSync(CHROMIUM)) fail(`${CHROMIUM} is missing: apt-get install -y chromium chromium-driver`);

// ----------------------------------------------------------------------------------------------------
// Helpers

const started = Date.now();
let stepNo = 0;
const log = (msg) => console.log(`[${((Date.now() - started) / 1000).toFixed(1).padStart(6)}s] ${msg}`);

async function api(method, route, body) {
  const res = await fetch(`${BASE}/v1${route}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : undefined;
  if (!res.ok) throw new Error(`${method} ${route}: ${res.status} ${text}`);
  return json;
}

function pgClient() {
  return new pg.Client({ host: PG.host, port: PG.port, user: PG.user, password: PG.password || undefined, database: PG.database });
}

const qi = (s) => `"${s.replace(/"/g, '""')}"`;

// ----------------------------------------------------------------------------------------------------
// The test

fs.mkdirSync(ARTIFACTS, { recursive: true });
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'sluice-e2e-chromium-'));
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath: CHROMIUM,
  headless: env.SLUICE_E2E_HEADED !== '1',
  viewport: { width: 1280, height: 800 },
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'].filter(
    (a) => a !== '--headless' || env.SLUICE_E2E_HEADED !== '1',
  ),
});
context.setDefaultTimeout(20_000);
const page = context.pages()[0] ?? (await context.newPage());

// Console errors fail the test, except the browser's own line for an API answer the test provokes
// on purpose (404 table, 409 in use, 422 invalid expression).
const consoleErrors = [];
page.on('console', (m) => {
  if (m.type() !== 'error') return;
  const text = m.text();
  if (/Failed to load resource: the server responded with a status of (404|409|422)/.test(text)) return;
  consoleErrors.push(text);
});
page.on('pageerror', (e) => consoleErrors.push(`uncaught: ${e.message}`));

/** Saves a screenshot: by default what the viewport shows (the step scrolls to what it checks), or the
 *  whole page from its top. */
async function shot(name, { full = false } = {}) {
  stepNo += 1;
  const file = path.join(ARTIFACTS, `${String(stepNo).padStart(2, '0')}-${name}.png`);
  if (full) await page.evaluate(() => window.scrollTo(0, 0));
  await page.waitForTimeout(250);
  await page.screenshot({ path: file, fullPage: full });
  log(`  screenshot ${path.basename(file)}`);
}

/** Fails when a visible interactive element of what the window shows is covered by another element (or
 *  clipped away by a scrolling ancestor): the element at the centre of each must be the element itself
 *  or inside it. Toasts, which float over the page on purpose for a few seconds, are left out. `scope`
 *  limits the check to the controls inside a selector (an open menu). */
async function checkNothingHidden(where, scope) {
  const hidden = await page.evaluate((scopeSel) => {
    const root = scopeSel ? document.querySelector(scopeSel) : document;
    if (!root) return [`${scopeSel} is not on the page`];
    const sel = 'a[href], button, input:not([type="hidden"]), select, textarea, [role="menuitem"], [role="menuitemradio"], [role="switch"], [role="tab"], summary';
    const out = [];
    // What covers the centre of `el` (null: nothing, or `el` is off screen).
    const cover = (el) => {
      const r = el.getBoundingClientRect();
      const x = r.left + r.width / 2;
      const y = r.top + r.height / 2;
      if (x < 0 || y < 0 || x >= window.innerWidth || y >= window.innerHeight) return null;
      const hit = document.elementFromPoint(x, y);
      if (!hit || el === hit || el.contains(hit) || hit.closest('.toasts')) return null;
      // A label drawn over its own control (switches, custom checkboxes) is the control.
      if (hit.closest('label') && hit.closest('label').contains(el)) return null;
      return hit;
    };
    const pinned = (node) => {
      for (let n = node; n && n !== document.body; n = n.parentElement) {
        const p = getComputedStyle(n).position;
        if (p === 'sticky' || p === 'fixed') return true;
      }
      return false;
    };
    const at = window.scrollY;
    for (const el of root.querySelectorAll(sel)) {
      if (el.closest('.toasts, .sr-only, [hidden], datalist')) continue;
      // The content of a closed <details> keeps a layout box in Chromium but is not shown.
      if (el.tagName !== 'SUMMARY' && el.closest('details:not([open])')) continue;
      const style = getComputedStyle(el);
      if (style.visibility === 'hidden' || style.display === 'none' || Number(style.opacity) === 0) continue;
      const r = el.getBoundingClientRect();
      if (r.width < 4 || r.height < 4) continue;
      let hit = cover(el);
      if (!hit) continue;
      // Content passing under a sticky header or footer while scrolling is fine as long as scrolling
      // brings it out; what stays under it (the last field behind a sticky footer) is not.
      if (pinned(hit) && !pinned(el)) {
        el.scrollIntoView({ block: 'center' });
        hit = cover(el);
        window.scrollTo(0, at);
        if (!hit) continue;
      }
      const name = (el.getAttribute('aria-label') || el.textContent || el.getAttribute('name') || el.tagName).trim().replace(/\s+/g, ' ').slice(0, 60);
      const by = `${hit.tagName.toLowerCase()}${hit.className && typeof hit.className === 'string' ? '.' + hit.className.trim().split(/\s+/).join('.') : ''}`;
      out.push(`“${name}” is covered by ${by}`);
    }
    return out;
  }, scope ?? null);
  if (hidden.length) {
    await page.screenshot({ path: path.join(ARTIFACTS, `hidden-${where.replace(/[^a-z0-9]+/gi, '-')}.png`) });
    throw new Error(`${where}: content hidden behind other elements:\n  ${hidden.join('\n  ')}`);
  }
}

/** Checks the whole page, one window-full at a time, then scrolls back where it was. */
async function checkPage(where) {
  const { height, at } = await page.evaluate(() => ({ height: document.documentElement.scrollHeight, at: window.scrollY }));
  const seen = await page.evaluate(() => window.innerHeight);
  for (let y = 0; y < height; y += seen - 80) {
    await page.evaluate((top) => window.scrollTo(0, top), y);
    await page.waitForTimeout(60);
    await checkNothingHidden(`${where} (scrolled to ${y})`);
  }
  await page.evaluate((top) => window.scrollTo(0, top), at);
  checkedPages.add(where);
}
const checkedPages = new Set();

async function step(name, fn) {
  log(name);
  await fn();
}

const cleanup = { pipeline: null, destination: null, profiles: false, table: false, mysqlDestination: null, mysqlTable: null, source: null, sourceTable: false, modelProperty: false };

try {
  await step('prepare: Customer Model properties, test profiles and the table', async () => {
    const schema = await api('GET', '/profile-schema');
    PROPERTIES_BEFORE = schema.properties.map((p) => p.name);
    const need = ['email', 'first_name', 'last_name', 'country'];
    const missing = need.filter((n) => !schema.properties.some((p) => p.name === n));
    for (const n of need) {
      const p = schema.properties.find((x) => x.name === n);
      if (p && p.type !== 'string') throw new Error(`the Customer Model has ${n} as ${p.type}; the test needs a string`);
    }
    if (missing.length) {
      await api('PUT', '/profile-schema', { properties: [...schema.properties, ...missing.map((name) => ({ name, type: 'string', nullable: true }))] });
      log(`  added ${missing.join(', ')} to the Customer Model`);
    }
    const up = await api('POST', '/profiles', { profiles: PROFILES });
    if (up.upserted !== PROFILES.length) throw new Error(`loading profiles: ${JSON.stringify(up)}`);
    cleanup.profiles = true;
    const db = pgClient();
    await db.connect();
    try {
      const { rows } = await db.query('SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = $2', [PG.schema, TABLE]);
      if (rows.length === 0) {
        await db.query(`CREATE TABLE ${qi(PG.schema)}.${qi(TABLE)} (customer_id text PRIMARY KEY, email text, full_name text, country text)`);
        cleanup.table = true;
        log(`  created table ${PG.schema}.${TABLE}`);
      }
    } finally {
      await db.end();
    }
  });

  await step('1. sign in with the admin token', async () => {
    await page.goto(`${BASE}/`);
    await page.getByLabel('Token', { exact: true }).waitFor();
    await shot('sign-in');
    await page.getByLabel('Token', { exact: true }).fill(TOKEN);
    await page.getByRole('button', { name: 'Sign in' }).click();
    // The landing page: what runs, what failed, what is next, how the destinations answer.
    await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
    for (const title of ['Running now', 'Failures in the last 24 hours', 'Next scheduled runs', 'Destinations']) {
      await page.getByRole('heading', { name: title, level: 2 }).waitFor();
    }
    await shot('home');
    await checkPage('home');
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Destinations' }).click();
    await page.getByRole('heading', { name: 'Destinations', level: 1 }).waitFor();
    await shot('destinations');
    await checkPage('destinations');
  });

  await step('1b. a card per database kind, each with its own form and defaults', async () => {
    const openCard = async (name) => {
      await page.goto(`${BASE}/#/destinations`);
      await page.getByRole('link', { name: /Add a new destination/ }).first().click();
      await page.getByRole('link', { name: new RegExp(`^${name}: add destination`) }).click();
      await page.getByLabel(name === 'Snowflake' ? 'Account Identifier' : 'Host', { exact: true }).waitFor();
    };
    const port = () => page.getByLabel('Port', { exact: true }).inputValue();
    await openCard('MySQL');
    if ((await port()) !== '3306') throw new Error(`MySQL's Port should default to 3306, shows ${await port()}`);
    await openCard('ClickHouse');
    if ((await port()) !== '9000') throw new Error(`ClickHouse's Port should default to 9000, shows ${await port()}`);
    await page.getByLabel('TLS', { exact: true }).selectOption('verify');
    if ((await port()) !== '9440') throw new Error(`with TLS, ClickHouse's Port should move to 9440, shows ${await port()}`);
    await shot('clickhouse-form-tls');
    await openCard('Snowflake');
    for (const label of ['User Name', 'Password', 'Private key', 'Role', 'Database', 'Schema', 'Warehouse']) {
      if ((await page.getByLabel(label, { exact: true }).count()) !== 1) throw new Error(`the Snowflake form lacks ${label}`);
    }
    await shot('snowflake-form');
    await page.goto(`${BASE}/#/destinations`);
    await page.getByRole('heading', { name: 'Destinations', level: 1 }).waitFor();
  });

  await step('2. Add a new destination → the PostgreSQL card', async () => {
    await page.getByRole('link', { name: /Add a new destination/ }).first().click();
    await page.getByRole('heading', { name: 'Add a new destination' }).waitFor();
    await shot('destination-cards');
    await page.getByRole('link', { name: /^PostgreSQL: add destination/ }).click();
    await page.getByLabel('Host', { exact: true }).waitFor();
    const port = await page.getByLabel('Port', { exact: true }).inputValue();
    if (port !== '5432') throw new Error(`the Port field should default to 5432, shows ${port}`);
    if ((await page.getByLabel('Password', { exact: true }).getAttribute('type')) !== 'password') throw new Error('the password field is not masked');
    await shot('postgresql-form');
    await checkPage('postgresql form');
  });

  const fillConnection = async (overrides = {}) => {
    const v = { ...PG, ...overrides };
    await page.getByLabel('Name', { exact: true }).fill(DEST_NAME);
    await page.getByLabel('Host', { exact: true }).fill(v.host);
    await page.getByLabel('Port', { exact: true }).fill(String(v.port));
    await page.getByLabel('Username', { exact: true }).fill(v.user);
    await page.getByLabel('Password', { exact: true }).fill(v.password);
    await page.getByLabel('Database name', { exact: true }).fill(v.database);
    await page.getByLabel('Schema', { exact: true }).fill(v.schema);
    await page.getByLabel('TLS', { exact: true }).selectOption('disable');
  };
  const testConnection = async () => {
    await page.getByRole('button', { name: 'Test connection' }).click();
    const outcome = page.locator('.test-outcome .alert');
    await outcome.waitFor({ timeout: 40_000 });
    return { ok: (await outcome.getAttribute('class')).includes('alert-success'), text: (await outcome.innerText()).trim() };
  };

  await step('3. error path: Test connection with a wrong password shows the database error', async () => {
    await fillConnection({ password: `wrong-${PG.password}-${RUN}` });
    let r = await testConnection();
    if (r.ok) {
      // The server trusts local connections (pg_hba "trust"): no password can be wrong. Show a database
      // error another way, with a user that does not exist.
      log('  NOTE: the PostgreSQL server accepted a wrong password (trust authentication); testing an unknown user instead');
      await page.getByLabel('Username', { exact: true }).fill(`no_such_user_${RUN}`);
      r = await testConnection();
    }
    if (r.ok) throw new Error(`the connection test should have failed: ${r.text}`);
    if (!/password|authentication|role|user/i.test(r.text)) throw new Error(`the failure does not show the database's error: ${r.text}`);
    log(`  shown: ${r.text.replace(/\s+/g, ' ')}`);
    await shot('test-connection-wrong-password');
  });

  await step('4. Test connection with the right settings shows the server version', async () => {
    await fillConnection();
    const r = await testConnection();
    if (!r.ok) throw new Error(`the connection test failed: ${r.text}`);
    if (!/Server version|connected/i.test(r.text)) throw new Error(`no server version shown: ${r.text}`);
    log(`  shown: ${r.text.replace(/\s+/g, ' ')}`);
    await shot('test-connection-ok');
  });

  await step('5. Add the destination', async () => {
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.getByRole('heading', { name: DEST_NAME }).waitFor();
    cleanup.destination = decodeURIComponent(new URL(page.url()).hash.split('/')[2] ?? '');
    await page.getByText('No pipelines yet').waitFor();
    await shot('destination-page');
    await checkPage('destination page');
  });

  await step('6. Add pipeline… → name and filter', async () => {
    await page.getByRole('link', { name: 'Add pipeline…' }).first().click();
    await page.getByRole('heading', { name: 'Add pipeline' }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill(PIPE_NAME);
    await page.getByLabel('Description', { exact: true }).fill('Profiles of the end-to-end test in Italy and France');
    await page.getByRole('button', { name: '+ Add condition' }).click();
    await page.getByLabel('Property of condition 1').selectOption('_id');
    await page.getByLabel('Operator of condition 1').selectOption('starts with');
    await page.getByLabel('Value of condition 1').fill(PREFIX);
    await page.getByRole('button', { name: '+ Add condition' }).click();
    await page.getByLabel('Property of condition 2').selectOption('country');
    await page.getByLabel('Operator of condition 2').selectOption('is one of');
    const chips = page.getByLabel('Add a value to values of condition 2');
    await chips.fill('IT');
    await chips.press('Enter');
    await chips.fill('FR');
    await chips.press('Enter');
    await page.locator('.filter-preview').getByText(`_id starts with ${PREFIX} and country is one of IT, FR`).waitFor();
    await shot('pipeline-filter', { full: true });
  });

  await step('7. error path: a table that does not exist', async () => {
    await page.getByLabel('Table name', { exact: true }).fill(`${TABLE}_does_not_exist`);
    await page.getByRole('button', { name: 'Confirm' }).click();
    const alert = page.locator('.alert', { hasText: 'The table does not exist' });
    await alert.waitFor();
    log(`  shown: ${(await alert.innerText()).replace(/\s+/g, ' ')}`);
    await alert.scrollIntoViewIfNeeded();
    await shot('table-does-not-exist');
  });

  await step('8. the table → Confirm → its columns; the matching column', async () => {
    await page.getByLabel('Table name', { exact: true }).fill(TABLE);
    await page.getByRole('button', { name: 'Confirm' }).click();
    await page.locator('.table-info').getByText(/has \d+ columns?/).waitFor();
    const key = page.getByRole('combobox', { name: 'Matching column', exact: true });
    const options = await key.locator('option').allInnerTexts();
    if (!options.some((o) => o.startsWith('customer_id'))) throw new Error(`customer_id is not offered as matching column: ${options.join(' | ')}`);
    await key.selectOption('customer_id');
    await shot('table-and-key');
  });

  const expr = (col) => page.getByRole('combobox', { name: `Expression for column ${col}` });
  const setExpr = async (col, text) => {
    await expr(col).fill(text);
    await expr(col).press('Escape');
  };

  await step('9. error path: an invalid expression shows an inline error', async () => {
    if ((await expr('customer_id').inputValue()) !== '_id') await setExpr('customer_id', '_id');
    await setExpr('full_name', 'no_such_function(first_name)');
    const err = page.locator('.mapping-row', { has: expr('full_name') }).locator('.field-error');
    await err.waitFor({ timeout: 15_000 });
    log(`  shown: ${(await err.innerText()).replace(/\s+/g, ' ')}`);
    await err.scrollIntoViewIfNeeded();
    await shot('invalid-expression');
  });

  await step('10. the visual mapping and a preview', async () => {
    await setExpr('email', 'lower(email)');
    await setExpr('full_name', 'first_name " " last_name');
    await setExpr('country', 'country');
    await page.locator('.mapping-row', { has: expr('full_name') }).locator('.field-error').waitFor({ state: 'detached', timeout: 15_000 });
    await page.getByRole('button', { name: 'Preview on sample profiles' }).click();
    const grid = page.locator('.preview-grid, .preview .alert').first();
    await grid.waitFor({ timeout: 20_000 });
    if (await page.locator('.preview-grid').count()) log('  preview shows a sample profile and its row');
    else log(`  NOTE: preview answered: ${(await grid.innerText()).replace(/\s+/g, ' ')}`);
    await grid.scrollIntoViewIfNeeded();
    await shot('mapping-and-preview');
    await shot('pipeline-editor-complete', { full: true });
    await checkPage('pipeline editor');
  });

  await step('11. Add the pipeline', async () => {
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    const row = page.getByRole('row', { name: new RegExp(PIPE_NAME) });
    await row.waitFor({ timeout: 20_000 }).catch(async (e) => {
      const summary = await page.locator('.editor > .alert-error').innerText().catch(() => '');
      throw new Error(`the pipeline was not added${summary ? `: ${summary}` : ''} (${e.message})`);
    });
    const filters = await row.locator('.filters-cell').innerText();
    if (!filters.includes('country is one of IT, FR')) throw new Error(`the Filters column shows: ${filters}`);
    await shot('pipelines-list');
    await checkPage('pipelines table');
  });

  const row = page.getByRole('row', { name: new RegExp(PIPE_NAME) });

  await step('12. Enable the pipeline', async () => {
    const sw = page.getByRole('switch', { name: `Enable ${PIPE_NAME}` });
    if ((await sw.getAttribute('aria-checked')) !== 'true') {
      if (!(await row.getByRole('button', { name: `Run ${PIPE_NAME} now` }).isDisabled())) throw new Error('Run now should be disabled while the pipeline is disabled');
      await sw.click();
    }
    await page.waitForFunction((name) => document.querySelector(`[role="switch"][aria-label="Enable ${name}"]`)?.getAttribute('aria-checked') === 'true', PIPE_NAME);
    await row.getByRole('button', { name: `Run ${PIPE_NAME} now` }).waitFor();
    if (await row.getByRole('button', { name: `Run ${PIPE_NAME} now` }).isDisabled()) throw new Error('Run now is still disabled after enabling');
    await shot('pipeline-enabled');
  });

  await step('13. Run now and wait for the run to finish', async () => {
    await row.getByRole('button', { name: `Run ${PIPE_NAME} now` }).click();
    await row.locator('.run-progress').waitFor({ timeout: 10_000 }).then(
      () => shot('run-in-progress'),
      () => log('  (the run finished before its progress could be seen)'),
    );
    await row.locator('.meta .badge').waitFor({ timeout: 180_000 });
    const status = (await row.locator('.meta .badge').innerText()).trim();
    log(`  run ${status}: ${(await row.locator('.meta').innerText()).replace(/\s+/g, ' ')}`);
    await shot('run-finished');
    if (status !== 'Succeeded') throw new Error(`the run ended ${status}`);
  });

  await step('14. the run and its counts on the runs page', async () => {
    await row.getByRole('link', { name: PIPE_NAME, exact: true }).click();
    await page.getByRole('heading', { name: 'Run history' }).waitFor();
    const count = async (label) => Number((await page.locator('.counts .count', { has: page.locator('dt', { hasText: new RegExp(`^${label}$`) }) }).locator('dd').innerText()).replace(/[^\d]/g, ''));
    const inserted = await count('Written: new');
    const updated = await count('Written: updated');
    const failed = (await count('Failed at the write')) + (await count('Failed in the transformation'));
    const audience = await count('In audience');
    log(`  counts: in audience ${audience}, written ${inserted} new + ${updated} updated, failed ${failed}`);
    if (audience !== EXPECTED.length) throw new Error(`expected ${EXPECTED.length} profiles in audience, the run shows ${audience}`);
    if (inserted + updated !== EXPECTED.length) throw new Error(`expected ${EXPECTED.length} rows written, the run shows ${inserted} inserted + ${updated} updated`);
    if (failed !== 0) throw new Error(`the run shows ${failed} failed rows`);
    // A dry run right after: everything in the audience is as written, nothing would be written.
    await page.getByRole('button', { name: 'Dry run', exact: true }).click();
    const summary = page.locator('[data-testid="dry-run-summary"]');
    await summary.waitFor({ timeout: 60_000 });
    const dry = (await summary.innerText()).trim();
    log(`  dry run: ${dry}`);
    const n = EXPECTED.length.toLocaleString('en-US');
    if (!dry.startsWith(`A run would do: ${n} in audience, 0 written, ${n} skipped, unchanged`)) throw new Error(`the dry run reads: ${dry}`);
    await shot('dry-run');
    await shot('runs-page', { full: true });
    await checkPage('runs page');
  });

  await step('15. the rows are in the table', async () => {
    const db = pgClient();
    await db.connect();
    try {
      const { rows } = await db.query(`SELECT customer_id, email, full_name, country FROM ${qi(PG.schema)}.${qi(TABLE)} WHERE customer_id LIKE $1 ORDER BY customer_id`, [`${PREFIX}%`]);
      const want = EXPECTED.map((p) => ({ customer_id: p._id, email: p.email.toLowerCase(), full_name: `${p.first_name} ${p.last_name}`, country: p.country }));
      if (JSON.stringify(rows) !== JSON.stringify(want)) throw new Error(`table rows differ:\n got ${JSON.stringify(rows)}\nwant ${JSON.stringify(want)}`);
      log(`  ${rows.length} rows in ${PG.schema}.${TABLE}, as mapped`);
    } finally {
      await db.end();
    }
  });

  await step('16. Schedule → every 15 minutes shows the next run time', async () => {
    await page.goto(`${BASE}/#/destinations/${encodeURIComponent(cleanup.destination)}`);
    await page.getByRole('heading', { name: DEST_NAME }).waitFor();
    await row.getByRole('button', { name: `Schedule of ${PIPE_NAME}: Off` }).click();
    // Every choice of the open menu shows, none cut off by the table around the button.
    await page.getByRole('menuitemradio', { name: 'Every 24 hours' }).waitFor();
    await shot('schedule-menu-open');
    await checkNothingHidden('the open schedule menu', '[role="menu"]');
    await page.getByRole('menuitemradio', { name: 'Every 15 minutes' }).click();
    const next = row.locator('.next-run time');
    await next.waitFor();
    const text = (await next.innerText()).trim();
    const exact = await next.getAttribute('title');
    const when = Date.parse((await next.getAttribute('datetime')) ?? '');
    if (!/^next run(?: in \d+ minutes?|: due now| in a moment)$/.test(text)) throw new Error(`the next run reads: ${text}`);
    if (!exact) throw new Error('the next run time has no exact time on hover');
    if (!(when > Date.now() - 60_000 && when <= Date.now() + 15 * 60_000 + 60_000)) throw new Error(`the next run is not within 15 minutes: ${new Date(when).toISOString()}`);
    log(`  shown: ${text} (${exact})`);
    await next.hover();
    await shot('schedule-15m-next-run');
    // Off again, so no scheduled run starts while the test goes on.
    await row.getByRole('button', { name: new RegExp(`^Schedule of ${PIPE_NAME}: Every 15 minutes`) }).click();
    await page.getByRole('menuitemradio', { name: 'Off' }).click();
    await row.locator('.next-run').waitFor({ state: 'detached' });
  });

  await step('17. Manage: a Python transformation previewed on sample profiles', async () => {
    await row.getByRole('link', { name: `Manage ${PIPE_NAME}` }).click();
    await page.getByRole('heading', { name: `Manage ${PIPE_NAME}` }).waitFor();
    await page.getByLabel('Alert webhook', { exact: true }).waitFor();
    await checkPage('manage pipeline');
    await page.getByRole('tab', { name: 'Python' }).click();
    const code = page.getByLabel('Python transformation', { exact: true });
    await code.fill(
      [
        'columns = ["customer_id", "email", "full_name", "country"]',
        '',
        'def transform(profile):',
        '    name = (profile.get("first_name") or "") + " " + (profile.get("last_name") or "")',
        '    return {',
        '        "customer_id": profile["_id"],',
        '        "email": (profile.get("email") or "").lower(),',
        '        "full_name": name.upper(),',
        '        "country": profile.get("country"),',
        '    }',
        '',
      ].join('\n'),
    );
    const names = EXPECTED.map((p) => `${p.first_name} ${p.last_name}`.toUpperCase());
    const grid = page.locator('.preview-grid').filter({ hasText: new RegExp(`"full_name": "(${names.join('|')})"`) });
    await grid.waitFor({ timeout: 60_000 }).catch(async (e) => {
      const alert = await page.locator('.preview .alert').innerText().catch(() => '');
      throw new Error(`the Python preview did not show a transformed row${alert ? `: ${alert}` : ''} (${e.message})`);
    });
    if (await page.locator('.preview-grid .field-error').count()) throw new Error(`the Python preview failed: ${await page.locator('.preview-grid .field-error').innerText()}`);
    log(`  preview row: ${(await grid.locator('pre.json').nth(1).innerText()).replace(/\s+/g, ' ')}`);
    await grid.scrollIntoViewIfNeeded();
    await shot('python-preview');
  });

  await step('18. error path: an invalid alert webhook is refused next to its field', async () => {
    const hook = page.getByLabel('Alert webhook', { exact: true });
    await hook.fill(`ftp://hooks.example.com/${RUN}`);
    await page.getByRole('button', { name: 'Save', exact: true }).click();
    const err = page.locator('.field', { has: hook }).locator('.field-error');
    await err.waitFor({ timeout: 15_000 });
    const text = (await err.innerText()).trim();
    if (!/https?:\/\//.test(text)) throw new Error(`the webhook error does not say what a webhook URL needs: ${text}`);
    if ((await hook.getAttribute('aria-invalid')) !== 'true') throw new Error('the webhook field is not marked invalid');
    log(`  shown: ${text.replace(/\s+/g, ' ')}`);
    await err.scrollIntoViewIfNeeded();
    await shot('invalid-webhook');
    const list = await api('GET', `/pipelines?destination=${encodeURIComponent(cleanup.destination)}`);
    const saved = (list.pipelines ?? list).find((p) => p.name === PIPE_NAME);
    if (!saved || saved.alert_webhook || 'python' in saved.transformation) throw new Error(`the refused save changed the pipeline: ${JSON.stringify(saved)}`);
    await page.locator('.form-actions').getByRole('link', { name: 'Cancel' }).click();
    await page.getByRole('heading', { name: DEST_NAME }).waitFor();
  });

  // A source pipeline through the browser: a PostgreSQL table the test creates is read into the profile
  // store over the same connection the export uses (a connection entered once serves both ways).
  await step('18b. Sources → Add source: a table picked from the connection, Inspect shows columns and sample rows', async () => {
    const db = pgClient();
    await db.connect();
    try {
      await db.query(`CREATE TABLE ${qi(PG.schema)}.${qi(SRC_TABLE)} (customer_id text PRIMARY KEY, email text, loyalty_points integer, updated_at timestamptz NOT NULL DEFAULT now())`);
      cleanup.sourceTable = true;
      for (const r of SOURCE_ROWS) await db.query(`INSERT INTO ${qi(PG.schema)}.${qi(SRC_TABLE)} (customer_id, email, loyalty_points) VALUES ($1, $2, $3)`, [r.id, r.email, r.points]);
    } finally {
      await db.end();
    }
    await page.getByRole('navigation', { name: 'Main' }).getByRole('link', { name: 'Sources' }).click();
    await page.getByRole('heading', { name: 'Sources', level: 1 }).waitFor();
    await shot('sources-empty');
    await page.getByRole('link', { name: 'Add source' }).click();
    await page.getByRole('heading', { name: 'Add source', level: 1 }).waitFor();
    await page.getByLabel('Name', { exact: true }).fill(SRC_NAME);
    await page.getByLabel('Connection', { exact: true }).selectOption(cleanup.destination);
    const input = page.getByLabel('Table', { exact: true });
    await page.waitForFunction(() => !!document.querySelector('input[name="table"]')?.getAttribute('list'));
    const listId = await input.getAttribute('list');
    const offered = await page.locator(`datalist[id="${listId}"] option`).evaluateAll((os) => os.map((o) => o.value));
    if (!offered.includes(SRC_TABLE)) throw new Error(`${SRC_TABLE} is not among the tables offered: ${offered.join(', ')}`);
    await input.fill(SRC_TABLE);
    await page.getByRole('button', { name: 'Inspect', exact: true }).click();
    await page.getByRole('table', { name: 'Sample rows' }).waitFor({ timeout: 30_000 });
    for (const r of SOURCE_ROWS) await page.getByRole('table', { name: 'Sample rows' }).getByText(r.email, { exact: true }).waitFor();
    const idColumn = await page.getByLabel('Id column', { exact: true }).inputValue();
    if (idColumn !== 'customer_id') throw new Error(`Inspect should take customer_id as the id column, the editor shows ${idColumn}`);
    await shot('source-inspected', { full: true });
  });

  await step('18c. the proposed Customer Model, edited and applied; the mapping; an unknown column refused at its row', async () => {
    const proposal = page.getByRole('list', { name: 'Properties the proposal adds' });
    await proposal.getByText('loyalty_points', { exact: true }).waitFor();
    const hadUpdatedAt = (await api('GET', '/profile-schema')).properties.some((p) => p.name === 'updated_at');
    if (!hadUpdatedAt) {
      // Leave updated_at out of the model: the source only uses it as its cursor.
      await proposal.locator('li', { hasText: 'updated_at' }).getByRole('checkbox').uncheck();
    }
    await page.getByRole('button', { name: 'Apply to the Customer Model' }).click();
    await page.getByText(/The Customer Model now has \d+ new propert/).waitFor();
    const model = await api('GET', '/profile-schema');
    const points = model.properties.find((p) => p.name === 'loyalty_points');
    if (!points || points.type !== 'int') throw new Error(`loyalty_points should now be an int property: ${JSON.stringify(points)}`);
    if (!hadUpdatedAt && model.properties.some((p) => p.name === 'updated_at')) throw new Error('updated_at was left out but applied');
    cleanup.modelProperty = !(PROPERTIES_BEFORE ?? []).includes('loyalty_points');
    await page.getByRole('button', { name: 'Use the proposed mapping' }).click();
    const paths = await page.locator('.mapping-col input').evaluateAll((is) => is.map((i) => i.value));
    if (!paths.includes('email') || !paths.includes('loyalty_points')) throw new Error(`the proposed mapping should map email and loyalty_points: ${paths.join(', ')}`);
    await page.getByLabel('Cursor column', { exact: true }).selectOption('updated_at');
    // An expression over a column the source lacks: the server's error is shown at that property's row.
    const pointsAt = paths.indexOf('loyalty_points');
    await page.getByLabel('Expression for property loyalty_points', { exact: true }).fill('points_that_do_not_exist');
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    const row = page.locator('.mapping-row').nth(pointsAt + 1);
    await row.locator('.field-error').waitFor({ timeout: 20_000 });
    log(`  shown at loyalty_points: ${(await row.locator('.field-error').innerText()).replace(/\s+/g, ' ')}`);
    await shot('source-mapping-error');
    await page.getByLabel('Expression for property loyalty_points', { exact: true }).fill('loyalty_points');
    await page.getByRole('button', { name: 'Preview on the first rows' }).click();
    await page.getByRole('table', { name: 'Preview of the first rows' }).getByText('"loyalty_points": 120').waitFor({ timeout: 30_000 });
    await shot('source-preview', { full: true });
    await checkPage('source editor');
  });

  await step('18d. Add the source, Run now, and the profiles arrive', async () => {
    await page.getByRole('button', { name: 'Add', exact: true }).click();
    await page.getByRole('heading', { name: 'Sources', level: 1 }).waitFor();
    const row = page.locator(`tr[data-source="${SRC_NAME}"]`);
    await row.waitFor({ timeout: 20_000 });
    cleanup.source = (await api('GET', '/sources')).sources.find((x) => x.name === SRC_NAME)?.id ?? null;
    await row.getByRole('button', { name: `Run ${SRC_NAME} now` }).click();
    await row.locator('.badge').waitFor({ timeout: 120_000 });
    const status = (await row.locator('.badge').innerText()).trim();
    log(`  source run ${status}`);
    await shot('sources-list');
    await checkPage('sources list');
    if (status !== 'Succeeded') throw new Error(`the source run ended ${status}`);
    await page.getByRole('button', { name: `More actions for ${SRC_NAME}` }).click();
    await page.getByRole('menuitem', { name: 'Runs' }).click();
    await page.getByRole('heading', { name: 'Run history' }).waitFor();
    const count = async (label) => Number((await page.locator('.counts .count', { has: page.locator('dt', { hasText: new RegExp(`^${label}$`) }) }).locator('dd').innerText()).replace(/[^\d]/g, ''));
    const read = await count('Rows read');
    const created = await count('Profiles created');
    const failed = await count('Failed rows');
    log(`  counts: read ${read}, created ${created}, failed ${failed}`);
    if (read !== SOURCE_ROWS.length || created !== SOURCE_ROWS.length || failed !== 0) throw new Error(`expected ${SOURCE_ROWS.length} rows read and profiles created, none failed`);
    await shot('source-runs-page', { full: true });
    await checkPage('source runs page');
    for (const r of SOURCE_ROWS) {
      const p = await api('GET', `/profiles/${encodeURIComponent(r.id)}`);
      if (p.email !== r.email || p.loyalty_points !== r.points) throw new Error(`profile ${r.id} is ${JSON.stringify(p)}`);
    }
    log(`  ${SOURCE_ROWS.length} profiles arrived with email and loyalty_points`);
    // The profile browser shows them too.
    await page.goto(`${BASE}/#/profiles`);
    await page.getByRole('heading', { name: 'Profiles', level: 1 }).waitFor();
    await page.getByText(SOURCE_ROWS[0].id).first().waitFor({ timeout: 10_000 }).catch(() => log('  (the first page of profiles does not show the source profiles)'));
    await shot('profiles-from-source');
  });

  await step('18e. delete the source from the list', async () => {
    await page.goto(`${BASE}/#/sources`);
    const row = page.locator(`tr[data-source="${SRC_NAME}"]`);
    await page.getByRole('button', { name: `More actions for ${SRC_NAME}` }).click();
    await page.getByRole('menuitem', { name: 'Delete…' }).click();
    await shot('delete-source-confirm');
    await page.getByRole('dialog').getByRole('button', { name: 'Delete source' }).click();
    await row.waitFor({ state: 'detached' });
    cleanup.source = null;
    await page.getByText(/no source pipelines yet/i).waitFor();
  });

  await step('19. error path: deleting a destination that has pipelines is refused', async () => {
    await page.goto(`${BASE}/#/destinations/${encodeURIComponent(cleanup.destination)}`);
    await page.getByRole('heading', { name: DEST_NAME }).waitFor();
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    const dialog = page.getByRole('dialog');
    await dialog.getByRole('button', { name: 'Delete destination' }).click();
    const alert = dialog.locator('.alert-error');
    await alert.waitFor();
    log(`  shown: ${(await alert.innerText()).replace(/\s+/g, ' ')}`);
    await shot('delete-destination-refused');
    await dialog.getByRole('button', { name: 'Cancel' }).click();
  });

  await step('20. clean up: delete the pipeline (⋮ More → Delete) and the destination', async () => {
    await page.getByRole('button', { name: `More actions for ${PIPE_NAME}` }).click();
    await page.getByRole('menuitem', { name: 'Delete…' }).click();
    const dialog = page.getByRole('dialog');
    await shot('delete-pipeline-confirm');
    await dialog.getByRole('button', { name: 'Delete pipeline' }).click();
    await page.getByText('No pipelines yet').waitFor();
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    await page.getByRole('dialog').getByRole('button', { name: 'Delete destination' }).click();
    await page.getByRole('heading', { name: 'Destinations', level: 1 }).waitFor();
    cleanup.destination = null;
    await shot('cleaned-up');
  });

  await step('21. the other pages at 1280×800: profiles (with totals), Customer Model, tokens, audit log', async () => {
    for (const [route, heading] of [
      ['profiles', 'Profiles'],
      ['model', 'Customer Model'],
      ['tokens', 'API tokens'],
      ['audit', 'Audit log'],
    ]) {
      await page.goto(`${BASE}/#/${route}`);
      await page.getByRole('heading', { name: heading, level: 1 }).waitFor();
      if (route === 'profiles') await page.getByText(/in total/).first().waitFor();
      await page.waitForTimeout(300);
      await shot(`page-${route}`);
      await checkPage(route);
    }
  });

  if (MYSQL_URL) {
    const my = new URL(MYSQL_URL);
    const MY = { host: my.hostname, port: my.port || '3306', user: decodeURIComponent(my.username), password: decodeURIComponent(my.password), database: my.pathname.slice(1) };
    const mysql = (sql) =>
      execFileSync('mysql', ['-h', MY.host, '-P', MY.port, '-u', MY.user, '--batch', '--skip-column-names', MY.database, '-e', sql], {
        env: { ...env, MYSQL_PWD: MY.password },
        encoding: 'utf8',
      });
    const MY_TABLE = `e2e_js_${RUN}`;
    const MY_DEST = `E2E MariaDB ${RUN}`;
    const MY_PIPE = `E2E JavaScript ${RUN}`;

    await step('22. MariaDB: a table, and a destination filled in from a pasted connection URL', async () => {
      mysql(`CREATE TABLE ${MY_TABLE} (customer_id varchar(64) PRIMARY KEY, email varchar(200), full_name varchar(200), country varchar(8))`);
      cleanup.mysqlTable = MY_TABLE;
      await page.goto(`${BASE}/#/destinations/new`);
      await page.getByRole('link', { name: /^MySQL: add destination/ }).click();
      await page.getByLabel('Host', { exact: true }).waitFor();
      await page.getByLabel('Name', { exact: true }).fill(MY_DEST);
      await page.getByLabel('Connection URL (optional)', { exact: true }).fill(MYSQL_URL);
      const filled = { Host: MY.host, Port: MY.port, Username: MY.user };
      for (const [label, want] of Object.entries(filled)) {
        const got = await page.getByLabel(label, { exact: true }).inputValue();
        if (got !== want) throw new Error(`the pasted URL should fill ${label} with ${want}, it shows ${got}`);
      }
      if ((await page.getByLabel('Password', { exact: true }).inputValue()) !== MY.password) throw new Error('the pasted URL did not fill the password');
      if (!/ssl-mode|sslmode|ssl=/.test(MYSQL_URL)) await page.getByLabel('TLS', { exact: true }).selectOption('disable');
      await shot('mariadb-form-from-url');
      await checkPage('mariadb form');
      const r = await testConnection();
      if (!r.ok) throw new Error(`the MariaDB connection test failed: ${r.text}`);
      await page.getByRole('button', { name: 'Add', exact: true }).click();
      await page.getByRole('heading', { name: MY_DEST }).waitFor();
      cleanup.mysqlDestination = decodeURIComponent(new URL(page.url()).hash.split('/')[2] ?? '');
    });

    await step('23. MariaDB: a pipeline with the table picked from the list and a JavaScript transformation', async () => {
      await page.getByRole('link', { name: 'Add pipeline…' }).first().click();
      await page.getByRole('heading', { name: 'Add pipeline' }).waitFor();
      await page.getByLabel('Name', { exact: true }).fill(MY_PIPE);
      await page.getByRole('button', { name: '+ Add condition' }).click();
      await page.getByLabel('Property of condition 1').selectOption('_id');
      await page.getByLabel('Operator of condition 1').selectOption('starts with');
      await page.getByLabel('Value of condition 1').fill(PREFIX);
      // The builder counts the matching profiles while the filter is edited.
      await page.getByTestId('match-count').getByText(new RegExp(`^Matches ${PROFILES.length} of [\\d,]+ profiles\\.$`)).waitFor({ timeout: 10_000 });
      const input = page.getByLabel('Table name', { exact: true });
      const listId = await input.getAttribute('list');
      if (!listId) throw new Error('the table field offers no list of tables');
      const offered = await page.locator(`datalist[id="${listId}"] option`).evaluateAll((os) => os.map((o) => o.value));
      if (!offered.includes(MY_TABLE)) throw new Error(`${MY_TABLE} is not among the tables offered: ${offered.join(', ')}`);
      // Picking a listed name loads the table without Confirm.
      await input.fill(MY_TABLE);
      await page.locator('.table-info').getByText(/has \d+ columns?/).waitFor();
      await page.getByRole('combobox', { name: 'Matching column', exact: true }).selectOption('customer_id');
      await page.getByRole('tab', { name: 'JavaScript' }).click();
      await page.getByLabel('JavaScript transformation', { exact: true }).fill(
        [
          'const columns = ["customer_id", "email", "full_name", "country"];',
          '',
          'function transform(profile) {',
          '  return {',
          '    customer_id: profile._id,',
          '    email: (profile.email || "").toLowerCase(),',
          '    full_name: `${profile.last_name}, ${profile.first_name}`,',
          '    country: profile.country,',
          '  };',
          '}',
          '',
        ].join('\n'),
      );
      await page.locator('.preview-grid').filter({ hasText: '"full_name": "' }).first().waitFor({ timeout: 60_000 });
      await shot('mariadb-javascript-preview');
      await checkPage('mariadb pipeline editor');
      await page.getByRole('button', { name: 'Add', exact: true }).click();
      await page.getByRole('row', { name: new RegExp(MY_PIPE) }).waitFor({ timeout: 20_000 });
    });

    await step('24. MariaDB: enable, run, and read the rows back', async () => {
      const myRow = page.getByRole('row', { name: new RegExp(MY_PIPE) });
      await page.getByRole('switch', { name: `Enable ${MY_PIPE}` }).click();
      await page.waitForFunction((name) => document.querySelector(`[role="switch"][aria-label="Enable ${name}"]`)?.getAttribute('aria-checked') === 'true', MY_PIPE);
      await myRow.getByRole('button', { name: `Run ${MY_PIPE} now` }).click();
      await myRow.locator('.meta .badge').waitFor({ timeout: 180_000 });
      const status = (await myRow.locator('.meta .badge').innerText()).trim();
      const meta = (await myRow.locator('.meta').innerText()).replace(/\s+/g, ' ');
      log(`  run ${status}: ${meta}`);
      if (status !== 'Succeeded') throw new Error(`the MariaDB run ended ${status}`);
      if (!meta.includes(`${PROFILES.length} in audience`)) throw new Error(`the run summary should say ${PROFILES.length} in audience: ${meta}`);
      await shot('mariadb-run-finished');
      const rows = mysql(`SELECT customer_id, email, full_name, country FROM ${MY_TABLE} ORDER BY customer_id`).trim().split('\n');
      const want = PROFILES.map((p) => [p._id, p.email.toLowerCase(), `${p.last_name}, ${p.first_name}`, p.country].join('\t'));
      if (JSON.stringify(rows) !== JSON.stringify(want)) throw new Error(`MariaDB rows differ:\n got ${JSON.stringify(rows)}\nwant ${JSON.stringify(want)}`);
      log(`  ${rows.length} rows in MariaDB ${MY_TABLE}, as the script made them`);
      // The home page now shows the destination's health from its test and nothing failed.
      await page.goto(`${BASE}/#/home`);
      await page.getByRole('heading', { name: 'Home', level: 1 }).waitFor();
      await page.getByRole('list', { name: 'Destination health' }).getByRole('link', { name: MY_DEST }).waitFor();
      await page.getByText('No failed run in the last 24 hours.').waitFor();
      await shot('home-after-runs');
      await checkPage('home after the runs');
    });
  } else {
    log('NOTE: SLUICE_E2E_MYSQL_URL is not set: the MariaDB walk with a JavaScript transformation is skipped');
  }

  log(`  pages checked for hidden content at 1280×800: ${[...checkedPages].join(', ')}`);
  if (consoleErrors.length) throw new Error(`console errors:\n  ${consoleErrors.join('\n  ')}`);
  log(`PASS — screenshots in ${ARTIFACTS}`);
} catch (e) {
  console.error(`\nFAIL: ${e instanceof Error ? e.stack ?? e.message : e}`);
  if (consoleErrors.length) console.error(`console errors:\n  ${consoleErrors.join('\n  ')}`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'failure.png'), fullPage: true }).catch(() => {});
  process.exitCode = 1;
} finally {
  // Leave the workspace as it was, whatever happened.
  if (cleanup.source) await api('DELETE', `/sources/${encodeURIComponent(cleanup.source)}`).catch((e) => console.error(`cleanup: ${e.message}`));
  for (const r of SOURCE_ROWS) await api('DELETE', `/profiles/${encodeURIComponent(r.id)}`).catch(() => {});
  if (cleanup.modelProperty) {
    try {
      const m = await api('GET', '/profile-schema');
      await api('PUT', '/profile-schema', { ...m, properties: m.properties.filter((p) => p.name !== 'loyalty_points') });
    } catch (e) {
      console.error(`cleanup of the Customer Model: ${e.message}`);
    }
  }
  if (cleanup.destination) {
    try {
      const pls = await api('GET', `/pipelines?destination=${encodeURIComponent(cleanup.destination)}`);
      for (const p of pls.pipelines ?? pls) await api('DELETE', `/pipelines/${encodeURIComponent(p.id)}`);
      await api('DELETE', `/destinations/${encodeURIComponent(cleanup.destination)}`);
    } catch (e) {
      console.error(`cleanup: ${e.message}`);
    }
  }
  if (cleanup.mysqlDestination) {
    try {
      const pls = await api('GET', `/pipelines?destination=${encodeURIComponent(cleanup.mysqlDestination)}`);
      for (const p of pls.pipelines ?? pls) await api('DELETE', `/pipelines/${encodeURIComponent(p.id)}`);
      await api('DELETE', `/destinations/${encodeURIComponent(cleanup.mysqlDestination)}`);
    } catch (e) {
      console.error(`cleanup: ${e.message}`);
    }
  }
  if (cleanup.mysqlTable) {
    try {
      const my = new URL(MYSQL_URL);
      execFileSync('mysql', ['-h', my.hostname, '-P', my.port || '3306', '-u', decodeURIComponent(my.username), my.pathname.slice(1), '-e', `DROP TABLE IF EXISTS ${cleanup.mysqlTable}`], {
        env: { ...env, MYSQL_PWD: decodeURIComponent(my.password) },
      });
    } catch (e) {
      console.error(`cleanup of the MariaDB table: ${e.message}`);
    }
  }
  if (cleanup.profiles) for (const p of PROFILES) await api('DELETE', `/profiles/${encodeURIComponent(p._id)}`).catch(() => {});
  try {
    const db = pgClient();
    await db.connect();
    if (cleanup.sourceTable) await db.query(`DROP TABLE IF EXISTS ${qi(PG.schema)}.${qi(SRC_TABLE)}`);
    if (cleanup.table) await db.query(`DROP TABLE IF EXISTS ${qi(PG.schema)}.${qi(TABLE)}`);
    else await db.query(`DELETE FROM ${qi(PG.schema)}.${qi(TABLE)} WHERE customer_id LIKE $1`, [`${PREFIX}%`]);
    await db.end();
  } catch (e) {
    console.error(`cleanup of the table: ${e.message}`);
  }
  await context.close();
  fs.rmSync(userDataDir, { recursive: true, force: true });
}
