//! The session a destination keeps between calls — a connection and what was set up on it (staging
//! tables, prepared statements) — with one set of rules for every database:
//!
//! - calls on one destination take turns on its session ([`Sessions::lock`]);
//! - the session is opened by the first call that needs it;
//! - a session whose connection is closed — the server ended it, or it stayed idle past the server's
//!   limit ([`Connection::is_closed`]) — is dropped before a call would use it, and a new one opened;
//! - a call that failed in a way that leaves the connection unfit ([`breaks_session`]: the server
//!   unreachable or gone, a statement cut off by a timeout) or closed drops the session
//!   ([`SessionGuard::settle`]), so that the next call starts afresh instead of failing again.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::{Mutex, MutexGuard};

use crate::{DestinationError, ErrorKind, Result};

/// A database session as [`Sessions`] keeps it.
pub(crate) trait Connection: Send {
    /// Whether the connection can no longer serve calls, `idle` after the last call on it ended.
    fn is_closed(&mut self, idle: Duration) -> bool;
}

/// Whether a call that failed with `e` leaves its connection unfit for the next call: the server was
/// unreachable or went away, or a timeout cut a statement off mid-exchange.
pub(crate) fn breaks_session(e: &DestinationError) -> bool {
    matches!(e.kind, ErrorKind::Unavailable | ErrorKind::Timeout)
}

struct Kept<S> {
    session: S,
    last_used: Instant,
}

/// The one session of a destination, opened on first use.
pub(crate) struct Sessions<S> {
    slot: Mutex<Option<Kept<S>>>,
}

impl<S: Connection> Sessions<S> {
    pub fn new() -> Self {
        Self {
            slot: Mutex::new(None),
        }
    }

    /// The slot, for this call alone, as it is (maybe empty, maybe closed).
    pub async fn lock(&self) -> SessionGuard<'_, S> {
        SessionGuard {
            slot: self.slot.lock().await,
        }
    }

    /// The slot, for this call alone, holding an open session: a closed one is replaced, a missing one
    /// opened with `connect`.
    pub async fn connected<F, Fut>(&self, connect: F) -> Result<SessionGuard<'_, S>>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<S>>,
    {
        let mut guard = self.lock().await;
        guard.connect(connect).await?;
        Ok(guard)
    }
}

/// A destination's session slot, held for one call.
pub(crate) struct SessionGuard<'a, S> {
    slot: MutexGuard<'a, Option<Kept<S>>>,
}

