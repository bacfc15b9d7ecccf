//! Change-point detectors: CUSUM, Page–Hinkley and Bayesian online
//! change-point detection. They answer "has the level moved?" rather than
//! "is this value odd?", so a shift too small to stand out in one value
//! still adds up.

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};

use super::{Assessment, Params};
use crate::stats::{ln_gamma, ln_normal_tail, Ewm};

/// Two-sided CUSUM on values standardised by a slowly moving reference.
///
/// With allowance k = `cusum_k` each side's sum is the log-likelihood
/// ratio (in nats) of a 2k-standard-deviation shift against none, which is
/// the surprise it reports. Once that passes the alarm level both sums
/// restart and the reference jumps to the recent level, so one shift
/// alarms once.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Cusum {
    reference: Ewm,
    recent: Ewm,
    up: f64,
    down: f64,
}

/// How fast the "recent level" a change-point detector re-baselines to
/// follows the data (half-life in values).
const RECENT_HALF_LIFE: f64 = 4.0;

impl Cusum {
    /// Adds `x` to the sums and reports how strongly they point to a shift.
    pub fn observe(&mut self, p: &Params, x: f64) -> Assessment {
        let warm = self.reference.n as usize >= p.min_samples;
        let a = if warm {
            let z = self.reference.z(x);
            self.up = (self.up + z - p.cusum_k).max(0.0);
            self.down = (self.down - z - p.cusum_k).max(0.0);
            let std = self.reference.std();
            let a = Assessment {
                ready: true,
                surprise: self.up.max(self.down),
                expected: self.reference.mean,
                low: self.reference.mean - p.band * std,
                high: self.reference.mean + p.band * std,
            };
            if a.score() >= p.threshold {
                self.up = 0.0;
                self.down = 0.0;
            }
            a
        } else {
            Assessment::warming_up(x)
        };
        self.recent
            .push(x, crate::stats::alpha_for_half_life(RECENT_HALF_LIFE));
        if warm && self.up == 0.0 && self.down == 0.0 && a.score() >= p.threshold {
            // Re-baseline on the new level, keeping the learnt spread.
            self.reference.mean = self.recent.mean;
        } else {
            self.reference.push(x, p.alpha());
        }
        a
    }
}

/// Two-sided Page–Hinkley test on standardised values: the cumulative
/// deviation from the running mean (less a tolerance `ph_delta` standard
/// deviations per value) against its minimum so far. Reports that gap, in
/// standard deviations, as its surprise; restarts after an alarm.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PageHinkley {
    scale: Ewm,
    mean: f64,
    n: u64,
    up: f64,
    up_min: f64,
    down: f64,
    down_min: f64,
}

impl PageHinkley {
    /// Adds `x` and reports the larger of the two one-sided statistics.
    pub fn observe(&mut self, p: &Params, x: f64) -> Assessment {
        let warm = self.scale.n as usize >= p.min_samples;
        let std = self.scale.std();
        self.n += 1;
        self.mean += (x - self.mean) / self.n as f64;
        let a = if warm {
            let d = (x - self.mean) / std;
            self.up += d - p.ph_delta;
            self.up_min = self.up_min.min(self.up);
            self.down += -d - p.ph_delta;
            self.down_min = self.down_min.min(self.down);
            let a = Assessment {
                ready: true,
                surprise: (self.up - self.up_min).max(self.down - self.down_min),
                expected: self.mean,
                low: self.mean - p.band * std,
                high: self.mean + p.band * std,
            };
            if a.score() >= p.threshold {
                self.restart(x);
            }
            a
        } else {
            Assessment::warming_up(x)
        };
        self.scale.push(x, p.alpha());
        a
    }

    fn restart(&mut self, x: f64) {
        self.mean = x;
        self.n = 1;
        self.up = 0.0;
        self.up_min = 0.0;
        self.down = 0.0;
        self.down_min = 0.0;
    }
}

/// Bayesian online change-point detection (Adams & MacKay 2007) with a
/// Normal-Gamma model of standardised values and a constant hazard
/// 1/`hazard`, keeping at most `max_run` run lengths (the longest absorbs
/// the rest). The surprise is the larger of −ln of the two-sided tail
/// probability of `x` under the run-length mixture's predictive
/// distribution (a value out of line) and the log odds, beyond the
/// hazard's, that a new run began since the longest run kept (a change).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bocpd {
    scale: Ewm,
    /// Per run length r = index: ln P(r), μ, κ, β (α follows from r).
    ln_p: Vec<f64>,
    mu: Vec<f64>,
    kappa: Vec<f64>,
    beta: Vec<f64>,
}

const PRIOR_KAPPA: f64 = 1.0;
const PRIOR_ALPHA: f64 = 1.0;
const PRIOR_BETA: f64 = 1.0;

