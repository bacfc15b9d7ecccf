//! The detectors and what they share: their parameters ([`Params`]), the
//! per-key state each keeps ([`State`]), the immutable model built from the
//! configuration ([`Model`]) and what one value's assessment says
//! ([`Assessment`], [`Verdict`]).
//!
//! Every detector reports a *surprise*, −ln of how likely a value at least
//! as extreme was under what it has learnt, mapped onto a score in [0, 1)
//! by [`crate::stats::score_of`] (0.5 is a two-sided normal tail of 1e-4).
//! Detectors judge a value before learning from it, so a value is never
//! compared with itself.

mod change;
mod density;
mod ensemble;
mod hst;
mod seasonal;
#[cfg(test)]
mod tests;
mod window;

use std::fmt;
use std::str::FromStr;

use eddy_core::codec::{Decode, DecodeError, Decoder, Encode, Encoder};

pub use change::{Bocpd, Cusum, PageHinkley, MAX_RUN};
pub use density::Density;
pub use ensemble::Ensemble;
pub use hst::{Forest, HalfSpaceTrees, MAX_DIMS};
pub use seasonal::{Season, Seasonal};
pub use window::{EwmaZ, Robust, RobustRule, RollingZ};

use crate::stats::{alpha_for_half_life, ln_normal_tail, score_of};

/// A detection method.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Method {
    /// z-score over the last `window` values.
    ZScore,
    /// z-score over an exponentially weighted mean and variance.
    Ewma,
    /// Tukey's interquartile-range fences over the last `window` values.
    Iqr,
    /// Median absolute deviation over the last `window` values.
    Mad,
    /// Per hour-of-day (or hour-of-week) profiles.
    Seasonal,
    /// Two-sided cumulative sum of standardised deviations.
    Cusum,
    /// Page–Hinkley test.
    PageHinkley,
    /// Bayesian online change-point detection.
    Bocpd,
    /// Half-space trees over one or several fields.
    Hst,
    /// Rarity of the level and of the move to it over all history.
    Density,
    /// A calibrated combination of the others.
    Ensemble,
}

impl Method {
    /// Every method, in documentation order.
    pub const ALL: [Method; 11] = [
        Method::ZScore,
        Method::Ewma,
        Method::Iqr,
        Method::Mad,
        Method::Seasonal,
        Method::Cusum,
        Method::PageHinkley,
        Method::Bocpd,
        Method::Hst,
        Method::Density,
        Method::Ensemble,
    ];

    /// The method's name in configurations and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Method::ZScore => "zscore",
            Method::Ewma => "ewma",
            Method::Iqr => "iqr",
            Method::Mad => "mad",
            Method::Seasonal => "seasonal",
            Method::Cusum => "cusum",
            Method::PageHinkley => "page-hinkley",
            Method::Bocpd => "bocpd",
            Method::Hst => "hst",
            Method::Density => "density",
            Method::Ensemble => "ensemble",
        }
    }

    /// Whether the method reads several fields at once.
    pub fn multivariate(self) -> bool {
        self == Method::Hst
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Method {
    type Err = String;
    fn from_str(s: &str) -> Result<Method, String> {
        Method::ALL
            .into_iter()
            .find(|m| m.name() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Method::ALL.iter().map(|m| m.name()).collect();
                format!("unknown method `{s}`: use one of {}", names.join(", "))
            })
    }
}

/// The detectors' tuning, shared by all keys. Defaults suit most metrics;
/// [`Params::validate`] names what is out of range.
#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    /// Score at or above which a value is an anomaly.
    pub threshold: f64,
    /// Values a detector learns from before it scores (scores 0 until then).
    pub min_samples: usize,
    /// Rolling window length (`zscore`, `iqr`, `mad`).
    pub window: usize,
    /// Half-life, in values, of exponentially weighted averages (`ewma`,
    /// the reference level of `cusum` and `page-hinkley`, the scale of
    /// `bocpd`, each `seasonal` slot, `hst` score calibration).
    pub half_life: f64,
    /// Width of the reported normal range in standard deviations (or, for
    /// `iqr`, 2 × the fence in interquartile ranges).
    pub band: f64,
    /// `seasonal`: a profile per hour of the day or of the week.
    pub season: Season,
    /// `cusum`: allowance per value, in standard deviations (half the
    /// shift it is tuned to find).
    pub cusum_k: f64,
    /// `page-hinkley`: tolerated drift per value, in standard deviations.
    pub ph_delta: f64,
    /// `bocpd`: expected run length between changes (1 / hazard).
    pub hazard: f64,
    /// `bocpd`: the most run lengths kept.
    pub max_run: usize,
    /// `hst`: number of trees.
    pub trees: usize,
    /// `hst`: levels per tree.
    pub depth: usize,
    /// `hst`: points per mass window.
    pub hst_window: usize,
    /// `hst`: seed of the trees' random structure.
    pub seed: u64,
    /// After an anomaly, later values of the key are not anomalies for
    /// this long (milliseconds of event time; 0 = off): one incident pages
    /// once. A muted value that would have been an anomaly extends the
    /// mute to this long after it, so an incident that lasts longer than
    /// the mute still pages once: the key pages again only after it has
    /// been quiet (below the threshold) for `mute_ms`.
    pub mute_ms: i64,
    /// The range the values are expected in, known up front (`[0, 100]`
    /// for a percentage, or a series' minimum and maximum, as NAB gives
    /// its detectors). `density` and the ensemble lay their bins out over
    /// it rather than over the first values alone; values outside it still
    /// widen the bins. `None`: learnt from the first values.
    pub range: Option<(f64, f64)>,
}

