//! The WebSocket feed at `/api/v1/ws`: one connection, many channels.
//!
//! The client sends JSON requests:
//!
//! - `{"subscribe": "node:per_user", "filter": "n > 10", "after": 41}`:
//!   `filter` (optional) is a CEL expression over each event; `after`
//!   (optional), the last sequence number it saw, asks for what it missed.
//!   The answer is `{"subscribed": CHANNEL, "epoch": E}`, then the missed
//!   messages, or `{"channel": CHANNEL, "gone": true, "oldest": N}` when
//!   the history no longer reaches back that far.
//! - `{"unsubscribe": "node:per_user"}`.
//! - `{"subscribe": "alerts"}`: every alert rule's transitions.
//!
//! The server sends `{"channel", "epoch", "seq", "events": [...],
//! "skipped": N}` for node channels (within the channel's rate, see
//! `hub`; `skipped` counts the events left out since the previous
//! message; with a filter, only matching events, and messages with none
//! are not sent) and `{"channel": "metrics", "epoch",
//! "seq", "data": {...}}` each second. `epoch` changes when the process
//! restarts, so a client knows its sequence numbers no longer apply.
//! Pings go out every 15 s. A client that falls [`crate::hub::QUEUE`]
//! messages behind is closed with the reason "too slow".

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message as WsMessage, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use eddy_core::{Event, Expression};
use serde_json::json;

use crate::auth::Caller;
use crate::hub::{accepts, Body, Delivery, Message, Replay};
use crate::Shared;

/// Time between pings.
const HEARTBEAT: Duration = Duration::from_secs(15);
/// The close code for a client that fell behind (policy violation).
const TOO_SLOW: u16 = 1008;
/// A connection's read buffer.
const READ_BUFFER: usize = 4 * 1024;
/// The largest request a client may send.
const MAX_REQUEST: usize = 64 * 1024;

pub(crate) async fn upgrade(
    ws: WebSocketUpgrade,
    State(s): State<Arc<Shared>>,
    caller: Option<axum::Extension<Caller>>,
) -> Response {
    let caller = caller.map(|c| c.0).unwrap_or_default();
    // Clients send only short requests, and each message is written out as
    // it is sent: small buffers keep 10,000 connections in tens of MiB
    // rather than the 256 KiB each the defaults reserve.
    ws.read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
        .max_message_size(MAX_REQUEST)
        .on_upgrade(move |socket| connection(socket, s, caller))
}

/// Writes events as a JSON array of their fields.
pub(crate) fn write_events<'a>(out: &mut Vec<u8>, events: impl Iterator<Item = &'a Event>) {
    out.push(b'[');
    for (i, e) in events.enumerate() {
        if i > 0 {
            out.push(b',');
        }
        eddy_core::json::write_fields(out, &e.fields);
    }
    out.push(b']');
}

/// A message as a client with `filter` receives it, or `None` when the
/// filter left no event in it. Without a filter the text is encoded once
/// and shared by every subscriber.
fn message_text(m: &Message, filter: Option<&Expression>, epoch: u64) -> Option<Utf8Bytes> {
    if filter.is_none() {
        let shared = m
            .shared_text
            .get_or_init(|| Utf8Bytes::from(encode(m, None, epoch).unwrap_or_default()));
        return Some(shared.clone());
    }
    encode(m, filter, epoch).map(Utf8Bytes::from)
}

/// A message as the client receives it, or `None` when a filter left no
/// event in it.
fn encode(m: &Message, filter: Option<&Expression>, epoch: u64) -> Option<String> {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"channel\":");
    eddy_core::json::write_str(&mut out, &m.channel);
    out.extend_from_slice(format!(",\"epoch\":{epoch},\"seq\":{}", m.seq).as_bytes());
    match &m.body {
        Body::Events { events, skipped } => {
            let kept: Vec<&Event> = events.iter().filter(|e| accepts(filter, e)).collect();
            if kept.is_empty() && filter.is_some() {
                return None;
            }
            out.extend_from_slice(format!(",\"skipped\":{skipped},\"events\":").as_bytes());
            write_events(&mut out, kept.into_iter());
        }
        Body::Json(data) => {
            out.extend_from_slice(b",\"data\":");
            out.extend_from_slice(data.to_string().as_bytes());
        }
    }
    out.push(b'}');
    String::from_utf8(out).ok()
}

/// A client request.
enum Request {
    Subscribe {
        channel: String,
        filter: Option<Expression>,
        after: Option<u64>,
    },
    Unsubscribe(String),
}

