//! Headers and checks on every answer, UI and API alike: a Content-Security-Policy, no framing, no
//! content sniffing, no referrer; and, when the server listens on loopback, a Host check against DNS
//! rebinding.
//!
//! The built UI is one script file and one style sheet loaded from `/assets`, with no inline script, so
//! the policy allows scripts and styles from the server alone. Styles the UI sets from script (a
//! progress bar's width) go through the CSSOM, which `style-src 'self'` does not block; `data:` images
//! are the favicon.
//!
//! DNS rebinding: a page on `evil.example` whose name the attacker re-points to 127.0.0.1 can make the
//! victim's browser talk to a Sluice on loopback as a same-origin request. The browser still sends
//! `Host: evil.example`, so a server on loopback answers only requests naming a loopback host.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;
use crate::AppState;

pub const CONTENT_SECURITY_POLICY: &str =
    "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

pub async fn headers(req: Request, next: Next) -> Response {
    let mut response = next.run(req).await;
    let h = response.headers_mut();
    let set = [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    for (name, value) in set {
        h.insert(name, value);
    }
    response
}

pub async fn check_host(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if !state.loopback_hosts_only {
        return next.run(req).await;
    }
    // HTTP/1.1 names the host in `Host`, HTTP/2 in the URI's authority; a request naming none (HTTP/1.0)
    // cannot come from a browser page.
    let host = req
        .headers()
        .get(header::HOST)
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .or_else(|| req.uri().authority().map(|a| a.as_str()));
    match host {
        Some(h) if !is_loopback_host(h) => ApiError::new(
            StatusCode::MISDIRECTED_REQUEST,
            "HostNotAllowed",
            "this server listens on a loopback address and answers only requests for localhost, \
             127.0.0.1 or [::1]",
        )
        .into_response(),
        _ => next.run(req).await,
    }
}

/// Whether a `Host` value names a loopback host, with any port.
pub fn is_loopback_host(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inner, port))
                if port.is_empty() || port.strip_prefix(':').is_some_and(valid_port) =>
            {
                return inner == "::1"
            }
            _ => return false,
        }
    } else {
        match host.split_once(':') {
            Some((name, port)) if valid_port(port) => name,
            Some(_) => return false,
            None => host,
        }
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost") || name == "127.0.0.1"
}

fn valid_port(s: &str) -> bool {
    s.parse::<u16>().is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for ok in [
            "localhost",
            "localhost:7878",
            "LOCALHOST:1",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:7878",
            "[::1]",
            "[::1]:7878",
        ] {
            assert!(is_loopback_host(ok), "{ok}");
        }
        for bad in [
            "evil.example",
            "evil.example:7878",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "127.0.0.2",
            "[::2]:7878",
            "[::1]x",
            "localhost:99999",
            "localhost:abc",
            "",
            "0.0.0.0",
        ] {
            assert!(!is_loopback_host(bad), "{bad}");
        }
    }
}
