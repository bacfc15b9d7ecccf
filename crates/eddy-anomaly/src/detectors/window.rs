//! Detectors that compare a value with the recent past: the z-score over a
//! rolling window or an exponentially weighted mean, and the robust IQR
//! and MAD rules over a rolling window.

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};

use super::{Assessment, Params};
use crate::stats::{ln_normal_tail, spread_floor, Ewm, Recent};

/// Rolling z-score: `x` against the mean and standard deviation of the
/// last `window` values.
#[derive(Clone, Debug, PartialEq)]
pub struct RollingZ {
    recent: Recent,
}

impl RollingZ {
    /// An empty detector.
    pub fn new(p: &Params) -> RollingZ {
        RollingZ {
            recent: Recent::new(p.window),
        }
    }

    /// Assesses `x` against the window, then adds it.
    pub fn observe(&mut self, p: &Params, x: f64) -> Assessment {
        let a = if self.recent.len() >= p.min_samples {
            Assessment::gaussian(x, self.recent.mean(), self.recent.std(), p.band)
        } else {
            Assessment::warming_up(x)
        };
        self.recent.push(x);
        a
    }
}

/// EWMA z-score: `x` against an exponentially weighted mean and variance
/// whose weights halve every `half_life` values.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EwmaZ {
    ewm: Ewm,
}

impl EwmaZ {
    /// Assesses `x` against the average, then adds it.
    pub fn observe(&mut self, p: &Params, x: f64) -> Assessment {
        let a = if self.ewm.n as usize >= p.min_samples {
            Assessment::gaussian(x, self.ewm.mean, self.ewm.std(), p.band)
        } else {
            Assessment::warming_up(x)
        };
        self.ewm.push(x, p.alpha());
        a
    }
}

/// Which robust rule a [`Robust`] detector applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RobustRule {
    /// Tukey's fences: beyond the quartiles by `band`/2 interquartile ranges.
    Iqr,
    /// Median absolute deviation: `0.6745 (x − median) / MAD`.
    Mad,
}

/// The IQR and MAD rules over the last `window` values, kept sorted so the
/// quartiles and median cost a lookup (an insert and a removal move at
/// most `window` floats).
#[derive(Clone, Debug, PartialEq)]
pub struct Robust {
    recent: Recent,
    sorted: Vec<f64>,
    /// The MAD, refreshed every `window / 8` values (a full selection per
    /// value would dominate the cost).
    mad: f64,
    since_mad: u32,
}

/// Normal quantile of 0.75: a standard normal's IQR is 2 × this.
const Q75: f64 = 0.674_489_750_196_081_7;

impl Robust {
    /// An empty detector.
    pub fn new(p: &Params) -> Robust {
        Robust {
            recent: Recent::new(p.window),
            sorted: Vec::with_capacity(p.window),
            mad: 0.0,
            since_mad: u32::MAX,
        }
    }

    /// Assesses `x` by `rule` against the window, then adds it.
    pub fn observe(&mut self, p: &Params, rule: RobustRule, x: f64) -> Assessment {
        let a = if self.sorted.len() >= p.min_samples.max(4) {
            match rule {
                RobustRule::Iqr => self.iqr(p, x),
                RobustRule::Mad => self.mad(p, x),
            }
        } else {
            Assessment::warming_up(x)
        };
        self.add(x);
        a
    }

    fn add(&mut self, x: f64) {
        if let Some(old) = self.recent.push(x) {
            let i = self.sorted.partition_point(|v| v.total_cmp(&old).is_lt());
            if i < self.sorted.len() {
                self.sorted.remove(i);
            }
        }
        let i = self.sorted.partition_point(|v| v.total_cmp(&x).is_lt());
        self.sorted.insert(i, x);
        self.since_mad = self.since_mad.saturating_add(1);
    }

    fn quantile(&self, q: f64) -> f64 {
        let pos = q * (self.sorted.len() - 1) as f64;
        let lo = pos.floor() as usize;
        let hi = pos.ceil() as usize;
        let w = pos - lo as f64;
        self.sorted[lo] * (1.0 - w) + self.sorted[hi] * w
    }

    fn iqr(&self, p: &Params, x: f64) -> Assessment {
        let (q1, med, q3) = (self.quantile(0.25), self.quantile(0.5), self.quantile(0.75));
        let iqr = (q3 - q1).max(spread_floor(med));
        // A normal's quartiles sit 0.6745 σ from the mean: beyond a
        // quartile by d IQRs is 0.6745 + 2 · 0.6745 · d standard deviations.
        let beyond = (q1 - x).max(x - q3).max(0.0) / iqr;
        let z = if beyond > 0.0 {
            Q75 + 2.0 * Q75 * beyond
        } else {
            0.0
        };
        let fence = p.band / 2.0 * iqr;
        Assessment {
            ready: true,
            surprise: -ln_normal_tail(z),
            expected: med,
            low: q1 - fence,
            high: q3 + fence,
        }
    }

    fn mad(&mut self, p: &Params, x: f64) -> Assessment {
        let med = self.quantile(0.5);
        let refresh = (self.sorted.len() / 8).max(1) as u32;
        if self.since_mad >= refresh {
            let mut dev: Vec<f64> = self.sorted.iter().map(|v| (v - med).abs()).collect();
            let mid = dev.len() / 2;
            let (_, m, _) = dev.select_nth_unstable_by(mid, f64::total_cmp);
            self.mad = *m;
            self.since_mad = 0;
        }
        let sigma = (self.mad / Q75).max(spread_floor(med));
        Assessment::gaussian(x, med, sigma, p.band)
    }
}

impl Encode for RollingZ {
    fn encode(&self, enc: &mut Encoder) {
        self.recent.encode(enc);
    }
}

impl Decode for RollingZ {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(RollingZ { recent: dec.get()? })
    }
}

impl Encode for EwmaZ {
    fn encode(&self, enc: &mut Encoder) {
        self.ewm.encode(enc);
    }
}

impl Decode for EwmaZ {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(EwmaZ { ewm: dec.get()? })
    }
}

impl Encode for Robust {
    fn encode(&self, enc: &mut Encoder) {
        // The sorted copy is derived from the window; the MAD is kept as
        // it was, so a restored detector refreshes it when the original would.
        self.recent.encode(enc);
        enc.f64(self.mad);
        enc.varint(u64::from(self.since_mad));
    }
}

impl Decode for Robust {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let recent: Recent = dec.get()?;
        let mut sorted = recent.values().to_vec();
        sorted.sort_by(f64::total_cmp);
        let mad = dec.f64()?;
        let since_mad = u32::try_from(dec.varint()?).unwrap_or(u32::MAX);
        Ok(Robust {
            recent,
            sorted,
            mad,
            since_mad,
        })
    }
}
