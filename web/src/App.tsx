import { useEffect, useRef, useState } from 'preact/hooks';
import { AccessContext, useAccess } from './access';
import { api, errorMessage, getToken, onUnauthorized, setToken, type Principal } from './api';
import { ErrorAlert, Loading, ToastProvider } from './components/ui';
import { clearCaches } from './hooks';
import { can, ROLE_LABELS } from './lib/access';
import { AuditPage } from './pages/Audit';
import { CustomerModelPage } from './pages/CustomerModel';
import { DestinationFormPage, NewDestinationPage } from './pages/DestinationForm';
import { DestinationPage } from './pages/DestinationPage';
import { DestinationsPage } from './pages/Destinations';
import { HomePage } from './pages/Home';
import { PipelineEditorPage } from './pages/PipelineEditor';
import { ProfilesPage } from './pages/Profiles';
import { RunsPage } from './pages/Runs';
import { SourceEditorPage } from './pages/SourceEditor';
import { SourceRunsPage, SourcesPage } from './pages/Sources';
import { TokensPage } from './pages/Tokens';
import { href, useRoute, type Route } from './router';

export function App() {
  const [token, setTok] = useState<string | null>(getToken());
  const [expired, setExpired] = useState(false);

  useEffect(
    () =>
      onUnauthorized(() => {
        clearCaches();
        setTok(null);
        setExpired(true);
      }),
    [],
  );

  const signOut = () => {
    setToken(null);
    clearCaches();
    setExpired(false);
    setTok(null);
  };

  return (
    <ToastProvider>
      {token ? (
        <Shell onSignOut={signOut} />
      ) : (
        <SignIn
          expired={expired}
          onSignedIn={(t) => {
            setTok(t);
            setExpired(false);
          }}
        />
      )}
    </ToastProvider>
  );
}

function SignIn({ onSignedIn, expired }: { onSignedIn: (t: string) => void; expired: boolean }) {
  const [value, setValue] = useState('');
  const [error, setError] = useState<string | null>(expired ? 'Your session ended or the token is no longer valid: sign in again.' : null);
  const [busy, setBusy] = useState(false);
  const inputRef = useRef<HTMLInputElement>(null);
  useEffect(() => {
    document.title = 'Sign in · Sluice';
    inputRef.current?.focus();
  }, []);

  const submit = async (e: Event) => {
    e.preventDefault();
    const t = value.trim();
    if (!t) {
      setError('Enter a token.');
      return;
    }
    setBusy(true);
    setError(null);
    setToken(t);
    try {
      await api.me();
      onSignedIn(t);
    } catch (err) {
      setToken(null);
      setError(errorMessage(err));
    } finally {
      setBusy(false);
    }
  };

  return (
    <main class="signin">
      <form class="signin-card card" onSubmit={submit} aria-labelledby="signin-title">
        <div class="brand large">
          <Logo /> <span>Sluice</span>
        </div>
        <h1 id="signin-title">Sign in</h1>
        <p class="muted">
          Enter an API token, or the admin token: <code>sluice serve</code> prints it on the first start and keeps it in{' '}
          <code>sluice-data/admin.token</code>. What you can do depends on the token's role.
        </p>
        <div class="field">
          <label for="token">Token</label>
          <input
            ref={inputRef}
            id="token"
            name="token"
            class="input"
            type="password"
            autocomplete="current-password"
            value={value}
            aria-invalid={!!error || undefined}
            aria-describedby={error ? 'signin-error' : undefined}
            onInput={(e) => setValue((e.currentTarget as HTMLInputElement).value)}
          />
        </div>
        {error && (
          <div class="field-error" id="signin-error" role="alert">
            {error}
          </div>
        )}
        <button type="submit" class="button primary block" disabled={busy}>
          {busy ? 'Signing in…' : 'Sign in'}
        </button>
        <p class="muted small">The token is kept only for this browser tab's session.</p>
      </form>
    </main>
  );
}

