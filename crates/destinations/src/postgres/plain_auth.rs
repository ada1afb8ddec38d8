//! A guard on the socket of a `prefer` connection: when the server turns TLS down, it must not be given
//! the password in a form anyone on the path can read.
//!
//! `tokio-postgres` answers whatever authentication the server asks for, and in `prefer` mode falls back
//! to plain TCP when the server answers "no TLS" — so a server (or anyone between) that refuses TLS and
//! asks for a cleartext (`AuthenticationCleartextPassword`) or MD5 (`AuthenticationMD5Password`, which a
//! listener can replay or crack) password would receive it. The driver has no setting to refuse those
//! methods, so this stream watches what the server sends before authentication ends: the one-byte
//! answer to the TLS request, then the messages of a plain session. It fails the read that would hand
//! such a request to the driver, before the driver can answer it. SCRAM (which proves the password
//! without revealing it) and `trust` pass. Once the session is encrypted, or authentication is over, it
//! only passes bytes through.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// `AuthenticationCleartextPassword` and `AuthenticationMD5Password`.
const REVEALING_METHODS: [u32; 2] = [3, 5];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Watch {
    /// The next byte answers the TLS request: `S` (TLS follows) or `N`.
    TlsAnswer,
    /// A plain session: message headers are read, bodies skipped.
    Messages { have: usize, skip: usize },
    /// Encrypted, or authenticated: nothing more to watch.
    Off,
}

/// What the guard decides about the bytes the server sent, kept apart from the I/O so it is tested alone.
#[derive(Debug)]
pub(crate) struct Inspector {
    watch: Watch,
    header: [u8; 9],
}

impl Inspector {
    /// `expects_tls_answer`: the client asked for TLS first (the `prefer` mode).
    pub fn new(expects_tls_answer: bool) -> Self {
        Inspector {
            watch: if expects_tls_answer {
                Watch::TlsAnswer
            } else {
                Watch::Messages { have: 0, skip: 0 }
            },
            header: [0; 9],
        }
    }

    /// Looks at the next bytes from the server; `Err(())` when they ask for the password in a revealing
    /// form on a plain session.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), ()> {
        while !bytes.is_empty() {
            match &mut self.watch {
                Watch::Off => return Ok(()),
                Watch::TlsAnswer => {
                    self.watch = if bytes[0] == b'S' {
                        Watch::Off
                    } else {
                        Watch::Messages { have: 0, skip: 0 }
                    };
                    bytes = &bytes[1..];
                }
                Watch::Messages { have, skip } => {
                    if *skip > 0 {
                        let n = (*skip).min(bytes.len());
                        *skip -= n;
                        bytes = &bytes[n..];
                        continue;
                    }
                    self.header[*have] = bytes[0];
                    *have += 1;
                    bytes = &bytes[1..];
                    let len = || {
                        u32::from_be_bytes([
                            self.header[1],
                            self.header[2],
                            self.header[3],
                            self.header[4],
                        ]) as usize
                    };
                    let is_auth = self.header[0] == b'R';
                    if *have == 5 && !(is_auth && len() >= 8) {
                        *skip = len().saturating_sub(4);
                        *have = 0;
                    } else if *have == 9 {
                        let code = u32::from_be_bytes([
                            self.header[5],
                            self.header[6],
                            self.header[7],
                            self.header[8],
                        ]);
                        if REVEALING_METHODS.contains(&code) {
                            return Err(());
                        }
                        if code == 0 {
                            self.watch = Watch::Off;
                            return Ok(());
                        }
                        *skip = len().saturating_sub(8);
                        *have = 0;
                    }
                }
            }
        }
        Ok(())
    }
}

/// A stream that fails, and raises `refused`, when the server asks for a revealing password on a plain
/// session (see the module documentation).
pub(crate) struct Guarded<S> {
    inner: S,
    inspector: Inspector,
    refused: Arc<AtomicBool>,
}

impl<S> Guarded<S> {
    pub fn new(inner: S, expects_tls_answer: bool, refused: Arc<AtomicBool>) -> Self {
        Guarded {
            inner,
            inspector: Inspector::new(expects_tls_answer),
            refused,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Guarded<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if this.inspector.feed(&buf.filled()[before..]).is_err() {
                    // The request never reaches the driver, so it never answers it.
                    buf.set_filled(before);
                    this.refused.store(true, Ordering::SeqCst);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "the server asked for the password unencrypted",
                    )));
                }
                Poll::Ready(Ok(()))
            }
            other => other,
        }
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Guarded<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
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
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth(code: u32, body: &[u8]) -> Vec<u8> {
        let mut m = vec![b'R'];
        m.extend_from_slice(&(8 + body.len() as u32).to_be_bytes());
        m.extend_from_slice(&code.to_be_bytes());
        m.extend_from_slice(body);
        m
    }

    /// Feeds `bytes` split at every position, so a header cut anywhere is still read right.
    fn verdict(expects_tls_answer: bool, bytes: &[u8]) -> Result<(), ()> {
        let whole = Inspector::new(expects_tls_answer).feed(bytes);
        for cut in 0..bytes.len() {
            let mut i = Inspector::new(expects_tls_answer);
            let split = i.feed(&bytes[..cut]).and_then(|()| i.feed(&bytes[cut..]));
            assert_eq!(split, whole, "cut at {cut}");
        }
        whole
    }

    #[test]
    fn cleartext_and_md5_are_refused_on_a_plain_session() {
        let mut cleartext = b"N".to_vec();
        cleartext.extend(auth(3, &[]));
        assert_eq!(verdict(true, &cleartext), Err(()));
        let mut md5 = b"N".to_vec();
        md5.extend(auth(5, b"salt"));
        assert_eq!(verdict(true, &md5), Err(()));
        assert_eq!(verdict(false, &auth(3, &[])), Err(()));
    }

    #[test]
    fn scram_and_trust_pass_and_tls_is_not_inspected() {
        // SCRAM's SASL request, its continuation and final message, then authentication ok and more.
        let mut scram = b"N".to_vec();
        scram.extend(auth(10, b"SCRAM-SHA-256\0\0"));
        scram.extend(auth(11, b"r=abc,s=def,i=4096"));
        scram.extend(auth(12, b"v=xyz"));
        scram.extend(auth(0, &[]));
        // After authentication anything may follow, a revealing-looking message included.
        scram.extend(auth(3, &[]));
        assert_eq!(verdict(true, &scram), Ok(()));
        let mut trust = b"N".to_vec();
        trust.extend(auth(0, &[]));
        trust.extend(b"S\0\0\0\x16server_version\x0015\0");
        assert_eq!(verdict(true, &trust), Ok(()));
        // An error before authentication is skipped over like any other message.
        let mut error = b"N".to_vec();
        error.extend(b"E\0\0\0\x08abcd");
        error.extend(auth(3, &[]));
        assert_eq!(verdict(true, &error), Err(()));
        // `S`: the TLS handshake follows, and whatever it carries is not read as messages.
        let mut tls = b"S".to_vec();
        tls.extend(auth(3, &[]));
        assert_eq!(verdict(true, &tls), Ok(()));
    }
}
