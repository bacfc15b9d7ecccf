//! `type = "redis"`: writes events to Redis as stream entries, hash
//! fields, sorted-set members or pub/sub messages.
//!
//! ```toml
//! [sinks.kpis]
//! type = "redis"
//! inputs = ["kpi_windows"]
//! url = "redis://127.0.0.1:6379"
//! kind = "hash"                 # or "stream", "sorted_set", "pubsub"
//! key = "kpi:{department}"      # `{expr}` parts are CEL, evaluated per event
//! ttl = "1h"
//! ```
//!
//! Each batch is one pipeline (one round trip): `XADD key MAXLEN ~ N *
//! field value ...`, `HSET key field value ...` (then `PEXPIRE` with
//! `ttl`), `ZADD key score member` or `PUBLISH channel json`. Strings are
//! written as they are, other values as JSON text.
//!
//! Delivery is at-least-once through the shared [`delivery`](super::delivery)
//! layer: a lost connection is a transient error (the batch is retried on a
//! new connection, so a stream may receive an entry twice; hashes and sorted
//! sets just overwrite, which makes them idempotent); a command Redis refuses
//! (`WRONGTYPE`) dead-letters only the events it belongs to.

use std::time::Duration;

use eddy_core::component::{BuildContext, BuildError, SinkFactory, ValidateContext};
use eddy_core::config::{Diagnostic, Duration as ConfigDuration, Spanned};
use eddy_core::{Event, Expression, Sink, Value};
use serde::Deserialize;

use super::delivery::{
    CircuitConfig, Deliver, Delivered, Delivery, DeliveryError, DeliveryOptions, RetryConfig,
};
use super::template::{write_plain, Template};

/// Default events per pipeline.
const DEFAULT_BATCH: usize = 1000;
/// Default wait for a partial batch.
const DEFAULT_LINGER: Duration = Duration::from_millis(50);
/// Default number of batches buffered in front of the sink's thread.
const DEFAULT_BUFFER: usize = 8;
/// Default connect, read and write time-out.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// What each event becomes in Redis.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum RedisKind {
    /// A stream entry (`XADD`) with every field of the event.
    Stream,
    /// The event's fields set on a hash (`HSET`); later events overwrite.
    Hash,
    /// A sorted-set member with a score (`ZADD`).
    SortedSet,
    /// The event as JSON published on a channel (`PUBLISH`).
    Pubsub,
}

/// Configuration of the `redis` sink.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisSinkConfig {
    /// The server, `redis://[user:password@]host:port[/db]`.
    pub url: Spanned<String>,
    /// `"stream"`, `"hash"`, `"sorted_set"` or `"pubsub"`.
    pub kind: Spanned<RedisKind>,
    /// The key (the channel for `pubsub`): text with `{expr}` parts, e.g.
    /// `"kpi:{department}"`. An event whose key cannot be rendered goes to
    /// dead letters.
    pub key: Template,
    /// `stream`: trim the stream to about this many entries (`MAXLEN ~`).
    #[serde(default)]
    pub max_len: Option<Spanned<u64>>,
    /// `hash`: expire the key this long after its last write.
    #[serde(default)]
    pub ttl: Option<Spanned<ConfigDuration>>,
    /// `sorted_set`: the member's score, a numeric expression.
    #[serde(default)]
    pub score: Option<Spanned<Expression>>,
    /// `sorted_set`: the member, an expression (strings as they are, other
    /// values as JSON).
    #[serde(default)]
    pub member: Option<Spanned<Expression>>,
    /// Connect, read and write time-out (default 5 s).
    #[serde(default)]
    pub timeout: Option<ConfigDuration>,
    /// Events per pipeline (default 1000).
    #[serde(default)]
    pub batch_size: Option<usize>,
    /// How long a partial batch may wait (default 50 ms).
    #[serde(default)]
    pub linger: Option<ConfigDuration>,
    /// Batches buffered in front of the sink's thread (default 8).
    #[serde(default)]
    pub buffer: Option<usize>,
    /// Retries of transient failures.
    #[serde(default)]
    pub retry: RetryConfig,
    /// When to stop sending for a while after repeated failures.
    #[serde(default)]
    pub circuit_breaker: CircuitConfig,
}

