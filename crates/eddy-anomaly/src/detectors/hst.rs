//! Half-space trees (Tan, Ting & Liu 2011): a streaming isolation-forest
//! relative for one or several fields. Each tree halves a random dimension
//! of the space at every level; a point is anomalous when it lands where
//! the previous window of `hst_window` points put little mass.
//!
//! The trees' shape (which dimension each node splits, each tree's random
//! offset) is the same for every key and comes from the model's seed;
//! a key keeps only its value ranges, two mass profiles and the
//! calibration of its scores.

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};

use super::{Assessment, Params};
use crate::stats::{ln_normal_tail, Ewm};

/// The most dimensions (fields) a forest splits.
pub const MAX_DIMS: usize = 16;

/// The random structure shared by every key's trees.
#[derive(Clone, Debug, PartialEq)]
pub struct Forest {
    dims: usize,
    depth: usize,
    /// Per tree, per node: the dimension it splits.
    split: Vec<Vec<u8>>,
    /// Per tree, per dimension: where its work range is centred, in [0, 1).
    shift: Vec<Vec<f64>>,
}

impl Forest {
    /// `trees` trees of `depth` levels over `dims` dimensions (at most
    /// [`MAX_DIMS`]), drawn from `seed`.
    pub fn new(trees: usize, depth: usize, dims: usize, seed: u64) -> Forest {
        let mut rng = SplitMix(seed);
        let nodes = (1usize << depth) - 1;
        let dims = dims.clamp(1, MAX_DIMS);
        let split = (0..trees)
            .map(|_| {
                (0..nodes)
                    .map(|_| (rng.next() % dims as u64) as u8)
                    .collect()
            })
            .collect();
        let shift = (0..trees)
            .map(|_| (0..dims).map(|_| rng.unit()).collect())
            .collect();
        Forest {
            dims,
            depth,
            split,
            shift,
        }
    }

    fn nodes(&self) -> usize {
        (1usize << (self.depth + 1)) - 1
    }

    /// Visits the nodes on `u`'s path through tree `t`, root first, with
    /// their depth.
    fn path(&self, t: usize, u: &[f64], mut visit: impl FnMut(usize, usize)) {
        let mut lo = [0.0f64; MAX_DIMS];
        let mut hi = [0.0f64; MAX_DIMS];
        let dims = self.dims;
        for d in 0..dims {
            let s = self.shift[t][d];
            let r = 2.0 * s.max(1.0 - s);
            lo[d] = s - r;
            hi[d] = s + r;
        }
        let mut node = 0;
        for depth in 0..=self.depth {
            visit(node, depth);
            if depth == self.depth {
                break;
            }
            let q = usize::from(self.split[t][node]).min(dims - 1);
            let mid = 0.5 * (lo[q] + hi[q]);
            if u.get(q).copied().unwrap_or(0.0) < mid {
                hi[q] = mid;
                node = 2 * node + 1;
            } else {
                lo[q] = mid;
                node = 2 * node + 2;
            }
        }
    }
}

/// A small deterministic generator (SplitMix64): the forest must be the
/// same in every run and on every worker.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One key's half-space trees.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HalfSpaceTrees {
    /// The first window's points (flattened), kept until the value ranges
    /// are known.
    first: Vec<f64>,
    low: Vec<f64>,
    high: Vec<f64>,
    /// Mass per node of the last complete window and of the current one.
    reference: Vec<u16>,
    latest: Vec<u16>,
    in_window: u32,
    /// ln(1 + mass) of recent points, to turn a mass into a surprise.
    calibration: Ewm,
}

