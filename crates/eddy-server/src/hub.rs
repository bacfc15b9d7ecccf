//! The live hub between the engine and the server's clients: the runtime
//! publishes every emitted batch into it (it is the run's
//! [`Publisher`]), and it keeps, per channel, a bounded history of
//! numbered messages and the connections subscribed.
//!
//! Channels: `node:NAME` (the node's main output), `node:NAME.OUTPUT`
//! (another output: `late`, `dead_letters`, …) and `metrics` (a pipeline
//! snapshot each second, published by the server).
//!
//! The engine's threads never wait here, and pay little: each channel
//! keeps at most [`RATE`] events a second (bursts up to [`BURST`], at most
//! [`MAX_EVENTS`] per message), newest of each batch first; the rest are
//! counted as skipped in the next message. No browser shows a million
//! events a second, and copying them would cost the engine a quarter of
//! its throughput. A subscriber whose queue is full is disconnected as too
//! slow instead of holding the others back.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use eddy_core::{Event, Expression, Value};
use eddy_runtime::Publisher;
use tokio::sync::mpsc;

/// Events kept per message.
pub const MAX_EVENTS: usize = 1000;
/// Fewest events a message of a larger batch carries.
pub const MIN_EVENTS: usize = 100;
/// Events a channel keeps per second, on average.
pub const RATE: f64 = 2000.0;
/// Events a channel may keep at once after a quiet spell (a window
/// firing all its keys).
pub const BURST: f64 = 10_000.0;
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
    /// Its text for subscribers without a filter, encoded by the first
    /// that sends it and shared by the rest.
    pub shared_text: std::sync::OnceLock<axum::extract::ws::Utf8Bytes>,
}

/// What a message carries.
#[derive(Debug)]
pub enum Body {
    /// Events a node emitted (the newest of the batch) and how many were
    /// not kept since the previous message (see [`RATE`]).
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

struct Channel {
    history: VecDeque<Arc<Message>>,
    next_seq: u64,
    subscribers: Vec<Subscriber>,
    /// Events the channel may still keep (refilled at [`RATE`]).
    tokens: f64,
    refilled: std::time::Instant,
    /// Events not kept since the last message.
    skipped: usize,
}

impl Default for Channel {
    fn default() -> Channel {
        Channel {
            history: VecDeque::new(),
            next_seq: 0,
            subscribers: Vec::new(),
            tokens: BURST,
            refilled: std::time::Instant::now(),
            skipped: 0,
        }
    }
}

impl Channel {
    /// How many of `n` events to keep now; the others count as skipped.
    fn take(&mut self, n: usize) -> usize {
        let now = std::time::Instant::now();
        let refill = now.duration_since(self.refilled).as_secs_f64() * RATE;
        self.tokens = (self.tokens + refill).min(BURST);
        self.refilled = now;
        // A message carries a whole batch or at least MIN_EVENTS of it: a
        // trickle of one-event messages would cost as much as the events.
        let room = self.tokens as usize;
        let keep = if room >= n.min(MIN_EVENTS) {
            n.min(MAX_EVENTS).min(room)
        } else {
            0
        };
        self.tokens -= keep as f64;
        self.skipped += n - keep;
        keep
    }

    /// Numbers `body`, keeps it in the history and queues it to every
    /// subscriber, dropping those whose queue is full; returns how many
    /// were dropped.
    fn post(&mut self, channel: &str, body: Body) -> u64 {
        self.next_seq += 1;
        let message = Arc::new(Message {
            channel: Arc::from(channel),
            seq: self.next_seq,
            body,
            shared_text: std::sync::OnceLock::new(),
        });
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(message.clone());
        let mut dropped = 0;
        self.subscribers.retain(|s| {
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
        dropped
    }
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
    /// Events the channels' rate left out of the feed (see [`RATE`]).
    skipped: AtomicU64,
    /// The alert rules' node names: their output also goes to the
    /// `alerts` channel and updates `active`.
    alert_rules: Vec<String>,
    /// Each open (pending or firing) alert's latest event, by fingerprint.
    active: Mutex<BTreeMap<String, Event>>,
    /// The latest alert transitions and acknowledgements, oldest first.
    history: Mutex<VecDeque<serde_json::Value>>,
    /// Where the history is kept across runs, if anywhere.
    history_file: Option<Mutex<HistoryFile>>,
}

/// The alert history on disk: one JSON object per line, appended by the
/// server each second (never by an engine thread), rewritten with the
/// latest [`ALERT_HISTORY`] once it would hold twice that many.
struct HistoryFile {
    path: std::path::PathBuf,
    file: std::fs::File,
    lines: usize,
    /// Entries recorded since the last save.
    unwritten: Vec<serde_json::Value>,
    /// More came than are kept: the next save rewrites the file.
    overflow: bool,
}

/// Alert history entries kept (the oldest go first).
pub const ALERT_HISTORY: usize = 10_000;

/// The channel every alert rule's transitions are published on.
pub const ALERTS: &str = "alerts";

impl HistoryFile {
    /// Notes `entry` for the next save.
    fn note(&mut self, entry: &serde_json::Value) {
        if self.unwritten.len() < ALERT_HISTORY {
            self.unwritten.push(entry.clone());
        } else {
            self.overflow = true;
        }
    }

    /// Appends what was noted since the last save, or rewrites the file
    /// with `kept` (which holds it too) when it would grow past twice
    /// [`ALERT_HISTORY`] lines.
    fn save(&mut self, kept: &VecDeque<serde_json::Value>) -> std::io::Result<()> {
        use std::io::Write;
        let lines = |entries: &mut dyn Iterator<Item = &serde_json::Value>| {
            let mut text = String::new();
            for e in entries {
                text.push_str(&e.to_string());
                text.push('\n');
            }
            text
        };
        if self.overflow || self.lines + self.unwritten.len() >= 2 * ALERT_HISTORY {
            let tmp = self.path.with_extension("ndjson.tmp");
            std::fs::write(&tmp, lines(&mut kept.iter()))?;
            std::fs::rename(&tmp, &self.path)?;
            self.file = std::fs::OpenOptions::new().append(true).open(&self.path)?;
            self.lines = kept.len();
        } else {
            self.file
                .write_all(lines(&mut self.unwritten.iter()).as_bytes())?;
            self.lines += self.unwritten.len();
        }
        self.unwritten.clear();
        self.overflow = false;
        Ok(())
    }
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
            skipped: AtomicU64::new(0),
            alert_rules: Vec::new(),
            active: Mutex::new(BTreeMap::new()),
            history: Mutex::new(VecDeque::new()),
            history_file: None,
        }
    }

