//! Global windows: one open window per key, fired by a count or at fixed
//! intervals rather than by window bounds.
//!
//! Results carry `window_start` = the earliest event time in the window and
//! `window_end` = the trigger time: for `count`, the latest event time in
//! the window + 1; for `every`, the interval boundary that fired it; at the
//! end of input (and on TTL expiry), the latest event time + 1.

use eddy_core::{Collector, Timestamp, Value};
use rustc_hash::FxHashMap;

use super::common::{fold, Ctx, Key};
use crate::aggregate::{Accumulator, Observation};

/// What fires a global window.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// Emit and clear after this many events per key.
    Count(u64),
    /// Emit running totals at every multiple of this interval.
    Every(i64),
}

struct Slot {
    first: Timestamp,
    last: Timestamp,
    count: u64,
    accs: Vec<Accumulator>,
}

/// State of global windows.
pub(crate) struct Global {
    trigger: Trigger,
    ttl: Option<i64>,
    slots: FxHashMap<Key, Slot>,
    /// The last interval boundary emitted (`every` only).
    boundary: Option<Timestamp>,
}

impl Global {
    pub(crate) fn new(trigger: Trigger, ttl: Option<i64>) -> Global {
        Global {
            trigger,
            ttl,
            slots: FxHashMap::default(),
            boundary: None,
        }
    }

    /// Adds an event; a `count` trigger may fire right away.
    pub(crate) fn add(
        &mut self,
        t: Timestamp,
        key: &[Value],
        obs: &[Observation],
        cx: &Ctx<'_>,
        out: &mut Collector,
    ) {
        let full = match self.slots.get_mut(key) {
            Some(slot) => update(slot, t, obs, self.trigger),
            None => {
                let mut slot = Slot {
                    first: t,
                    last: t,
                    count: 0,
                    accs: cx.fresh(),
                };
                let full = update(&mut slot, t, obs, self.trigger);
                self.slots.insert(Key::from(key), slot);
                full
            }
        };
        if full {
            if let Some(slot) = self.slots.remove(key) {
                emit_through_last(cx, out, key, &slot);
            }
        }
    }

    /// Time (watermark or wall clock) reached `now`: emit running totals at
    /// a new interval boundary, then expire idle keys.
    pub(crate) fn advance(&mut self, now: Timestamp, cx: &Ctx<'_>, out: &mut Collector) {
        if let Trigger::Every(every) = self.trigger {
            // The latest boundary b with b - 1 <= now, as for window ends.
            let boundary = now
                .checked_add(1)
                .and_then(|n| n.div_euclid(every).checked_mul(every));
            if let Some(b) = boundary {
                if self.boundary.is_none_or(|prev| b > prev) {
                    self.boundary = Some(b);
                    for (key, slot) in &self.slots {
                        cx.emit(out, slot.first, b, key, &slot.accs);
                    }
                }
            }
        }
        if let Some(ttl) = self.ttl {
            let trigger = self.trigger;
            self.slots.retain(|key, slot| {
                let idle = now.saturating_sub(slot.last) >= ttl;
                if idle && matches!(trigger, Trigger::Count(_)) {
                    emit_through_last(cx, out, key, slot);
                }
                !idle
            });
        }
    }

    /// End of input: emit every open window.
    pub(crate) fn finish(&mut self, cx: &Ctx<'_>, out: &mut Collector) {
        for (key, slot) in self.slots.drain() {
            emit_through_last(cx, out, &key, &slot);
        }
    }
}

/// Emits `slot` as a window ending just after its latest event.
fn emit_through_last(cx: &Ctx<'_>, out: &mut Collector, key: &[Value], slot: &Slot) {
    cx.emit(
        out,
        slot.first,
        slot.last.saturating_add(1),
        key,
        &slot.accs,
    );
}

/// Folds an event into `slot`; returns whether a count trigger is due.
#[inline]
fn update(slot: &mut Slot, t: Timestamp, obs: &[Observation], trigger: Trigger) -> bool {
    fold(&mut slot.accs, obs);
    slot.first = slot.first.min(t);
    slot.last = slot.last.max(t);
    slot.count += 1;
    matches!(trigger, Trigger::Count(n) if slot.count >= n)
}
