//! The live hub between the engine and the server's clients: the runtime
//! publishes every emitted batch into it (it is the run's
//! [`Publisher`]), and it keeps, per channel, a bounded history of
//! numbered messages and the connections subscribed.
//!
//! Channels: `node:NAME` (the node's main output), `node:NAME.OUTPUT`
//! (another output: `late`, `dead_letters`, …) and `metrics` (a pipeline
//! snapshot each second, published by the server).
//!
//! The engine's threads never wait here: a message keeps at most
//! [`MAX_EVENTS`] events of a batch (the rest are counted as skipped), and
//! a subscriber whose queue is full is disconnected as too slow instead of
//! holding the others back.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use eddy_core::{Event, Expression};
use eddy_runtime::Publisher;
use tokio::sync::mpsc;

/// Events kept per message: a browser cannot show more per batch.
pub const MAX_EVENTS: usize = 100;
/// Messages kept per channel for reconnecting clients and `recent`.
pub const HISTORY: usize = 256;
/// Messages queued per connection before it counts as too slow.
pub const QUEUE: usize = 1024;

/// One numbered message of a channel.
#[derive(Debug)]
pub struct Message {
    /// The channel it was published on.
    pub channel: Arc<str>,
    /// Its number in the channel, from 1.
    pub seq: u64,
    /// What it carries.
    pub body: Body,
}

/// What a message carries.
#[derive(Debug)]
pub enum Body {
    /// Events a node emitted (at most [`MAX_EVENTS`] of the batch) and how
    /// many more the batch had.
    Events {
        /// The events kept.
        events: Vec<Event>,
        /// Events of the batch not kept.
        skipped: usize,
    },
    /// A JSON document (the `metrics` channel).
    Json(serde_json::Value),
}

/// What a connection receives: a message, or the reason it is closed.
#[derive(Debug, Clone)]
pub enum Delivery {
    /// A message of a channel it subscribed to.
    Message(Arc<Message>),
    /// The connection fell behind and is dropped.
    TooSlow,
}

/// A subscription of one connection to one channel.
struct Subscriber {
    conn: u64,
    queue: mpsc::Sender<Delivery>,
}

#[derive(Default)]
struct Channel {
    history: VecDeque<Arc<Message>>,
    next_seq: u64,
    subscribers: Vec<Subscriber>,
}

/// The hub: per channel, its history and subscribers.
pub struct Hub {
    /// A number that changes with every process, so a client can tell
    /// that sequence numbers restarted.
    epoch: u64,
    channels: Mutex<HashMap<Arc<str>, Channel>>,
    next_conn: AtomicU64,
    connections: AtomicUsize,
    dropped_slow: AtomicU64,
}

/// The result of a subscription: the history after the client's last
/// sequence, or that part of it is gone.
#[derive(Debug)]
pub enum Replay {
    /// Messages after the one asked for, oldest first.
    Missed(Vec<Arc<Message>>),
    /// The oldest message kept is this one; earlier ones are gone.
    Gone {
        /// The oldest sequence number still kept.
        oldest: u64,
    },
}

impl Default for Hub {
    fn default() -> Self {
        Hub::new()
    }
}

impl Hub {
    /// An empty hub with a fresh epoch.
    pub fn new() -> Hub {
        let epoch = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Hub {
            epoch,
            channels: Mutex::new(HashMap::new()),
            next_conn: AtomicU64::new(1),
            connections: AtomicUsize::new(0),
            dropped_slow: AtomicU64::new(0),
        }
    }