fn parse(text: &str) -> Result<Request, String> {
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    if let Some(channel) = v.get("subscribe").and_then(|c| c.as_str()) {
        let filter = match v.get("filter") {
            None | Some(serde_json::Value::Null) => None,
            Some(f) => {
                let f = f.as_str().ok_or("`filter` must be a string")?;
                Some(Expression::compile(f).map_err(|e| format!("`filter`: {e}"))?)
            }
        };
        let after = match v.get("after") {
            None | Some(serde_json::Value::Null) => None,
            Some(a) => Some(a.as_u64().ok_or("`after` must be a sequence number")?),
        };
        return Ok(Request::Subscribe {
            channel: channel.to_string(),
            filter,
            after,
        });
    }
    if let Some(channel) = v.get("unsubscribe").and_then(|c| c.as_str()) {
        return Ok(Request::Unsubscribe(channel.to_string()));
    }
    Err("expected {\"subscribe\": CHANNEL} or {\"unsubscribe\": CHANNEL}".into())
}

/// Whether `channel` names something this run publishes.
fn known(s: &Shared, channel: &str) -> bool {
    if channel == "metrics" || channel == crate::hub::ALERTS {
        return true;
    }
    let Some(rest) = channel.strip_prefix("node:") else {
        return false;
    };
    let (node, output) = rest.split_once('.').unwrap_or((rest, "main"));
    s.status
        .metrics()
        .node(node)
        .is_some_and(|n| n.outputs.get(output).is_some())
}

async fn send(socket: &mut WebSocket, text: impl Into<Utf8Bytes>) -> bool {
    socket.send(WsMessage::Text(text.into())).await.is_ok()
}

async fn connection(mut socket: WebSocket, s: Arc<Shared>, caller: Caller) {
    let epoch = s.hub.epoch();
    let (conn, queue, mut rx) = s.hub.connect();
    let mut filters: HashMap<String, Option<Expression>> = HashMap::new();
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    heartbeat.tick().await;
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(WsMessage::Text(t))) => t,
                    Some(Ok(WsMessage::Close(_))) | Some(Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                let answer = match parse(&text) {
                    Err(e) => json!({ "error": e }).to_string(),
                    Ok(Request::Unsubscribe(channel)) => {
                        s.hub.unsubscribe(conn, &channel);
                        filters.remove(&channel);
                        json!({ "unsubscribed": channel }).to_string()
                    }
                    Ok(Request::Subscribe { channel, .. }) if !known(&s, &channel) => json!({
                        "error": format!("no channel `{channel}`: use `metrics`, `alerts` or `node:NAME[.OUTPUT]`")
                    })
                    .to_string(),
                    Ok(Request::Subscribe { channel, .. }) if !caller.may_read(&channel) => json!({
                        "error": format!("this key may not read channel `{channel}`"),
                        "channel": channel,
                    })
                    .to_string(),
                    Ok(Request::Subscribe { channel, filter, after }) => {
                        let replay = s.hub.subscribe(conn, &queue, &channel, after);
                        filters.insert(channel.clone(), filter.clone());
                        let ok = json!({ "subscribed": channel, "epoch": epoch }).to_string();
                        if !send(&mut socket, ok).await {
                            break;
                        }
                        match replay {
                            Replay::Gone { oldest } => {
                                json!({ "channel": channel, "gone": true, "oldest": oldest }).to_string()
                            }
                            Replay::Missed(missed) => {
                                let mut alive = true;
                                for m in &missed {
                                    if let Some(text) = message_text(m, filter.as_ref(), epoch) {
                                        alive = send(&mut socket, text).await;
                                        if !alive {
                                            break;
                                        }
                                    }
                                }
                                if !alive {
                                    break;
                                }
                                continue;
                            }
                        }
                    }
                };
                if !send(&mut socket, answer).await {
                    break;
                }
            }
            delivery = rx.recv() => match delivery {
                Some(Delivery::Message(m)) => {
                    let Some(filter) = filters.get(&*m.channel) else { continue };
                    if let Some(text) = message_text(&m, filter.as_ref(), epoch) {
                        if !send(&mut socket, text).await {
                            break;
                        }
                    }
                }
                Some(Delivery::TooSlow) => {
                    let frame = CloseFrame {
                        code: TOO_SLOW,
                        reason: Utf8Bytes::from_static("too slow: fell too far behind the feed"),
                    };
                    let _ = socket.send(WsMessage::Close(Some(frame))).await;
                    break;
                }
                None => break,
            },
            _ = heartbeat.tick() => {
                if socket.send(WsMessage::Ping(Default::default())).await.is_err() {
                    break;
                }
            }
        }
    }
    s.hub.disconnect(conn);
}