impl RedisSinkConfig {
    fn timeout(&self) -> Duration {
        self.timeout.map_or(DEFAULT_TIMEOUT, |d| {
            Duration::from_millis(d.ms().max(1) as u64)
        })
    }

    /// What each event becomes, with the options its kind needs.
    fn command(&self) -> Result<Command, String> {
        Ok(match *self.kind.get_ref() {
            RedisKind::Stream => Command::Stream {
                max_len: self.max_len.as_ref().map(|m| *m.get_ref()),
            },
            RedisKind::Hash => Command::Hash {
                ttl_ms: self.ttl.as_ref().map(|t| t.get_ref().ms().max(1)),
            },
            RedisKind::SortedSet => match (&self.score, &self.member) {
                (Some(score), Some(member)) => Command::SortedSet {
                    score: score.get_ref().clone(),
                    member: member.get_ref().clone(),
                },
                _ => return Err("`kind = \"sorted_set\"` needs `score` and `member`".into()),
            },
            RedisKind::Pubsub => Command::Publish,
        })
    }
}

impl SinkFactory for RedisSinkConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError> {
        let fail = |e: String| BuildError::Config(format!("sink `{}`: {e}", cx.name));
        let client = redis::Client::open(self.url.get_ref().as_str())
            .map_err(|e| fail(format!("bad url `{}`: {e}", self.url.get_ref())))?;
        let writer = RedisWriter {
            client,
            conn: None,
            timeout: self.timeout(),
            key: self.key.clone(),
            command: self.command().map_err(fail)?,
            // Per-command errors come back as values, so one refused
            // command does not fail the whole batch.
            pipe: {
                let mut pipe = redis::Pipeline::new();
                pipe.ignore_errors();
                pipe
            },
            owners: Vec::new(),
            key_buf: Vec::new(),
            value_buf: Vec::new(),
        };
        let opts = DeliveryOptions::new(
            self.batch_size,
            self.linger,
            self.retry,
            self.circuit_breaker,
            (DEFAULT_BATCH, DEFAULT_LINGER),
        );
        Ok(Box::new(Delivery::new(writer, &cx.name, opts, &cx.metrics)))
    }

    fn buffer(&self) -> Option<usize> {
        Some(self.buffer.unwrap_or(DEFAULT_BUFFER).max(1))
    }

    /// Options must fit the kind, and the url must parse.
    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        let mut out = Vec::new();
        if let Err(e) = redis::Client::open(self.url.get_ref().as_str()) {
            out.push(
                Diagnostic::new(self.url.span(), format!("bad Redis url: {e}"))
                    .hint("write it as redis://host:port or redis://user:password@host:port/db"),
            );
        }
        let kind = *self.kind.get_ref();
        let mut only = |span: Option<std::ops::Range<usize>>, option: &str, for_kind: &str| {
            if let Some(span) = span {
                out.push(
                    Diagnostic::new(
                        span,
                        format!("`{option}` only applies to `kind = \"{for_kind}\"`"),
                    )
                    .hint(format!("remove it, or set `kind = \"{for_kind}\"`")),
                );
            }
        };
        if kind != RedisKind::Stream {
            only(
                self.max_len.as_ref().map(Spanned::span),
                "max_len",
                "stream",
            );
        }
        if kind != RedisKind::Hash {
            only(self.ttl.as_ref().map(Spanned::span), "ttl", "hash");
        }
        if kind != RedisKind::SortedSet {
            only(
                self.score.as_ref().map(Spanned::span),
                "score",
                "sorted_set",
            );
            only(
                self.member.as_ref().map(Spanned::span),
                "member",
                "sorted_set",
            );
        } else if self.score.is_none() || self.member.is_none() {
            out.push(
                Diagnostic::new(self.kind.span(), "a sorted set needs `score` and `member`")
                    .hint("add e.g. `score = \"amount\"` and `member = \"user\"`"),
            );
        }
        out
    }
}

