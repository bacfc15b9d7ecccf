//! `type = "simulator"`: a business-event simulator for dashboards, alerting
//! and correlation demos — budgets, projects, compliance, transactions, risk,
//! systems and ETL, plus engineering activity (code, docs, project tools,
//! chat, data quality, knowledge extraction, user actions).
//!
//! ```toml
//! [sources.business]
//! type = "simulator"
//! rate = 200                       # events/s of wall clock
//! seed = 7
//! categories = ["budget_update", "transaction", "compliance_event"]
//! mix = { transaction = 10, budget_update = 2 }
//! scenarios = [
//!   { name = "budget_crisis", start = "30s", duration = "60s" },
//!   { name = "burst", start = "2m", duration = "10s", intensity = 2.0 },
//! ]
//! ```
//!
//! Every event has `event_id` (an integer, unique over all workers), `type`
//! (its category), `ts` (RFC 3339 text of its event time) and the fields of
//! its category. Rosters (departments and their SVPs, projects, customers,
//! merchants, employees, hosts) are fixed by the seed, and state evolves
//! realistically: a department's `spent` grows toward (and in a crisis past)
//! its allocation, a project's `progress` moves forward while
//! `days_to_deadline` shrinks, customers mostly pay at home with occasional
//! larger, riskier foreign transactions.
//!
//! Event time is the wall-clock time of generation; with `fast = true` the
//! simulator ignores the wall clock and event time advances by `1/rate` per
//! event from `start_time`, so a seed reproduces the stream exactly.
//!
//! Scenarios run on a schedule (offsets from the start, in event time) or are
//! switched on and off at run time through [`ScenarioControl`], obtained from
//! [`SimulatorConfig::control`] before building and shared by all instances
//! (for an HTTP endpoint, say). Effects (scaled by `intensity`):
//! - `budget_crisis`: more budget updates; spending jumps so departments'
//!   utilization climbs past 75% and 90% quickly;
//! - `project_deadline_pressure`: more project updates; deadlines are pulled
//!   in, progress stalls, risk scores rise;
//! - `compliance_audit`: a burst of compliance events, mostly high and
//!   critical severity, with close audit deadlines;
//! - `market_volatility`: more and larger transactions with higher risk
//!   scores, more risk events (market and liquidity above all);
//! - `burst`: the event rate is multiplied by `10 × intensity`.
//!
//! Checkpoints store, per worker, the number of events it generated
//! (position 0) and the event time elapsed since the start of the stream
//! (position 1). A restored run fast-forwards the generator to that count
//! (generating and dropping events: about a second per few million) and
//! continues:
//! - with `fast = true`, exactly the events an uninterrupted run would have
//!   produced next, same ids, times and fields, provided the configuration
//!   and seed are unchanged and no run-time switch ([`ScenarioControl`],
//!   [`Simulator::set_scenario`]) was used, since those are not stored;
//! - in rate mode, event time follows the wall clock, so only the event ids
//!   (no id repeated, none skipped), the remaining `events` budget and the
//!   schedule of scenarios (resumed at the stored elapsed time, downtime
//!   excluded) carry over; times and field values differ from an
//!   uninterrupted run, as they depend on when each event was generated.
//!
//! With `n` workers each instance generates `rate / n` events per second;
//! worker `w` uses event ids `≡ w (mod n)` and owns the departments, projects
//! and customers whose index is `≡ w (mod n)`, so per-entity state stays
//! consistent.

mod generate;
mod roster;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use eddy_core::component::{
    BuildContext, BuildError, NodeContext, Prepared, SourceFactory, WatermarkSpec,
};
use eddy_core::config::Duration;
use eddy_core::source::{PartitionId, SourcePosition};
use eddy_core::time::{now_ms, parse_duration};
use eddy_core::{Source, SourceBatch, SourceError, SourcePoll, Timestamp};
use serde::{Deserialize, Deserializer};

pub use generate::Simulator;

/// The simulated projects' names (the same for every seed): a gazetteer
/// for extracting the entities chat messages mention.
pub fn project_names() -> Vec<String> {
    roster::project_names()
}

/// The technologies chat messages mention.
pub fn technologies() -> &'static [&'static str] {
    &roster::TECHNOLOGIES
}

use crate::util::{opt_rfc3339, positive, Throttle};

