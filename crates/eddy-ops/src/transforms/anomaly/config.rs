//! The `[transforms.NAME]` table of a `type = "anomaly"` transform.

use crate::transforms::ordered::late_output;
pub use crate::transforms::ordered::{Order, LATE};
use eddy_anomaly::detectors::{Season, MAX_DIMS};
use eddy_anomaly::{Method, Model, Params};
use eddy_core::component::{
    BuildContext, BuildError, Partitioning, TransformFactory, ValidateContext,
};
use eddy_core::config::{Diagnostic, Duration, Spanned};
use eddy_core::{Expression, Operator, OutputSpec};
use serde::{Deserialize, Deserializer};

use super::operator::AnomalyOperator;
use crate::transforms::window::KeyExprs;

/// Which events leave the transform.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Emit {
    /// Every event, scored.
    #[default]
    All,
    /// Only the anomalies.
    Anomalies,
}

/// Configuration of an `anomaly` transform (see the module documentation).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnomalyConfig {
    /// What each detector state is kept per: one CEL expression or several.
    /// Without a key all events share one detector (on one worker).
    #[serde(default)]
    pub key: KeyExprs,
    /// The value to score (a CEL expression).
    #[serde(default)]
    pub field: Option<Spanned<Expression>>,
    /// Several values scored together (`method = "hst"` only).
    #[serde(default)]
    pub fields: Vec<Expression>,
    /// The detection method (default `ensemble`).
    #[serde(default = "default_method", deserialize_with = "method")]
    pub method: Spanned<Method>,
    /// Score at or above which a value is an anomaly (default 0.5).
    pub threshold: Option<f64>,
    /// After an anomaly, the key's values are not anomalies for this long
    /// (extended while they stay anomalous: one incident, one anomaly).
    pub mute_after_alert: Option<Duration>,
    /// Which events leave: `"all"` (default) or `"anomalies"`.
    #[serde(default)]
    pub emit: Emit,
    /// Order of each key's events: `"event_time"` (default) or `"arrival"`.
    #[serde(default)]
    pub order: Order,
    /// Detector state of a key without events for this long (event time)
    /// is dropped. Default: kept.
    pub ttl: Option<Duration>,
    /// Values learnt from before scoring (default 30).
    pub min_samples: Option<usize>,
    /// Rolling window length in values (`zscore`, `iqr`, `mad`; default 100).
    pub window: Option<usize>,
    /// Half-life of the exponential averages, in values (default 100).
    pub half_life: Option<f64>,
    /// Width of the reported normal range, in standard deviations (default 3).
    pub band: Option<f64>,
    /// `seasonal`: `"day"` (default) or `"week"`.
    #[serde(default, deserialize_with = "season")]
    pub season: Option<Season>,
    /// `cusum`: allowance in standard deviations (default 0.5).
    pub cusum_k: Option<f64>,
    /// `page-hinkley`: tolerated drift in standard deviations (default 0.5).
    pub ph_delta: Option<f64>,
    /// `bocpd`: expected values between change points (default 250).
    pub hazard: Option<f64>,
    /// `bocpd`: run lengths kept (default 64).
    pub max_run: Option<usize>,
    /// `hst`: trees (default 16).
    pub trees: Option<usize>,
    /// `hst`: levels per tree (default 8).
    pub depth: Option<usize>,
    /// `hst`: points per mass window (default 256).
    pub hst_window: Option<usize>,
    /// `hst`: seed of the trees' structure.
    pub seed: Option<u64>,
    /// `density`, `ensemble`: the range the values are expected in, as
    /// `[low, high]` (e.g. `[0, 100]` for a percentage). Default: learnt
    /// from the first values.
    pub range: Option<[f64; 2]>,
}

fn default_method() -> Spanned<Method> {
    Spanned::new(0..0, Method::Ensemble)
}