export function Logo() {
  return (
    <svg class="logo" viewBox="0 0 32 32" width="28" height="28" aria-hidden="true">
      <rect width="32" height="32" rx="7" fill="#2457c5" />
      <path d="M7 11h18M7 16h13M7 21h8" stroke="white" stroke-width="3" stroke-linecap="round" />
    </svg>
  );
}

function section(route: Route): 'home' | 'destinations' | 'sources' | 'model' | 'profiles' | 'tokens' | 'audit' | null {
  switch (route.page) {
    case 'home':
      return 'home';
    case 'model':
      return 'model';
    case 'sources':
    case 'new-source':
    case 'source':
    case 'source-runs':
      return 'sources';
    case 'profiles':
      return 'profiles';
    case 'tokens':
      return 'tokens';
    case 'audit':
      return 'audit';
    case 'not-found':
      return null;
    default:
      return 'destinations';
  }
}

/** Learns who the token is (`GET /v1/me`), then shows the app for that role. */
function Shell({ onSignOut }: { onSignOut: () => void }) {
  const [me, setMe] = useState<Principal | null>(null);
  const [error, setError] = useState<unknown>(null);
  useEffect(() => {
    api.me().then(setMe, setError);
  }, []);
  if (error) {
    return (
      <main class="page">
        <ErrorAlert error={error} />
        <button type="button" class="button" onClick={onSignOut}>
          Sign out
        </button>
      </main>
    );
  }
  if (!me) return <Loading />;
  return (
    <AccessContext.Provider value={me}>
      <SignedIn me={me} onSignOut={onSignOut} />
    </AccessContext.Provider>
  );
}

export function SignedIn({ me, onSignOut }: { me: Principal; onSignOut: () => void }) {
  const route = useRoute();
  const current = section(route);
  const mainRef = useRef<HTMLElement>(null);
  const [version, setVersion] = useState<string | null>(null);
  useEffect(() => {
    api.health().then((h) => setVersion(h.version), () => {});
  }, []);
  // Move focus to the page on navigation so that keyboard and screen-reader users start at its top.
  const first = useRef(true);
  useEffect(() => {
    if (first.current) {
      first.current = false;
      return;
    }
    mainRef.current?.focus({ preventScroll: true });
    window.scrollTo(0, 0);
  }, [location.hash]);

  const nav = [
    { key: 'home', label: 'Home', href: href('home'), icon: IconHome },
    { key: 'destinations', label: 'Destinations', href: href('destinations'), icon: IconDb },
    { key: 'sources', label: 'Sources', href: href('sources'), icon: IconSource },
    { key: 'model', label: 'Customer Model', href: href('model'), icon: IconModel },
    { key: 'profiles', label: 'Profiles', href: href('profiles'), icon: IconProfiles },
    ...(can(me.role, 'admin')
      ? ([
          { key: 'tokens', label: 'API tokens', href: href('tokens'), icon: IconKey },
          { key: 'audit', label: 'Audit log', href: href('audit'), icon: IconLog },
        ] as const)
      : []),
  ];

  return (
    <div class="shell">
      <a class="skip-link" href="#main" onClick={(e) => { e.preventDefault(); mainRef.current?.focus(); }}>
        Skip to content
      </a>
      <aside class="sidebar">
        <div class="brand">
          <Logo /> <span>Sluice</span>
        </div>
        <nav aria-label="Main" class="nav">
          {nav.map((n) => (
            <a key={n.key} href={n.href} class={current === n.key ? 'nav-link active' : 'nav-link'} aria-current={current === n.key ? 'page' : undefined}>
              <n.icon />
              <span>{n.label}</span>
            </a>
          ))}
        </nav>
        <div class="sidebar-foot">
          <span class="small signed-in" title={`Signed in with the token “${me.name}”`}>
            {me.name} · <strong>{ROLE_LABELS[me.role]}</strong>
          </span>
          <button type="button" class="button ghost small" onClick={onSignOut}>
            Sign out
          </button>
          {version && <span class="muted small version">v{version}</span>}
        </div>
      </aside>
      <main id="main" class="main" ref={mainRef} tabIndex={-1}>
        <Page route={route} />
      </main>
    </div>
  );
}

