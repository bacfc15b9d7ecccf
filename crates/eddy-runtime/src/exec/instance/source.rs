//! The source head of an instance: polling, per-partition watermarks, and
//! cutting batches so lateness does not depend on where they were cut.

use super::*;

impl Instance {
    /// Polls the head source once. Returns whether it produced anything.
    pub(super) fn poll_source(&mut self) -> bool {
        let Runner::Source(src) = &mut self.nodes[0].runner else {
            return false;
        };
        if let Some(owned) = src.source.assignment_changed() {
            let now = Instant::now();
            src.partitions.retain(|id, _| owned.contains(id));
            for id in owned {
                src.partitions.entry(id).or_insert_with(|| Partition {
                    generator: WatermarkGenerator::new(src.spec.max_out_of_orderness),
                    last_data: now,
                    idle: false,
                });
            }
        }
        if let Some(e) = &self.emissions {
            e.wait();
        }
        match src.source.poll(self.batch_size) {
            Ok(SourcePoll::Ready(sb)) => {
                let origin = now_ns();
                self.last_origin = origin;
                let now = Instant::now();
                let before = source_watermark(src);
                let others = others_watermark(src, sb.partition);
                let part = src
                    .partitions
                    .entry(sb.partition)
                    .or_insert_with(|| Partition {
                        generator: WatermarkGenerator::new(src.spec.max_out_of_orderness),
                        last_data: now,
                        idle: false,
                    });
                let (mut stamp, cuts) =
                    lateness_cuts(&sb.events, &mut part.generator, others, before);
                if !sb.events.is_empty() || sb.progress.is_some() {
                    part.last_data = now;
                    part.idle = false;
                    src.idle = false;
                }
                if let Some(t) = sb.progress {
                    part.generator.observe(t);
                }
                src.backoff = Duration::from_millis(10);
                let wm = source_watermark(src);
                self.metrics.nodes[self.nodes[0].global]
                    .add_in(self.worker, sb.events.len() as u64);
                // Rare: an event behind the watermark its predecessors in
                // this batch set. Those predecessors and that watermark go
                // first, so whether it is late does not depend on where
                // the batch was cut.
                let mut events = sb.events;
                let mut sent = 0;
                for cut in cuts {
                    let tail = events.split_off(cut.at - sent);
                    self.dispatch(0, Output::MAIN, events, origin, stamp);
                    if let Some(mark) = cut.mark {
                        self.advance(0, mark);
                    }
                    (events, sent, stamp) = (tail, cut.at, cut.stamp);
                }
                self.dispatch(0, Output::MAIN, events, origin, stamp);
                self.dispatch(
                    0,
                    Output::DEAD_LETTERS,
                    sb.dead_letters,
                    origin,
                    MIN_TIMESTAMP,
                );
                if let Some(wm) = wm {
                    self.advance(0, wm);
                }
                true
            }
            Ok(SourcePoll::Pending) => {
                let Some(timeout) = src.spec.idle_timeout else {
                    return false;
                };
                let timeout = Duration::from_millis(timeout.max(0) as u64);
                let now = Instant::now();
                let mut changed = false;
                for p in src.partitions.values_mut() {
                    if !p.idle && now.duration_since(p.last_data) >= timeout {
                        p.idle = true;
                        changed = true;
                    }
                }
                let all_idle = src.partitions.values().all(|p| p.idle)
                    && now.duration_since(src.started) >= timeout;
                let went_idle = all_idle && !src.idle;
                src.idle |= all_idle;
                let wm = if changed { source_watermark(src) } else { None };
                if let Some(wm) = wm {
                    self.advance(0, wm);
                }
                if went_idle {
                    // Fused consumers see no watermark change; channel heads
                    // stop waiting for this instance.
                    self.propagate(0, &mut |_, _| {}, || Msg::Idle);
                }
                false
            }
            Ok(SourcePoll::Finished) => {
                self.end(0);
                true
            }
            Err(e) => {
                let retry = eddy_core::Classify::retryable(&e);
                let backoff = src.backoff;
                src.backoff = (src.backoff * 2).min(Duration::from_secs(5));
                self.error(0, Failure::Source(e));
                if retry {
                    std::thread::sleep(backoff);
                } else {
                    self.end(0);
                }
                true
            }
        }
    }
}

/// The watermark of a source's active partitions other than `partition`.
fn others_watermark(src: &SourceRt, partition: PartitionId) -> Option<Timestamp> {
    src.partitions
        .iter()
        .filter(|(id, p)| **id != partition && !p.idle)
        .map(|(_, p)| p.generator.watermark())
        .min()
}

/// Where a source batch is cut: before event `at`, with `stamp` (its
/// partition's watermark there) for the events from `at` on, and the
/// source watermark `mark` to send first, if it advanced.
#[derive(Debug, PartialEq)]
struct Cut {
    at: usize,
    stamp: Timestamp,
    mark: Option<Timestamp>,
}

