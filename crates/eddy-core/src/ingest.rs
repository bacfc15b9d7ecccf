//! The queue between HTTP ingest (`POST /api/v1/ingest/{source}`) and an
//! `http` source: the server decodes a request body into events here,
//! reports each bad line back to the client, and hands the whole body to
//! the source as one batch, or refuses it whole when the queue is full.
//!
//! A body is NDJSON (one JSON object per line; blank lines are skipped) or
//! one JSON array of objects. A line that is not an object, or whose event
//! time is missing or unparsable, is reported with its number (the item's
//! number in an array, from 1) and goes to the source's dead letters with
//! the reason, so nothing accepted is lost.
//!
//! With ingestion time, a body's events are stamped as it is queued, from
//! a clock that never goes back, and [`IngestQueue::clock`] reads the same
//! clock: once the source found the queue empty after reading it, every
//! later event is at or after that time, so the watermark follows the
//! clock while nothing is posted.

use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Mutex, PoisonError};

use crate::json::JsonDecoder;
use crate::operator::{dead_letter, with_position};
use crate::source::{SourceBatch, TimestampAssigner};
use crate::time::now_ms;
use crate::Value;

/// What an accepted body gave.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Ingested {
    /// Events accepted into the pipeline.
    pub accepted: usize,
    /// Lines (or array items) refused, numbered from 1, with the reason;
    /// each went to the source's dead letters.
    pub rejected: Vec<(u64, String)>,
}

/// Why a body was not accepted (none of it was).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum IngestRefused {
    /// The source's queue is full: the pipeline is behind; retry later.
    #[error("the pipeline is behind and its ingest queue is full; retry later")]
    Busy,
    /// The source has stopped reading (the run is ending).
    #[error("the source no longer reads (the run is ending)")]
    Closed,
    /// Larger than the source's `max_body_bytes`.
    #[error("the body is {size} bytes, more than the {limit} this source accepts")]
    TooLarge {
        /// The body's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not UTF-8, or a JSON array that does not parse.
    #[error("{0}")]
    Malformed(String),
}

/// One `http` source's queue (its per-run object, shared with the server).
pub struct IngestQueue {
    source: String,
    assigner: TimestampAssigner,
    max_body: usize,
    tx: SyncSender<SourceBatch>,
    rx: Mutex<Option<Receiver<SourceBatch>>>,
    /// The latest ingestion time handed out; stamping and sending happen
    /// under this lock.
    stamped: Mutex<i64>,
}

impl IngestQueue {
    /// A queue for the source named `source`, holding `capacity` bodies,
    /// refusing bodies over `max_body` bytes, timing events with
    /// `assigner`.
    pub fn new(
        source: &str,
        assigner: TimestampAssigner,
        capacity: usize,
        max_body: usize,
    ) -> IngestQueue {
        let (tx, rx) = sync_channel(capacity.max(1));
        IngestQueue {
            source: source.to_string(),
            assigner,
            max_body,
            tx,
            rx: Mutex::new(Some(rx)),
            stamped: Mutex::new(i64::MIN),
        }
    }

    /// With ingestion time, the clock's time now (never below a time
    /// already handed out); every body queued after this call is stamped
    /// at or after it, every body stamped before is already queued. `None`
    /// when events carry their own time.
    pub fn clock(&self) -> Option<i64> {
        if !self.assigner.is_ingestion() {
            return None;
        }
        let mut stamped = self.stamped.lock().unwrap_or_else(PoisonError::into_inner);
        *stamped = now_ms().max(*stamped);
        Some(*stamped)
    }

    /// The largest body accepted, in bytes.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// The receiving end, for the one source instance that reads (the
    /// first to ask).
    pub fn take_receiver(&self) -> Option<Receiver<SourceBatch>> {
        self.rx
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }

    /// Decodes `body` and queues it for the source, whole, or refuses it.
    pub fn offer(&self, body: &[u8]) -> Result<Ingested, IngestRefused> {
        if body.len() > self.max_body {
            return Err(IngestRefused::TooLarge {
                size: body.len(),
                limit: self.max_body,
            });
        }
        let text = std::str::from_utf8(body)
            .map_err(|e| IngestRefused::Malformed(format!("the body is not UTF-8: {e}")))?;
        let mut items: Vec<(u64, String)> = Vec::new();
        if text.trim_start().starts_with('[') {
            let array: Vec<serde_json::Value> = serde_json::from_str(text).map_err(|e| {
                IngestRefused::Malformed(format!("the body is not a JSON array: {e}"))
            })?;
            items.extend(
                array
                    .iter()
                    .enumerate()
                    .map(|(i, v)| (i as u64 + 1, v.to_string())),
            );
        } else {
            items.extend(
                text.lines()
                    .enumerate()
                    .filter(|(_, l)| !l.trim().is_empty())
                    .map(|(i, l)| (i as u64 + 1, l.to_string())),
            );
        }
        let now = now_ms();
        let mut decoder = JsonDecoder::new();
        let mut batch = SourceBatch::default();
        let mut rejected = Vec::new();
        for (line, item) in items {
            let position = || format!("http:{line}");
            match decoder.decode_str(&item) {
                Ok(fields) => match self.assigner.assign(fields, now, &self.source, position) {
                    Ok(event) => batch.events.push(event),
                    Err(dead) => {
                        let reason = dead
                            .fields
                            .get(crate::sym!("reason"))
                            .and_then(Value::as_str)
                            .unwrap_or("no event time")
                            .to_string();
                        rejected.push((line, reason));
                        batch.dead_letters.push(dead);
                    }
                },
                Err(e) => {
                    let reason = format!("not a JSON object: {e}");
                    let dead = dead_letter("decode", reason.clone(), Value::str(&item), now);
                    batch
                        .dead_letters
                        .push(with_position(dead, &self.source, position()));
                    rejected.push((line, reason));
                }
            }
        }
        let accepted = batch.events.len();
        if accepted == 0 && batch.dead_letters.is_empty() {
            return Ok(Ingested::default());
        }
        let mut stamped = self.stamped.lock().unwrap_or_else(PoisonError::into_inner);
        if self.assigner.is_ingestion() {
            *stamped = now_ms().max(*stamped);
            for e in &mut batch.events {
                e.time = *stamped;
            }
        }
        match self.tx.try_send(batch) {
            Ok(()) => Ok(Ingested { accepted, rejected }),
            Err(TrySendError::Full(_)) => Err(IngestRefused::Busy),
            Err(TrySendError::Disconnected(_)) => Err(IngestRefused::Closed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::EventTimeConfig;

    fn queue(capacity: usize) -> IngestQueue {
        let cfg: EventTimeConfig =
            serde_json::from_str(r#"{"field": "ts", "format": "epoch_ms"}"#).unwrap();
        IngestQueue::new(
            "orders",
            TimestampAssigner::from_config(Some(&cfg)),
            capacity,
            1000,
        )
    }

    #[test]
    fn good_lines_are_queued_and_bad_ones_reported_and_dead_lettered() {
        let q = queue(4);
        let rx = q.take_receiver().unwrap();
        assert!(q.take_receiver().is_none(), "one reader");
        let body = b"{\"ts\": 5, \"id\": 1}\nnot json\n\n{\"id\": 3}\n{\"ts\": 9, \"id\": 4}\n";
        let got = q.offer(body).unwrap();
        assert_eq!(got.accepted, 2);
        let lines: Vec<u64> = got.rejected.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [2, 4]);
        assert!(
            got.rejected[1].1.contains("missing time field `ts`"),
            "{got:?}"
        );
        let batch = rx.try_recv().unwrap();
        let times: Vec<i64> = batch.events.iter().map(|e| e.time).collect();
        assert_eq!(times, [5, 9]);
        assert_eq!(batch.dead_letters.len(), 2);
        let position = batch.dead_letters[0].fields.get(crate::sym!("position"));
        assert_eq!(position, Some(&Value::str("http:2")));
    }

    #[test]
    fn arrays_are_numbered_by_item_and_a_full_queue_refuses_the_whole_body() {
        let q = queue(1);
        let got = q.offer(br#"[{"ts": 1}, 7, {"ts": 2}]"#).unwrap();
        assert_eq!((got.accepted, got.rejected.len()), (2, 1));
        assert_eq!(got.rejected[0].0, 2);
        assert_eq!(q.offer(br#"{"ts": 3}"#), Err(IngestRefused::Busy));
        assert!(matches!(q.offer(b"[1, "), Err(IngestRefused::Malformed(_))));
        assert!(matches!(
            q.offer(&[b' '; 1001]),
            Err(IngestRefused::TooLarge {
                size: 1001,
                limit: 1000
            })
        ));
        drop(q.take_receiver());
        let q2 = queue(1);
        drop(q2.take_receiver());
        assert_eq!(q2.offer(br#"{"ts": 3}"#), Err(IngestRefused::Closed));
    }

    /// With ingestion time the clock never goes back and never runs ahead
    /// of what is queued: bodies queued after a reading are stamped at or
    /// after it. Events with their own time have no clock.
    #[test]
    fn ingestion_stamps_follow_one_clock() {
        assert_eq!(queue(1).clock(), None);
        let q = IngestQueue::new("orders", TimestampAssigner::ingestion(), 8, 1000);
        let rx = q.take_receiver().unwrap();
        let mut last = i64::MIN;
        for _ in 0..5 {
            let read = q.clock().unwrap();
            assert!(read >= last, "the clock went back");
            q.offer(br#"{"id": 1}"#).unwrap();
            let stamped = rx.try_recv().unwrap().events[0].time;
            assert!(
                stamped >= read,
                "stamped {stamped} before the clock read {read}"
            );
            last = stamped;
        }
    }
}