impl Default for Params {
    fn default() -> Params {
        Params {
            threshold: 0.5,
            min_samples: 30,
            window: 100,
            half_life: 100.0,
            band: 3.0,
            season: Season::Day,
            cusum_k: 0.5,
            ph_delta: 0.5,
            hazard: 250.0,
            max_run: 64,
            trees: 16,
            depth: 8,
            hst_window: 256,
            seed: 0x5EED_EDD7,
            mute_ms: 0,
            range: None,
        }
    }
}

impl Params {
    /// Weight of a new value in the exponentially weighted averages.
    pub fn alpha(&self) -> f64 {
        alpha_for_half_life(self.half_life)
    }

    /// What is out of range, as `(parameter, problem)` pairs.
    pub fn validate(&self) -> Vec<(&'static str, String)> {
        let mut bad = Vec::new();
        if !(self.threshold > 0.0 && self.threshold < 1.0) {
            bad.push((
                "threshold",
                format!("{} is not between 0 and 1 (exclusive)", self.threshold),
            ));
        }
        if self.window < 4 {
            bad.push(("window", format!("{} is below 4", self.window)));
        }
        if !(self.half_life >= 1.0 && self.half_life.is_finite()) {
            bad.push(("half_life", format!("{} is below 1 value", self.half_life)));
        }
        if !(self.band > 0.0 && self.band.is_finite()) {
            bad.push(("band", format!("{} is not positive", self.band)));
        }
        if !(self.hazard >= 2.0 && self.hazard.is_finite()) {
            bad.push(("hazard", format!("{} is below 2", self.hazard)));
        }
        if !(2..=MAX_RUN).contains(&self.max_run) {
            bad.push((
                "max_run",
                format!("{} is not in 2..={MAX_RUN}", self.max_run),
            ));
        }
        if !(1..=256).contains(&self.trees) {
            bad.push(("trees", format!("{} is not in 1..=256", self.trees)));
        }
        if !(1..=14).contains(&self.depth) {
            bad.push(("depth", format!("{} is not in 1..=14", self.depth)));
        }
        if !(16..=usize::from(u16::MAX)).contains(&self.hst_window) {
            bad.push((
                "hst_window",
                format!("{} is not in 16..=65535", self.hst_window),
            ));
        }
        if let Some((lo, hi)) = self.range {
            if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
                bad.push((
                    "range",
                    format!("[{lo}, {hi}] is not two finite numbers, the smaller first"),
                ));
            }
        }
        if self.mute_ms < 0 {
            bad.push(("mute_after_alert", "is negative".to_string()));
        }
        bad
    }
}

/// What a detector says about one value: how surprising it is and what it
/// expected instead.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Assessment {
    /// Whether the detector has learnt enough to judge (a value seen while
    /// it warms up gets no surprise).
    pub ready: bool,
    /// −ln of the probability of a value at least this extreme (nats).
    pub surprise: f64,
    /// The value the detector expected.
    pub expected: f64,
    /// Lower end of the normal range.
    pub low: f64,
    /// Upper end of the normal range.
    pub high: f64,
}

impl Assessment {
    /// `x` judged against a normal with `mean` and `std`; the normal range
    /// is `band` standard deviations either side.
    pub fn gaussian(x: f64, mean: f64, std: f64, band: f64) -> Assessment {
        Assessment {
            ready: true,
            surprise: -ln_normal_tail((x - mean) / std),
            expected: mean,
            low: mean - band * std,
            high: mean + band * std,
        }
    }

    /// A detector still learning: no surprise, `x` is what it expects.
    pub fn warming_up(x: f64) -> Assessment {
        Assessment {
            ready: false,
            surprise: 0.0,
            expected: x,
            low: x,
            high: x,
        }
    }

    /// The anomaly score in [0, 1).
    pub fn score(&self) -> f64 {
        score_of(self.surprise)
    }
}