    /// This hub keeping the alert history in `path` too: what an earlier
    /// run left there is read back (lines that do not parse are skipped),
    /// and every new entry is appended.
    pub fn with_history_file(mut self, path: &std::path::Path) -> std::io::Result<Hub> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let entries: Vec<serde_json::Value> = text
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        let lines = entries.len();
        let keep = entries.len().saturating_sub(ALERT_HISTORY);
        *self
            .history
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner) = entries.into_iter().skip(keep).collect();
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        self.history_file = Some(Mutex::new(HistoryFile {
            path: path.to_path_buf(),
            file,
            lines,
            unwritten: Vec::new(),
            overflow: false,
        }));
        Ok(self)
    }

    /// The hub of a pipeline whose alert rules are the nodes `names`.
    pub fn with_alert_rules(mut self, names: Vec<String>) -> Hub {
        self.alert_rules = names;
        self
    }

    /// The open alerts (pending or firing), latest event of each, ordered
    /// by fingerprint.
    pub fn active_alerts(&self) -> Vec<Event> {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }

    /// The alert history, newest first: transitions (`status`, `cause`,
    /// `at` = the transition's event time) and acknowledgements (`by`,
    /// `comment`), optionally of one `fingerprint` or `alertname`.
    pub fn alert_history(
        &self,
        fingerprint: Option<&str>,
        alertname: Option<&str>,
        limit: usize,
    ) -> Vec<serde_json::Value> {
        let history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        history
            .iter()
            .rev()
            .filter(|h| fingerprint.is_none_or(|f| h["fingerprint"] == f))
            .filter(|h| alertname.is_none_or(|a| h["alertname"] == a))
            .take(limit)
            .cloned()
            .collect()
    }

    /// Adds an entry to the alert history (its file gets it at the next
    /// [`Hub::save_history`]).
    pub fn record(&self, entry: serde_json::Value) {
        let mut history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(file) = &self.history_file {
            file.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .note(&entry);
        }
        if history.len() == ALERT_HISTORY {
            history.pop_front();
        }
        history.push_back(entry);
    }

    /// Writes the history entries recorded since the last call to its file
    /// (the server does each second and when it stops).
    pub fn save_history(&self) {
        let Some(file) = &self.history_file else {
            return;
        };
        let history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
        let mut file = file.lock().unwrap_or_else(PoisonError::into_inner);
        if let Err(e) = file.save(&history) {
            tracing::warn!(path = %file.path.display(), error = %e, "cannot write the alert history");
        }
    }

    /// Keeps the open alerts current with a rule's transitions and records
    /// each in the history: every one is applied, whatever the channel's
    /// rate budget drops.
    fn track(&self, events: &[Event]) {
        let status = eddy_core::sym!("status");
        let fingerprint = eddy_core::sym!("fingerprint");
        let text = |e: &Event, name: &str| {
            e.get(eddy_core::Sym::intern(name))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        for e in events {
            self.record(serde_json::json!({
                "fingerprint": text(e, "fingerprint"),
                "alertname": text(e, "alertname"),
                "severity": text(e, "severity"),
                "status": text(e, "status"),
                "cause": text(e, "cause"),
                "at": eddy_core::time::format_rfc3339(e.time),
            }));
        }
        let mut active = self.active.lock().unwrap_or_else(PoisonError::into_inner);
        for e in events {
            let (Some(s), Some(f)) = (
                e.get(status).and_then(Value::as_str),
                e.get(fingerprint).and_then(Value::as_str),
            ) else {
                continue;
            };
            if matches!(s, "pending" | "firing") {
                active.insert(f.to_string(), e.clone());
            } else {
                active.remove(f);
            }
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
        let dropped = self.channel(channel, |ch| ch.post(channel, body));
        self.dropped_slow.fetch_add(dropped, Relaxed);
    }

    /// Runs `f` on `channel`, created if new.
    fn channel<T>(&self, channel: &str, f: impl FnOnce(&mut Channel) -> T) -> T {
        let mut channels = self.channels();
        match channels.get_mut(channel) {
            Some(ch) => f(ch),
            None => f(channels.entry(Arc::from(channel)).or_default()),
        }
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

    /// Events the feed left out to keep each channel within [`RATE`],
    /// since the start.
    pub fn skipped(&self) -> u64 {
        self.skipped.load(Relaxed)
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
        if output == "main" && self.alert_rules.iter().any(|r| r == node) {
            self.track(events);
            self.post_events(ALERTS, events);
        }
        self.post_events(&node_channel(node, output), events);
    }
}

impl Hub {
    /// Posts `events` on `channel` within its rate budget.
    fn post_events(&self, channel: &str, events: &[Event]) {
        let dropped = self.channel(channel, |ch| {
            let keep = ch.take(events.len());
            self.skipped
                .fetch_add((events.len() - keep) as u64, Relaxed);
            if keep == 0 {
                return 0;
            }
            let body = Body::Events {
                events: events[events.len() - keep..].to_vec(),
                skipped: std::mem::take(&mut ch.skipped),
            };
            ch.post(channel, body)
        });
        self.dropped_slow.fetch_add(dropped, Relaxed);
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
    fn a_channel_keeps_the_newest_events_within_its_rate_and_counts_the_rest() {
        let hub = Hub::new();
        let (conn, tx, mut rx) = hub.connect();
        hub.subscribe(conn, &tx, "node:w", None);
        let batch: Vec<Event> = (0..2500).map(event).collect();
        hub.publish("w", "main", &batch);
        let recent = hub.recent("node:w", 5000, None);
        assert_eq!(recent.len(), MAX_EVENTS, "at most MAX_EVENTS per message");
        assert_eq!(recent[0].time, 1500, "the newest of the batch");
        // Past the burst, batches are skipped until the budget refills,
        // and the next message says how many events it did not carry.
        let big: Vec<Event> = (0..MAX_EVENTS as i64).map(event).collect();
        let mut published = 1;
        let mut sent = 0;
        while (sent as f64) < BURST * 2.0 {
            hub.publish("w", "main", &big);
            published += 1;
            sent += big.len();
        }
        let mut kept = 0;
        let mut skipped = 0;
        while let Ok(Delivery::Message(m)) = rx.try_recv() {
            if let Body::Events { events, skipped: s } = &m.body {
                kept += events.len();
                skipped += s;
            }
        }
        assert!(kept < 2500 + sent, "some were skipped");
        assert!(published > 2);
        std::thread::sleep(std::time::Duration::from_millis(50));
        hub.publish("w", "main", &[event(1)]);
        while let Ok(Delivery::Message(m)) = rx.try_recv() {
            if let Body::Events { events, skipped: s } = &m.body {
                kept += events.len();
                skipped += s;
            }
        }
        assert_eq!(
            kept + skipped,
            2500 + sent + 1,
            "every event kept or counted"
        );
        // The count of what was left out reached the client.
        assert!(skipped >= 1500, "{skipped}");
    }

    /// The history outlives the hub through its file, which is rewritten
    /// with the latest entries once it holds twice as many as are kept.
    #[test]
    fn the_history_file_is_read_back_and_kept_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h").join("history.ndjson");
        let hub = Hub::new().with_history_file(&path).unwrap();
        for i in 0..3 {
            hub.record(serde_json::json!({"fingerprint": "a", "n": i}));
        }
        hub.save_history();
        drop(hub);
        std::fs::write(
            &path,
            std::fs::read_to_string(&path).unwrap() + "not json\n",
        )
        .unwrap();
        let hub = Hub::new().with_history_file(&path).unwrap();
        let back = hub.alert_history(Some("a"), None, 10);
        let ns: Vec<i64> = back.iter().map(|h| h["n"].as_i64().unwrap()).collect();
        assert_eq!(ns, [2, 1, 0], "newest first, the bad line skipped");
        for i in 3..(2 * ALERT_HISTORY as i64 + 10) {
            hub.record(serde_json::json!({"fingerprint": "a", "n": i}));
            if i % 1000 == 0 {
                hub.save_history();
            }
        }
        hub.save_history();
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert!(
            lines <= ALERT_HISTORY + 20,
            "the file was not rewritten: {lines} lines"
        );
        let again = Hub::new().with_history_file(&path).unwrap();
        let newest = again.alert_history(None, None, 1);
        assert_eq!(newest[0]["n"], 2 * ALERT_HISTORY as i64 + 9);
        assert_eq!(
            again.alert_history(None, None, usize::MAX).len(),
            ALERT_HISTORY
        );
    }
}
