//! Per-key buffers that hand a keyed operator its events in event-time
//! order once the watermark has passed them, whatever order they arrived
//! in: what makes a sequential per-key computation (a detector, an alert's
//! lifecycle, a pattern) depend only on its input, never on how channels
//! interleaved or where batches were cut. Equal times are ordered by the
//! events' fields ([`in_input_order`]).
//!
//! The buffers are keyed state (a table the operator lists in its
//! `tables()`), released by event-time timers on the operator's context.

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};
use eddy_core::output::{Output, OutputSpec};
use eddy_core::state::{KeyGroup, StateTable, TimeDomain, Timer};
use eddy_core::{Batch, Collector, Event, Fields, OperatorContext, Timestamp};
use eddy_state::ValueTable;
use serde::Deserialize;

use crate::transforms::key::KeyEvaluator;

/// In which order a keyed operator sees each key's events (`order = ..`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Event time, once the watermark has passed (deterministic).
    #[default]
    EventTime,
    /// As they arrive (no waiting).
    Arrival,
}

/// The output of events that arrived behind the watermark.
pub const LATE: &str = "late";

/// The declaration of the [`LATE`] output.
pub fn late_output() -> OutputSpec {
    OutputSpec::new(LATE, "events that arrived behind the watermark, unchanged")
}

/// A keyed operator's event, with its key's group and encoded bytes.
pub type Keyed = (KeyGroup, Vec<u8>, Event);

/// How far a timer releases a key's events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Release {
    /// Everything up to the watermark, on one timer per key (the fewest
    /// timers: for operators that only consume events).
    UpToWatermark,
    /// Only events up to the timer's own time, with a timer at each
    /// distinct event time: for operators whose own timers must see
    /// exactly the events before them.
    EachTime,
}

/// Events waiting per key.
pub struct OrderedEvents {
    pending: ValueTable<Pending>,
    release: Release,
}

impl OrderedEvents {
    /// Empty buffers releasing as `release` says.
    pub fn new(release: Release) -> OrderedEvents {
        OrderedEvents {
            pending: ValueTable::new(None),
            release,
        }
    }

    /// Buffers `event` for `key` (the caller has sent late events aside:
    /// those at or behind the watermark) and sets its timer.
    pub fn push(&mut self, g: KeyGroup, key: &[u8], event: Event, cx: &mut OperatorContext) {
        let waiting = self.pending.update(g, key, 0, Pending::default);
        let timers = cx.timers(TimeDomain::EventTime);
        match self.release {
            Release::EachTime => {
                timers.register(g, key, event.time);
            }
            // One timer per key, at its earliest waiting event; one set
            // for a later event is left to find nothing (deleting it could
            // delete the operator's own timer at that time).
            Release::UpToWatermark => {
                if waiting.events.is_empty() || event.time < waiting.timer {
                    timers.register(g, key, event.time);
                    waiting.timer = event.time;
                }
            }
        }
        waiting.events.push(event);
    }

