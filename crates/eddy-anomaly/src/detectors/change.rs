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
        // Predictive density and tail of z under each run length.
        let mut ln_pred = Vec::with_capacity(self.ln_p.len());
        let mut ln_tail = f64::NEG_INFINITY;
        let mut expected = 0.0;
        for r in 0..self.ln_p.len() {
            let alpha = PRIOR_ALPHA + r as f64 / 2.0;
            let nu = 2.0 * alpha;
            let s2 = self.beta[r] * (self.kappa[r] + 1.0) / (alpha * self.kappa[r]);
            let t2 = (z - self.mu[r]).powi(2) / (nu * s2);
            let ln_pdf = t_norm(r)
                - 0.5 * (nu * std::f64::consts::PI * s2).ln()
                - (nu + 1.0) / 2.0 * t2.ln_1p();
            ln_pred.push(ln_pdf);
            ln_tail = log_add(
                ln_tail,
                self.ln_p[r] + ln_normal_tail((z - self.mu[r]) / s2.sqrt()),
            );
            expected += self.ln_p[r].exp() * self.mu[r];
        }
        // Growth and change masses.
        let n = self.ln_p.len();
        let mut grown = vec![f64::NEG_INFINITY; (n + 1).min(p.max_run.clamp(2, MAX_RUN))];
        let mut change = f64::NEG_INFINITY;
        for (r, (ln_p, ln_pred)) in self.ln_p.iter().zip(&ln_pred).enumerate() {
            let m = ln_p + ln_pred;
            change = log_add(change, m + ln_h);
            let to = (r + 1).min(grown.len() - 1);
            grown[to] = log_add(grown[to], m + ln_1mh);
        }
        grown[0] = change;
        let total = grown.iter().fold(f64::NEG_INFINITY, |a, &b| log_add(a, b));
        // Sufficient statistics: run length r+1 extends r with z; the
        // longest absorbs its own extension.
        let m = grown.len();
        let (mut mu, mut kappa, mut beta) = (vec![0.0; m], vec![0.0; m], vec![0.0; m]);
        mu[0] = 0.0;
        kappa[0] = PRIOR_KAPPA;
        beta[0] = PRIOR_BETA;
        // Ascending, so where the longest run absorbs the one below it, its
        // own statistics are the ones kept.
        for r in 0..n {
            let to = (r + 1).min(m - 1);
            let k = self.kappa[r];
            mu[to] = (k * self.mu[r] + z) / (k + 1.0);
            kappa[to] = k + 1.0;
            beta[to] = self.beta[r] + k * (z - self.mu[r]).powi(2) / (2.0 * (k + 1.0));
        }
        self.ln_p = grown.into_iter().map(|v| v - total).collect();
        self.mu = mu;
        self.kappa = kappa;
        self.beta = beta;
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