fn method<'de, D: Deserializer<'de>>(d: D) -> Result<Spanned<Method>, D::Error> {
    let s = Spanned::<String>::deserialize(d)?;
    let span = s.span();
    s.get_ref()
        .parse()
        .map(|m| Spanned::new(span, m))
        .map_err(serde::de::Error::custom)
}

fn season<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Season>, D::Error> {
    match String::deserialize(d)?.as_str() {
        "day" => Ok(Some(Season::Day)),
        "week" => Ok(Some(Season::Week)),
        other => Err(serde::de::Error::custom(format!(
            "unknown season `{other}`: use \"day\" or \"week\""
        ))),
    }
}

impl AnomalyConfig {
    /// The detector parameters, defaults filled in.
    pub fn params(&self) -> Params {
        let d = Params::default();
        Params {
            threshold: self.threshold.unwrap_or(d.threshold),
            min_samples: self.min_samples.unwrap_or(d.min_samples),
            window: self.window.unwrap_or(d.window),
            half_life: self.half_life.unwrap_or(d.half_life),
            band: self.band.unwrap_or(d.band),
            season: self.season.unwrap_or(d.season),
            cusum_k: self.cusum_k.unwrap_or(d.cusum_k),
            ph_delta: self.ph_delta.unwrap_or(d.ph_delta),
            hazard: self.hazard.unwrap_or(d.hazard),
            max_run: self.max_run.unwrap_or(d.max_run),
            trees: self.trees.unwrap_or(d.trees),
            depth: self.depth.unwrap_or(d.depth),
            hst_window: self.hst_window.unwrap_or(d.hst_window),
            seed: self.seed.unwrap_or(d.seed),
            mute_ms: self.mute_after_alert.map_or(0, Duration::ms),
            range: self.range.map(|[low, high]| (low, high)),
        }
    }

    /// The value expressions: `field`, or `fields`.
    pub fn values(&self) -> Vec<Expression> {
        match &self.field {
            Some(f) => vec![f.get_ref().clone()],
            None => self.fields.clone(),
        }
    }

    /// The configured model.
    pub fn model(&self) -> Model {
        Model::new(*self.method.get_ref(), self.params(), self.values().len())
    }
}

impl TransformFactory for AnomalyConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError> {
        Ok(Box::new(AnomalyOperator::new(
            self,
            &cx.name,
            cx.output(LATE)?,
        )))
    }

    fn partitioning(&self, _input: usize) -> Partitioning {
        self.key.partitioning()
    }

    fn outputs(&self) -> Vec<OutputSpec> {
        vec![late_output()]
    }

    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        let mut diags = Vec::new();
        let span = self.method.span();
        let method = *self.method.get_ref();
        let n = self.values().len();
        if self.field.is_some() && !self.fields.is_empty() {
            diags.push(
                Diagnostic::new(
                    span.clone(),
                    "both `field` and `fields` are set".to_string(),
                )
                .hint("keep `field` for one value, or `fields` for several (method \"hst\")"),
            );
        } else if n == 0 {
            diags.push(
                Diagnostic::new(span.clone(), "no value to score".to_string())
                    .hint("add `field = \"amount\"` (a CEL expression giving a number)"),
            );
        } else if n > 1 && !method.multivariate() {
            diags.push(
                Diagnostic::new(
                    span.clone(),
                    format!("method `{method}` scores one value, {n} `fields` are given"),
                )
                .hint("use `field = ..`, or `method = \"hst\"` to score several fields together"),
            );
        } else if n > MAX_DIMS {
            diags.push(
                Diagnostic::new(span.clone(), format!("{n} fields, more than {MAX_DIMS}"))
                    .hint("score fewer fields together"),
            );
        }
        for (name, problem) in self.params().validate() {
            diags.push(
                Diagnostic::new(span.clone(), format!("`{name}` {problem}"))
                    .hint(format!("remove `{name}` to use its default")),
            );
        }
        diags
    }
}