impl<S: Connection> SessionGuard<'_, S> {
    /// Drops the session if its connection is closed, and opens one with `connect` when there is none.
    pub async fn connect<F, Fut>(&mut self, connect: F) -> Result<&mut S>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<S>>,
    {
        if self.is_closed() {
            *self.slot = None;
        }
        if self.slot.is_none() {
            *self.slot = Some(Kept {
                session: connect().await?,
                last_used: Instant::now(),
            });
        }
        Ok(self.session())
    }

    /// Whether the slot holds a session whose connection is closed.
    pub fn is_closed(&mut self) -> bool {
        self.slot
            .as_mut()
            .is_some_and(|k| k.session.is_closed(k.last_used.elapsed()))
    }

    /// The session; the slot must hold one ([`Self::connect`]).
    pub fn session(&mut self) -> &mut S {
        &mut self
            .slot
            .as_mut()
            .expect("the session slot holds a session")
            .session
    }

    /// The session, if the slot holds one.
    pub fn get(&mut self) -> Option<&mut S> {
        self.slot.as_mut().map(|k| &mut k.session)
    }

    /// Empties the slot, giving the session to the caller.
    pub fn take(&mut self) -> Option<S> {
        self.slot.take().map(|k| k.session)
    }

    /// Puts a session (back) into the slot, replacing whatever it held.
    pub fn put(&mut self, session: S) {
        *self.slot = Some(Kept {
            session,
            last_used: Instant::now(),
        });
    }

    /// Ends a call on the session with its `result`: the session is dropped when the result shows its
    /// connection broken or closed, and kept (as used now) otherwise.
    pub fn settle<T>(&mut self, result: Result<T>) -> Result<T> {
        if let Err(e) = &result {
            if breaks_session(e) || self.is_closed() {
                *self.slot = None;
            }
        }
        if let Some(k) = self.slot.as_mut() {
            k.last_used = Instant::now();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A session that counts as closed once its connection `closes`, or after `idle_limit` unused.
    struct Fake {
        id: u32,
        closed: bool,
        idle_limit: Duration,
    }

    impl Connection for Fake {
        fn is_closed(&mut self, idle: Duration) -> bool {
            self.closed || idle >= self.idle_limit
        }
    }

    struct Db {
        opened: AtomicU32,
        idle_limit: Duration,
    }

    impl Db {
        fn new(idle_limit: Duration) -> Self {
            Self {
                opened: AtomicU32::new(0),
                idle_limit,
            }
        }
        async fn connect(&self) -> Result<Fake> {
            Ok(Fake {
                id: self.opened.fetch_add(1, Ordering::SeqCst) + 1,
                closed: false,
                idle_limit: self.idle_limit,
            })
        }
    }

    fn failed(kind: ErrorKind) -> Result<()> {
        Err(DestinationError::new(kind, "failed"))
    }

    #[tokio::test]
    async fn one_session_reused_until_broken_or_closed() {
        let db = Db::new(Duration::from_secs(3600));
        let sessions = Sessions::<Fake>::new();
        let id = |g: &mut SessionGuard<'_, Fake>| g.session().id;

        let mut g = sessions.connected(|| db.connect()).await.unwrap();
        assert_eq!(id(&mut g), 1);
        g.settle(Ok(())).unwrap();
        drop(g);
        // Reused; a failure that says nothing about the connection keeps it.
        let mut g = sessions.connected(|| db.connect()).await.unwrap();
        assert_eq!(id(&mut g), 1);
        g.settle(failed(ErrorKind::BadData)).unwrap_err();
        drop(g);
        let mut g = sessions.connected(|| db.connect()).await.unwrap();
        assert_eq!(id(&mut g), 1);
        // The server went away: the next call opens another session.
        g.settle(failed(ErrorKind::Unavailable)).unwrap_err();
        assert!(g.get().is_none());
        drop(g);
        let mut g = sessions.connected(|| db.connect()).await.unwrap();
        assert_eq!(id(&mut g), 2);
        g.settle(failed(ErrorKind::Timeout)).unwrap_err();
        drop(g);
        let mut g = sessions.connected(|| db.connect()).await.unwrap();
        assert_eq!(id(&mut g), 3);
        // A connection found closed after any failure is dropped too.
        g.session().closed = true;
        g.settle(failed(ErrorKind::Internal)).unwrap_err();
        assert!(g.get().is_none());
        drop(g);
        // One closed while unused is replaced before the call uses it.
        let mut g = sessions.connected(|| db.connect()).await.unwrap();
        assert_eq!(id(&mut g), 4);
        g.session().closed = true;
        drop(g);
        let mut g = sessions.connected(|| db.connect()).await.unwrap();
        assert_eq!(id(&mut g), 5);
        assert_eq!(db.opened.load(Ordering::SeqCst), 5);
    }

    #[tokio::test]
    async fn a_session_idle_past_the_servers_limit_is_replaced() {
        let db = Db::new(Duration::from_millis(50));
        let sessions = Sessions::<Fake>::new();
        let mut g = sessions.connected(|| db.connect()).await.unwrap();
        g.settle(Ok(())).unwrap();
        drop(g);
        let mut g = sessions.connected(|| db.connect()).await.unwrap();
        assert_eq!(g.session().id, 1);
        g.settle(Ok(())).unwrap();
        drop(g);
        tokio::time::sleep(Duration::from_millis(80)).await;
        let mut g = sessions.connected(|| db.connect()).await.unwrap();
        assert_eq!(g.session().id, 2);
    }

    #[tokio::test]
    async fn a_failed_connect_leaves_the_slot_empty() {
        let sessions = Sessions::<Fake>::new();
        let e = sessions
            .connected(|| async {
                Err::<Fake, _>(DestinationError::new(ErrorKind::Auth, "wrong password"))
            })
            .await
            .err()
            .unwrap();
        assert_eq!(e.kind, ErrorKind::Auth);
        assert!(sessions.lock().await.get().is_none());
    }
}