/// Configuration of the `simulator` source.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    /// Events per second over all workers (default 100). Wall-clock rate, or
    /// the event-time rate with `fast = true`.
    #[serde(default = "default_rate", deserialize_with = "positive")]
    pub rate: f64,
    /// The categories to generate (default: all): `budget_update`,
    /// `project_update`, `compliance_event`, `transaction`, `risk_event`,
    /// `system_metric`, `etl_event`, `code_change`, `documentation_update`,
    /// `project_tool_update`, `communication_message`, `quality_alert`,
    /// `knowledge_extraction`, `user_action`.
    #[serde(default)]
    pub categories: Option<Vec<Category>>,
    /// Relative weights of categories, e.g. `{ transaction = 10 }`; unlisted
    /// categories keep their default weights.
    #[serde(default)]
    pub mix: BTreeMap<Category, f64>,
    /// Scheduled scenarios.
    #[serde(default)]
    pub scenarios: Vec<ScenarioConfig>,
    /// Seed of rosters and random choices. Default: the pipeline's seed.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Total number of events over all workers; the source then finishes.
    /// Absent: unbounded.
    #[serde(default)]
    pub events: Option<u64>,
    /// Generate as fast as possible with synthetic event time advancing by
    /// `1/rate` per event, instead of following the wall clock.
    #[serde(default)]
    pub fast: bool,
    /// RFC 3339 time of the first event with `fast = true` (default
    /// `"2024-01-01T00:00:00Z"`).
    #[serde(default, deserialize_with = "opt_rfc3339")]
    pub start_time: Option<Timestamp>,
}

fn default_rate() -> f64 {
    100.0
}

impl Default for SimulatorConfig {
    fn default() -> Self {
        SimulatorConfig {
            rate: default_rate(),
            categories: None,
            mix: BTreeMap::new(),
            scenarios: Vec::new(),
            seed: None,
            events: None,
            fast: false,
            start_time: None,
        }
    }
}

/// An event category; the value of the `type` field.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// Department budget: allocated, spent, utilization.
    BudgetUpdate,
    /// Project status: progress, deadline, budget, risk.
    ProjectUpdate,
    /// Regulatory finding with severity and audit deadline.
    ComplianceEvent,
    /// Card or account transaction with risk score.
    Transaction,
    /// Risk register entry: probability, impact, estimated loss.
    RiskEvent,
    /// Host metrics: CPU, memory, latency, errors, throughput.
    SystemMetric,
    /// ETL job stage run.
    EtlEvent,
    /// A commit pushed to a repository.
    CodeChange,
    /// A wiki/document page change.
    DocumentationUpdate,
    /// An issue change in a project tool.
    ProjectToolUpdate,
    /// A chat message.
    CommunicationMessage,
    /// A failed data-quality check.
    QualityAlert,
    /// Entities and topics extracted from a document.
    KnowledgeExtraction,
    /// A dashboard user's action.
    UserAction,
}

impl Category {
    /// Every category, in order.
    pub const ALL: [Category; 14] = [
        Category::BudgetUpdate,
        Category::ProjectUpdate,
        Category::ComplianceEvent,
        Category::Transaction,
        Category::RiskEvent,
        Category::SystemMetric,
        Category::EtlEvent,
        Category::CodeChange,
        Category::DocumentationUpdate,
        Category::ProjectToolUpdate,
        Category::CommunicationMessage,
        Category::QualityAlert,
        Category::KnowledgeExtraction,
        Category::UserAction,
    ];

    /// The `type` field's value.
    pub fn name(self) -> &'static str {
        match self {
            Category::BudgetUpdate => "budget_update",
            Category::ProjectUpdate => "project_update",
            Category::ComplianceEvent => "compliance_event",
            Category::Transaction => "transaction",
            Category::RiskEvent => "risk_event",
            Category::SystemMetric => "system_metric",
            Category::EtlEvent => "etl_event",
            Category::CodeChange => "code_change",
            Category::DocumentationUpdate => "documentation_update",
            Category::ProjectToolUpdate => "project_tool_update",
            Category::CommunicationMessage => "communication_message",
            Category::QualityAlert => "quality_alert",
            Category::KnowledgeExtraction => "knowledge_extraction",
            Category::UserAction => "user_action",
        }
    }

    /// The default relative weight.
    pub fn default_weight(self) -> f64 {
        match self {
            Category::Transaction => 30.0,
            Category::SystemMetric | Category::UserAction => 10.0,
            Category::CommunicationMessage => 8.0,
            Category::CodeChange | Category::BudgetUpdate => 6.0,
            Category::ProjectUpdate | Category::ProjectToolUpdate => 5.0,
            Category::EtlEvent => 4.0,
            Category::RiskEvent
            | Category::ComplianceEvent
            | Category::DocumentationUpdate
            | Category::KnowledgeExtraction => 3.0,
            Category::QualityAlert => 2.0,
        }
    }
}

/// A business scenario.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "snake_case")]
pub enum ScenarioKind {
    /// Departments overspend: utilization passes 75% and 90% quickly.
    BudgetCrisis,
    /// Deadlines pulled in, progress stalls, project risk rises.
    ProjectDeadlinePressure,
    /// A burst of high and critical compliance findings.
    ComplianceAudit,
    /// Larger, riskier transactions and more market/liquidity risk events.
    MarketVolatility,
    /// The event rate is multiplied by `10 × intensity`.
    Burst,
    /// An upstream producer changes its format: a share of transactions
    /// (5 % × intensity, at most half) carries `amount_usd` as text with a
    /// currency suffix ("1234.56 USD"), which numeric stages refuse to the
    /// dead-letter output.
    SchemaDrift,
}

