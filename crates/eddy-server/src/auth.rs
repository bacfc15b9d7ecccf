//! API keys, roles and rate limits.
//!
//! With keys configured, every request but `GET /healthz` (and the
//! dashboard's static chart library under `/assets/`) must carry one:
//! `Authorization: Bearer KEY`, `X-API-Key: KEY`, or `?api_key=KEY` (for
//! the dashboard page and the WebSocket, which browsers open without
//! headers). A missing or unknown key gets `401`, a key whose role is too
//! low `403`. Reading needs `viewer`; ingest needs `operator`.
//!
//! With a rate limit, each key (each client address when no keys are
//! configured) has a token bucket; an empty one gets `429` with
//! `Retry-After`.
//!
//! Keys are compared in constant time, and never logged or echoed.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
pub use eddy_core::config::Role;

use crate::api::error;
use crate::audit::{AuditLog, Entry};
use crate::jwt::{looks_like_jwt, JwtSettings};
use crate::Shared;

/// One key the server accepts.
#[derive(Clone)]
pub struct ApiKey {
    /// Its name, for logs.
    pub name: String,
    /// The secret.
    pub key: String,
    /// What it may do.
    pub role: Role,
    /// The channels it may read (see [`Caller::may_read`]); `None`: all.
    pub channels: Option<Vec<String>>,
}

/// Who made a request, as the handlers see it (a request extension).
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The channel patterns the caller may read; `None`: all.
    pub channels: Option<Vec<String>>,
}

impl Caller {
    /// Whether the caller may read `channel` (`metrics`, `alerts`,
    /// `node:NAME[.OUTPUT]`): a pattern equal to it, or ending in `*` and
    /// starting as it does. A node's outputs go with the node: a pattern
    /// `node:kpis` allows `node:kpis.late` too.
    pub fn may_read(&self, channel: &str) -> bool {
        let Some(patterns) = &self.channels else {
            return true;
        };
        let node = channel.split_once('.').map_or(channel, |(n, _)| n);
        patterns.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => channel.starts_with(prefix),
            None => p == channel || p == node,
        })
    }
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiKey")
            .field("name", &self.name)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// Who may do what, and how often.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// Accepted keys; none: no authentication.
    pub keys: Vec<ApiKey>,
    /// Requests per second and burst, per key or client address.
    pub rate: Option<(f64, f64)>,
    /// Where changes, live-feed sessions and refusals are recorded.
    pub audit: Option<Arc<AuditLog>>,
    /// JSON Web Tokens accepted besides the keys.
    pub jwt: Option<JwtSettings>,
}

/// Token buckets by key name or client address.
#[derive(Default)]
pub(crate) struct Limiter {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
}

impl Limiter {
    /// Takes a token for `who`; `Err(seconds)` to wait when empty.
    fn take(&self, who: &str, (rate, burst): (f64, f64)) -> Result<(), u64> {
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let (tokens, last) = buckets.entry(who.to_string()).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate.max(1e-9)).ceil().max(1.0) as u64)
        }
    }
}

/// Equal, in time that depends only on the lengths.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The key a request carries, if any.
fn presented(req: &Request) -> Option<String> {
    let headers = req.headers();
    if let Some(v) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        if let Some(key) = v.strip_prefix("Bearer ") {
            return Some(key.trim().to_string());
        }
    }
    if let Some(v) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(v.trim().to_string());
    }
    req.uri().query().and_then(|q| {
        q.split('&')
            .find_map(|pair| pair.strip_prefix("api_key="))
            .map(percent_decode)
    })
}

/// `%XX` escapes decoded (keys are usually plain; browsers may escape).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The role a request needs: anything but reading changes the run.
fn needed(req: &Request) -> Role {
    // Reading is for viewers; ingesting events, acknowledging alerts and
    // silencing them is for operators.
    if req.method() == Method::GET || req.method() == Method::HEAD {
        Role::Viewer
    } else {
        Role::Operator
    }
}

