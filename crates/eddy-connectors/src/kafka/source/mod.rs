//! `type = "kafka"` source: a consumer-group member per worker.
//!
//! ```toml
//! [sources.payments]
//! type = "kafka"
//! brokers = "127.0.0.1:9092"
//! topics = ["payments"]            # or topic_pattern = "^payments-.*"
//! group = "eddy-payments"
//! start = "committed"              # earliest | latest | committed | an RFC 3339 time
//! metadata = true                  # adds a `kafka` field: topic, partition, offset, timestamp, key, headers
//! event_time = { field = "ts", max_out_of_orderness = "5s", idle_timeout = "30s" }
//! schema = { json_schema = "schemas/payment.json" }   # records must satisfy it
//! ```
//!
//! `format = "avro"` with `schema = { avro = "payment.avsc" }` reads plain
//! Avro binary datums; `format = "confluent_avro"` with `schema = {
//! registry_dir = "dir" }` reads the Confluent wire format with schemas from
//! `dir/<id>.avsc` (see [`crate::schema`]).
//!
//! Each worker instance joins the consumer group, so partitions are spread
//! over the workers of this process and over every other process using the
//! same group. Records are JSON objects (or NDJSON: one object per line, or
//! Avro); records that cannot be decoded, violate the schema, are larger
//! than `max_record_bytes` or fail the time assignment go to
//! `NAME.dead_letters` with the reason and their topic, partition and
//! offset (an Avro record's bytes as base64). Watermarks are per partition,
//! and an idle partition stops holding them back after `idle_timeout`.
//!
//! Offsets are committed to the group only when a checkpoint completes, that
//! is after every event read before it has reached the sinks, and once more
//! when the run ends after the sinks flushed: at-least-once delivery.
//!
//! A run restored from a checkpoint resumes each partition at the offset
//! the checkpoint stored, which wins over the group's committed offset (a
//! crash between storing a checkpoint and committing its offsets, or a
//! restore from an older checkpoint, would otherwise read events twice or
//! skip them). Partitions reach a member only when the group assigns them,
//! so the stored offsets wait until then and are set in the assignment
//! itself, before anything is fetched; offsets still waiting are carried
//! into later checkpoints. Once a checkpoint of this run completes, the
//! group's offsets are current and later assignments follow them.
//!
//! Checkpoints name partitions by a 64-bit hash of topic and partition
//! ([`partition_id`]), the same in every run and on every worker.

mod config;
mod fetch;
mod records;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use eddy_core::component::BuildContext;
use eddy_core::metrics::{ComponentMetrics, Counter, Gauge};
use eddy_core::source::{PartitionId, SourcePosition, TimestampAssigner};
use eddy_core::time::now_ms;
use eddy_core::{Source, SourceBatch, SourceError, SourcePoll};
use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};

use super::client::MetricsContext;
use config::DEFAULT_MAX_RECORD_BYTES;
pub use config::{KafkaSourceConfig, PayloadFormat, StartPosition};
use fetch::{Batch, ConsumerQueue, PartitionQueue, RawRecord, Wake};
use records::{PayloadDecoder, Records};

/// One consumer-group member.
pub struct KafkaSource {
    consumer: BaseConsumer<SourceContext>,
    start: StartPosition,
    /// Partitions whose start position was applied.
    started: std::collections::HashSet<PartitionId>,
    /// The assigned partitions' queues, read in turn.
    queues: Vec<PartitionQueue>,
    /// The queue read first by the next poll.
    next_queue: usize,
    /// Records taken from a queue; reused.
    taken: Batch,
    /// The consumer queue, to serve every event waiting on it.
    events: Option<ConsumerQueue>,
    /// Bounded mode: the offset each partition id ends at.
    end_offsets: Option<HashMap<PartitionId, i64>>,
    /// Bounded mode: this worker's partitions and the offsets to read.
    bounded: Vec<BoundedRange>,
    records: Records,
    commits: Counter,
    commit_failures: Counter,
}

/// Bounded mode: a partition and the offsets it is read between.
struct BoundedRange {
    topic: String,
    partition: i32,
    start: i64,
    /// The partition's end when the run started (exclusive).
    end: i64,
}