/// How many scenarios there are.
pub const SCENARIOS: usize = 6;

impl ScenarioKind {
    /// Every scenario, in order.
    pub const ALL: [ScenarioKind; SCENARIOS] = [
        ScenarioKind::BudgetCrisis,
        ScenarioKind::ProjectDeadlinePressure,
        ScenarioKind::ComplianceAudit,
        ScenarioKind::MarketVolatility,
        ScenarioKind::Burst,
        ScenarioKind::SchemaDrift,
    ];

    /// The scenario's name in configuration.
    pub fn name(self) -> &'static str {
        match self {
            ScenarioKind::BudgetCrisis => "budget_crisis",
            ScenarioKind::ProjectDeadlinePressure => "project_deadline_pressure",
            ScenarioKind::ComplianceAudit => "compliance_audit",
            ScenarioKind::MarketVolatility => "market_volatility",
            ScenarioKind::Burst => "burst",
            ScenarioKind::SchemaDrift => "schema_drift",
        }
    }

    /// Parses a configuration name.
    pub fn from_name(name: &str) -> Option<ScenarioKind> {
        ScenarioKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A scheduled scenario.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ScenarioConfig {
    /// Which scenario: `budget_crisis`, `project_deadline_pressure`,
    /// `compliance_audit`, `market_volatility`, `burst` or `schema_drift`.
    pub name: ScenarioKind,
    /// When it starts, as an offset from the start of the stream (`"30s"`,
    /// `"2m"`; default `"0s"`). Measured in event time.
    #[serde(default = "zero", deserialize_with = "offset")]
    pub start: Duration,
    /// How long it lasts (`"60s"`); absent: until the end.
    #[serde(default)]
    pub duration: Option<Duration>,
    /// Strength of the effects (default 1.0).
    #[serde(default = "one", deserialize_with = "positive")]
    pub intensity: f64,
}

fn zero() -> Duration {
    Duration::from_ms(0)
}

fn one() -> f64 {
    1.0
}

fn offset<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse_duration(&text)
        .map(Duration::from_ms)
        .map_err(|e| serde::de::Error::custom(format!("bad duration: {e}")))
}

/// Run-time scenario switches shared by all instances of one simulator
/// source in one run: `prepare` makes one per run, and the caller that
/// started the run reaches it through `Running::prepared(NAME)` (e.g. for
/// an HTTP handler). Cloning gives another handle to the same switches.
///
/// ```
/// use eddy_connectors::sources::simulator::{ScenarioControl, ScenarioKind};
///
/// let control = ScenarioControl::default();
/// control.set(ScenarioKind::ComplianceAudit, Some(2.0));
/// assert_eq!(control.get(ScenarioKind::ComplianceAudit), Some(2.0));
/// control.set(ScenarioKind::ComplianceAudit, None);
/// ```
#[derive(Clone, Default)]
pub struct ScenarioControl(Arc<ControlInner>);

#[derive(Default)]
struct ControlInner {
    /// `f64` bits of each scenario's intensity; 0 = off.
    intensity: [AtomicU64; SCENARIOS],
    /// Wall-clock start shared by all instances (rate mode).
    started: OnceLock<Timestamp>,
}

impl ScenarioControl {
    /// Switches `kind` on with `intensity`, or off with `None` (scheduled
    /// scenarios are not affected).
    pub fn set(&self, kind: ScenarioKind, intensity: Option<f64>) {
        let v = intensity
            .filter(|i| i.is_finite() && *i > 0.0)
            .unwrap_or(0.0);
        self.0.intensity[kind as usize].store(v.to_bits(), Ordering::Relaxed);
    }

    /// The intensity `kind` was switched on with, if on.
    pub fn get(&self, kind: ScenarioKind) -> Option<f64> {
        let v = f64::from_bits(self.0.intensity[kind as usize].load(Ordering::Relaxed));
        (v > 0.0).then_some(v)
    }

    fn started(&self) -> Timestamp {
        *self.0.started.get_or_init(now_ms)
    }
}

impl fmt::Debug for ScenarioControl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let on: Vec<_> = ScenarioKind::ALL
            .into_iter()
            .filter_map(|k| self.get(k).map(|i| (k.name(), i)))
            .collect();
        f.debug_tuple("ScenarioControl").field(&on).finish()
    }
}