impl Bocpd {
    /// Assesses `x` under the predictive mixture, then updates the
    /// run-length posterior with it.
    pub fn observe(&mut self, p: &Params, x: f64) -> Assessment {
        let warm = self.scale.n as usize >= p.min_samples;
        if !warm {
            self.scale.push(x, p.alpha());
            return Assessment::warming_up(x);
        }
        let (center, std) = (self.scale.mean, self.scale.std());
        let z = (x - center) / std;
        if self.ln_p.is_empty() {
            self.reset(0.0);
        }
        let ln_h = -(p.hazard.max(1.0)).ln();
        let ln_1mh = (1.0 - 1.0 / p.hazard.max(1.0)).ln();
        // Predictive density and tail of z under each run length; `ln_p`
        // becomes the joint mass of each run length and z, in place.
        let n = self.ln_p.len();
        let mut tail = LogSum::default();
        let mut joint = LogSum::default();
        let mut expected = 0.0;
        for r in 0..n {
            let alpha = PRIOR_ALPHA + r as f64 / 2.0;
            let nu = 2.0 * alpha;
            let s2 = self.beta[r] * (self.kappa[r] + 1.0) / (alpha * self.kappa[r]);
            let d = z - self.mu[r];
            let ln_pdf = t_norm(r)
                - 0.5 * (nu * std::f64::consts::PI * s2).ln()
                - (nu + 1.0) / 2.0 * (d * d / (nu * s2)).ln_1p();
            tail.add(self.ln_p[r] + ln_normal_tail(d / s2.sqrt()));
            expected += self.ln_p[r].exp() * self.mu[r];
            self.ln_p[r] += ln_pdf;
            joint.add(self.ln_p[r]);
        }
        // Growth and change, normalised by the evidence (the joint mass's
        // total): a change takes the hazard's share of it, each run grows
        // with the rest, and the longest kept absorbs its own extension.
        // Descending and in place: each run is read before it is written.
        let evidence = joint.ln();
        let m = (n + 1).min(p.max_run.clamp(2, MAX_RUN));
        if m > n {
            for v in [
                &mut self.ln_p,
                &mut self.mu,
                &mut self.kappa,
                &mut self.beta,
            ] {
                v.push(0.0);
            }
        }
        for to in (1..m).rev() {
            let r = to - 1;
            let (mass, from) = if to == m - 1 && n >= m {
                // The runs from m − 2 up, with the longest one's statistics.
                let mass = (m - 2..n).fold(f64::NEG_INFINITY, |a, i| log_add(a, self.ln_p[i]));
                (mass, n - 1)
            } else {
                (self.ln_p[r], r)
            };
            self.ln_p[to] = mass + ln_1mh - evidence;
            let k = self.kappa[from];
            let d = z - self.mu[from];
            self.mu[to] = (k * self.mu[from] + z) / (k + 1.0);
            self.beta[to] = self.beta[from] + k * d * d / (2.0 * (k + 1.0));
            self.kappa[to] = k + 1.0;
        }
        for v in [
            &mut self.ln_p,
            &mut self.mu,
            &mut self.kappa,
            &mut self.beta,
        ] {
            v.truncate(m);
        }
        self.ln_p[0] = ln_h;
        self.mu[0] = 0.0;
        self.kappa[0] = PRIOR_KAPPA;
        self.beta[0] = PRIOR_BETA;
        let ln_tail = tail.ln();
        // Evidence of a change: the odds that the current run began after
        // the longest run kept (whose mass is the old regime's), against
        // the odds the hazard alone gives. Only once that longest run is
        // reached: until then every run is short because scoring began.
        let longest = self.ln_p.len() - 1;
        let change_surprise = if longest + 1 >= p.max_run.clamp(2, MAX_RUN) {
            let ln_old = self.ln_p[longest];
            let ln_new = (-ln_old.exp()).ln_1p().max(-700.0);
            let prior = 1.0 - (1.0 - 1.0 / p.hazard.max(2.0)).powi(longest as i32);
            ((ln_new - ln_old) - (prior / (1.0 - prior)).ln()).max(0.0)
        } else {
            0.0
        };
        self.scale.push(x, p.alpha());
        let expected = center + expected * std;
        Assessment {
            ready: true,
            surprise: (-ln_tail).max(change_surprise),
            expected,
            low: expected - p.band * std,
            high: expected + p.band * std,
        }
    }

    fn reset(&mut self, mu: f64) {
        self.ln_p = vec![0.0];
        self.mu = vec![mu];
        self.kappa = vec![PRIOR_KAPPA];
        self.beta = vec![PRIOR_BETA];
    }
}

/// The most run lengths a [`Bocpd`] keeps.
pub const MAX_RUN: usize = 4096;

/// lnΓ((ν+1)/2) − lnΓ(ν/2) for the Student-t of run length `r`
/// (ν = 2α₀ + r), from a table computed once.
fn t_norm(r: usize) -> f64 {
    static TABLE: std::sync::OnceLock<Vec<f64>> = std::sync::OnceLock::new();
    let table = TABLE.get_or_init(|| {
        (0..=MAX_RUN)
            .map(|r| {
                let nu = 2.0 * PRIOR_ALPHA + r as f64;
                ln_gamma((nu + 1.0) / 2.0) - ln_gamma(nu / 2.0)
            })
            .collect()
    });
    table[r.min(MAX_RUN)]
}