/// The outcome for one value after debouncing.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Verdict {
    /// The detector's assessment.
    pub assessment: Assessment,
    /// The anomaly score; while muted after an anomaly it is scaled by the
    /// threshold, so it stays below it but keeps its order.
    pub score: f64,
    /// Whether the value is an anomaly (score ≥ threshold, not muted).
    pub is_anomaly: bool,
    /// Whether an earlier anomaly (or a muted value that would have been
    /// one, which extends the mute) muted this value.
    pub muted: bool,
}

/// One detector's per-key state.
#[derive(Clone, Debug, PartialEq)]
pub enum State {
    /// See [`RollingZ`].
    ZScore(RollingZ),
    /// See [`EwmaZ`].
    Ewma(EwmaZ),
    /// See [`Robust`] (IQR or MAD, by the model's method).
    Robust(Robust),
    /// See [`Seasonal`].
    Seasonal(Seasonal),
    /// See [`Cusum`].
    Cusum(Cusum),
    /// See [`PageHinkley`].
    PageHinkley(PageHinkley),
    /// See [`Bocpd`].
    Bocpd(Box<Bocpd>),
    /// See [`HalfSpaceTrees`].
    Hst(Box<HalfSpaceTrees>),
    /// See [`Density`].
    Density(Box<Density>),
    /// See [`Ensemble`].
    Ensemble(Box<Ensemble>),
}

/// A key's state with its debouncing.
#[derive(Clone, Debug, PartialEq)]
pub struct KeyState {
    /// The detector's state.
    pub detector: State,
    /// Event time until which anomalies are muted.
    pub muted_until: i64,
}

/// A configured detector: the method, its parameters and the structure
/// shared by all keys. Immutable; each key's changing part is a
/// [`KeyState`].
#[derive(Clone, Debug)]
pub struct Model {
    method: Method,
    params: Params,
    forest: Option<Forest>,
}

impl Model {
    /// A model of `method` over `dims` fields.
    pub fn new(method: Method, params: Params, dims: usize) -> Model {
        let forest = (method == Method::Hst)
            .then(|| Forest::new(params.trees, params.depth, dims, params.seed));
        Model {
            method,
            params,
            forest,
        }
    }

    /// The method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// The parameters.
    pub fn params(&self) -> &Params {
        &self.params
    }

    /// A key's initial state.
    pub fn key_state(&self) -> KeyState {
        KeyState {
            detector: self.fresh(self.method),
            muted_until: i64::MIN,
        }
    }

    fn fresh(&self, method: Method) -> State {
        let p = &self.params;
        match method {
            Method::ZScore => State::ZScore(RollingZ::new(p)),
            Method::Ewma => State::Ewma(EwmaZ::default()),
            Method::Iqr | Method::Mad => State::Robust(Robust::new(p)),
            Method::Seasonal => State::Seasonal(Seasonal::new(p.season)),
            Method::Cusum => State::Cusum(Cusum::default()),
            Method::PageHinkley => State::PageHinkley(PageHinkley::default()),
            Method::Bocpd => State::Bocpd(Box::default()),
            Method::Hst => State::Hst(Box::default()),
            Method::Density => State::Density(Box::default()),
            Method::Ensemble => State::Ensemble(Box::new(Ensemble::new(p.season))),
        }
    }

    /// Assesses `values` (one per field) at `time_ms` with the detector's
    /// state, then learns from them. A state that belongs to another
    /// method (restored from an older configuration) starts afresh.
    pub fn assess(&self, state: &mut State, time_ms: i64, values: &[f64]) -> Assessment {
        let p = &self.params;
        let x = values.first().copied().unwrap_or(0.0);
        match (self.method, &mut *state) {
            (Method::ZScore, State::ZScore(d)) => d.observe(p, x),
            (Method::Ewma, State::Ewma(d)) => d.observe(p, x),
            (Method::Iqr, State::Robust(d)) => d.observe(p, RobustRule::Iqr, x),
            (Method::Mad, State::Robust(d)) => d.observe(p, RobustRule::Mad, x),
            (Method::Seasonal, State::Seasonal(d)) => d.observe(p, time_ms, x),
            (Method::Cusum, State::Cusum(d)) => d.observe(p, x),
            (Method::PageHinkley, State::PageHinkley(d)) => d.observe(p, x),
            (Method::Bocpd, State::Bocpd(d)) => d.observe(p, x),
            (Method::Hst, State::Hst(d)) => match &self.forest {
                Some(forest) => d.observe(p, forest, values),
                None => Assessment::warming_up(x),
            },
            (Method::Density, State::Density(d)) => d.observe(p, x),
            (Method::Ensemble, State::Ensemble(d)) => d.observe(p, time_ms, x),
            _ => {
                *state = self.fresh(self.method);
                self.assess(state, time_ms, values)
            }
        }
    }

