//! Fake database servers that record every byte a client sends them, for the tests proving a password
//! never leaves where it must not: the destination tests use them directly, and the API's tests include
//! this file by path. Each speaks just enough of its protocol to be sent a password.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Everything the server's clients sent, all connections together.
pub type Received = Arc<Mutex<Vec<u8>>>;

/// A listener on a free loopback port. Each connection gets `greeting` (when not empty); then each read
/// is recorded and answered with what `answer` (made afresh per connection) says, and the connection
/// ends when it says `None`, or the client is silent for 5 seconds.
pub async fn recording_server<A>(
    greeting: Vec<u8>,
    answer: impl Fn() -> A + Send + Sync + 'static,
) -> (u16, Received)
where
    A: FnMut(&[u8]) -> Option<Vec<u8>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Received::default();
    let log = received.clone();
    let greeting = Arc::new(greeting);
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let log = log.clone();
            let greeting = greeting.clone();
            let mut answer = answer();
            tokio::spawn(async move {
                if !greeting.is_empty() && socket.write_all(&greeting).await.is_err() {
                    return;
                }
                let mut buf = vec![0u8; 4096];
                while let Ok(Ok(n)) =
                    tokio::time::timeout(Duration::from_secs(5), socket.read(&mut buf)).await
                {
                    if n == 0 {
                        break;
                    }
                    log.lock().unwrap().extend_from_slice(&buf[..n]);
                    let Some(reply) = answer(&buf[..n]) else {
                        break;
                    };
                    if socket.write_all(&reply).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (port, received)
}

/// A PostgreSQL server that turns TLS down and asks for the password in cleartext — what anyone on the
/// path can answer.
pub async fn postgres_asking_cleartext() -> (u16, Received) {
    recording_server(Vec::new(), || {
        let mut asked = false;
        move |read: &[u8]| {
            // The TLS request (length 8, code 80877103) gets "no"; the start-up message gets
            // AuthenticationCleartextPassword.
            if read.len() == 8 && read[4..8] == 80877103u32.to_be_bytes() {
                Some(b"N".to_vec())
            } else if !asked {
                asked = true;
                Some(b"R\0\0\0\x08\0\0\0\x03".to_vec())
            } else {
                None
            }
        }
    })
    .await
}

/// A MySQL server without TLS that switches the login to `mysql_clear_password` — what anyone on the
/// path can answer to read the password.
pub async fn mysql_switching_to_cleartext() -> (u16, Received) {
    fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
        let mut p = (payload.len() as u32).to_le_bytes()[..3].to_vec();
        p.push(seq);
        p.extend_from_slice(payload);
        p
    }
    // Protocol 41, secure connection, plugin auth, connect with db; no CLIENT_SSL.
    let caps: u32 = 0x1 | 0x8 | 0x200 | 0x2000 | 0x8000 | 0x80000 | 0x200000;
    let mut hello = vec![10u8];
    hello.extend_from_slice(b"5.7.99-fake\0");
    hello.extend_from_slice(&7u32.to_le_bytes());
    hello.extend_from_slice(b"abcdefgh\0");
    hello.extend_from_slice(&(caps as u16).to_le_bytes());
    hello.push(0x21);
    hello.extend_from_slice(&2u16.to_le_bytes());
    hello.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    hello.push(21);
    hello.extend_from_slice(&[0; 10]);
    hello.extend_from_slice(b"ijklmnopqrst\0");
    hello.extend_from_slice(b"mysql_native_password\0");
    recording_server(packet(0, &hello), || {
        let mut switched = false;
        move |_: &[u8]| {
            if switched {
                return None;
            }
            switched = true;
            Some(packet(2, b"\xfemysql_clear_password\0"))
        }
    })
    .await
}
