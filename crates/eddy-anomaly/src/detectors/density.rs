//! Rarity: how seldom the series has been at this level, and has moved
//! from the previous level to this one, in all its (slowly fading)
//! history: a histogram of levels over a range (the first values', and
//! [`Params::range`] when it is known) that widens, by doubling and
//! merging bin pairs, whenever a value falls outside it, and a table of
//! transitions between coarser bins. Catches what has never happened
//! before (a new level, a jump of a kind never seen) even when it is not
//! far from the mean; on the NAB corpus it is the strongest single
//! detector here (see the README), and the ensemble's main member.

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};

use super::{Assessment, Params};
use crate::stats::spread_floor;

/// Bins of the level histograms.
const BINS: usize = 64;
/// Transition table: levels folded into this many coarse bins.
const COARSE: usize = 16;
/// Pseudo-count of every level bin: how likely a never-seen level is. At
/// 0.05 rather than 0.1 a never-seen level is twice as rare, so a series
/// with a few hundred values of history can already flag one. On NAB's
/// corpus the ensemble scores about the same on the 35 development series
/// from 0.04 to 0.12 (76.2 to 76.4, tuned); on all 58, 75.2 to 76.1 from
/// 0.04 to 0.08 and 73.8 at 0.12.
const LEVEL_SMOOTHING: f64 = 0.05;
/// Pseudo-count of every cell of the transition table: at 0.05 as well,
/// the `density` detector's tuned score on the 35 falls from 65.1 to 62.6.
const MOVE_SMOOTHING: f64 = 0.1;
/// Counts halve every this many values, so old history fades slowly.
const FADE_HALF_LIFE: f64 = 20_000.0;

/// A histogram over `[low, low + width·bins)` whose range doubles toward a
/// value outside it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Histogram {
    low: f64,
    width: f64,
    counts: Vec<f64>,
    total: f64,
}

impl Histogram {
    fn new(lo: f64, hi: f64, bins: usize) -> Histogram {
        let pad = ((hi - lo) * 0.25).max(spread_floor(hi));
        Histogram {
            low: lo - pad,
            width: (hi - lo + 2.0 * pad) / bins as f64,
            counts: vec![0.0; bins],
            total: 0.0,
        }
    }

    fn high(&self) -> f64 {
        self.low + self.width * self.counts.len() as f64
    }

    /// Whether `x` is inside the range.
    fn holds(&self, x: f64) -> bool {
        x >= self.low && x < self.high()
    }

    /// The bin of `x`, widening the range until it holds `x`.
    fn bin(&mut self, x: f64) -> usize {
        while !self.holds(x) {
            self.widen(x >= self.low);
        }
        let n = self.counts.len();
        (((x - self.low) / self.width).floor().max(0.0) as usize).min(n - 1)
    }

    fn widen(&mut self, up: bool) {
        let n = self.counts.len();
        let mut merged = vec![0.0; n];
        for (i, c) in self.counts.iter().enumerate() {
            merged[merge(i, n, up)] += c;
        }
        if !up {
            self.low -= self.width * n as f64;
        }
        self.width *= 2.0;
        self.counts = merged;
    }

    /// −ln of the smoothed probability of bin `b`, less that of a uniform
    /// histogram (a bin as common as average costs nothing).
    fn surprise(&self, b: usize) -> f64 {
        let n = self.counts.len() as f64;
        let p = (self.counts[b] + LEVEL_SMOOTHING) / (self.total + LEVEL_SMOOTHING * n);
        (-p.ln() - n.ln()).max(0.0)
    }

    fn count(&mut self, b: usize, fade: f64) {
        self.total = self.total * fade + 1.0;
        self.counts[b] = self.counts[b] * fade + 1.0;
    }

    /// The value below which a fraction `q` of the mass lies
    /// (interpolated within the bin).
    fn quantile(&self, q: f64) -> f64 {
        let target = q * self.total;
        let mut seen = 0.0;
        for (i, c) in self.counts.iter().enumerate() {
            if seen + c >= target && *c > 0.0 {
                let within = ((target - seen) / c).clamp(0.0, 1.0);
                return self.low + self.width * (i as f64 + within);
            }
            seen += c;
        }
        self.high()
    }
}

/// Where bin `i` of `n` goes when the range doubles up or down.
fn merge(i: usize, n: usize, up: bool) -> usize {
    if up {
        i / 2
    } else {
        n / 2 + i / 2
    }
}

/// One key's histograms.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Density {
    /// Values kept until the range is known.
    first: Vec<f64>,
    level: Histogram,
    /// Coarse transitions previous level → level (row-major).
    moves: Vec<f64>,
    previous: Option<usize>,
}

