//! The HTTP listener of `sluice serve`: an accept loop over HTTP/1.1 connections, optionally in TLS, with
//! the limits a server facing untrusted clients needs.
//!
//! - **Connections.** At most `max_connections` are served at once: the loop takes a slot before it
//!   accepts, so a connection over the limit waits in the kernel's backlog (and is served when a slot
//!   frees) rather than costing a task and a buffer.
//! - **Header-read timeout.** A request whose headers are not complete `header_read_timeout` after their
//!   first byte arrived (or after the connection opened) has its connection closed: otherwise a client
//!   sending headers a byte at a time holds a slot forever. A TLS handshake gets the same time.
//! - **Idle timeout.** A kept-alive connection with no request being answered and no byte in either
//!   direction for `idle_timeout` is closed.
//! - **Graceful shutdown.** On the signal the loop stops accepting, idle connections close, and requests
//!   being answered are given up to [`DRAIN`] to finish.
//!
//! Both timeouts are kept here rather than in hyper's `header_read_timeout`, which also runs while a
//! kept-alive connection waits for its next request and so would make the idle timeout no longer than it.

use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context as _, Result};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

/// How long requests being answered at shutdown are given to finish.
pub const DRAIN: Duration = Duration::from_secs(10);

/// The listener's settings.
#[derive(Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// TLS on the listener, when a certificate and key were given.
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// A TLS server configuration from a PEM certificate chain and a PEM private key; errors name the file
/// and the setting.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    let read = |path: &Path, setting: &str| {
        std::fs::read(path).with_context(|| format!("{setting}: cannot read {}", path.display()))
    };
    let cert_pem = read(cert, "SLUICE_TLS_CERT (--tls-cert)")?;
    let certs: Vec<_> = rustls_pemfile::certs(&mut cert_pem.as_slice())
        .collect::<Result<_, _>>()
        .with_context(|| {
            format!(
                "SLUICE_TLS_CERT (--tls-cert): {} is not a PEM certificate",
                cert.display()
            )
        })?;
    if certs.is_empty() {
        return Err(anyhow!(
            "SLUICE_TLS_CERT (--tls-cert): {} holds no `-----BEGIN CERTIFICATE-----` block",
            cert.display()
        ));
    }
    let key_pem = read(key, "SLUICE_TLS_KEY (--tls-key)")?;
    let key_der = rustls_pemfile::private_key(&mut key_pem.as_slice())
        .ok()
        .flatten()
        .ok_or_else(|| {
            anyhow!(
                "SLUICE_TLS_KEY (--tls-key): {} holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
                key.display()
            )
        })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key_der)
        .context("SLUICE_TLS_CERT and SLUICE_TLS_KEY do not make a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serves `app` on `listener` under `limits` until `shutdown` completes, then drains.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let (stop_tx, stop_rx) = watch::channel(false);
    let acceptor = limits.tls.clone().map(tokio_rustls::TlsAcceptor::from);
    let limits = Arc::new(limits);
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
        };
        let (tcp, peer) = tokio::select! {
            _ = &mut shutdown => break,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: wait rather than spin.
                    tracing::warn!(error = %e, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let _ = tcp.set_nodelay(true);
        let app = app.clone();
        let limits = limits.clone();
        let stop = stop_rx.clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match acceptor {
                None => connection(tcp, app, &limits, stop).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(tcp))
                        .await
                    {
                        Ok(Ok(tls)) => connection(tls, app, &limits, stop).await,
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    let _ = stop_tx.send(true);
    // Every connection holds a slot: all slots back means all connections ended.
    let all = u32::try_from(limits.max_connections).unwrap_or(u32::MAX);
    if tokio::time::timeout(DRAIN, slots.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the shutdown's grace period; closing them");
    }
    Ok(())
}

/// What a connection did last, shared by its I/O, its service and its watchdog.
struct Activity {
    start: Instant,
    /// Milliseconds since `start` of the last byte read or written.
    last: AtomicU64,
    /// Milliseconds since `start` (plus one, so 0 means none) when the head of a request began: bytes
    /// read with no request being answered. Cleared when the request reaches the service.
    head_since: AtomicU64,
    /// Requests being answered.
    in_flight: AtomicUsize,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Activity {
            start: Instant::now(),
            last: AtomicU64::new(0),
            // The connection opened waiting for a head.
            head_since: AtomicU64::new(1),
            in_flight: AtomicUsize::new(0),
        })
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_millis() as u64
    }

    fn read(&self) {
        let now = self.now();
        self.last.store(now, Ordering::Relaxed);
        if self.in_flight.load(Ordering::Acquire) == 0 {
            let _ =
                self.head_since
                    .compare_exchange(0, now + 1, Ordering::AcqRel, Ordering::Relaxed);
        }
    }

    fn wrote(&self) {
        self.last.store(self.now(), Ordering::Relaxed);
    }

    /// Why the connection should close now, if it should.
    fn expired(&self, limits: &Limits) -> Option<Expired> {
        let now = self.now();
        let head = self.head_since.load(Ordering::Acquire);
        if head != 0
            && now.saturating_sub(head - 1) >= limits.header_read_timeout.as_millis() as u64
        {
            return Some(Expired::Head);
        }
        let idle = now.saturating_sub(self.last.load(Ordering::Relaxed));
        if head == 0
            && self.in_flight.load(Ordering::Acquire) == 0
            && idle >= limits.idle_timeout.as_millis() as u64
        {
            return Some(Expired::Idle);
        }
        None
    }
}

enum Expired {
    Head,
    Idle,
}

/// Counts a request as being answered for as long as it lives.
struct InFlight(Arc<Activity>);

impl InFlight {
    fn begin(activity: &Arc<Activity>) -> Self {
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.head_since.store(0, Ordering::Release);
        InFlight(activity.clone())
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.wrote();
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

async fn connection<S>(io: S, app: axum::Router, limits: &Limits, mut stop: watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let io = TokioIo::new(Tracked {
        inner: io,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
            let app = app.clone();
            let guard = InFlight::begin(&activity);
            async move {
                let resp = app.oneshot(req.map(axum::body::Body::new)).await;
                drop(guard);
                resp
            }
        })
    };
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    let conn = builder.serve_connection(io, service);
    tokio::pin!(conn);
    let tick = (limits.header_read_timeout.min(limits.idle_timeout) / 4)
        .clamp(Duration::from_millis(50), Duration::from_secs(1));
    let mut ticks = tokio::time::interval(tick);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stopping = *stop.borrow();
    if stopping {
        conn.as_mut().graceful_shutdown();
    }
    loop {
        tokio::select! {
            r = conn.as_mut() => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return;
            }
            changed = stop.changed(), if !stopping => {
                let _ = changed;
                stopping = true;
                conn.as_mut().graceful_shutdown();
            }
            _ = ticks.tick() => match activity.expired(limits) {
                // A client that has not finished its headers gets no answer: the connection is dropped.
                Some(Expired::Head) => {
                    tracing::debug!("closing a connection whose request headers did not arrive in time");
                    return;
                }
                Some(Expired::Idle) => {
                    conn.as_mut().graceful_shutdown();
                    stopping = true;
                }
                None => {}
            },
        }
    }
}

/// A connection's I/O that notes when bytes pass (see [`Activity`]).
struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.read();
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        r
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.wrote();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
