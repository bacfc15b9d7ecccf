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
//! Without checkpoints, delivery is at-least-once through the shared
//! [`delivery`](super::delivery) layer: a lost connection is a transient
//! error (the batch is retried on a new connection, so a stream may receive
//! an entry twice; hashes and sorted sets just overwrite, which makes them
//! idempotent); a command Redis refuses (`WRONGTYPE`) dead-letters only the
//! events it belongs to.
//!
//! With `[checkpoint]`, output is exactly-once: it is staged until its
//! checkpoint completes ([`staged`](super::delivery::staged)), and each
//! batch runs as one Lua script that first sets a guard key
//! `eddy:sent:PIPELINE/NODE/WORKER/CHECKPOINT/BATCH` (`SET NX`, kept for
//! `dedupe_ttl`, default 24 h) and applies the batch only if the key was
//! new, atomically. A batch sent again after a crash is then skipped.

use std::time::Duration;

use eddy_core::component::{BuildContext, BuildError, SinkFactory, ValidateContext};
use eddy_core::config::{Diagnostic, Duration as ConfigDuration, Spanned};
use eddy_core::{Event, Expression, Sink, Value};
use serde::Deserialize;

use super::delivery::{
    CircuitConfig, Deliver, Delivered, Delivery, DeliveryError, DeliveryOptions, RetryConfig,
    Staging,
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
    /// With checkpoints: how long the guard key of a delivered batch is
    /// kept (default 24 h); a batch sent again later is applied again.
    #[serde(default)]
    pub dedupe_ttl: Option<ConfigDuration>,
}

/// Default lifetime of a delivered batch's guard key.
const DEFAULT_DEDUPE_TTL: Duration = Duration::from_secs(24 * 3600);

/// Applies a batch once: sets the guard key `KEYS[1]` (for `ARGV[1]` ms)
/// unless it exists, then runs the `ARGV[2]` commands that follow, each as
/// its argument count and arguments; returns nil for a batch already
/// applied, else each command's error text (empty when it succeeded).
const APPLY_ONCE: &str = r#"
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[1]) then return nil end
local out = {}
local i = 3
for c = 1, tonumber(ARGV[2]) do
  local n = tonumber(ARGV[i])
  local r = redis.pcall(unpack(ARGV, i + 1, i + n))
  i = i + 1 + n
  if type(r) == 'table' and r.err then out[c] = r.err else out[c] = '' end