/// The runtime's id of a (topic, partition) pair: a 64-bit FNV-1a hash of
/// both, the same in every run, build and worker, so checkpointed offsets
/// and watermarks find their partition whichever member owns it later.
/// (0xFF never occurs in UTF-8, so it separates the topic from the number.)
pub fn partition_id(topic: &str, partition: i32) -> PartitionId {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in topic.bytes().chain([0xFF]).chain(partition.to_le_bytes()) {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The (topic, partition) pair behind each id seen, for commits.
#[derive(Default)]
struct PartitionNames(HashMap<PartitionId, (Arc<str>, i32)>);

impl PartitionNames {
    fn name(&mut self, id: PartitionId, topic: &str, partition: i32) {
        let pair = self
            .0
            .entry(id)
            .or_insert_with(|| (topic.into(), partition));
        if (&*pair.0, pair.1) != (topic, partition) {
            // Two pairs in 2^64: their offsets would be confused.
            tracing::error!(
                "kafka partitions {topic}/{partition} and {}/{} share the id {id}; \
                 rename one topic",
                pair.0,
                pair.1
            );
        }
    }

    fn get(&self, id: PartitionId) -> Option<&(Arc<str>, i32)> {
        self.0.get(&id)
    }
}

/// The consumer's context: client errors and per-partition lag (from
/// librdkafka's statistics) into metrics.
pub struct SourceContext {
    client: MetricsContext,
    metrics: Arc<ComponentMetrics>,
    lag: std::sync::Mutex<HashMap<(String, i32), Gauge>>,
    /// Set by every rebalance (or the bounded assignment) until the
    /// source reports the new assignment to the runtime.
    assignment_changed: std::sync::atomic::AtomicBool,
    /// Offsets from a restored checkpoint by partition id, waiting for
    /// their partition to be assigned.
    restored: std::sync::Mutex<HashMap<PartitionId, i64>>,
    /// Queues split off by rebalances, and partitions revoked, in order,
    /// for the source to apply.
    queue_changes: std::sync::Mutex<Vec<QueueChange>>,
    /// Woken when a partition queue receives records.
    wake: Arc<Wake>,
}

/// A change to the source's partition queues made by a rebalance.
enum QueueChange {
    Split(PartitionQueue),
    Revoked(Vec<PartitionId>),
}

impl ClientContext for SourceContext {
    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        self.client.error(error, reason);
    }

    fn stats(&self, stats: rdkafka::Statistics) {
        self.client.observe(&stats);
        let Ok(mut lag) = self.lag.lock() else { return };
        for (topic, t) in &stats.topics {
            for (&partition, p) in &t.partitions {
                // Partition -1 is librdkafka's internal unassigned queue;
                // lag -1 means not known yet.
                if partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                lag.entry((topic.clone(), partition))
                    .or_insert_with(|| {
                        self.metrics.gauge(
                            "consumer_lag",
                            &[("topic", topic), ("partition", &partition.to_string())],
                        )
                    })
                    .set(p.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for SourceContext {
    /// Assigns as librdkafka's default does, but with the restored offsets
    /// of newly assigned partitions set in the assignment, so fetching
    /// starts there and never at the group's offset.
    fn rebalance(
        &self,
        consumer: &BaseConsumer<Self>,
        err: rdkafka::types::RDKafkaRespErr,
        tpl: &mut TopicPartitionList,
    ) {
        use rdkafka::consumer::RebalanceProtocol;
        use rdkafka::types::RDKafkaRespErr;
        let cooperative = matches!(
            consumer.rebalance_protocol(),
            RebalanceProtocol::Cooperative
        );
        let mut changes = self.queue_changes.lock().ok();
        let result = if err == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS {
            self.apply_restored(tpl);
            // Split before assigning: fetching then never puts a record of
            // these partitions on the consumer queue.
            let rk = consumer.client().native_ptr();
            for e in tpl.elements() {
                let id = partition_id(e.topic(), e.partition());
                let queue = PartitionQueue::split(rk, e.topic(), e.partition(), id, &self.wake);
                if let (Some(q), Some(changes)) = (queue, changes.as_mut()) {
                    changes.push(QueueChange::Split(q));
                }
            }
            if cooperative {
                consumer.incremental_assign(tpl)
            } else {
                consumer.assign(tpl)
            }
        } else {
            if let Some(changes) = changes.as_mut() {
                let revoked = tpl.elements();
                let ids = revoked
                    .iter()
                    .map(|e| partition_id(e.topic(), e.partition()));
                changes.push(QueueChange::Revoked(ids.collect()));
            }
            if cooperative {
                consumer.incremental_unassign(tpl)
            } else {
                consumer.unassign()
            }
        };
        drop(changes);
        if let Err(e) = result {
            self.client.error(e, "rebalance");
        }
        self.assignment_changed
            .store(true, std::sync::atomic::Ordering::Release);
    }
}

impl SourceContext {
    /// Sets the restored offset of each partition in `tpl` that has one,
    /// and forgets it: a later assignment follows the group.
    fn apply_restored(&self, tpl: &mut TopicPartitionList) {
        let Ok(mut restored) = self.restored.lock() else {
            return;
        };
        if restored.is_empty() {
            return;
        }
        let pairs: Vec<(String, i32)> = tpl
            .elements()
            .iter()
            .map(|e| (e.topic().to_string(), e.partition()))
            .collect();
        for (topic, partition) in pairs {
            if let Some(offset) = restored.remove(&partition_id(&topic, partition)) {
                let _ = tpl.set_partition_offset(&topic, partition, Offset::Offset(offset));
            }
        }
    }
}

impl KafkaSource {
    fn new(cfg: &KafkaSourceConfig, cx: &BuildContext) -> Result<KafkaSource, String> {
        let conn = cfg.connection();
        let mut cc = conn.client_config();
        cc.set("group.id", &cfg.group)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set(
                "auto.offset.reset",
                if cfg.start == StartPosition::Latest {
                    "latest"
                } else {
                    "earliest"
                },
            )
            .set("client.id", format!("eddy-{}-{}", cx.name, cx.worker))
            .set("enable.partition.eof", "false")
            .set("statistics.interval.ms", "1000");
        for (k, v) in super::client::CONSUMER_FETCH_DEFAULTS {
            cc.set(*k, *v);
        }
        conn.apply_overrides(&mut cc);
        let consumer: BaseConsumer<SourceContext> = cc
            .create_with_context(SourceContext {
                client: MetricsContext::new(&cx.metrics),
                metrics: cx.metrics.clone(),
                lag: std::sync::Mutex::new(HashMap::new()),
                assignment_changed: std::sync::atomic::AtomicBool::new(false),
                restored: std::sync::Mutex::new(HashMap::new()),
                queue_changes: std::sync::Mutex::new(Vec::new()),
                wake: Arc::new(Wake::default()),
            })
            .map_err(|e| format!("cannot create a consumer for {}: {e}", cfg.brokers))?;
        if !cfg.bounded {
            let topics = cfg.subscription();
            let refs: Vec<&str> = topics.iter().map(String::as_str).collect();
            consumer
                .subscribe(&refs)
                .map_err(|e| format!("cannot subscribe to {topics:?}: {e}"))?;
        }
        let m = &cx.metrics;
        let mut source = KafkaSource {
            consumer,
            start: cfg.start.clone(),
            started: std::collections::HashSet::new(),
            queues: Vec::new(),
            next_queue: 0,
            taken: Batch::default(),
            events: None,
            end_offsets: None,
            bounded: Vec::new(),
            records: Records {
                name: cx.name.clone(),
                format: cfg.format,
                metadata: cfg.metadata,
                max_record_bytes: cfg.max_record_bytes.unwrap_or(DEFAULT_MAX_RECORD_BYTES),
                decoder: PayloadDecoder::new(cfg.format, &cfg.schema)?,
                assigner: TimestampAssigner::from_config(cfg.event_time.as_ref()),
                partitions: PartitionNames::default(),
                next_offset: HashMap::new(),
                records_in: m.counter("records_in", &[]),
                bytes_in: m.counter("bytes_in", &[]),
                dead_letters: m.counter("dead_letters", &[]),
            },
            commits: m.counter("commits", &[]),
            commit_failures: m.counter("commit_failures", &[]),
        };
        source.events = ConsumerQueue::of(source.consumer.client().native_ptr());
        let keep = source.records.assigner.keep(cx.projection.as_deref());
        source.records.decoder.keep_only(keep);
        if cfg.bounded {
            source.assign_bounded(&cfg.topics, cx.worker, cx.workers)?;
        }
        Ok(source)
    }

    /// Bounded mode: assigns this worker's partitions from their start
    /// (committed, earliest, latest or a time) and records where they end.
    fn assign_bounded(
        &mut self,
        topics: &[String],
        worker: usize,
        workers: usize,
    ) -> Result<(), String> {
        let timeout = Duration::from_secs(30);
        let mut wanted = TopicPartitionList::new();
        for topic in topics {
            let meta = self
                .consumer
                .fetch_metadata(Some(topic), timeout)
                .map_err(|e| format!("cannot read the metadata of `{topic}`: {e}"))?;
            let Some(t) = meta.topics().first() else {
                return Err(format!("topic `{topic}` does not exist"));
            };
            if let Some(e) = t.error() {
                return Err(format!(
                    "topic `{topic}`: {}",
                    rdkafka::error::RDKafkaErrorCode::from(e)
                ));
            }
            for p in t.partitions() {
                if p.id() as usize % workers.max(1) == worker {
                    wanted.add_partition(topic, p.id());
                }
            }
        }
        let committed = self
            .consumer
            .committed_offsets(wanted.clone(), timeout)
            .map_err(|e| format!("cannot read committed offsets: {e}"))?;
        let mut ranges = Vec::new();
        for e in wanted.elements() {
            let (low, high) = self
                .consumer
                .fetch_watermarks(e.topic(), e.partition(), timeout)
                .map_err(|err| format!("cannot read the offsets of `{}`: {err}", e.topic()))?;
            let start = match self.start {
                StartPosition::Earliest => low,
                StartPosition::Latest => high,
                StartPosition::Time(t) => {
                    let mut q = TopicPartitionList::new();
                    let _ = q.add_partition_offset(e.topic(), e.partition(), Offset::Offset(t));
                    self.consumer
                        .offsets_for_times(q, timeout)
                        .ok()
                        .and_then(|r| r.elements().first().map(|x| x.offset()))
                        .and_then(|o| o.to_raw())
                        .map_or(high, |o| if o < 0 { high } else { o })
                }
                StartPosition::Committed => committed
                    .find_partition(e.topic(), e.partition())
                    .and_then(|x| x.offset().to_raw())
                    .filter(|&o| o >= 0)
                    .unwrap_or(low),
            };
            let id = partition_id(e.topic(), e.partition());
            self.records.partitions.name(id, e.topic(), e.partition());
            self.started.insert(id);
            ranges.push(BoundedRange {
                topic: e.topic().to_string(),
                partition: e.partition(),
                start,
                end: high,
            });
        }
        self.bounded = ranges;
        self.assign_ranges(&HashMap::new())
            .map_err(|e| format!("cannot assign partitions: {e}"))
    }

    /// Bounded mode: assigns every partition not read to its end yet, from
    /// its restored offset or else its start.
    fn assign_ranges(
        &mut self,
        restored: &HashMap<PartitionId, i64>,
    ) -> Result<(), rdkafka::error::KafkaError> {
        let mut assign = TopicPartitionList::new();
        let mut ends = HashMap::new();
        for r in &self.bounded {
            let id = partition_id(&r.topic, r.partition);
            let start = match restored.get(&id) {
                Some(&offset) => {
                    self.records.next_offset.insert(id, offset);
                    offset
                }
                None => r.start,
            };
            if start < r.end {
                ends.insert(id, r.end);
                assign.add_partition_offset(&r.topic, r.partition, Offset::Offset(start))?;
            }
        }
        // As in a rebalance: split before assigning.
        self.queues.clear();
        let rk = self.consumer.client().native_ptr();
        let wake = &self.consumer.context().wake;
        for e in assign.elements() {
            let id = partition_id(e.topic(), e.partition());
            self.queues.extend(PartitionQueue::split(
                rk,
                e.topic(),
                e.partition(),
                id,
                wake,
            ));
        }
        self.consumer.assign(&assign)?;
        self.end_offsets = Some(ends);
        self.consumer
            .context()
            .assignment_changed
            .store(true, std::sync::atomic::Ordering::Release);
        Ok(())
    }

    /// Bounded mode: whether every partition reached its end offset.
    fn reached_end(&self) -> bool {
        self.end_offsets.as_ref().is_some_and(|ends| {
            ends.iter()
                .all(|(id, end)| self.records.next_offset.get(id).is_some_and(|n| n >= end))
        })
    }

    /// Applies `start` to partitions assigned for the first time.
    fn apply_start(&mut self) {
        if self.start == StartPosition::Committed || self.start == StartPosition::Latest {
            return;
        }
        let Ok(assigned) = self.consumer.assignment() else {
            return;
        };
        let mut seek = TopicPartitionList::new();
        for e in assigned.elements() {
            let id = partition_id(e.topic(), e.partition());
            if self.started.insert(id) {
                let offset = match self.start {
                    StartPosition::Time(t) => Offset::Offset(t),
                    _ => Offset::Beginning,
                };
                let _ = seek.add_partition_offset(e.topic(), e.partition(), offset);
            }
        }
        if seek.count() == 0 {
            return;
        }
        let timeout = Duration::from_secs(10);
        let target = match self.start {
            StartPosition::Time(_) => match self.consumer.offsets_for_times(seek, timeout) {
                Ok(t) => t,
                Err(_) => return,
            },
            _ => seek,
        };
        let _ = self.consumer.seek_partitions(target, timeout);
    }
}

impl KafkaSource {
    /// Applies the queue changes of rebalances since the last poll.
    fn apply_queue_changes(&mut self) {
        let changes = match self.consumer.context().queue_changes.lock() {
            Ok(mut c) if !c.is_empty() => std::mem::take(&mut *c),
            _ => return,
        };
        for change in changes {
            match change {
                QueueChange::Split(q) => {
                    self.queues.retain(|o| o.id != q.id);
                    self.queues.push(q);
                }
                QueueChange::Revoked(ids) => self.queues.retain(|q| !ids.contains(&q.id)),
            }
        }
    }

    /// Decodes the records waiting in the next partition queue that has
    /// any (up to `max`) into `batch`; returns their partition. Queues are
    /// read in turn, so a busy partition does not starve the others.
    fn take_records(
        &mut self,
        max: usize,
        now: i64,
        batch: &mut SourceBatch,
    ) -> Result<Option<PartitionId>, SourceError> {
        let n = self.queues.len();
        for i in 0..n {
            let at = (self.next_queue + i) % n;
            let queue = &self.queues[at];
            queue.take(&mut self.taken, max);
            if self.taken.is_empty() {
                continue;
            }
            self.next_queue = at + 1;
            let id = queue.id;
            let mut error = None;
            let (mut last, mut records, mut bytes) = (None, 0, 0);
            for rec in self.taken.records() {
                if let Some(e) = rec.error() {
                    error.get_or_insert(e);
                    continue;
                }
                self.records
                    .decode(&rec, now, &mut batch.events, &mut batch.dead_letters);
                (last, records, bytes) =
                    (Some(rec), records + 1, bytes + rec.payload().len() as u64);
            }
            if let Some(last) = last {
                self.records.read(id, &last, records, bytes);
            }
            self.consumer.context().client.reachable();
            if let Some(e) = error {
                if batch.events.is_empty() && batch.dead_letters.is_empty() {
                    return Err(SourceError::Other {
                        message: format!("consume: {e}"),
                        retryable: true,
                    });
                }
                tracing::warn!("kafka source {}: consume: {e}", self.records.name);
            }
            return Ok(Some(id));
        }
        Ok(None)
    }

    /// A batch of partition `id` ready to emit.
    fn ready(&self, mut batch: SourceBatch, id: PartitionId) -> SourcePoll {
        self.records
            .dead_letters
            .add(batch.dead_letters.len() as u64);
        batch.partition = id;
        SourcePoll::Ready(batch)
    }
}

impl Drop for KafkaSource {
    /// Partition queues and taken records go before the consumer closes.
    fn drop(&mut self) {
        self.queues.clear();
        self.taken = Batch::default();
        self.events = None;
        if let Ok(mut changes) = self.consumer.context().queue_changes.lock() {
            changes.clear();
        }
    }
}

impl Source for KafkaSource {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, SourceError> {
        if self.end_offsets.is_none() {
            self.apply_start();
        }
        let now = now_ms();
        let mut batch = SourceBatch::default();
        // The consumer queue first, all of it: rebalances, statistics and
        // client errors raised before the records below were fetched are
        // seen before them. Records of a partition whose queue was not
        // split off would come here too (none are expected; one at a time).
        let waiting = self.events.as_ref().map_or(1, ConsumerQueue::len);
        for _ in 0..waiting.max(1) {
            match self.consumer.poll(Duration::ZERO) {
                Some(Err(e)) => {
                    return Err(SourceError::Other {
                        message: format!("consume: {e}"),
                        retryable: true,
                    })
                }
                Some(Ok(msg)) => {
                    self.consumer.context().client.reachable();
                    let rec = RawRecord::of(&msg);
                    let id = partition_id(rec.topic(), rec.partition());
                    let bytes = rec.payload().len() as u64;
                    self.records.read(id, &rec, 1, bytes);
                    self.records
                        .decode(&rec, now, &mut batch.events, &mut batch.dead_letters);
                    return Ok(self.ready(batch, id));
                }
                None => {}
            }
        }
        self.apply_queue_changes();
        for wait in [true, false] {
            if let Some(id) = self.take_records(max, now, &mut batch)? {
                return Ok(self.ready(batch, id));
            }
            if wait {
                self.consumer.context().wake.wait(Duration::from_millis(10));
            }
        }
        if self.reached_end() {
            return Ok(SourcePoll::Finished);
        }
        Ok(SourcePoll::Pending)
    }

    fn assignment_changed(&mut self) -> Option<Vec<PartitionId>> {
        let changed = &self.consumer.context().assignment_changed;
        if !changed.swap(false, std::sync::atomic::Ordering::AcqRel) {
            return None;
        }
        let assigned = self.consumer.assignment().ok()?;
        Some(
            assigned
                .elements()
                .iter()
                .map(|e| partition_id(e.topic(), e.partition()))
                .collect(),
        )
    }

    /// The next offset to read per partition; restored offsets still
    /// waiting for their partition are carried along.
    fn positions(&self) -> Vec<SourcePosition> {
        let mut offsets = self.records.next_offset.clone();
        if let Ok(restored) = self.consumer.context().restored.lock() {
            for (&id, &offset) in restored.iter() {
                offsets.entry(id).or_insert(offset);
            }
        }
        let mut out: Vec<SourcePosition> = offsets
            .into_iter()
            .map(|(partition, offset)| SourcePosition {
                partition,
                offset: offset.max(0) as u64,
            })
            .collect();
        out.sort_by_key(|p| p.partition);
        out
    }

    /// Keeps the offsets for the rebalance callback to set when the group
    /// assigns their partitions (bounded mode: reassigns at once).
    fn seek(&mut self, positions: &[SourcePosition]) -> Result<(), SourceError> {
        let mut offsets = HashMap::new();
        for p in positions {
            let offset = i64::try_from(p.offset).map_err(|_| SourceError::Other {
                message: format!("kafka: checkpointed offset {} is out of range", p.offset),
                retryable: false,
            })?;
            offsets.insert(p.partition, offset);
            // Not moved by `start = earliest` or a time.
            self.started.insert(p.partition);
        }
        if self.end_offsets.is_some() {
            return self
                .assign_ranges(&offsets)
                .map_err(|e| SourceError::Other {
                    message: format!("kafka: cannot assign restored offsets: {e}"),
                    retryable: true,
                });
        }
        if let Ok(mut restored) = self.consumer.context().restored.lock() {
            restored.extend(offsets);
        }
        Ok(())
    }

    fn commit(&mut self, positions: &[SourcePosition]) -> Result<(), SourceError> {
        // Only partitions this member still owns: after a rebalance the new
        // owner resumes from the last offsets committed here.
        let assigned = self.consumer.assignment().unwrap_or_default();
        if self.end_offsets.is_some() && assigned.count() == 0 {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for p in positions {
            let Some((topic, partition)) = self.records.partitions.get(p.partition) else {
                continue;
            };
            if assigned.find_partition(topic, *partition).is_none() {
                continue;
            }
            let _ = tpl.add_partition_offset(topic, *partition, Offset::Offset(p.offset as i64));
        }
        let result = if tpl.count() == 0 {
            Ok(())
        } else {
            self.consumer
                .commit(&tpl, CommitMode::Sync)
                .map(|()| self.commits.inc())
        };
        match result {
            Ok(()) => {
                // A checkpoint of this run completed and the group holds its
                // offsets: a partition assigned from here on resumes there.
                if let Ok(mut restored) = self.consumer.context().restored.lock() {
                    restored.clear();
                }
                Ok(())
            }
            Err(e) => {
                self.commit_failures.inc();
                Err(SourceError::Other {
                    message: format!("offset commit: {e}"),
                    retryable: true,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use eddy_core::component::SourceFactory;

    use super::*;
    use crate::schema::SchemaConfig;

    fn config(extra: &str) -> KafkaSourceConfig {
        toml::from_str(&format!(
            "brokers = \"127.0.0.1:9\"\ntopics = [\"t\"]\ngroup = \"g\"\n{extra}"
        ))
        .unwrap()
    }

    fn problems(extra: &str) -> Vec<String> {
        config(extra)
            .validate(&eddy_core::component::ValidateContext::default())
            .into_iter()
            .map(|d| d.message)
            .collect()
    }

    #[test]
    fn schema_options_are_checked_against_the_format_and_files_read() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().display();
        std::fs::write(dir.path().join("s.json"), r#"{"required": ["id"]}"#).unwrap();
        std::fs::write(
            dir.path().join("p.avsc"),
            r#"{"type": "record", "name": "P", "fields": [{"name": "id", "type": "long"}]}"#,
        )
        .unwrap();
        assert!(problems(&format!("schema = {{ json_schema = \"{d}/s.json\" }}")).is_empty());
        assert!(problems(&format!(
            "format = \"avro\"\nschema = {{ avro = \"{d}/p.avsc\", json_schema = \"{d}/s.json\" }}"
        ))
        .is_empty());
        assert!(problems(&format!(
            "format = \"confluent_avro\"\nschema = {{ registry_dir = \"{d}\" }}"
        ))
        .is_empty());

        let cases = [
            (
                format!("schema = {{ json_schema = \"{d}/missing.json\" }}"),
                "missing.json",
            ),
            ("format = \"avro\"".to_string(), "needs `schema = { avro"),
            (
                "format = \"confluent_avro\"".to_string(),
                "needs `schema = { registry_dir",
            ),
            (
                format!("schema = {{ avro = \"{d}/p.avsc\" }}"),
                "`schema.avro` is for `format = \"avro\"`",
            ),
            (
                format!("format = \"avro\"\nschema = {{ avro = \"{d}/s.json\" }}"),
                "s.json",
            ),
        ];
        for (extra, wanted) in cases {
            let p = problems(&extra);
            assert!(
                p.iter().any(|m| m.contains(wanted)),
                "{extra}: {p:?} lacks {wanted}"
            );
        }
        assert!(toml::from_str::<KafkaSourceConfig>(
            "brokers = \"b\"\ntopics = [\"t\"]\ngroup = \"g\"\nschema = { jsonschema = \"x\" }"
        )
        .is_err());
    }

    #[test]
    fn payload_decoder_validates_after_decoding() {
        let dir = tempfile::tempdir().unwrap();
        let schema = dir.path().join("s.json");
        std::fs::write(&schema, r#"{"properties": {"amount": {"type": "number"}}}"#).unwrap();
        let cfg = SchemaConfig {
            json_schema: Some(schema),
            ..SchemaConfig::default()
        };
        let mut d = PayloadDecoder::new(PayloadFormat::Json, &cfg).unwrap();
        assert!(d.decode(br#"{"amount": 1.5}"#).is_ok());
        let e = d.decode(br#"{"amount": "abc"}"#).unwrap_err();
        assert!(
            e.contains(r#"/amount: "abc" is not of type "number" (type)"#),
            "{e}"
        );
        assert!(d.decode(b"nope").unwrap_err().contains("JSON"));
    }
}

/// Against a real broker (tansu, started by the test kit).
#[cfg(test)]
mod broker_tests {
    use std::collections::BTreeMap;
    use std::time::{Duration, Instant};

    use eddy_core::component::BuildContext;
    use eddy_core::Event;
    use eddy_testkit::kafka::Broker;
    use rdkafka::producer::{BaseProducer, BaseRecord, Producer};

    use super::*;
    use crate::kafka::{apply_topics, Connection, TopicsFile};

    const PARTITIONS: i32 = 3;
    const PER_PARTITION: i64 = 40;

    fn source(brokers: &str, group: &str, extra: &str) -> KafkaSource {
        let cfg: KafkaSourceConfig = toml::from_str(&format!(
            "brokers = \"{brokers}\"\ntopics = [\"seek\"]\ngroup = \"{group}\"\n{extra}"
        ))
        .unwrap();
        KafkaSource::new(&cfg, &BuildContext::single("k")).unwrap()
    }

    /// Reads until at least `n` events arrived (or all were read, or a
    /// minute passed), in polls of at most `max`; returns their `(p, n)`
    /// fields. Every batch holds one partition's records, in order.
    fn read(src: &mut KafkaSource, n: usize, max: usize) -> Vec<(i64, i64)> {
        let key = |e: &Event, f: &str| match e.get(eddy_core::Sym::intern(f)) {
            Some(eddy_core::Value::Int(i)) => *i,
            other => panic!("field {f}: {other:?}"),
        };
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let total = (PARTITIONS as i64 * PER_PARTITION) as usize;
        while out.len() < n && out.len() < total && Instant::now() < deadline {
            let _ = src.assignment_changed();
            // Errors while the group forms are retried; the checks below
            // catch anything lost.
            if let Ok(SourcePoll::Ready(b)) = src.poll(max) {
                assert!(b.dead_letters.is_empty(), "{:?}", b.dead_letters);
                assert!(b.events.len() <= max, "{} events", b.events.len());
                let read: Vec<(i64, i64)> = b
                    .events
                    .iter()
                    .map(|e| (key(e, "p"), key(e, "n")))
                    .collect();
                let p = read.first().map_or(0, |r| r.0);
                assert_eq!(b.partition, partition_id("seek", p as i32));
                for pair in read.windows(2) {
                    assert!(pair[0].0 == p && pair[1] == (p, pair[0].1 + 1), "{read:?}");
                }
                out.extend(read);
            }
        }
        out
    }

    fn produce(brokers: &str) {
        let topics = TopicsFile::parse(
            "topics.toml",
            &format!("[topics.seek]\npartitions = {PARTITIONS}\n"),
        )
        .unwrap();
        apply_topics(&Connection::plain(brokers), &topics).unwrap();
        let producer: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", brokers)
            // One record per batch: the test broker (tansu 0.6.0) returns
            // nothing for a fetch that starts inside a batch, which Kafka
            // answers with the whole batch for the client to skip into.
            .set("batch.num.messages", "1")
            .create()
            .unwrap();
        // Interleaved, so one poll meets several partitions.
        for n in 0..PER_PARTITION {
            for p in 0..PARTITIONS {
                let payload = format!("{{\"p\": {p}, \"n\": {n}}}");
                producer
                    .send(
                        BaseRecord::<(), [u8]>::to("seek")
                            .partition(p)
                            .payload(payload.as_bytes()),
                    )
                    .unwrap();
            }
        }
        producer.flush(Duration::from_secs(30)).unwrap();
    }

    /// Every record read exactly once, and each partition resumed right
    /// after the last record the first source emitted.
    fn assert_resumed_exactly(before: &[(i64, i64)], after: &[(i64, i64)]) {
        let mut seen: BTreeMap<(i64, i64), usize> = BTreeMap::new();
        for k in before.iter().chain(after) {
            *seen.entry(*k).or_default() += 1;
        }
        let twice: Vec<_> = seen.iter().filter(|(_, c)| **c > 1).collect();
        assert!(twice.is_empty(), "read twice: {twice:?}");
        let want: Vec<(i64, i64)> = (0..PARTITIONS as i64)
            .flat_map(|p| (0..PER_PARTITION).map(move |n| (p, n)))
            .collect();
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), want, "gap");
        for p in 0..PARTITIONS as i64 {
            let first_after = after.iter().find(|(q, _)| *q == p).map(|(_, n)| *n);
            let read_before = before.iter().filter(|(q, _)| *q == p).count() as i64;
            if read_before < PER_PARTITION {
                assert_eq!(first_after, Some(read_before), "partition {p}");
            }
        }
    }

    /// A checkpoint's positions, taken with every partition read in part,
    /// resume every partition after the last emitted record, even though
    /// the group holds older offsets (a crash between storing a checkpoint
    /// and committing it); then, bounded, from the same positions.
    #[test]
    fn restored_positions_win_over_older_committed_offsets() {
        let Some(broker) = Broker::start() else {
            return;
        };
        let b = broker.brokers();
        produce(&b);
        let total = (PARTITIONS as i64 * PER_PARTITION) as usize;

        let group = "seekers";
        let mut first = source(&b, group, "start = \"earliest\"");
        let before = read(&mut first, total / 2, 7);
        let positions = first.positions();
        let older: Vec<SourcePosition> = positions
            .iter()
            .map(|p| SourcePosition {
                partition: p.partition,
                offset: p.offset / 2,
            })
            .collect();
        first.commit(&older).unwrap();
        drop(first);

        let mut grouped = source(&b, group, "start = \"committed\"");
        grouped.seek(&positions).unwrap();
        let after = read(&mut grouped, total - before.len(), 7);
        assert_resumed_exactly(&before, &after);
        drop(grouped);

        let mut bounded = source(&b, group, "start = \"committed\"\nbounded = true");
        bounded.seek(&positions).unwrap();
        let after = read(&mut bounded, total - before.len(), 7);
        assert_resumed_exactly(&before, &after);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match bounded.poll(10).unwrap() {
                SourcePoll::Finished => break,
                SourcePoll::Ready(b) => panic!("read past the end: {:?}", b.events),
                SourcePoll::Pending => assert!(Instant::now() < deadline, "never finished"),
            }
        }
    }

    /// `metadata = true` adds each record's topic, partition, offset,
    /// timestamp, key and headers, read from the batch in place; a record
    /// without key or headers has null and an empty map.
    #[test]
    fn metadata_carries_key_headers_and_timestamp() {
        use rdkafka::message::{Header, OwnedHeaders};
        let Some(broker) = Broker::start() else {
            return;
        };
        let b = broker.brokers();
        let topics = TopicsFile::parse("topics.toml", "[topics.meta]\npartitions = 1\n").unwrap();
        apply_topics(&Connection::plain(&b), &topics).unwrap();
        let producer: BaseProducer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &b)
            .create()
            .unwrap();
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "trace",
                value: Some("abc"),
            })
            .insert(Header {
                key: "empty",
                value: None::<&str>,
            });
        producer
            .send(
                BaseRecord::to("meta")
                    .key("k1")
                    .payload(r#"{"n": 1}"#)
                    .timestamp(1_700_000_000_123)
                    .headers(headers),
            )
            .unwrap();
        producer
            .send(BaseRecord::<(), str>::to("meta").payload(r#"{"n": 2}"#))
            .unwrap();
        producer.flush(Duration::from_secs(30)).unwrap();

        let cfg: KafkaSourceConfig = toml::from_str(&format!(
            "brokers = \"{b}\"\ntopics = [\"meta\"]\ngroup = \"meta\"\nstart = \"earliest\"\n\
             bounded = true\nmetadata = true\n"
        ))
        .unwrap();
        let mut src = KafkaSource::new(&cfg, &BuildContext::single("k")).unwrap();
        let mut events = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            match src.poll(10).unwrap() {
                SourcePoll::Ready(batch) => events.extend(batch.events),
                SourcePoll::Finished => break,
                SourcePoll::Pending => {}
            }
        }
        let meta: Vec<String> = events
            .iter()
            .map(|e| {
                eddy_core::json::value_to_json_string(e.get(eddy_core::sym!("kafka")).unwrap())
            })
            .collect();
        assert_eq!(meta.len(), 2, "{meta:?}");
        assert_eq!(
            meta[0],
            r#"{"topic":"meta","partition":0,"offset":0,"timestamp":1700000000123,"key":"k1","headers":{"trace":"abc","empty":null}}"#
        );
        assert!(
            meta[1].starts_with(r#"{"topic":"meta","partition":0,"offset":1,"timestamp":"#)
                && meta[1].ends_with(r#","key":null,"headers":{}}"#),
            "{}",
            meta[1]
        );
    }

    #[test]
    fn partition_ids_are_stable_and_distinct() {
        assert_eq!(partition_id("orders", 3), partition_id("orders", 3));
        assert_ne!(partition_id("orders", 3), partition_id("orders", 4));
        assert_ne!(partition_id("orders1", 0), partition_id("orders", 1));
        // Fixed forever: checkpoints written by earlier builds name
        // partitions by it.
        assert_eq!(partition_id("", 0), 0xdc62_ece3_be52_214e);
    }
}