/// ln Σ e^vᵢ, accumulated one term at a time without overflow (one `exp`
/// per term).
struct LogSum {
    /// The largest term so far.
    max: f64,
    /// Σ e^(vᵢ − max).
    sum: f64,
}

impl Default for LogSum {
    fn default() -> LogSum {
        LogSum {
            max: f64::NEG_INFINITY,
            sum: 0.0,
        }
    }
}

impl LogSum {
    fn add(&mut self, v: f64) {
        if v == f64::NEG_INFINITY {
            return;
        }
        if v > self.max {
            self.sum = self.sum * (self.max - v).exp() + 1.0;
            self.max = v;
        } else {
            self.sum += (v - self.max).exp();
        }
    }

    fn ln(&self) -> f64 {
        self.max + self.sum.ln()
    }
}

/// ln(e^a + e^b) without overflow.
fn log_add(a: f64, b: f64) -> f64 {
    if a == f64::NEG_INFINITY {
        return b;
    }
    if b == f64::NEG_INFINITY {
        return a;
    }
    let (hi, lo) = if a > b { (a, b) } else { (b, a) };
    hi + (lo - hi).exp().ln_1p()
}

impl Encode for Cusum {
    fn encode(&self, enc: &mut Encoder) {
        self.reference.encode(enc);
        self.recent.encode(enc);
        enc.f64(self.up);
        enc.f64(self.down);
    }
}

impl Decode for Cusum {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(Cusum {
            reference: dec.get()?,
            recent: dec.get()?,
            up: dec.f64()?,
            down: dec.f64()?,
        })
    }
}

impl Encode for PageHinkley {
    fn encode(&self, enc: &mut Encoder) {
        self.scale.encode(enc);
        for v in [self.mean, self.up, self.up_min, self.down, self.down_min] {
            enc.f64(v);
        }
        enc.varint(self.n);
    }
}

impl Decode for PageHinkley {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(PageHinkley {
            scale: dec.get()?,
            mean: dec.f64()?,
            up: dec.f64()?,
            up_min: dec.f64()?,
            down: dec.f64()?,
            down_min: dec.f64()?,
            n: dec.varint()?,
        })
    }
}

impl Encode for Bocpd {
    fn encode(&self, enc: &mut Encoder) {
        self.scale.encode(enc);
        self.ln_p.encode(enc);
        self.mu.encode(enc);
        self.kappa.encode(enc);
        self.beta.encode(enc);
    }
}

impl Decode for Bocpd {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let b = Bocpd {
            scale: dec.get()?,
            ln_p: dec.get()?,
            mu: dec.get()?,
            kappa: dec.get()?,
            beta: dec.get()?,
        };
        let n = b.ln_p.len();
        if b.mu.len() != n || b.kappa.len() != n || b.beta.len() != n {
            return Err(DecodeError::OutOfRange("run-length tables"));
        }
        Ok(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_sum_matches_the_direct_sum_at_any_magnitude() {
        for values in [
            vec![0.0, 1.0, -2.5],
            vec![-800.0, -801.5, -799.0],
            vec![700.0, 650.0],
            vec![f64::NEG_INFINITY, -3.0],
        ] {
            let mut s = LogSum::default();
            values.iter().for_each(|&v| s.add(v));
            let top = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            let direct = top + values.iter().map(|v| (v - top).exp()).sum::<f64>().ln();
            assert!(
                (s.ln() - direct).abs() < 1e-12,
                "{values:?}: {} vs {direct}",
                s.ln()
            );
        }
    }

    /// The run-length posterior stays a distribution as it grows, at its
    /// cap, and when a restored table is longer than the cap now allows.
    #[test]
    fn posterior_stays_normalised_when_truncated() {
        let mut p = Params {
            max_run: 16,
            ..Params::default()
        };
        let mut b = Bocpd::default();
        let total = |b: &Bocpd| b.ln_p.iter().map(|v| v.exp()).sum::<f64>();
        for i in 0..200 {
            let x = if i < 120 {
                (i % 7) as f64
            } else {
                50.0 + (i % 5) as f64
            };
            let a = b.observe(&p, x);
            assert!(a.surprise.is_finite() && a.surprise >= 0.0);
            if b.ln_p.len() > 1 {
                assert!((total(&b) - 1.0).abs() < 1e-9, "step {i}: {}", total(&b));
            }
            assert!(b.ln_p.len() <= p.max_run);
        }
        p.max_run = 5;
        b.observe(&p, 51.0);
        assert_eq!(b.ln_p.len(), 5);
        assert_eq!(b.mu.len(), 5);
        assert!((total(&b) - 1.0).abs() < 1e-9);
    }
}