    /// This process's epoch.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    fn channels(&self) -> MutexGuard<'_, HashMap<Arc<str>, Channel>> {
        self.channels.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes `body` on `channel`: numbers it, keeps it in the history
    /// and queues it to every subscriber (dropping those whose queue is
    /// full).
    pub fn send(&self, channel: &str, body: Body) {
        let mut channels = self.channels();
        let ch = match channels.get_mut(channel) {
            Some(ch) => ch,
            None => channels.entry(Arc::from(channel)).or_default(),
        };
        ch.next_seq += 1;
        let message = Arc::new(Message {
            channel: Arc::from(channel),
            seq: ch.next_seq,
            body,
        });
        if ch.history.len() == HISTORY {
            ch.history.pop_front();
        }
        ch.history.push_back(message.clone());
        let mut dropped = 0;
        ch.subscribers.retain(|s| {
            match s.queue.try_send(Delivery::Message(message.clone())) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    // Tell it why, if a last message fits; it closes either way.
                    let _ = s.queue.try_send(Delivery::TooSlow);
                    dropped += 1;
                    false
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            }
        });
        self.dropped_slow.fetch_add(dropped, Relaxed);
    }

    /// A new connection: its id and the queue it reads.
    pub fn connect(&self) -> (u64, mpsc::Sender<Delivery>, mpsc::Receiver<Delivery>) {
        self.connections.fetch_add(1, Relaxed);
        let (tx, rx) = mpsc::channel(QUEUE);
        (self.next_conn.fetch_add(1, Relaxed), tx, rx)
    }

    /// A connection closed: removes its subscriptions.
    pub fn disconnect(&self, conn: u64) {
        self.connections.fetch_sub(1, Relaxed);
        for ch in self.channels().values_mut() {
            ch.subscribers.retain(|s| s.conn != conn);
        }
    }

    /// Subscribes `conn` to `channel`; with `after`, also returns what it
    /// missed since that sequence number (queued before anything newer).
    pub fn subscribe(
        &self,
        conn: u64,
        queue: &mpsc::Sender<Delivery>,
        channel: &str,
        after: Option<u64>,
    ) -> Replay {
        let mut channels = self.channels();
        let ch = channels.entry(Arc::from(channel)).or_default();
        ch.subscribers.retain(|s| s.conn != conn);
        ch.subscribers.push(Subscriber {
            conn,
            queue: queue.clone(),
        });
        let Some(after) = after else {
            return Replay::Missed(Vec::new());
        };
        let oldest = ch.history.front().map_or(ch.next_seq + 1, |m| m.seq);
        if after + 1 < oldest && after < ch.next_seq {
            return Replay::Gone { oldest };
        }
        Replay::Missed(
            ch.history
                .iter()
                .filter(|m| m.seq > after)
                .cloned()
                .collect(),
        )
    }

    /// Removes `conn`'s subscription to `channel`.
    pub fn unsubscribe(&self, conn: u64, channel: &str) {
        if let Some(ch) = self.channels().get_mut(channel) {
            ch.subscribers.retain(|s| s.conn != conn);
        }
    }

    /// The newest events of `channel`, newest last, at most `limit`, those
    /// `filter` accepts.
    pub fn recent(&self, channel: &str, limit: usize, filter: Option<&Expression>) -> Vec<Event> {
        let channels = self.channels();
        let Some(ch) = channels.get(channel) else {
            return Vec::new();
        };
        let mut out: Vec<Event> = Vec::new();
        for m in ch.history.iter().rev() {
            if let Body::Events { events, .. } = &m.body {
                for e in events.iter().rev() {
                    if accepts(filter, e) {
                        out.push(e.clone());
                        if out.len() == limit {
                            out.reverse();
                            return out;
                        }
                    }
                }
            }
        }
        out.reverse();
        out
    }

    /// Open WebSocket connections.
    pub fn connections(&self) -> usize {
        self.connections.load(Relaxed)
    }

    /// Connections dropped for falling behind, since the start.
    pub fn dropped_slow(&self) -> u64 {
        self.dropped_slow.load(Relaxed)
    }
}

/// Whether `filter` (none: everything) accepts `e`; an expression that
/// cannot be evaluated on it rejects it.
pub fn accepts(filter: Option<&Expression>, e: &Event) -> bool {
    filter.is_none_or(|f| f.eval_bool(e).unwrap_or(false))
}

/// The channel of a node's output.
pub fn node_channel(node: &str, output: &str) -> String {
    if output == "main" {
        format!("node:{node}")
    } else {
        format!("node:{node}.{output}")
    }
}