/// The command each event turns into.
#[derive(Clone, Debug)]
enum Command {
    Stream {
        max_len: Option<u64>,
    },
    Hash {
        ttl_ms: Option<i64>,
    },
    SortedSet {
        score: Expression,
        member: Expression,
    },
    Publish,
}

/// Sends batches as pipelines on one connection, reconnecting after a
/// failure.
struct RedisWriter {
    client: redis::Client,
    conn: Option<redis::Connection>,
    timeout: Duration,
    key: Template,
    command: Command,
    /// Reused between batches to keep its buffers.
    pipe: redis::Pipeline,
    /// The event index of each command in `pipe`.
    owners: Vec<usize>,
    key_buf: Vec<u8>,
    value_buf: Vec<u8>,
}

impl RedisWriter {
    /// Adds the commands for event `i` to the pipeline; returns the bytes of
    /// their arguments, or why the event cannot be written.
    fn push(&mut self, i: usize, e: &Event) -> Result<usize, String> {
        self.key_buf.clear();
        self.key.render(e, &mut self.key_buf)?;
        let key = self.key_buf.as_slice();
        let mut bytes = key.len();
        match &self.command {
            Command::Stream { max_len } => {
                if e.fields.is_empty() {
                    return Err("an event without fields cannot be a stream entry".into());
                }
                let cmd = self.pipe.cmd("XADD").arg(key);
                if let Some(n) = max_len {
                    cmd.arg("MAXLEN").arg("~").arg(*n);
                }
                cmd.arg("*");
                for (name, value) in e.fields.iter() {
                    cmd.arg(name.as_str());
                    bytes += name.as_str().len() + append_value(cmd, value, &mut self.value_buf);
                }
                self.owners.push(i);
            }
            Command::Hash { ttl_ms } => {
                if e.fields.is_empty() {
                    return Err("an event without fields sets nothing on a hash".into());
                }
                let cmd = self.pipe.cmd("HSET").arg(key);
                for (name, value) in e.fields.iter() {
                    cmd.arg(name.as_str());
                    bytes += name.as_str().len() + append_value(cmd, value, &mut self.value_buf);
                }
                self.owners.push(i);
                if let Some(ms) = ttl_ms {
                    self.pipe.cmd("PEXPIRE").arg(key).arg(*ms);
                    self.owners.push(i);
                }
            }
            Command::SortedSet { score, member } => {
                let s = score
                    .eval_ref(e)
                    .map_err(|err| format!("score `{}`: {err}", score.source()))?;
                let s = s.as_f64().filter(|f| f.is_finite()).ok_or_else(|| {
                    format!(
                        "score `{}` is {}, not a finite number",
                        score.source(),
                        s.type_name()
                    )
                })?;
                let m = member
                    .eval_ref(e)
                    .map_err(|err| format!("member `{}`: {err}", member.source()))?;
                if m.is_null() {
                    return Err(format!("member `{}` is missing or null", member.source()));
                }
                self.value_buf.clear();
                write_plain(&mut self.value_buf, &m);
                bytes += self.value_buf.len() + 8;
                self.pipe
                    .cmd("ZADD")
                    .arg(key)
                    .arg(s)
                    .arg(self.value_buf.as_slice());
                self.owners.push(i);
            }
            Command::Publish => {
                self.value_buf.clear();
                eddy_core::json::write_fields(&mut self.value_buf, &e.fields);
                bytes += self.value_buf.len();
                self.pipe
                    .cmd("PUBLISH")
                    .arg(key)
                    .arg(self.value_buf.as_slice());
                self.owners.push(i);
            }
        }
        Ok(bytes)
    }