function Page({ route }: { route: Route }) {
  switch (route.page) {
    case 'home':
      return <HomePage />;
    case 'destinations':
      return <DestinationsPage />;
    case 'new-destination':
      return route.kind ? <DestinationFormPage kind={route.kind} /> : <NewDestinationPage />;
    case 'destination':
      return <DestinationPage id={route.id} />;
    case 'edit-destination':
      return <DestinationFormPage id={route.id} />;
    case 'new-pipeline':
      return <PipelineEditorPage destination={route.destination} />;
    case 'pipeline':
      return <PipelineEditorPage id={route.id} />;
    case 'runs':
      return <RunsPage id={route.id} />;
    case 'sources':
      return <SourcesPage />;
    case 'new-source':
      return <SourceEditorPage />;
    case 'source':
      return <SourceEditorPage id={route.id} />;
    case 'source-runs':
      return <SourceRunsPage id={route.id} />;
    case 'model':
      return <CustomerModelPage />;
    case 'profiles':
      return <ProfilesPage />;
    case 'tokens':
      return <AdminOnly page={<TokensPage />} />;
    case 'audit':
      return <AdminOnly page={<AuditPage />} />;
    case 'not-found':
      return (
        <div class="page">
          <h1>Page not found</h1>
          <p>
            Nothing lives at <code>{route.path}</code>. <a href={href('destinations')}>Go to Destinations</a>.
          </p>
        </div>
      );
  }
}

/** A page for admins; other roles are told why they cannot see it. */
function AdminOnly({ page }: { page: preact.JSX.Element }) {
  const access = useAccess();
  if (access.can('admin')) return page;
  return (
    <div class="page">
      <h1>Not available</h1>
      <p>{access.whyNot('admin')}</p>
    </div>
  );
}

function IconKey() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.8">
      <circle cx="8" cy="15" r="4" />
      <path d="M11 12l8-8M16 7l2 2M14 9l2 2" />
    </svg>
  );
}

function IconLog() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.8">
      <rect x="4.5" y="3.5" width="15" height="17" rx="2" />
      <path d="M8 8h8M8 12h8M8 16h5" />
    </svg>
  );
}

function IconHome() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.8">
      <path d="M4 11.5 12 4l8 7.5M6.5 9.5V20h11V9.5" />
    </svg>
  );
}

function IconDb() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.8">
      <ellipse cx="12" cy="5.5" rx="7.5" ry="2.8" />
      <path d="M4.5 5.5v13c0 1.5 3.4 2.8 7.5 2.8s7.5-1.3 7.5-2.8v-13M4.5 12c0 1.5 3.4 2.8 7.5 2.8s7.5-1.3 7.5-2.8" />
    </svg>
  );
}

function IconModel() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.8">
      <rect x="3.5" y="3.5" width="7" height="7" rx="1.5" />
      <rect x="13.5" y="13.5" width="7" height="7" rx="1.5" />
      <path d="M7 10.5V17h6.5M17 13.5V7h-6.5" />
    </svg>
  );
}

function IconProfiles() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.8">
      <circle cx="9" cy="8" r="3.5" />
      <path d="M2.5 20c.6-3.6 3.2-5.5 6.5-5.5s5.9 1.9 6.5 5.5" />
      <path d="M16 4.8a3.5 3.5 0 0 1 0 6.4M18 14.8c2 .7 3.2 2.5 3.5 5.2" />
    </svg>
  );
}

function IconSource() {
  return (
    <svg viewBox="0 0 24 24" width="18" height="18" aria-hidden="true" fill="none" stroke="currentColor" stroke-width="1.8">
      <ellipse cx="7.5" cy="6" rx="4.5" ry="2" />
      <path d="M3 6v8c0 1.1 2 2 4.5 2S12 15.1 12 14V6M13 12h8M18 9l3 3-3 3" />
    </svg>
  );
}