impl Publisher for Hub {
    fn wants(&self, _node: &str) -> bool {
        true
    }

    fn publish(&self, node: &str, output: &str, events: &[Event]) {
        if events.is_empty() {
            return;
        }
        let keep = events.len().min(MAX_EVENTS);
        let body = Body::Events {
            events: events[events.len() - keep..].to_vec(),
            skipped: events.len() - keep,
        };
        self.send(&node_channel(node, output), body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::{Fields, Sym, Value};

    fn event(i: i64) -> Event {
        let mut f = Fields::default();
        f.push(Sym::intern("i"), Value::Int(i));
        Event::new(i, f)
    }

    fn seqs(replay: Replay) -> Vec<u64> {
        match replay {
            Replay::Missed(m) => m.iter().map(|m| m.seq).collect(),
            Replay::Gone { oldest } => vec![0, oldest],
        }
    }

    #[test]
    fn batches_are_numbered_kept_and_replayed_after_the_last_seen() {
        let hub = Hub::new();
        for i in 0..5 {
            hub.publish("w", "main", &[event(i)]);
        }
        let (conn, tx, mut rx) = hub.connect();
        assert_eq!(seqs(hub.subscribe(conn, &tx, "node:w", Some(3))), [4, 5]);
        hub.publish("w", "main", &[event(5)]);
        match rx.try_recv() {
            Ok(Delivery::Message(m)) => assert_eq!((m.seq, &*m.channel), (6, "node:w")),
            other => panic!("{other:?}"),
        }
        // Other outputs are channels of their own.
        hub.publish("w", "late", &[event(9)]);
        assert!(rx.try_recv().is_err());
        let recent = hub.recent("node:w", 2, None);
        assert_eq!(recent.iter().map(|e| e.time).collect::<Vec<_>>(), [4, 5]);
        let odd = Expression::compile("i % 2 == 1").unwrap();
        let recent = hub.recent("node:w", 10, Some(&odd));
        assert_eq!(recent.iter().map(|e| e.time).collect::<Vec<_>>(), [1, 3, 5]);
    }

    #[test]
    fn a_client_too_far_behind_is_told_what_is_gone() {
        let hub = Hub::new();
        for i in 0..(HISTORY as i64 + 10) {
            hub.publish("w", "main", &[event(i)]);
        }
        let (conn, tx, _rx) = hub.connect();
        assert_eq!(seqs(hub.subscribe(conn, &tx, "node:w", Some(2))), [0, 11]);
        // Up to date: nothing missed.
        let last = HISTORY as u64 + 10;
        assert_eq!(
            seqs(hub.subscribe(conn, &tx, "node:w", Some(last))),
            Vec::<u64>::new()
        );
    }

    #[test]
    fn a_subscriber_that_stops_reading_is_dropped_and_others_go_on() {
        let hub = Hub::new();
        let (slow, slow_tx, _slow_rx) = hub.connect();
        let (fast, fast_tx, mut fast_rx) = hub.connect();
        hub.subscribe(slow, &slow_tx, "node:w", None);
        hub.subscribe(fast, &fast_tx, "node:w", None);
        let mut got = 0;
        for i in 0..(QUEUE as i64 + 5) {
            hub.publish("w", "main", &[event(i)]);
            while let Ok(Delivery::Message(_)) = fast_rx.try_recv() {
                got += 1;
            }
        }
        assert_eq!(got, QUEUE + 5, "the reading client got every message");
        assert_eq!(hub.dropped_slow(), 1);
    }

    #[test]
    fn a_batch_keeps_its_newest_events_and_counts_the_rest() {
        let hub = Hub::new();
        let batch: Vec<Event> = (0..250).map(event).collect();
        hub.publish("w", "main", &batch);
        let recent = hub.recent("node:w", 1000, None);
        assert_eq!(recent.len(), MAX_EVENTS);
        assert_eq!(recent[0].time, 150);
    }
}