/// Why a simulator could not be set up.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SimulatorError {
    /// `mix` gives a weight that is negative or not a number.
    #[error("mix weight of `{0}` must be a non-negative number")]
    BadWeight(&'static str),
    /// `mix` names a category excluded by `categories`.
    #[error("mix names `{0}`, which `categories` does not include")]
    MixOutsideCategories(&'static str),
    /// Every category has weight zero.
    #[error("no category to generate: every weight is zero")]
    NothingToGenerate,
}

impl SimulatorConfig {
    /// The weight of each category (indexed like [`Category::ALL`]).
    fn weights(&self) -> Result<[f64; 14], SimulatorError> {
        let mut w = [0.0; 14];
        for c in Category::ALL {
            let enabled = self.categories.as_ref().is_none_or(|cs| cs.contains(&c));
            if enabled {
                w[c as usize] = c.default_weight();
            }
        }
        for (c, weight) in &self.mix {
            if !(weight.is_finite() && *weight >= 0.0) {
                return Err(SimulatorError::BadWeight(c.name()));
            }
            if w[*c as usize] == 0.0 && self.categories.as_ref().is_some_and(|cs| !cs.contains(c)) {
                return Err(SimulatorError::MixOutsideCategories(c.name()));
            }
            w[*c as usize] = *weight;
        }
        if w.iter().all(|x| *x == 0.0) {
            return Err(SimulatorError::NothingToGenerate);
        }
        Ok(w)
    }
}

impl SourceFactory for SimulatorConfig {
    /// One set of scenario switches (and one wall-clock start) per run,
    /// shared by the run's instances.
    fn prepare(&self, _cx: &NodeContext) -> Result<Option<Prepared>, BuildError> {
        Ok(Some(Prepared::new(ScenarioControl::default())))
    }

    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let control = ScenarioControl::clone(&*cx.prepared::<ScenarioControl>()?);
        let sim = Simulator::with_control(self, control, cx.seed, cx.worker, cx.workers)
            .map_err(|e| BuildError::Config(format!("source `{}`: {e}", cx.name)))?;
        Ok(Box::new(SimulatorSource {
            sim,
            throttle: Throttle::new(),
        }))
    }

    fn watermarks(&self) -> WatermarkSpec {
        WatermarkSpec {
            max_out_of_orderness: 0,
            idle_timeout: None,
        }
    }
}

/// A running `simulator` source instance.
pub struct SimulatorSource {
    sim: Simulator,
    throttle: Throttle,
}

impl SimulatorSource {
    /// The generator, e.g. to switch scenarios on this instance only.
    pub fn simulator(&mut self) -> &mut Simulator {
        &mut self.sim
    }
}

impl Source for SimulatorSource {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, SourceError> {
        if self.sim.is_finished() {
            return Ok(SourcePoll::Finished);
        }
        let mut batch = SourceBatch::default();
        if self.sim.is_fast() {
            self.sim.next_batch(&mut batch.events, max);
        } else {
            let now = now_ms();
            let allowed = self.throttle.allowance(self.sim.current_rate(now), max);
            if allowed == 0 {
                return Ok(SourcePoll::Pending);
            }
            batch.events.reserve(allowed);
            for _ in 0..allowed {
                match self.sim.next_event_at(now) {
                    Some(e) => batch.events.push(e),
                    None => break,
                }
            }
            self.throttle.spend(batch.events.len());
        }
        if batch.events.is_empty() {
            return Ok(SourcePoll::Finished);
        }
        Ok(SourcePoll::Ready(batch))
    }

    /// Position 0: events generated by this worker; position 1: event time
    /// elapsed since the start of the stream, in ms.
    fn positions(&self) -> Vec<SourcePosition> {
        let elapsed = self.sim.elapsed(now_ms()).max(0) as u64;
        vec![
            SourcePosition {
                partition: GENERATED,
                offset: self.sim.generated(),
            },
            SourcePosition {
                partition: ELAPSED,
                offset: elapsed,
            },
        ]
    }

    /// Fast-forwards a fresh instance to the stored count (see the module
    /// documentation for what is reproduced).
    fn seek(&mut self, positions: &[SourcePosition]) -> Result<(), SourceError> {
        let find = |id: PartitionId| positions.iter().find(|p| p.partition == id);
        let Some(target) = find(GENERATED).map(|p| p.offset) else {
            return Ok(());
        };
        if target < self.sim.generated() {
            return Err(SourceError::Other {
                message: format!(
                    "simulator: cannot go back to event {target} after generating {}",
                    self.sim.generated()
                ),
                retryable: false,
            });
        }
        let now = now_ms();
        if let Some(p) = find(ELAPSED) {
            let elapsed = i64::try_from(p.offset).unwrap_or(i64::MAX);
            self.sim.resume_elapsed(elapsed, now);
        }
        self.sim.skip_to(target, now);
        Ok(())
    }
}

/// Position id of the number of events generated.
const GENERATED: PartitionId = 0;
/// Position id of the event time elapsed since the start (ms).
const ELAPSED: PartitionId = 1;