end
return out
"#;

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
            dedupe_ttl_ms: self
                .dedupe_ttl
                .map_or(DEFAULT_DEDUPE_TTL.as_millis() as i64, |d| d.ms().max(1)),
        };
        let opts = DeliveryOptions::new(
            self.batch_size,
            self.linger,
            self.retry,
            self.circuit_breaker,
            (DEFAULT_BATCH, DEFAULT_LINGER),
        );
        let staging = cx.exactly_once.then(|| Staging::new(cx));
        Ok(Box::new(
            Delivery::new(writer, &cx.name, opts, &cx.metrics).staged(staging),
        ))
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
    dedupe_ttl_ms: i64,
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

    /// The batch in `pipe` as one `EVAL` of [`APPLY_ONCE`] guarded by
    /// `key`.
    fn apply_once(&self, key: &str) -> redis::Cmd {
        let mut eval = redis::cmd("EVAL");
        eval.arg(APPLY_ONCE)
            .arg(1)
            .arg(format!("eddy:sent:{key}"))
            .arg(self.dedupe_ttl_ms)
            .arg(self.owners.len());
        for cmd in self.pipe.cmd_iter() {
            eval.arg(cmd.args_iter().len());
            for arg in cmd.args_iter() {
                if let redis::Arg::Simple(bytes) = arg {
                    eval.arg(bytes);
                }
            }
        }
        eval
    }

    /// Sends the batch in `pipe`: one round trip, either as a pipeline or,
    /// with a key, as one script applied at most once; returns the error
    /// Redis gave each command, if any (a batch already applied: none).
    fn query(&mut self, key: Option<&str>) -> Result<Vec<Option<String>>, DeliveryError> {
        let once = key.map(|k| self.apply_once(k));
        self.connect()?;
        let Some(conn) = self.conn.as_mut() else {
            return Err(DeliveryError::Transient("no connection to Redis".into()));
        };
        let result = match once {
            None => self.pipe.query::<Vec<redis::Value>>(conn).map(|replies| {
                replies
                    .into_iter()
                    .map(|r| match r {
                        redis::Value::ServerError(err) => Some(err.to_string()),
                        _ => None,
                    })
                    .collect()
            }),
            Some(eval) => eval.query::<redis::Value>(conn).map(|reply| match reply {
                redis::Value::Array(replies) => replies
                    .into_iter()
                    .map(|r| match r {
                        redis::Value::BulkString(text) if !text.is_empty() => {
                            Some(String::from_utf8_lossy(&text).into_owned())
                        }
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            }),
        };
        result.map_err(|e| {
            // The connection may be half-used or dead: start afresh.
            self.conn = None;
            DeliveryError::Transient(format!("Redis: {e}"))
        })
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
    fn deliver(&mut self, events: &[Event], key: Option<&str>) -> Result<Delivered, DeliveryError> {
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
        let replies = self.query(key)?;
        let mut refused: Vec<(usize, String)> = Vec::new();
        for (reply, &owner) in replies.iter().zip(&self.owners) {
            if let Some(err) = reply {
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
        assert_one_wrongtype(sink.take_dead_letters());
        let n: String = ::redis::cmd("HGET")
            .arg("kpi:hr")
            .arg("n")
            .query(&mut c)
            .unwrap();
        assert_eq!(n, "3");
    }

    /// With checkpoints, a batch runs as one script behind a guard key: a
    /// batch sent again (a restart resending a checkpoint) changes nothing,
    /// and a refused command still dead-letters only its event.
    #[test]
    fn staged_batches_apply_once_and_refusals_stay_per_event() {
        let Some(server) = Redis::start() else { return };
        let mut c = client(&server);
        // `ops:s` is a string, so XADD on it fails with WRONGTYPE.
        let () = ::redis::cmd("SET")
            .arg("ops:s")
            .arg("taken")
            .query(&mut c)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(&format!(
            "url = {:?}\nkind = \"stream\"\nkey = \"{{department}}:s\"\nbatch_size = 2",
            server.url()
        ));
        let run = |restored: Option<u64>| {
            let mut cx = BuildContext::single("once");
            cx.data_dir = dir.path().to_path_buf();
            cx.exactly_once = true;
            let mut sink = cfg.build(&cx).unwrap();
            sink.recover(restored).unwrap();
            sink
        };
        let mut sink = run(None);
        sink.write(&[
            event("sales", 1, 1.0),
            event("sales", 2, 2.0),
            event("hr", 3, 3.0),
        ])
        .unwrap();
        sink.flush().unwrap();
        let len = |c: &mut ::redis::Connection, key: &str| -> i64 {
            ::redis::cmd("XLEN").arg(key).query(c).unwrap()
        };
        assert_eq!(len(&mut c, "sales:s"), 0, "staged until the commit");
        sink.pre_commit(1).unwrap();
        // Keep a copy of the staged file: the restart below finds it as if
        // the process died while sending.
        let staged = dir.path().join("staging/test/once-0/1.stage");
        let copy = std::fs::read(&staged).unwrap();
        sink.commit(1).unwrap();
        assert_eq!((len(&mut c, "sales:s"), len(&mut c, "hr:s")), (2, 1));
        std::fs::write(&staged, copy).unwrap();
        let _ = run(Some(1));
        assert_eq!((len(&mut c, "sales:s"), len(&mut c, "hr:s")), (2, 1));
        assert!(!staged.exists());

        // A WRONGTYPE inside the script dead-letters that event alone.
        let mut sink = run(Some(1));
        sink.write(&[event("ops", 4, 4.0), event("hr", 5, 5.0)])
            .unwrap();
        sink.pre_commit(2).unwrap();
        sink.commit(2).unwrap();
        assert_one_wrongtype(sink.take_dead_letters());
        assert_eq!(len(&mut c, "hr:s"), 2);
    }

    /// One dead letter, refused by Redis with WRONGTYPE.
    fn assert_one_wrongtype(dead: Vec<Event>) {
        assert_eq!(dead.len(), 1);
        let reason = dead[0].fields.get(Sym::intern("reason")).cloned();
        assert!(
            reason
                .as_ref()
                .and_then(Value::as_str)
                .is_some_and(|r| r.contains("WRONGTYPE")),
            "{reason:?}"
        );
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