    /// Opens a connection unless one is open.
    fn connect(&mut self) -> Result<(), DeliveryError> {
        if self.conn.is_none() {
            let conn = self
                .client
                .get_connection_with_timeout(self.timeout)
                .map_err(|e| DeliveryError::Transient(format!("cannot connect to Redis: {e}")))?;
            // Without these a server that stops answering blocks forever.
            let _ = conn.set_read_timeout(Some(self.timeout));
            let _ = conn.set_write_timeout(Some(self.timeout));
            self.conn = Some(conn);
        }
        Ok(())
    }
}

/// Appends `value` as the next argument of the pipeline's last command
/// (strings as they are, other values as JSON text); returns its size.
fn append_value(cmd: &mut redis::Pipeline, value: &Value, buf: &mut Vec<u8>) -> usize {
    match value {
        Value::Str(s) => {
            cmd.arg(s.as_bytes());
            s.len()
        }
        Value::Int(n) => {
            cmd.arg(*n);
            8
        }
        other => {
            buf.clear();
            write_plain(buf, other);
            cmd.arg(buf.as_slice());
            buf.len()
        }
    }
}

impl Deliver for RedisWriter {
    fn deliver(&mut self, events: &[Event]) -> Result<Delivered, DeliveryError> {
        self.pipe.clear();
        self.owners.clear();
        let mut rejected = Vec::new();
        let mut bytes = 0u64;
        for (i, e) in events.iter().enumerate() {
            match self.push(i, e) {
                Ok(b) => bytes += b as u64,
                Err(reason) => rejected.push((i, reason)),
            }
        }
        if self.owners.is_empty() {
            return Ok(Delivered { bytes, rejected });
        }
        self.connect()?;
        let result = match self.conn.as_mut() {
            Some(conn) => self
                .pipe
                .query::<Vec<redis::Value>>(conn)
                .map_err(|e| DeliveryError::Transient(format!("Redis: {e}"))),
            None => Err(DeliveryError::Transient("no connection to Redis".into())),
        };
        let replies = match result {
            Ok(r) => r,
            Err(e) => {
                // The connection may be half-used or dead: start afresh.
                self.conn = None;
                return Err(e);
            }
        };
        let mut refused: Vec<(usize, String)> = Vec::new();
        for (reply, &owner) in replies.iter().zip(&self.owners) {
            if let redis::Value::ServerError(err) = reply {
                // One dead letter per event, even when both its commands
                // (`HSET` and `PEXPIRE`) failed.
                if refused.last().is_none_or(|(i, _)| *i != owner) {
                    refused.push((owner, format!("Redis refused the write: {err}")));
                }
            }
        }
        rejected.extend(refused);
        rejected.sort_by_key(|(i, _)| *i);
        Ok(Delivered { bytes, rejected })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::metrics::ComponentMetrics;
    use eddy_core::{Fields, Sym};
    use eddy_testkit::Redis;
    use std::collections::BTreeMap;
    use std::sync::Arc;

    fn config(text: &str) -> RedisSinkConfig {
        toml::from_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    fn sink(cfg: &RedisSinkConfig) -> (Box<dyn Sink>, Arc<ComponentMetrics>) {
        let cx = BuildContext::single("cache");
        let metrics = cx.metrics.clone();
        assert!(
            cfg.validate(&eddy_core::component::ValidateContext::default())
                .is_empty(),
            "{:?}",
            cfg.validate(&eddy_core::component::ValidateContext::default())
        );
        (cfg.build(&cx).unwrap(), metrics)
    }

    fn event(dept: &str, n: i64, amount: f64) -> Event {
        let mut f = Fields::default();
        f.push(Sym::intern("department"), Value::str(dept));
        f.push(Sym::intern("n"), Value::Int(n));
        f.push(Sym::intern("amount"), Value::Float(amount));
        f.push(
            Sym::intern("tags"),
            Value::List(Arc::new(vec![Value::str("a"), Value::Bool(true)])),
        );
        Event::new(n, f)
    }

    fn client(redis: &Redis) -> ::redis::Connection {
        ::redis::Client::open(redis.url())
            .and_then(|c| c.get_connection())
            .unwrap()
    }

    #[test]
    fn streams_hold_every_event_as_an_entry() {
        let Some(server) = Redis::start() else { return };
        let cfg = config(&format!(
            "url = {:?}\nkind = \"stream\"\nkey = \"orders:{{department}}\"\nmax_len = 10000\nbatch_size = 7",
            server.url()
        ));
        let (mut sink, metrics) = sink(&cfg);
        let events: Vec<Event> = (0..50)
            .map(|i| event(if i % 2 == 0 { "sales" } else { "ops" }, i, i as f64 / 2.0))
            .collect();
        sink.write(&events).unwrap();
        sink.flush().unwrap();
        assert!(sink.take_dead_letters().is_empty());
        assert_eq!(metrics.total("records_out"), 50);
        let mut c = client(&server);
        let len: usize = ::redis::cmd("XLEN")
            .arg("orders:sales")
            .query(&mut c)
            .unwrap();
        assert_eq!(len, 25);
        let entries: Vec<(String, Vec<String>)> = ::redis::cmd("XRANGE")
            .arg("orders:ops")
            .arg("-")
            .arg("+")
            .query(&mut c)
            .unwrap();
        assert_eq!(entries.len(), 25);
        assert_eq!(
            entries[0].1,
            [
                "department",
                "ops",
                "n",
                "1",
                "amount",
                "0.5",
                "tags",
                "[\"a\",true]"
            ]
        );
        let ns: Vec<String> = entries.iter().map(|(_, f)| f[3].clone()).collect();
        let want: Vec<String> = (0..50)
            .filter(|i| i % 2 == 1)
            .map(|i| i.to_string())
            .collect();
        assert_eq!(ns, want, "entries keep the order of the events");
    }

    #[test]
    fn hashes_keep_the_latest_value_and_expire() {
        let Some(server) = Redis::start() else { return };
        let cfg = config(&format!(
            "url = {:?}\nkind = \"hash\"\nkey = \"kpi:{{department}}\"\nttl = \"1h\"",
            server.url()
        ));
        let (mut sink, _) = sink(&cfg);
        sink.write(&[event("sales", 1, 10.0), event("ops", 2, 20.0)])
            .unwrap();
        sink.write(&[event("sales", 3, 30.5)]).unwrap();
        sink.flush().unwrap();
        let mut c = client(&server);
        let sales: BTreeMap<String, String> = ::redis::cmd("HGETALL")
            .arg("kpi:sales")
            .query(&mut c)
            .unwrap();
        assert_eq!(sales.get("n").map(String::as_str), Some("3"));
        assert_eq!(sales.get("amount").map(String::as_str), Some("30.5"));
        assert_eq!(sales.get("department").map(String::as_str), Some("sales"));
        let ttl: i64 = ::redis::cmd("PTTL").arg("kpi:ops").query(&mut c).unwrap();
        assert!(ttl > 3_500_000 && ttl <= 3_600_000, "{ttl}");
    }

    #[test]
    fn sorted_sets_score_members_and_bad_events_become_dead_letters() {
        let Some(server) = Redis::start() else { return };
        let cfg = config(&format!(
            "url = {:?}\nkind = \"sorted_set\"\nkey = \"top\"\nscore = \"amount * 2.0\"\nmember = \"department + ':' + string(n)\"",
            server.url()
        ));
        let (mut sink, metrics) = sink(&cfg);
        let mut no_amount = Fields::default();
        no_amount.push(Sym::intern("department"), Value::str("x"));
        no_amount.push(Sym::intern("n"), Value::Int(9));
        sink.write(&[
            event("sales", 1, 10.0),
            Event::new(5, no_amount),
            event("ops", 2, 1.5),
        ])
        .unwrap();
        sink.flush().unwrap();
        let mut c = client(&server);
        let top: Vec<(String, f64)> = ::redis::cmd("ZRANGE")
            .arg("top")
            .arg(0)
            .arg(-1)
            .arg("WITHSCORES")
            .query(&mut c)
            .unwrap();
        assert_eq!(
            top,
            [("ops:2".to_string(), 3.0), ("sales:1".to_string(), 20.0)]
        );
        let dead = sink.take_dead_letters();
        assert_eq!(dead.len(), 1);
        assert_eq!(metrics.total("dead_letters"), 1);
        assert_eq!(metrics.total("records_out"), 2);
    }

    #[test]
    fn a_refused_command_dead_letters_only_its_event() {
        let Some(server) = Redis::start() else { return };
        let mut c = client(&server);
        // `kpi:ops` is a string, so HSET on it fails with WRONGTYPE.
        let () = ::redis::cmd("SET")
            .arg("kpi:ops")
            .arg("taken")
            .query(&mut c)
            .unwrap();
        let cfg = config(&format!(
            "url = {:?}\nkind = \"hash\"\nkey = \"kpi:{{department}}\"",
            server.url()
        ));
        let (mut sink, _) = sink(&cfg);
        sink.write(&[
            event("sales", 1, 1.0),
            event("ops", 2, 2.0),
            event("hr", 3, 3.0),
        ])
        .unwrap();
        sink.flush().unwrap();
        let dead = sink.take_dead_letters();
        assert_eq!(dead.len(), 1);
        let reason = dead[0].fields.get(Sym::intern("reason")).cloned();
        assert!(
            reason
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|r| r.contains("WRONGTYPE")),
            "{reason:?}"
        );
        let n: String = ::redis::cmd("HGET")
            .arg("kpi:hr")
            .arg("n")
            .query(&mut c)
            .unwrap();
        assert_eq!(n, "3");
    }

    #[test]
    fn pubsub_publishes_json() {
        let Some(server) = Redis::start() else { return };
        let mut sub = client(&server);
        let mut pubsub = sub.as_pubsub();
        pubsub.subscribe("alerts:sales").unwrap();
        let cfg = config(&format!(
            "url = {:?}\nkind = \"pubsub\"\nkey = \"alerts:{{department}}\"",
            server.url()
        ));
        let (mut sink, _) = sink(&cfg);
        sink.write(&[event("sales", 1, 2.0)]).unwrap();
        sink.flush().unwrap();
        let msg = pubsub.get_message().unwrap();
        let payload: String = msg.get_payload().unwrap();
        assert_eq!(
            payload,
            r#"{"department":"sales","n":1,"amount":2.0,"tags":["a",true]}"#
        );
    }

    #[test]
    fn options_must_fit_the_kind() {
        let cfg = config("url = \"redis://127.0.0.1:1\"\nkind = \"stream\"\nkey = \"k\"\nttl = \"1s\"\nscore = \"1\"");
        let msgs: Vec<String> = cfg
            .validate(&eddy_core::component::ValidateContext::default())
            .iter()
            .map(|d| d.message.clone())
            .collect();
        assert_eq!(msgs.len(), 2, "{msgs:?}");
        let cfg = config("url = \"redis://127.0.0.1:1\"\nkind = \"sorted_set\"\nkey = \"k\"");
        assert_eq!(
            cfg.validate(&eddy_core::component::ValidateContext::default())
                .len(),
            1
        );
        let cfg = config("url = \"http://x\"\nkind = \"hash\"\nkey = \"k\"");
        assert_eq!(
            cfg.validate(&eddy_core::component::ValidateContext::default())
                .len(),
            1
        );
        assert!(toml::from_str::<RedisSinkConfig>(
            "url = \"redis://x\"\nkind = \"list\"\nkey = \"k\""
        )
        .is_err());
        assert!(toml::from_str::<RedisSinkConfig>(
            "url = \"redis://x\"\nkind = \"hash\"\nkey = \"{\""
        )
        .is_err());
    }
}