/// Observes `events` (one partition's, in order) in `generator` and returns
/// the batch's first stamp and where to cut it: before each event whose
/// time is behind the watermark its predecessors set (`others` is the other
/// partitions' watermark, `before` what was sent before this batch). Each
/// event then meets the watermark of the events before it, as with batches
/// of one, whatever the batch size.
fn lateness_cuts(
    events: &[Event],
    generator: &mut WatermarkGenerator,
    others: Option<Timestamp>,
    before: Option<Timestamp>,
) -> (Timestamp, Vec<Cut>) {
    let first = generator.watermark();
    let mut stamp = first;
    let mut cuts = Vec::new();
    let mut sent = before.unwrap_or(MIN_TIMESTAMP);
    for (i, e) in events.iter().enumerate() {
        // Only an event behind its partition's watermark can be late.
        let own = generator.watermark();
        if e.time < own && own > stamp && i > 0 {
            let mark = others.map_or(own, |o| o.min(own));
            let mark = (mark > sent && mark < MAX_TIMESTAMP).then_some(mark);
            if let Some(m) = mark {
                sent = m;
            }
            cuts.push(Cut {
                at: i,
                stamp: own,
                mark,
            });
            stamp = own;
        }
        generator.observe(e.time);
    }
    (first, cuts)
}

/// Per partition of a source, the largest event time seen: what a
/// checkpoint keeps so the watermark resumes where it was.
pub(super) fn source_progress(src: &SourceRt) -> Vec<(PartitionId, Timestamp)> {
    let mut out: Vec<(PartitionId, Timestamp)> = src
        .partitions
        .iter()
        .map(|(id, p)| (*id, p.generator.max_seen()))
        .filter(|(_, t)| *t > MIN_TIMESTAMP)
        .collect();
    out.sort_unstable();
    out
}

/// The source's watermark: the minimum over its active partitions, if any
/// partition has data.
fn source_watermark(src: &SourceRt) -> Option<Timestamp> {
    let wm = src
        .partitions
        .values()
        .filter(|p| !p.idle)
        .map(|p| p.generator.watermark())
        .min();
    match wm {
        Some(w) if w > MIN_TIMESTAMP => Some(w),
        None if !src.partitions.is_empty() => Some(
            src.partitions
                .values()
                .map(|p| p.generator.watermark())
                .max()
                .unwrap_or(MIN_TIMESTAMP),
        ),
        _ => None,
    }
    .filter(|w| *w < MAX_TIMESTAMP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::Fields;

    fn events(times: &[i64]) -> Vec<Event> {
        times
            .iter()
            .map(|&t| Event::new(t, Fields::default()))
            .collect()
    }

    #[test]
    fn cuts_only_before_events_behind_their_predecessors_watermark() {
        // Bound 10: the watermark trails the largest time by 11.
        let mut generator = WatermarkGenerator::new(10);
        let (first, cuts) = lateness_cuts(
            &events(&[100, 120, 105, 130, 131]),
            &mut generator,
            None,
            None,
        );
        assert_eq!(first, MIN_TIMESTAMP);
        // 105 is behind 120 - 11 = 109: cut there, and send 109 first.
        assert_eq!(
            cuts,
            vec![Cut {
                at: 2,
                stamp: 109,
                mark: Some(109)
            }]
        );
        assert_eq!(generator.max_seen(), 131);
    }

    #[test]
    fn a_lagging_partition_holds_the_mark_back_but_not_the_stamp() {
        let mut generator = WatermarkGenerator::new(0);
        let (_, cuts) = lateness_cuts(&events(&[50, 10]), &mut generator, Some(5), Some(5));
        // Another partition is at 5: the source watermark stays, the
        // event is still stamped with its own partition's 49.
        assert_eq!(
            cuts,
            vec![Cut {
                at: 1,
                stamp: 49,
                mark: None
            }]
        );
    }

    /// Whatever the batch cuts, every event ends up stamped with its own
    /// partition's watermark before it, or lower only when it cannot be late.
    #[test]
    fn stamps_agree_with_batches_of_one() {
        let times: Vec<i64> = (0..500).map(|i| (i * 37 % 101) * 10 + i * 3).collect();
        for batch in [1, 2, 7, 64, 500] {
            let mut generator = WatermarkGenerator::new(50);
            let mut exact = WatermarkGenerator::new(50);
            for chunk in times.chunks(batch) {
                let (first, cuts) = lateness_cuts(&events(chunk), &mut generator, None, None);
                let mut stamp = first;
                let mut cuts = cuts.into_iter().peekable();
                for (i, &t) in chunk.iter().enumerate() {
                    if cuts.peek().is_some_and(|c| c.at == i) {
                        stamp = cuts.next().map_or(stamp, |c| c.stamp);
                    }
                    let before = exact.watermark();
                    // Late by the exact watermark ⇔ late by the stamp.
                    assert_eq!(t < before, t < stamp, "batch {batch}, event {i} at {t}");
                    assert!(stamp <= before);
                    exact.observe(t);
                }
            }
        }
    }
}