    /// Assesses `values` at `time_ms` for a key and applies the debounce.
    pub fn observe(&self, key: &mut KeyState, time_ms: i64, values: &[f64]) -> Verdict {
        let assessment = self.assess(&mut key.detector, time_ms, values);
        let raw = assessment.score();
        let muted = time_ms < key.muted_until;
        let is_anomaly = !muted && raw >= self.params.threshold;
        // An anomalous value, muted or not, keeps the incident open: the
        // mute runs until `mute_ms` after the last one (on NAB a level
        // shift that stays anomalous past the mute otherwise pages again
        // every `mute_ms`).
        if raw >= self.params.threshold && self.params.mute_ms > 0 {
            key.muted_until = key
                .muted_until
                .max(time_ms.saturating_add(self.params.mute_ms));
        }
        Verdict {
            assessment,
            score: if muted {
                raw * self.params.threshold
            } else {
                raw
            },
            is_anomaly,
            muted,
        }
    }
}

mod tag {
    pub const ZSCORE: u8 = 0;
    pub const EWMA: u8 = 1;
    pub const ROBUST: u8 = 2;
    pub const SEASONAL: u8 = 3;
    pub const CUSUM: u8 = 4;
    pub const PAGE_HINKLEY: u8 = 5;
    pub const BOCPD: u8 = 6;
    pub const HST: u8 = 7;
    /// The earlier ensemble of five members, read and converted.
    pub const ENSEMBLE_FIVE: u8 = 8;
    pub const DENSITY: u8 = 9;
    /// The two-member ensemble before it kept the hours' ranges.
    pub const ENSEMBLE_WITHOUT_RANGES: u8 = 10;
    pub const ENSEMBLE: u8 = 11;
}

impl Encode for State {
    fn encode(&self, enc: &mut Encoder) {
        match self {
            State::ZScore(d) => {
                enc.u8(tag::ZSCORE);
                d.encode(enc)
            }
            State::Ewma(d) => {
                enc.u8(tag::EWMA);
                d.encode(enc)
            }
            State::Robust(d) => {
                enc.u8(tag::ROBUST);
                d.encode(enc)
            }
            State::Seasonal(d) => {
                enc.u8(tag::SEASONAL);
                d.encode(enc)
            }
            State::Cusum(d) => {
                enc.u8(tag::CUSUM);
                d.encode(enc)
            }
            State::PageHinkley(d) => {
                enc.u8(tag::PAGE_HINKLEY);
                d.encode(enc)
            }
            State::Bocpd(d) => {
                enc.u8(tag::BOCPD);
                d.encode(enc)
            }
            State::Hst(d) => {
                enc.u8(tag::HST);
                d.encode(enc)
            }
            State::Ensemble(d) => {
                enc.u8(tag::ENSEMBLE);
                d.encode(enc)
            }
            State::Density(d) => {
                enc.u8(tag::DENSITY);
                d.encode(enc)
            }
        }
    }
}

impl Decode for State {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        let offset = dec.position();
        Ok(match dec.u8()? {
            tag::ZSCORE => State::ZScore(dec.get()?),
            tag::EWMA => State::Ewma(dec.get()?),
            tag::ROBUST => State::Robust(dec.get()?),
            tag::SEASONAL => State::Seasonal(dec.get()?),
            tag::CUSUM => State::Cusum(dec.get()?),
            tag::PAGE_HINKLEY => State::PageHinkley(dec.get()?),
            tag::BOCPD => State::Bocpd(Box::new(dec.get()?)),
            tag::HST => State::Hst(Box::new(dec.get()?)),
            tag::ENSEMBLE => State::Ensemble(Box::new(dec.get()?)),
            tag::ENSEMBLE_FIVE => State::Ensemble(Box::new(Ensemble::decode_five_members(dec)?)),
            tag::ENSEMBLE_WITHOUT_RANGES => {
                State::Ensemble(Box::new(Ensemble::decode_without_ranges(dec)?))
            }
            tag::DENSITY => State::Density(Box::new(dec.get()?)),
            t => {
                return Err(DecodeError::UnknownTag {
                    what: "detector",
                    tag: t,
                    offset,
                })
            }
        })
    }
}

impl Encode for KeyState {
    fn encode(&self, enc: &mut Encoder) {
        self.detector.encode(enc);
        enc.zigzag(self.muted_until);
    }
}

impl Decode for KeyState {
    fn decode(dec: &mut Decoder<'_>) -> Result<Self, DecodeError> {
        Ok(KeyState {
            detector: dec.get()?,
            muted_until: dec.zigzag()?,
        })
    }
}
