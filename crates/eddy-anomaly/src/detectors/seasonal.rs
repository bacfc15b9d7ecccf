//! Seasonal baseline: an exponentially weighted mean and variance per hour
//! of the day (or hour of the week), learnt online, against which each
//! value is judged: 30 % CPU is normal at noon and odd at 3 a.m.

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};

use super::{Assessment, Params};
use crate::stats::Ewm;

/// Which profile a [`Seasonal`] detector learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Season {
    /// 24 slots, one per hour of the day (UTC).
    Day,
    /// 168 slots, one per hour of the week (UTC, Monday first).
    Week,
}

impl Season {
    fn slots(self) -> usize {
        match self {
            Season::Day => 24,
            Season::Week => 168,
        }
    }

    /// The slot of an event time in milliseconds since the Unix epoch.
    pub fn slot(self, time_ms: i64) -> usize {
        let hours = time_ms.div_euclid(3_600_000);
        match self {
            Season::Day => hours.rem_euclid(24) as usize,
            // 1970-01-01 was a Thursday: day 0 is weekday 3 counting from Monday.
            Season::Week => {
                let day = (hours.div_euclid(24) + 3).rem_euclid(7);
                (day * 24 + hours.rem_euclid(24)) as usize
            }
        }
    }
}

/// Values a slot needs before it judges: a few cycles (days or weeks),
/// since each cycle gives it only the values of one hour.
pub(super) const SLOT_MIN_SAMPLES: u64 = 5;

/// Per-slot profiles, with an overall average for slots still learning.
#[derive(Clone, Debug, PartialEq)]
pub struct Seasonal {
    overall: Ewm,
    slots: Vec<Ewm>,
}

impl Seasonal {
    /// An empty detector for `season`.
    pub fn new(season: Season) -> Seasonal {
        Seasonal {
            overall: Ewm::default(),
            slots: vec![Ewm::default(); season.slots()],
        }
    }

    /// The slot of `time_ms` and its profile so far.
    pub(super) fn slot(&self, p: &Params, time_ms: i64) -> (usize, &Ewm) {
        let i = p.season.slot(time_ms).min(self.slots.len() - 1);
        (i, &self.slots[i])
    }

    /// How many slots the profile has.
    pub(super) fn slot_count(&self) -> usize {
        self.slots.len()
    }

    /// Assesses `x` at `time_ms` against its slot's profile (or the
    /// overall one while the slot has seen fewer than five cycles),
    /// then adds it to both.
    pub fn observe(&mut self, p: &Params, time_ms: i64, x: f64) -> Assessment {
        let (i, slot) = self.slot(p, time_ms);
        let a = if slot.n >= SLOT_MIN_SAMPLES && self.overall.n as usize >= p.min_samples {
            Assessment::gaussian(x, slot.mean, slot.std(), p.band)
        } else if self.overall.n as usize >= p.min_samples {
            Assessment::gaussian(x, self.overall.mean, self.overall.std(), p.band)
        } else {
            Assessment::warming_up(x)
        };
        self.overall.push(x, p.alpha());
        self.slots[i].push(x, p.alpha());
        a
    }
}

impl Encode for Seasonal {
    fn encode(&self, enc: &mut Encoder) {
        self.overall.encode(enc);
        self.slots.encode(enc);
    }
}

impl Decode for Seasonal {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let s = Seasonal {
            overall: dec.get()?,
            slots: dec.get()?,
        };
        if s.slots.len() != 24 && s.slots.len() != 168 {
            return Err(DecodeError::OutOfRange("seasonal slots"));
        }
        Ok(s)
    }
}