    /// Takes in a keyed operator's `batch`: an event whose key cannot be
    /// evaluated goes to the dead letters (naming `name`); with
    /// `Order::EventTime` one at or behind the watermark its own partition
    /// had reached (the batch's stamp, so lateness depends only on the
    /// input) goes to `late`, the others wait here for their timers. With
    /// `Order::Arrival` the events come back, to be handled at once.
    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &mut self,
        batch: Batch,
        order: Order,
        keys: &mut KeyEvaluator,
        name: &str,
        late: Output,
        cx: &mut OperatorContext,
        out: &mut Collector,
    ) -> Vec<Keyed> {
        let judge = cx.watermark().max(batch.stamp);
        let mut now = Vec::new();
        for event in batch.events {
            let (g, key) = match keys.eval(name, &event) {
                Ok(k) => k,
                Err(reason) => {
                    out.dead_letter(name, reason, &event);
                    continue;
                }
            };
            match order {
                Order::Arrival => now.push((g, key, event)),
                Order::EventTime if event.time <= judge => out.push(late, event),
                Order::EventTime => self.push(g, &key, event, cx),
            }
        }
        now
    }

    /// Whether an event of `key` at time `t` is waiting (its release
    /// needs the key's timer at `t`).
    pub fn waits_at(&self, g: KeyGroup, key: &[u8], t: Timestamp) -> bool {
        self.pending
            .get(g, key, 0)
            .is_some_and(|w| w.events.iter().any(|e| e.time == t))
    }

    /// The events `timer` releases for its key, in input order.
    pub fn release(&mut self, timer: &Timer, cx: &mut OperatorContext) -> Vec<Event> {
        let upto: Timestamp = match self.release {
            Release::UpToWatermark => cx.watermark(),
            Release::EachTime => timer.time,
        };
        if self.pending.get(timer.group, &timer.key, 0).is_none() {
            return Vec::new();
        }
        let waiting = self
            .pending
            .update(timer.group, &timer.key, 0, Pending::default);
        let stale = self.release == Release::UpToWatermark && timer.time != waiting.timer;
        if stale {
            return Vec::new();
        }
        let mut due: Vec<Event> = Vec::with_capacity(waiting.events.len());
        let mut next = None::<i64>;
        waiting.events.retain_mut(|e| {
            if e.time <= upto {
                due.push(std::mem::replace(e, Event::new(0, Fields::default())));
                false
            } else {
                next = Some(next.map_or(e.time, |n: i64| n.min(e.time)));
                true
            }
        });
        if let (Some(next), Release::UpToWatermark) = (next, self.release) {
            waiting.timer = next;
            cx.timers(TimeDomain::EventTime)
                .register(timer.group, &timer.key, next);
        }
        if waiting.events.is_empty() {
            // Nothing waits: the key leaves the table, so keys seen once
            // (an id per order, per session) do not stay for good.
            self.pending.remove(timer.group, &timer.key, 0);
        }
        in_input_order(&mut due);
        due
    }

    /// The buffers' table, for the operator's `tables()`.
    pub fn table(&mut self) -> &mut dyn StateTable {
        &mut self.pending
    }
}

/// Sorts one key's events by time, equal times by their fields (field by
/// field in event order: name, then value by [`Value::total_cmp`], then
/// the number of fields): a total order that does not depend on arrival.
pub fn in_input_order(events: &mut [Event]) {
    events.sort_by(|a, b| {
        a.time
            .cmp(&b.time)
            .then_with(|| cmp_fields(&a.fields, &b.fields))
    });
}

fn cmp_fields(a: &Fields, b: &Fields) -> std::cmp::Ordering {
    for ((na, va), (nb, vb)) in a.iter().zip(b.iter()) {
        // Equal symbols are equal names: only different ones need text.
        let order = if na == nb {
            va.total_cmp(vb)
        } else {
            na.as_str().cmp(nb.as_str())
        };
        if order.is_ne() {
            return order;
        }
    }
    a.len().cmp(&b.len())
}

/// A key's events waiting for the watermark, and the time of its one
/// registered timer (the earliest of them).
#[derive(Clone, Debug, Default)]
struct Pending {
    timer: i64,
    events: Vec<Event>,
}

impl Encode for Pending {
    fn encode(&self, enc: &mut Encoder) {
        enc.zigzag(self.timer);
        self.events.encode(enc);
    }
}

impl Decode for Pending {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Pending {
            timer: dec.zigzag()?,
            events: dec.get()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::state::{GroupRange, KEY_GROUPS};

    fn stored(events: &OrderedEvents) -> usize {
        (0..KEY_GROUPS)
            .filter_map(KeyGroup::new)
            .map(|g| events.pending.iter_group(g, 0).count())
            .sum()
    }

    /// Keys seen once leave the table once their events are released, in
    /// both release modes; what still waits stays.
    #[test]
    fn released_keys_leave_the_table() {
        for release in [Release::EachTime, Release::UpToWatermark] {
            let mut cx = eddy_state::context(GroupRange::all());
            let mut waiting = OrderedEvents::new(release);
            for id in 0..100 {
                let key = format!("order-{id}");
                let g = KeyGroup::of(&key);
                waiting.push(
                    g,
                    key.as_bytes(),
                    Event::new(id, Fields::default()),
                    &mut cx,
                );
            }
            let mut released = 0;
            cx.set_watermark(49);
            for timer in cx.timers(TimeDomain::EventTime).due(49) {
                released += waiting.release(&timer, &mut cx).len();
            }
            assert_eq!(released, 50, "{release:?}");
            assert_eq!(stored(&waiting), 50, "{release:?}: the waiting keys stay");
            cx.set_watermark(i64::MAX);
            for timer in cx.timers(TimeDomain::EventTime).due(i64::MAX) {
                released += waiting.release(&timer, &mut cx).len();
            }
            assert_eq!(released, 100, "{release:?}");
            assert_eq!(stored(&waiting), 0, "{release:?}: no key stays");
        }
    }
}