/// The middleware: authenticates, authorises, rate-limits and audits.
pub(crate) async fn guard(
    State(s): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    req: Request,
    next: Next,
) -> Response {
    let Some(audit) = s.access.audit.clone() else {
        return admit(&s, peer, req, next).await.0;
    };
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let (response, key) = admit(&s, peer, req, next).await;
    let status = response.status().as_u16();
    let what = if matches!(status, 401 | 403 | 429) {
        Some("refused")
    } else if method != Method::GET && method != Method::HEAD {
        Some("change")
    } else if path == "/api/v1/ws" && status == 101 {
        Some("session")
    } else {
        None
    };
    if let Some(what) = what {
        audit.record(&Entry {
            client: &peer.ip().to_string(),
            key: key.as_deref(),
            method: method.as_str(),
            path: &path,
            status,
            what,
        });
    }
    response
}

/// Authenticates, authorises and rate-limits; the response, and the
/// name of the key that was presented and found.
async fn admit(
    s: &Shared,
    peer: std::net::SocketAddr,
    mut req: Request,
    next: Next,
) -> (Response, Option<String>) {
    let access = &s.access;
    // Health, and the chart library's files (public, no data).
    let path = req.uri().path();
    let open = path == "/healthz" || path.starts_with("/assets/");
    let mut who = client(peer.ip());
    let mut name = None;
    if (!access.keys.is_empty() || access.jwt.is_some()) && !open {
        let unauthorized = |why: &str| {
            let mut r = error(StatusCode::UNAUTHORIZED, why.to_string());
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            r
        };
        let key = presented(&req);
        let (holder, role, channels) = match (key.as_deref(), &access.jwt) {
            (Some(token), Some(jwt)) if looks_like_jwt(token) => {
                match jwt.verify(token, now_secs()) {
                    Ok(claims) => (
                        format!("jwt:{}", claims.subject),
                        claims.role,
                        claims.channels,
                    ),
                    Err(why) => return (unauthorized(&why), None),
                }
            }
            (key, _) => {
                let found = key.and_then(|k| {
                    access
                        .keys
                        .iter()
                        .find(|a| same(a.key.as_bytes(), k.as_bytes()))
                });
                let Some(found) = found else {
                    let how = if access.jwt.is_some() {
                        "an API key or a JWT is needed: `Authorization: Bearer KEY`, `X-API-Key` or `?api_key=`"
                    } else {
                        "an API key is needed: `Authorization: Bearer KEY`, `X-API-Key` or `?api_key=`"
                    };
                    return (unauthorized(how), None);
                };
                (found.name.clone(), found.role, found.channels.clone())
            }
        };
        let needs = needed(&req);
        if role < needs {
            let r = error(
                StatusCode::FORBIDDEN,
                format!("`{holder}` is a {role:?}; this needs {needs:?}").to_lowercase(),
            );
            return (r, Some(holder));
        }
        who = format!("key:{holder}");
        name = Some(holder);
        req.extensions_mut().insert(Caller { channels });
    }
    if let (Some(rate), false) = (access.rate, open) {
        if let Err(wait) = s.limiter.take(&who, rate) {
            let mut r = error(
                StatusCode::TOO_MANY_REQUESTS,
                "rate limit reached; retry later",
            );
            if let Ok(v) = header::HeaderValue::from_str(&wait.to_string()) {
                r.headers_mut().insert(header::RETRY_AFTER, v);
            }
            return (r, name);
        }
    }
    (next.run(req).await.into_response(), name)
}

fn now_secs() -> i64 {
    eddy_core::time::now_ms() / 1000
}

fn client(ip: IpAddr) -> String {
    format!("ip:{ip}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_compare_whole_and_buckets_refill() {
        assert!(same(b"secret", b"secret"));
        assert!(!same(b"secret", b"secreT"));
        assert!(!same(b"secret", b"secret2"));
        assert_eq!(percent_decode("a%2Bb%3d"), "a+b=");
        let l = Limiter::default();
        assert!(l.take("k", (1.0, 2.0)).is_ok());
        assert!(l.take("k", (1.0, 2.0)).is_ok());
        assert_eq!(l.take("k", (1.0, 2.0)), Err(1));
        assert!(
            l.take("other", (1.0, 2.0)).is_ok(),
            "buckets are per client"
        );
    }
}