impl Density {
    /// Assesses `x` by the rarity of its level and of the move to it,
    /// then counts it.
    pub fn observe(&mut self, p: &Params, x: f64) -> Assessment {
        self.judge(p, x, true)
    }

    /// Assesses `x` by the rarity of its level alone, then counts it
    /// (the ensemble's member: its seasonal member judges moves in
    /// context).
    pub fn observe_level(&mut self, p: &Params, x: f64) -> Assessment {
        self.judge(p, x, false)
    }

    fn judge(&mut self, p: &Params, x: f64, moves: bool) -> Assessment {
        if self.level.counts.is_empty() {
            self.first.push(x);
            if self.first.len() < p.min_samples.max(2) {
                return Assessment::warming_up(x);
            }
            // The bins cover the first values, and the whole range when it
            // is known: learnt from the first values alone, a quiet start
            // would make every later ordinary swing a never-seen level.
            let (range_lo, range_hi) = p.range.unwrap_or((f64::INFINITY, f64::NEG_INFINITY));
            let lo = self.first.iter().copied().fold(range_lo, f64::min);
            let hi = self.first.iter().copied().fold(range_hi, f64::max);
            self.level = Histogram::new(lo, hi, BINS);
            self.moves = vec![0.0; COARSE * COARSE];
            for v in std::mem::take(&mut self.first) {
                self.learn(v);
            }
            return Assessment::warming_up(x);
        }
        let b = self.place(x);
        let s_move = match self.previous {
            Some(prev) if moves => {
                let row = &self.moves[coarse(prev) * COARSE..][..COARSE];
                let row_total: f64 = row.iter().sum();
                let pm = (row[coarse(b)] + MOVE_SMOOTHING)
                    / (row_total + MOVE_SMOOTHING * COARSE as f64);
                -pm.ln()
            }
            _ => 0.0,
        };
        let a = Assessment {
            ready: true,
            surprise: self.level.surprise(b) + s_move,
            // The median, and where the central 99 % of the history lies.
            expected: self.level.quantile(0.5),
            low: self.level.quantile(0.005),
            high: self.level.quantile(0.995),
        };
        self.learn(x);
        a
    }

    fn learn(&mut self, x: f64) {
        let b = self.place(x);
        self.level.count(b, 0.5f64.powf(1.0 / FADE_HALF_LIFE));
        if let Some(prev) = self.previous {
            self.moves[coarse(prev) * COARSE + coarse(b)] += 1.0;
        }
        self.previous = Some(b);
    }

    /// The level bin of `x`, widening the level histogram until it holds
    /// `x`, and with it the transition table and the previous bin.
    fn place(&mut self, x: f64) -> usize {
        while !self.level.holds(x) {
            let up = x >= self.level.low;
            self.level.widen(up);
            let mut moves = vec![0.0; COARSE * COARSE];
            for from in 0..COARSE {
                for to in 0..COARSE {
                    let i = merge(from, COARSE, up) * COARSE + merge(to, COARSE, up);
                    moves[i] += self.moves[from * COARSE + to];
                }
            }
            self.moves = moves;
            self.previous = self.previous.map(|p| merge(p, BINS, up));
        }
        self.level.bin(x)
    }
}

fn coarse(b: usize) -> usize {
    b * COARSE / BINS
}

impl Encode for Histogram {
    fn encode(&self, enc: &mut Encoder) {
        enc.f64(self.low);
        enc.f64(self.width);
        self.counts.encode(enc);
        enc.f64(self.total);
    }
}

impl Decode for Histogram {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let h = Histogram {
            low: dec.f64()?,
            width: dec.f64()?,
            counts: dec.get()?,
            total: dec.f64()?,
        };
        if !(h.counts.is_empty() || h.counts.len() == BINS) {
            return Err(DecodeError::OutOfRange("histogram bins"));
        }
        Ok(h)
    }
}

impl Encode for Density {
    fn encode(&self, enc: &mut Encoder) {
        self.first.encode(enc);
        self.level.encode(enc);
        self.moves.encode(enc);
        self.previous.map(|p| p as u64).encode(enc);
    }
}

impl Decode for Density {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let d = Density {
            first: dec.get()?,
            level: dec.get()?,
            moves: dec.get()?,
            previous: dec
                .get::<Option<u64>>()?
                .map(|p| (p as usize).min(BINS - 1)),
        };
        if !(d.moves.is_empty() || d.moves.len() == COARSE * COARSE) {
            return Err(DecodeError::OutOfRange("density transitions"));
        }
        Ok(d)
    }
}
