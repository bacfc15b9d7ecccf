//! The ensemble: several detectors on the same value. The rarity member
//! (see [`Density`]) speaks as it is; the others' surprises are calibrated
//! against their own history (how unusual is *this much* surprise for this
//! detector on this series?), which makes members of different scales
//! comparable and quiets one that is noisy on a given series; the most
//! surprised member decides.

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};

use super::{Assessment, Cusum, Density, Forest, HalfSpaceTrees, Params, Season, Seasonal};
use crate::stats::{alpha_for_half_life, ln_normal_tail, Ewm};

/// Half-life (values) of a member's long-run surprise statistics.
const LONG_HALF_LIFE: f64 = 1000.0;
/// Half-life (values) of a member's short-run surprise average.
const SHORT_HALF_LIFE: f64 = 2.0;

/// The least spread of surprise (nats) a calibration assumes.
const SPREAD_FLOOR: f64 = 1.0;

/// A member's surprise history: the long-run mean and spread, and a short
/// average of the latest values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Calibrator {
    long: Ewm,
    short: Ewm,
}

impl Calibrator {
    /// Calibrates `surprise`: the one-sided tail of the short average
    /// against the long-run distribution, as a surprise; then learns it.
    pub fn calibrate(&mut self, p: &Params, surprise: f64) -> f64 {
        self.short
            .push(surprise, alpha_for_half_life(SHORT_HALF_LIFE));
        let out = if self.long.n as usize >= p.min_samples {
            // A member that has been calm has almost no spread of surprise;
            // without a floor its first ripple would look extraordinary.
            let z = (self.short.mean - self.long.mean) / self.long.std().max(SPREAD_FLOOR);
            if z > 0.0 {
                -(ln_normal_tail(z) - std::f64::consts::LN_2)
            } else {
                0.0
            }
        } else {
            0.0
        };
        self.long
            .push(surprise, alpha_for_half_life(LONG_HALF_LIFE));
        out
    }
}

/// How much a calibrated member's surprise counts against the rarity
/// member's own: members other than rarity must be more surprised to
/// decide (on NAB each one alone adds more false alarms than finds).
const MEMBER_WEIGHT: f64 = 0.5;

/// The members and their calibrations.
#[derive(Clone, Debug, PartialEq)]
pub struct Ensemble {
    rarity: Density,
    trees: HalfSpaceTrees,
    shift: Cusum,
    season: Seasonal,
    calibration: [Calibrator; 3],
    previous: Option<f64>,
}

impl Default for Ensemble {
    fn default() -> Ensemble {
        Ensemble {
            rarity: Density::default(),
            trees: HalfSpaceTrees::default(),
            shift: Cusum::default(),
            season: Seasonal::new(Season::Day),
            calibration: Default::default(),
            previous: None,
        }
    }
}

impl Ensemble {
    /// Runs every member on `x` at `time_ms`: the rarity of the level and
    /// move (as it is), half-space trees on the value and its change,
    /// CUSUM and the hour-of-day profile (each calibrated and weighted by
    /// [`MEMBER_WEIGHT`]); the most surprised decides. The expectation
    /// reported is the rarity member's.
    pub fn observe(&mut self, p: &Params, forest: &Forest, time_ms: i64, x: f64) -> Assessment {
        let change = self.previous.map_or(0.0, |prev| x - prev);
        self.previous = Some(x);
        let rarity = self.rarity.observe(p, x);
        let others = [
            self.trees.observe(p, forest, &[x, change]),
            self.shift.observe(p, x),
            self.season.observe(p, time_ms, x),
        ];
        let mut surprise = rarity.surprise;
        for (m, c) in others.iter().zip(self.calibration.iter_mut()) {
            if m.ready {
                surprise = surprise.max(MEMBER_WEIGHT * c.calibrate(p, m.surprise));
            }
        }
        Assessment {
            ready: rarity.ready || others.iter().any(|m| m.ready),
            surprise,
            ..rarity
        }
    }
}

impl Encode for Calibrator {
    fn encode(&self, enc: &mut Encoder) {
        self.long.encode(enc);
        self.short.encode(enc);
    }
}

impl Decode for Calibrator {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Calibrator {
            long: dec.get()?,
            short: dec.get()?,
        })
    }
}

impl Encode for Ensemble {
    fn encode(&self, enc: &mut Encoder) {
        self.rarity.encode(enc);
        self.trees.encode(enc);
        self.shift.encode(enc);
        self.season.encode(enc);
        for c in &self.calibration {
            c.encode(enc);
        }
        self.previous.encode(enc);
    }
}

impl Decode for Ensemble {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Ensemble {
            rarity: dec.get()?,
            trees: dec.get()?,
            shift: dec.get()?,
            season: dec.get()?,
            calibration: [dec.get()?, dec.get()?, dec.get()?],
            previous: dec.get()?,
        })
    }
}