impl HalfSpaceTrees {
    /// Assesses the point `x` (one value per dimension), then adds it to
    /// the current window.
    pub fn observe(&mut self, p: &Params, forest: &Forest, x: &[f64]) -> Assessment {
        let window = p.hst_window.clamp(2, usize::from(u16::MAX));
        let sized = forest.nodes() * forest.split.len();
        if !self.low.is_empty() && (self.low.len() != forest.dims || self.reference.len() != sized)
        {
            // State from a differently shaped forest: start learning again.
            *self = HalfSpaceTrees::default();
        }
        if self.low.is_empty() {
            self.first.extend(x.iter().take(forest.dims));
            self.first
                .resize(self.first.len().div_ceil(forest.dims) * forest.dims, 0.0);
            if self.first.len() / forest.dims >= window {
                self.learn_ranges(forest);
            }
            return Assessment::warming_up(x.first().copied().unwrap_or(0.0));
        }
        let mut u = [0.0f64; MAX_DIMS];
        for (d, slot) in u.iter_mut().enumerate().take(forest.dims) {
            let v = x.get(d).copied().unwrap_or(0.0);
            *slot = (v - self.low[d]) / (self.high[d] - self.low[d]);
        }
        let limit = (p.hst_window as f64 * 0.1).max(1.0) as u16;
        let nodes = forest.nodes();
        let mut mass = 0.0;
        for t in 0..forest.split.len() {
            let base = t * nodes;
            let mut scored = false;
            forest.path(t, &u, |node, depth| {
                let r = self.reference[base + node];
                if !scored && (r < limit || depth == forest.depth) {
                    mass += f64::from(r) * (1u64 << depth) as f64;
                    scored = true;
                }
                let l = &mut self.latest[base + node];
                *l = l.saturating_add(1);
            });
        }
        self.in_window += 1;
        if self.in_window as usize >= window {
            std::mem::swap(&mut self.reference, &mut self.latest);
            self.latest.iter_mut().for_each(|m| *m = 0);
            self.in_window = 0;
        }
        let level = mass.ln_1p();
        let a = if self.calibration.n as usize >= p.min_samples {
            // Only little mass is anomalous: a one-sided tail.
            let z = (self.calibration.mean - level) / self.calibration.std();
            let surprise = if z > 0.0 {
                -(ln_normal_tail(z) - std::f64::consts::LN_2)
            } else {
                0.0
            };
            Assessment {
                ready: true,
                surprise,
                expected: 0.5 * (self.low[0] + self.high[0]),
                low: self.low[0],
                high: self.high[0],
            }
        } else {
            Assessment::warming_up(x.first().copied().unwrap_or(0.0))
        };
        self.calibration.push(level, p.alpha());
        a
    }

    /// Sets each dimension's range from the first window (widened by a
    /// tenth on each side) and builds the first reference profile from it.
    fn learn_ranges(&mut self, forest: &Forest) {
        let dims = forest.dims;
        let first = std::mem::take(&mut self.first);
        self.low = vec![f64::INFINITY; dims];
        self.high = vec![f64::NEG_INFINITY; dims];
        for point in first.chunks(dims) {
            for (d, &v) in point.iter().enumerate() {
                self.low[d] = self.low[d].min(v);
                self.high[d] = self.high[d].max(v);
            }
        }
        for d in 0..dims {
            let pad =
                ((self.high[d] - self.low[d]) * 0.1).max(crate::stats::spread_floor(self.high[d]));
            self.low[d] -= pad;
            self.high[d] += pad;
        }
        let nodes = forest.nodes();
        self.reference = vec![0; nodes * forest.split.len()];
        self.latest = vec![0; nodes * forest.split.len()];
        let mut u = [0.0f64; MAX_DIMS];
        for point in first.chunks(dims) {
            for (d, slot) in u.iter_mut().enumerate().take(dims) {
                *slot = (point[d] - self.low[d]) / (self.high[d] - self.low[d]);
            }
            for t in 0..forest.split.len() {
                let base = t * nodes;
                forest.path(t, &u, |node, _| {
                    let r = &mut self.reference[base + node];
                    *r = r.saturating_add(1);
                });
            }
        }
    }
}

impl Encode for HalfSpaceTrees {
    fn encode(&self, enc: &mut Encoder) {
        self.first.encode(enc);
        self.low.encode(enc);
        self.high.encode(enc);
        let counts = |v: &Vec<u16>| v.iter().map(|&c| u64::from(c)).collect::<Vec<u64>>();
        counts(&self.reference).encode(enc);
        counts(&self.latest).encode(enc);
        enc.varint(u64::from(self.in_window));
        self.calibration.encode(enc);
    }
}

impl Decode for HalfSpaceTrees {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let counts = |v: Vec<u64>| -> Result<Vec<u16>, DecodeError> {
            v.into_iter()
                .map(|c| u16::try_from(c).map_err(|_| DecodeError::OutOfRange("tree mass")))
                .collect()
        };
        let h = HalfSpaceTrees {
            first: dec.get()?,
            low: dec.get()?,
            high: dec.get()?,
            reference: counts(dec.get()?)?,
            latest: counts(dec.get()?)?,
            in_window: u32::try_from(dec.varint()?)
                .map_err(|_| DecodeError::OutOfRange("window"))?,
            calibration: dec.get()?,
        };
        if h.low.len() != h.high.len() || h.reference.len() != h.latest.len() {
            return Err(DecodeError::OutOfRange("half-space trees"));
        }
        Ok(h)
    }
}
