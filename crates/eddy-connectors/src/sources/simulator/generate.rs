//! The simulator's generator: per-category event builders over the rosters,
//! with evolving department and project state and scenario effects.

use std::sync::Arc;

use eddy_core::time::format_rfc3339;
use eddy_core::{Event, Fields, Str, Sym, Timestamp, Value};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::roster::*;
use super::{Category, ScenarioControl, ScenarioKind, SimulatorConfig, SimulatorError, SCENARIOS};
use crate::util::{mix64, DEFAULT_START_TIME};

const DAY_MS: f64 = 86_400_000.0;

macro_rules! syms {
    ($($name:ident),* $(,)?) => {
        /// Field names, interned once per generator.
        struct Syms { kind: Sym, $($name: Sym,)* }
        impl Syms {
            fn new() -> Syms {
                Syms { kind: Sym::intern("type"), $($name: Sym::intern(stringify!($name)),)* }
            }
        }
    };
}

syms!(
    event_id,
    ts,
    department,
    svp,
    allocated,
    spent,
    remaining,
    utilization,
    currency,
    fiscal_quarter,
    change_type,
    amount,
    expense_type,
    project_id,
    name,
    status,
    progress,
    deadline,
    days_to_deadline,
    budget,
    risk_score,
    team_size,
    phase,
    regulation,
    severity,
    description,
    audit_deadline,
    finding_id,
    requires_action,
    transaction_id,
    amount_usd,
    channel,
    merchant,
    merchant_category,
    country,
    user,
    location,
    is_foreign,
    category,
    probability,
    impact,
    estimated_loss,
    mitigation_status,
    responsible_officer,
    risk_id,
    risk_level,
    host,
    service,
    cpu,
    memory,
    latency_ms,
    error_rate,
    requests_per_sec,
    job,
    stage,
    records_processed,
    duration_ms,
    errors,
    run_id,
    repo,
    author,
    branch,
    files_changed,
    additions,
    deletions,
    message,
    commit,
    platform,
    page,
    space,
    action,
    change_size,
    tool,
    issue,
    title,
    assignee,
    priority,
    project,
    text,
    mentions,
    check,
    dataset,
    failed_rows,
    total_rows,
    failure_rate,
    threshold,
    source,
    document,
    entities,
    topics,
    confidence,
    session_id,
);

/// Shared strings of the fixed vocabularies.
struct Texts {
    kinds: Vec<Str>,
    usd: Str,
    expense: Str,
    reallocation: Str,
    expense_types: Vec<Str>,
    project_status: [Str; 5],
    regulations: Vec<Str>,
    severities: Vec<Str>,
    compliance_statuses: Vec<Str>,
    channels: Vec<Str>,
    merchant_categories: Vec<Str>,
    tx_status: [Str; 4],
    risk_categories: Vec<Str>,
    risk_descriptions: Vec<[Str; 2]>,
    mitigation: Vec<Str>,
    etl_jobs: Vec<Str>,
    etl_stages: Vec<Str>,
    etl_status: [Str; 3],
    repos: Vec<Str>,
    branches: Vec<Str>,
    commit_messages: Vec<Str>,
    doc_platforms: Vec<Str>,
    doc_pages: Vec<Str>,
    doc_actions: Vec<Str>,
    pm_tools: Vec<Str>,
    issue_statuses: Vec<Str>,
    priorities: Vec<Str>,
    issue_titles: Vec<Str>,
    chat_platforms: Vec<Str>,
    chat_channels: Vec<Str>,
    checks: Vec<Str>,
    datasets: Vec<Str>,
    knowledge_sources: Vec<Str>,
    topics: Vec<Str>,
    user_actions: Vec<Str>,
    pages: Vec<Str>,
    departments: Vec<Str>,
    /// Entity names knowledge extraction can find.
    entities: Vec<Str>,
}

impl Texts {
    fn new(roster: &Roster) -> Texts {
        let s = Str::from;
        let mut branches = vec![s("main"), s("develop")];
        for t in BRANCH_TOPICS {
            branches.push(Str::from(format!("feature/{t}")));
            branches.push(Str::from(format!("fix/{t}")));
        }
        let mut entities: Vec<Str> = roster.projects.iter().map(|p| p.name.clone()).collect();
        entities.extend(strs(&DEPARTMENTS));
        entities.extend(strs(&REGULATIONS));
        entities.extend(roster.employees.iter().take(20).cloned());
        Texts {
            kinds: Category::ALL.iter().map(|c| s(c.name())).collect(),
            usd: s("USD"),
            expense: s("expense"),
            reallocation: s("reallocation"),
            expense_types: strs(&EXPENSE_TYPES),
            project_status: [
                s("on_track"),
                s("at_risk"),
                s("critical"),
                s("delayed"),
                s("completed"),
            ],
            regulations: strs(&REGULATIONS),
            severities: strs(&SEVERITIES),
            compliance_statuses: strs(&COMPLIANCE_STATUSES),
            channels: strs(&CHANNELS),
            merchant_categories: MERCHANT_CATEGORIES.iter().map(|m| s(m.0)).collect(),
            tx_status: [s("approved"), s("pending"), s("flagged"), s("declined")],
            risk_categories: strs(&RISK_CATEGORIES),
            risk_descriptions: RISK_DESCRIPTIONS
                .iter()
                .map(|[a, b]| [s(a), s(b)])
                .collect(),
            mitigation: strs(&MITIGATION_STATUSES),
            etl_jobs: strs(&ETL_JOBS),
            etl_stages: strs(&ETL_STAGES),
            etl_status: [s("success"), s("warning"), s("failed")],
            repos: strs(&REPOS),
            branches,
            commit_messages: strs(&COMMIT_MESSAGES),
            doc_platforms: strs(&DOC_PLATFORMS),
            doc_pages: strs(&DOC_PAGES),
            doc_actions: strs(&DOC_ACTIONS),
            pm_tools: strs(&PM_TOOLS),
            issue_statuses: strs(&ISSUE_STATUSES),
            priorities: strs(&PRIORITIES),
            issue_titles: strs(&ISSUE_TITLES),
            chat_platforms: strs(&CHAT_PLATFORMS),
            chat_channels: strs(&CHAT_CHANNELS),
            checks: strs(&QUALITY_CHECKS),
            datasets: strs(&DATASETS),
            knowledge_sources: strs(&KNOWLEDGE_SOURCES),
            topics: strs(&TOPICS),
            user_actions: strs(&USER_ACTIONS),
            pages: strs(&PAGES),
            departments: strs(&DEPARTMENTS),
            entities,
        }
    }
}

/// A department owned by this generator, with its evolving budget.
struct DeptState {
    idx: usize,
    allocated: f64,
    spent: f64,
    /// Event time of the department's previous update (None before the first).
    last_update: Option<Timestamp>,
}

/// A project owned by this generator, with its evolving status.
struct ProjState {
    idx: usize,
    progress: f64,
    days_left: f64,
    total_days: f64,
    spent: f64,
    phase: i64,
}

/// A dashboard user's session.
#[derive(Clone, Copy, Default)]
struct Session {
    id: i64,
    actions_left: u32,
}

/// Events generated (and dropped) per step of [`Simulator::skip_to`].
const SKIP_CHUNK: usize = 4096;

/// A scheduled scenario in ms offsets from the start.
struct Scheduled {
    kind: ScenarioKind,
    start: i64,
    end: Option<i64>,
    intensity: f64,
}

/// Generates simulator events for one worker. Built by the `simulator`
/// source; usable directly in benchmarks and tests.
pub struct Simulator {
    rng: SmallRng,
    roster: Roster,
    t: Texts,
    s: Syms,
    depts: Vec<DeptState>,
    projects: Vec<ProjState>,
    customers: Vec<usize>,
    sessions: Vec<Session>,
    weights: [f64; 14],
    schedule: Vec<Scheduled>,
    control: ScenarioControl,
    local: [f64; SCENARIOS],
    worker: u64,
    workers: u64,
    seq: u64,
    remaining: Option<u64>,
    fast: bool,
    /// Events per second of this worker (before bursts).
    rate: f64,
    /// Start of the stream: synthetic (fast) or wall clock.
    start: Timestamp,
    /// Synthetic clock in ms (fast mode).
    clock: f64,
    quarter: (i64, Str),
}

fn r2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

fn r1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn normal(rng: &mut SmallRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn pick(rng: &mut SmallRng, pool: &[Str]) -> Value {
    Value::Str(pool[rng.random_range(0..pool.len())].clone())
}

/// `n` with commas between thousands (`12,400`).
fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Linear blend of two weight vectors by `a` in `0..=1`.
fn blend<const N: usize>(normal: [f64; N], scenario: [f64; N], a: f64) -> [f64; N] {
    let a = a.clamp(0.0, 1.0);
    let mut out = [0.0; N];
    for i in 0..N {
        out[i] = normal[i] * (1.0 - a) + scenario[i] * a;
    }
    out
}

fn date(t: Timestamp) -> Value {
    let mut s = format_rfc3339(t);
    s.truncate(10);
    Value::Str(Str::from(s))
}

impl Simulator {
    /// A generator for worker `worker` of `workers` with switches of its
    /// own; `default_seed` is used when the config has no `seed`.
    pub fn new(
        cfg: &SimulatorConfig,
        default_seed: u64,
        worker: usize,
        workers: usize,
    ) -> Result<Simulator, SimulatorError> {
        Self::with_control(
            cfg,
            ScenarioControl::default(),
            default_seed,
            worker,
            workers,
        )
    }

    /// A generator for worker `worker` of `workers` following the run-time
    /// switches `control` (shared by the run's instances).
    pub fn with_control(
        cfg: &SimulatorConfig,
        control: ScenarioControl,
        default_seed: u64,
        worker: usize,
        workers: usize,
    ) -> Result<Simulator, SimulatorError> {
        let weights = cfg.weights()?;
        let seed = cfg.seed.unwrap_or(default_seed);
        let workers = workers.max(1) as u64;
        let worker = worker as u64 % workers;
        let roster = Roster::new(&mut SmallRng::seed_from_u64(mix64(seed)));
        let mut rng = SmallRng::seed_from_u64(mix64(seed ^ mix64(worker.wrapping_add(1))));
        let owned = |n: usize| {
            (0..n)
                .filter(|i| *i as u64 % workers == worker)
                .collect::<Vec<_>>()
        };
        let depts = owned(roster.departments.len())
            .into_iter()
            .map(|idx| {
                let d = &roster.departments[idx];
                DeptState {
                    idx,
                    allocated: d.allocated,
                    spent: (d.allocated * d.start_utilization).round(),
                    last_update: None,
                }
            })
            .collect();
        let projects = owned(roster.projects.len())
            .into_iter()
            .map(|idx| {
                let p = &roster.projects[idx];
                let total = p.start_days / (1.0 - p.start_progress / 100.0).max(0.2);
                ProjState {
                    idx,
                    progress: p.start_progress,
                    days_left: p.start_days,
                    total_days: total,
                    spent: p.budget * p.start_progress / 100.0 * rng.random_range(0.9..1.1),
                    phase: 1,
                }
            })
            .collect();
        let mut customers = owned(roster.customers.len());
        if customers.is_empty() {
            customers = (0..roster.customers.len()).collect();
        }
        let sessions = vec![Session::default(); roster.usernames.len()];
        let mut weights = weights;
        // A worker without departments or projects of its own skips them.
        if owned(roster.departments.len()).is_empty() {
            weights[Category::BudgetUpdate as usize] = 0.0;
        }
        if owned(roster.projects.len()).is_empty() {
            weights[Category::ProjectUpdate as usize] = 0.0;
        }
        if weights.iter().all(|w| *w == 0.0) {
            weights[Category::Transaction as usize] = 1.0;
        }
        let rate = cfg.rate / workers as f64;
        let start = if cfg.fast {
            cfg.start_time.unwrap_or(DEFAULT_START_TIME)
        } else {
            control.started()
        };
        let remaining = cfg
            .events
            .map(|total| total / workers + u64::from(worker < total % workers));
        let t = Texts::new(&roster);
        Ok(Simulator {
            rng,
            t,
            roster,
            s: Syms::new(),
            depts,
            projects,
            customers,
            sessions,
            weights,
            schedule: cfg
                .scenarios
                .iter()
                .map(|sc| Scheduled {
                    kind: sc.name,
                    start: sc.start.ms(),
                    end: sc.duration.map(|d| sc.start.ms().saturating_add(d.ms())),
                    intensity: sc.intensity,
                })
                .collect(),
            control,
            local: [0.0; SCENARIOS],
            worker,
            workers,
            seq: 0,
            remaining,
            fast: cfg.fast,
            rate,
            start,
            // Workers interleave their synthetic times.
            clock: start as f64 + worker as f64 * 1000.0 / cfg.rate,
            quarter: (i64::MIN, Str::from("")),
        })
    }

    /// Switches a scenario on (with an intensity) or off for this generator
    /// only. Scheduled scenarios and [`ScenarioControl`] switches still apply.
    pub fn set_scenario(&mut self, kind: ScenarioKind, intensity: Option<f64>) {
        self.local[kind as usize] = intensity
            .filter(|i| i.is_finite() && *i > 0.0)
            .unwrap_or(0.0);
    }

    /// The intensity of each scenario at event time `t` (0 = inactive),
    /// indexed like [`ScenarioKind::ALL`].
    pub fn intensities(&self, t: Timestamp) -> [f64; SCENARIOS] {
        let mut out = self.local;
        for k in ScenarioKind::ALL {
            if let Some(i) = self.control.get(k) {
                out[k as usize] = out[k as usize].max(i);
            }
        }
        let elapsed = t - self.start;
        for s in &self.schedule {
            if elapsed >= s.start && s.end.is_none_or(|e| elapsed < e) {
                out[s.kind as usize] = out[s.kind as usize].max(s.intensity);
            }
        }
        out
    }

    /// How many events this worker has generated: with the configuration
    /// and seed, what fixes every later event in `fast` mode.
    pub fn generated(&self) -> u64 {
        self.seq
    }

    /// Event time elapsed since the start of the stream at wall-clock
    /// (or, in `fast` mode, synthetic) time `now`.
    pub fn elapsed(&self, now: Timestamp) -> i64 {
        if self.fast {
            self.clock.floor() as Timestamp - self.start
        } else {
            now.saturating_sub(self.start)
        }
    }

    /// Rate mode: moves the start of the stream so that `elapsed` ms have
    /// passed at wall-clock time `now`, and scheduled scenarios continue
    /// where they were instead of starting over. No effect in `fast` mode,
    /// whose synthetic clock is fixed by the number of events.
    pub fn resume_elapsed(&mut self, elapsed: i64, now: Timestamp) {
        if !self.fast {
            self.start = now.saturating_sub(elapsed.max(0));
        }
    }

    /// Generates and drops events until `generated() == n` (or the
    /// configured count runs out), so that the next event is the one an
    /// uninterrupted run would produce after `n`. In rate mode the skipped
    /// events are generated at event time `at` (their wall-clock times are
    /// not known). Costs as much as generating them, about a second per
    /// few million events.
    pub fn skip_to(&mut self, n: u64, at: Timestamp) {
        let mut scratch = Vec::with_capacity(SKIP_CHUNK);
        while self.seq < n && !self.is_finished() {
            let chunk = (n - self.seq).min(SKIP_CHUNK as u64) as usize;
            scratch.clear();
            if self.fast {
                self.next_batch(&mut scratch, chunk);
            } else {
                for _ in 0..chunk {
                    match self.next_event_at(at) {
                        Some(e) => scratch.push(e),
                        None => break,
                    }
                }
            }
            if scratch.is_empty() {
                break;
            }
        }
    }

    /// Whether event time is synthetic (`fast = true`).
    pub fn is_fast(&self) -> bool {
        self.fast
    }

    /// Whether the configured number of events has been generated.
    pub fn is_finished(&self) -> bool {
        self.remaining == Some(0)
    }

    /// This worker's event rate at time `t`, bursts included.
    pub fn current_rate(&self, t: Timestamp) -> f64 {
        let burst = self.intensities(t)[ScenarioKind::Burst as usize];
        if burst > 0.0 {
            self.rate * (10.0 * burst).max(1.0)
        } else {
            self.rate
        }
    }

    /// Appends up to `max` events with synthetic event times to `out`.
    pub fn next_batch(&mut self, out: &mut Vec<Event>, max: usize) {
        for _ in 0..max {
            let t = self.clock.floor() as Timestamp;
            match self.next_event_at(t) {
                Some(e) => out.push(e),
                None => return,
            }
            // Each worker produces every `workers`-th event of the stream.
            self.clock += 1000.0 / self.current_rate(t);
        }
    }

    /// Generates the next event with event time `t`, or `None` when done.
    pub fn next_event_at(&mut self, t: Timestamp) -> Option<Event> {
        if let Some(r) = &mut self.remaining {
            if *r == 0 {
                return None;
            }
            *r -= 1;
        }
        let id = self.seq * self.workers + self.worker;
        self.seq += 1;
        let sc = self.intensities(t);
        let cat = self.pick_category(&sc);
        let ts = Str::from(format_rfc3339(t));
        let mut f = Fields::with_capacity(16);
        f.push(self.s.event_id, Value::Int(id as i64));
        f.push(self.s.kind, Value::Str(self.t.kinds[cat as usize].clone()));
        f.push(self.s.ts, Value::Str(ts.clone()));
        match cat {
            Category::BudgetUpdate => self.budget(&mut f, &sc, &ts, t),
            Category::ProjectUpdate => self.project(&mut f, &sc, t),
            Category::ComplianceEvent => self.compliance(&mut f, &sc, t, id),
            Category::Transaction => self.transaction(&mut f, &sc, id),
            Category::RiskEvent => self.risk(&mut f, &sc, id),
            Category::SystemMetric => self.system_metric(&mut f, &sc),
            Category::EtlEvent => self.etl(&mut f, id),
            Category::CodeChange => self.code_change(&mut f),
            Category::DocumentationUpdate => self.documentation(&mut f),
            Category::ProjectToolUpdate => self.project_tool(&mut f, &sc),
            Category::CommunicationMessage => self.communication(&mut f, &sc),
            Category::QualityAlert => self.quality(&mut f, &sc),
            Category::KnowledgeExtraction => self.knowledge(&mut f),
            Category::UserAction => self.user_action(&mut f),
        }
        Some(Event::new(t, f))
    }

    fn pick_category(&mut self, sc: &[f64; SCENARIOS]) -> Category {
        let mut w = self.weights;
        let crisis = sc[ScenarioKind::BudgetCrisis as usize];
        let pressure = sc[ScenarioKind::ProjectDeadlinePressure as usize];
        let audit = sc[ScenarioKind::ComplianceAudit as usize];
        let vol = sc[ScenarioKind::MarketVolatility as usize];
        let mut scale = |c: Category, m: f64| w[c as usize] *= m;
        scale(Category::BudgetUpdate, 1.0 + 3.0 * crisis);
        scale(Category::ProjectUpdate, 1.0 + 2.0 * pressure);
        scale(Category::ProjectToolUpdate, 1.0 + pressure);
        scale(Category::ComplianceEvent, 1.0 + 8.0 * audit);
        scale(Category::QualityAlert, 1.0 + audit);
        scale(Category::DocumentationUpdate, 1.0 + 0.5 * audit);
        scale(Category::Transaction, 1.0 + vol);
        scale(Category::RiskEvent, 1.0 + 4.0 * vol);
        scale(
            Category::CommunicationMessage,
            1.0 + 0.5 * (crisis + pressure + audit + vol).min(2.0),
        );
        Category::ALL[weighted(&mut self.rng, &w)]
    }

    fn quarter(&mut self, ts: &str) -> Str {
        let year: i64 = ts.get(0..4).and_then(|y| y.parse().ok()).unwrap_or(0);
        let month: i64 = ts.get(5..7).and_then(|m| m.parse().ok()).unwrap_or(1);
        let key = year * 10 + (month - 1) / 3 + 1;
        if self.quarter.0 != key {
            self.quarter = (key, Str::from(format!("{year}-Q{}", key % 10)));
        }
        self.quarter.1.clone()
    }

    fn budget(&mut self, f: &mut Fields, sc: &[f64; SCENARIOS], ts: &str, t: Timestamp) {
        let crisis = sc[ScenarioKind::BudgetCrisis as usize];
        let i = self.rng.random_range(0..self.depts.len());
        let rng = &mut self.rng;
        let d = &mut self.depts[i];
        let info = &self.roster.departments[d.idx];
        let util = d.spent / d.allocated;
        let (change, amount) = if crisis > 0.0 {
            // Unplanned spending: utilization climbs toward an overrun of
            // 115 % (+25 % per unit of intensity) with a time constant of
            // 8 s / intensity of event time, whatever the event rate, so the
            // 75 % and 90 % thresholds are crossed one after the other.
            let target = d.allocated * (1.15 + 0.25 * crisis);
            let elapsed = d.last_update.map_or(0, |last| (t - last).max(0)) as f64 / 1000.0;
            let step = 1.0 - (-elapsed * crisis / 8.0).exp();
            let amount =
                (target - d.spent).max(0.0) * step + d.allocated * rng.random_range(0.0..0.001);
            d.spent += amount;
            (&self.t.expense, amount)
        } else if util > 1.0 && rng.random_bool(0.05) {
            // Finance tops up an overspent budget.
            let top = d.allocated * rng.random_range(0.10..0.25);
            d.allocated += top;
            (&self.t.reallocation, top)
        } else {
            let gap = (info.target * d.allocated - d.spent).max(0.0);
            let amount =
                gap * rng.random_range(0.01..0.05) + d.allocated * rng.random_range(0.0..0.002);
            d.spent += amount;
            (&self.t.expense, amount)
        };
        d.last_update = Some(t);
        let (allocated, spent) = (r2(d.allocated), r2(d.spent));
        let s = &self.s;
        f.push(s.department, Value::Str(info.name.clone()));
        f.push(s.svp, Value::Str(info.svp.clone()));
        f.push(s.allocated, Value::Float(allocated));
        f.push(s.spent, Value::Float(spent));
        f.push(s.remaining, Value::Float(r2(allocated - spent)));
        f.push(s.utilization, Value::Float(r2(spent / allocated * 100.0)));
        f.push(s.currency, Value::Str(self.t.usd.clone()));
        f.push(s.change_type, Value::Str(change.clone()));
        f.push(s.amount, Value::Float(r2(amount)));
        f.push(s.expense_type, pick(rng, &self.t.expense_types));
        let q = self.quarter(ts);
        f.push(self.s.fiscal_quarter, Value::Str(q));
    }

    fn project(&mut self, f: &mut Fields, sc: &[f64; SCENARIOS], t: Timestamp) {
        let pressure = sc[ScenarioKind::ProjectDeadlinePressure as usize];
        let i = self.rng.random_range(0..self.projects.len());
        let rng = &mut self.rng;
        let p = &mut self.projects[i];
        let info = &self.roster.projects[p.idx];
        if p.progress >= 100.0 {
            // The next phase starts.
            p.phase += 1;
            p.progress = rng.random_range(0.0..5.0);
            p.days_left = rng.random_range(60.0..240.0);
            p.total_days = p.days_left;
            p.spent = 0.0;
        }
        let stall = if pressure > 0.0 {
            0.1 / (1.0 + pressure)
        } else {
            1.0
        };
        p.progress = (p.progress + rng.random_range(0.3..2.0) * stall).min(100.0);
        p.days_left -= rng.random_range(0.5..1.5) + pressure * rng.random_range(2.0..6.0);
        let planned = info.budget * info.overrun * p.progress / 100.0;
        p.spent = p.spent.max(planned * rng.random_range(0.97..1.03));
        let expected = (100.0 * (1.0 - p.days_left / p.total_days)).clamp(0.0, 100.0);
        let lag = (expected - p.progress).max(0.0);
        let overspend = ((p.spent / info.budget - p.progress / 100.0) * 100.0).max(0.0);
        let crunch = if p.days_left < 14.0 && p.progress < 90.0 {
            20.0
        } else {
            0.0
        };
        let risk =
            (15.0 + 0.9 * lag + 0.8 * overspend + crunch + 20.0 * pressure + 4.0 * normal(rng))
                .clamp(0.0, 100.0)
                .round();
        let status = if p.progress >= 100.0 {
            4
        } else if risk >= 75.0 {
            2
        } else if p.days_left < 0.0 {
            3
        } else if risk >= 50.0 {
            1
        } else {
            0
        };
        let s = &self.s;
        f.push(s.project_id, Value::Str(info.id.clone()));
        f.push(s.name, Value::Str(info.name.clone()));
        f.push(
            s.department,
            Value::Str(self.roster.departments[info.department].name.clone()),
        );
        f.push(s.status, Value::Str(self.t.project_status[status].clone()));
        f.push(s.progress, Value::Float(r1(p.progress)));
        f.push(s.deadline, date(t + (p.days_left * DAY_MS) as i64));
        f.push(s.days_to_deadline, Value::Int(p.days_left.floor() as i64));
        f.push(s.budget, Value::Float(info.budget));
        f.push(s.spent, Value::Float(r2(p.spent)));
        f.push(s.risk_score, Value::Int(risk as i64));
        f.push(s.team_size, Value::Int(info.team_size));
        f.push(s.phase, Value::Int(p.phase));
    }

    fn compliance(&mut self, f: &mut Fields, sc: &[f64; SCENARIOS], t: Timestamp, id: u64) {
        let audit = sc[ScenarioKind::ComplianceAudit as usize];
        let rng = &mut self.rng;
        let sev = weighted(
            rng,
            &blend([45.0, 35.0, 15.0, 5.0], [5.0, 20.0, 40.0, 35.0], audit),
        );
        let status = weighted(
            rng,
            &blend([35.0, 25.0, 20.0, 20.0], [55.0, 30.0, 10.0, 5.0], audit),
        );
        let reg = rng.random_range(0..REGULATIONS.len());
        let dept = rng.random_range(0..DEPARTMENTS.len());
        let issue = COMPLIANCE_ISSUES[rng.random_range(0..COMPLIANCE_ISSUES.len())];
        let days = if audit > 0.0 {
            rng.random_range(2.0..21.0)
        } else {
            rng.random_range(20.0..120.0)
        };
        let s = &self.s;
        f.push(s.finding_id, Value::Str(Str::from(format!("CMP-{id:08}"))));
        f.push(s.regulation, Value::Str(self.t.regulations[reg].clone()));
        f.push(s.severity, Value::Str(self.t.severities[sev].clone()));
        f.push(
            s.status,
            Value::Str(self.t.compliance_statuses[status].clone()),
        );
        f.push(s.department, Value::Str(self.t.departments[dept].clone()));
        f.push(
            s.description,
            Value::Str(Str::from(format!(
                "{}: {issue} in {}",
                REGULATIONS[reg], DEPARTMENTS[dept]
            ))),
        );
        f.push(s.audit_deadline, date(t + (days * DAY_MS) as i64));
        f.push(s.requires_action, Value::Bool(sev >= 2));
    }

    fn transaction(&mut self, f: &mut Fields, sc: &[f64; SCENARIOS], id: u64) {
        let vol = sc[ScenarioKind::MarketVolatility as usize];
        let rng = &mut self.rng;
        let r = &self.roster;
        let cust = &r.customers[self.customers[rng.random_range(0..self.customers.len())]];
        let foreign = rng.random_bool((0.04 + 0.10 * vol).min(0.9));
        let (country, location) = if foreign {
            let c = (cust.country + rng.random_range(1..COUNTRIES.len())) % COUNTRIES.len();
            (c, r.locations[c][rng.random_range(0..3)].clone())
        } else {
            (cust.country, cust.location.clone())
        };
        let merchants = &r.merchants_by_country[country];
        let m = &r.merchants[merchants[rng.random_range(0..merchants.len())]];
        let (_, median, cat_risk) = MERCHANT_CATEGORIES[m.category];
        let mut usd = median * ((0.8 + 0.3 * vol) * normal(rng)).exp();
        if foreign {
            usd *= rng.random_range(2.0..6.0);
        }
        if vol > 0.0 {
            usd *= 1.0 + vol * rng.random_range(0.5..2.5);
        }
        let usd = usd.clamp(0.5, 250_000.0);
        let (_, _, per_usd, _) = COUNTRIES[country];
        let fx = per_usd * (1.0 + 0.002 * normal(rng) + 0.02 * vol * normal(rng));
        let local = usd * fx;
        let amount = if per_usd > 100.0 {
            local.round()
        } else {
            r2(local)
        };
        let channel = weighted(rng, &CHANNEL_WEIGHTS);
        let mut risk = 5.0 + rng.random_range(0.0..20.0) + cat_risk + 20.0 * vol;
        if foreign {
            risk += rng.random_range(30.0..50.0);
        }
        if usd > 2_000.0 {
            risk += 15.0;
        }
        if usd > 10_000.0 {
            risk += 10.0;
        }
        if channel == 0 || channel == 4 {
            risk += 3.0;
        }
        let risk = risk.clamp(0.0, 100.0).round();
        let status = if risk > 85.0 {
            if rng.random_bool(0.7) {
                3
            } else {
                2
            }
        } else if risk > 65.0 && rng.random_bool(0.5) {
            2
        } else if rng.random_bool(0.02) {
            1
        } else {
            0
        };
        let s = &self.s;
        f.push(
            s.transaction_id,
            Value::Str(Str::from(format!("TXN{id:010}"))),
        );
        f.push(s.amount, Value::Float(amount));
        f.push(s.currency, Value::Str(r.currencies[country].clone()));
        let drift = sc[ScenarioKind::SchemaDrift as usize];
        // Drawn only under the scenario, so other streams stay as they were.
        if drift > 0.0 && rng.random_bool((0.05 * drift).min(0.5)) {
            f.push(s.amount_usd, Value::str(&format!("{:.2} USD", r2(usd))));
        } else {
            f.push(s.amount_usd, Value::Float(r2(usd)));
        }
        f.push(s.channel, Value::Str(self.t.channels[channel].clone()));
        f.push(s.merchant, Value::Str(m.name.clone()));
        f.push(
            s.merchant_category,
            Value::Str(self.t.merchant_categories[m.category].clone()),
        );
        f.push(s.country, Value::Str(r.country_codes[country].clone()));
        f.push(s.location, Value::Str(location));
        f.push(s.user, cust.user.clone());
        f.push(s.is_foreign, Value::Bool(foreign));
        f.push(s.risk_score, Value::Int(risk as i64));
        f.push(s.status, Value::Str(self.t.tx_status[status].clone()));
    }

    fn risk(&mut self, f: &mut Fields, sc: &[f64; SCENARIOS], id: u64) {
        let vol = sc[ScenarioKind::MarketVolatility as usize];
        let rng = &mut self.rng;
        let w = [
            20.0,
            15.0 * (1.0 + 4.0 * vol),
            25.0,
            10.0 * (1.0 + 3.0 * vol),
            12.0,
            10.0,
            8.0,
        ];
        let cat = weighted(rng, &w);
        let market = cat == 1 || cat == 3;
        let boost = if market { vol } else { 0.0 };
        let probability = (rng.random_range(0.02..0.6) + 0.25 * boost).min(0.99);
        let impact = (1.0 + rng.random::<f64>().powf(1.5) * 9.0 + 2.0 * boost)
            .round()
            .clamp(1.0, 10.0);
        let loss = 10f64.powf(rng.random_range(4.0..7.0)) * impact / 5.0 * (1.0 + 2.0 * boost);
        let score = probability * impact;
        let level = if score < 1.5 {
            0
        } else if score < 3.0 {
            1
        } else if score < 5.0 {
            2
        } else {
            3
        };
        let mitigation = weighted(rng, &[25.0, 20.0, 25.0, 20.0, 10.0]);
        let s = &self.s;
        f.push(s.risk_id, Value::Str(Str::from(format!("RSK-{id:08}"))));
        f.push(s.category, Value::Str(self.t.risk_categories[cat].clone()));
        f.push(
            s.description,
            Value::Str(self.t.risk_descriptions[cat][rng.random_range(0..2)].clone()),
        );
        f.push(s.department, pick(rng, &self.t.departments));
        f.push(
            s.probability,
            Value::Float((probability * 1000.0).round() / 1000.0),
        );
        f.push(s.impact, Value::Int(impact as i64));
        f.push(s.estimated_loss, Value::Float(loss.round()));
        f.push(s.risk_level, Value::Str(self.t.severities[level].clone()));
        f.push(
            s.mitigation_status,
            Value::Str(self.t.mitigation[mitigation].clone()),
        );
        f.push(s.responsible_officer, pick(rng, &self.roster.officers));
    }

    fn system_metric(&mut self, f: &mut Fields, sc: &[f64; SCENARIOS]) {
        let burst = sc[ScenarioKind::Burst as usize].min(3.0);
        let rng = &mut self.rng;
        let (host, service, base) =
            &self.roster.hosts[rng.random_range(0..self.roster.hosts.len())];
        let cpu = (base + 8.0 * normal(rng) + 25.0 * burst).clamp(1.0, 100.0);
        let memory = (40.0 + base * 0.5 + 5.0 * normal(rng) + 10.0 * burst).clamp(5.0, 100.0);
        let latency = 40.0 * (0.5 * normal(rng)).exp() * (1.0 + 2.0 * burst);
        let mut error_rate = (0.3 * normal(rng)).abs();
        if cpu > 90.0 {
            error_rate += rng.random_range(2.0..5.0);
        }
        let rps = (base * 20.0 * (1.0 + 5.0 * burst) * rng.random_range(0.8..1.2)).round();
        let s = &self.s;
        f.push(s.host, Value::Str(host.clone()));
        f.push(s.service, Value::Str(service.clone()));
        f.push(s.cpu, Value::Float(r1(cpu)));
        f.push(s.memory, Value::Float(r1(memory)));
        f.push(s.latency_ms, Value::Float(r1(latency)));
        f.push(
            s.error_rate,
            Value::Float((error_rate * 1000.0).round() / 1000.0),
        );
        f.push(s.requests_per_sec, Value::Int(rps as i64));
    }

    fn etl(&mut self, f: &mut Fields, id: u64) {
        let rng = &mut self.rng;
        let records = 10f64.powf(rng.random_range(3.0..7.0)).round();
        let duration = records / rng.random_range(5_000.0..50_000.0) * 1000.0
            + rng.random_range(200.0..2_000.0);
        let status = weighted(rng, &[90.0, 6.0, 4.0]);
        let errors = match status {
            0 => 0,
            1 => rng.random_range(1..20),
            _ => rng.random_range(20..500),
        };
        let s = &self.s;
        f.push(s.run_id, Value::Int(id as i64));
        f.push(s.job, pick(rng, &self.t.etl_jobs));
        f.push(
            s.stage,
            Value::Str(self.t.etl_stages[weighted(rng, &[30.0, 30.0, 30.0, 10.0])].clone()),
        );
        f.push(s.records_processed, Value::Int(records as i64));
        f.push(s.duration_ms, Value::Int(duration as i64));
        f.push(s.status, Value::Str(self.t.etl_status[status].clone()));
        f.push(s.errors, Value::Int(errors));
    }

    fn code_change(&mut self, f: &mut Fields) {
        let rng = &mut self.rng;
        let files = 1 + (rng.random::<f64>().powi(3) * 40.0) as i64;
        let additions = (files as f64 * 15.0 * (0.8 * normal(rng)).exp()).round() as i64 + 1;
        let deletions = (additions as f64 * rng.random_range(0.0..0.8)).round() as i64;
        let branch = if rng.random_bool(0.5) {
            0
        } else {
            rng.random_range(0..self.t.branches.len())
        };
        let s = &self.s;
        f.push(s.repo, pick(rng, &self.t.repos));
        f.push(s.author, pick(rng, &self.roster.employees));
        f.push(s.branch, Value::Str(self.t.branches[branch].clone()));
        f.push(
            s.commit,
            Value::Str(Str::from(format!("{:012x}", rng.random::<u64>() >> 16))),
        );
        f.push(s.files_changed, Value::Int(files));
        f.push(s.additions, Value::Int(additions));
        f.push(s.deletions, Value::Int(deletions));
        f.push(s.message, pick(rng, &self.t.commit_messages));
    }

    fn documentation(&mut self, f: &mut Fields) {
        let rng = &mut self.rng;
        let size = (400.0 * (1.0 * normal(rng)).exp()).round() as i64 + 1;
        let s = &self.s;
        f.push(s.platform, pick(rng, &self.t.doc_platforms));
        f.push(s.page, pick(rng, &self.t.doc_pages));
        f.push(s.space, pick(rng, &self.t.departments));
        f.push(s.author, pick(rng, &self.roster.employees));
        f.push(
            s.action,
            Value::Str(self.t.doc_actions[weighted(rng, &[15.0, 70.0, 15.0])].clone()),
        );
        f.push(s.change_size, Value::Int(size));
    }

    fn project_tool(&mut self, f: &mut Fields, sc: &[f64; SCENARIOS]) {
        let pressure = sc[ScenarioKind::ProjectDeadlinePressure as usize];
        let rng = &mut self.rng;
        let p = rng.random_range(0..self.roster.projects.len());
        let project = &self.roster.projects[p];
        let status = weighted(
            rng,
            &blend(
                [20.0, 35.0, 15.0, 25.0, 5.0],
                [10.0, 30.0, 10.0, 15.0, 35.0],
                pressure,
            ),
        );
        let priority = weighted(
            rng,
            &blend([20.0, 45.0, 25.0, 10.0], [5.0, 25.0, 40.0, 30.0], pressure),
        );
        let s = &self.s;
        f.push(
            s.tool,
            Value::Str(self.t.pm_tools[p % PM_TOOLS.len()].clone()),
        );
        f.push(
            s.issue,
            Value::Str(Str::from(format!(
                "{}-{}",
                project.key,
                rng.random_range(1..900)
            ))),
        );
        f.push(s.title, pick(rng, &self.t.issue_titles));
        f.push(s.project, Value::Str(project.name.clone()));
        f.push(s.status, Value::Str(self.t.issue_statuses[status].clone()));
        f.push(s.assignee, pick(rng, &self.roster.employees));
        f.push(s.priority, Value::Str(self.t.priorities[priority].clone()));
    }

    fn communication(&mut self, f: &mut Fields, sc: &[f64; SCENARIOS]) {
        let stress = (sc[0] + sc[1] + sc[2] + sc[3]).min(1.0);
        let rng = &mut self.rng;
        let tone = weighted(
            rng,
            &blend([35.0, 45.0, 14.0, 6.0], [10.0, 30.0, 30.0, 30.0], stress),
        );
        let templates = MESSAGES[tone];
        let template = templates[rng.random_range(0..templates.len())];
        let s = &self.s;
        f.push(s.platform, pick(rng, &self.t.chat_platforms));
        f.push(s.channel, pick(rng, &self.t.chat_channels));
        f.push(s.author, pick(rng, &self.roster.employees));
        let mut mentions = Vec::new();
        let mut text = if template.contains("{p}") {
            let project = &self.roster.projects[rng.random_range(0..self.roster.projects.len())];
            f.push(s.project, Value::Str(project.name.clone()));
            mentions.push(("project", project.name.to_string()));
            template.replacen("{p}", &project.name, 1)
        } else {
            template.to_string()
        };
        if rng.random_bool(0.5) {
            let (kind, detail) = MESSAGE_DETAILS[rng.random_range(0..MESSAGE_DETAILS.len())];
            let entity = self.mention(kind);
            text.push(' ');
            text.push_str(&detail.replacen("{}", &entity, 1));
            mentions.push((kind, entity));
        }
        let s = &self.s;
        let mentions = mentions
            .into_iter()
            .map(|(kind, entity)| {
                let mut m = Fields::with_capacity(2);
                m.push(s.kind, Value::str(kind));
                m.push(s.text, Value::Str(Str::from(entity)));
                Value::Map(Arc::new(m))
            })
            .collect();
        f.push(s.text, Value::Str(Str::from(text)));
        f.push(s.mentions, Value::List(Arc::new(mentions)));
    }

    /// A generated entity of `kind` (one of [`MESSAGE_DETAILS`]' kinds).
    fn mention(&mut self, kind: &str) -> String {
        let rng = &mut self.rng;
        match kind {
            "ticket" => {
                let project =
                    &self.roster.projects[rng.random_range(0..self.roster.projects.len())];
                format!("{}-{}", project.key, rng.random_range(1..900))
            }
            "url" if rng.random_bool(0.5) => format!(
                "https://status.example.com/incidents/{}?view=full",
                rng.random_range(100..10_000)
            ),
            "url" => format!(
                "https://wiki.example.com/runbooks/{}",
                rng.random_range(100..10_000)
            ),
            "email" => {
                let user = &self.roster.usernames[rng.random_range(0..self.roster.usernames.len())];
                format!("{user}@example.com")
            }
            "amount" => {
                let n = rng.random_range(1..500) * 100;
                match rng.random_range(0..5) {
                    0 => format!("${}", group_thousands(n)),
                    1 => format!("{} EUR", group_thousands(n)),
                    2 => format!("€{}.{}k", n / 1000, n % 1000 / 100),
                    3 => format!("USD {}.50", group_thousands(n)),
                    _ => format!("£{n}"),
                }
            }
            "ip" if rng.random_bool(0.25) => format!("2001:db8::{:x}", rng.random_range(1..0xffff)),
            "ip" => format!(
                "10.{}.{}.{}",
                rng.random_range(0..256),
                rng.random_range(0..256),
                rng.random_range(1..255)
            ),
            "hostname" => {
                let (host, _, _) = &self.roster.hosts[rng.random_range(0..self.roster.hosts.len())];
                let zone = ["prod.example.com", "eu-west.internal", "svc.cluster.local"]
                    [rng.random_range(0..3)];
                format!("{host}.{zone}")
            }
            "date" => format!(
                "2026-{:02}-{:02}",
                rng.random_range(1..13),
                rng.random_range(1..29)
            ),
            _ => TECHNOLOGIES[rng.random_range(0..TECHNOLOGIES.len())].to_string(),
        }
    }

    fn quality(&mut self, f: &mut Fields, sc: &[f64; SCENARIOS]) {
        let audit = sc[ScenarioKind::ComplianceAudit as usize];
        let rng = &mut self.rng;
        let sev = weighted(
            rng,
            &blend([30.0, 40.0, 20.0, 10.0], [10.0, 30.0, 35.0, 25.0], audit),
        );
        let failed = 10f64.powf(rng.random_range(0.0..5.0)).round().max(1.0);
        let total = (failed * rng.random_range(20.0..10_000.0)).round();
        let s = &self.s;
        f.push(s.check, pick(rng, &self.t.checks));
        f.push(s.dataset, pick(rng, &self.t.datasets));
        f.push(s.severity, Value::Str(self.t.severities[sev].clone()));
        f.push(s.failed_rows, Value::Int(failed as i64));
        f.push(s.total_rows, Value::Int(total as i64));
        f.push(
            s.failure_rate,
            Value::Float((failed / total * 100_000.0).round() / 1000.0),
        );
        f.push(s.threshold, Value::Float(0.5));
    }

    fn knowledge(&mut self, f: &mut Fields) {
        let rng = &mut self.rng;
        let n = rng.random_range(2..6);
        let mut entities = Vec::with_capacity(n);
        while entities.len() < n {
            let e = pick(rng, &self.t.entities);
            if !entities.contains(&e) {
                entities.push(e);
            }
        }
        let k = rng.random_range(1..4);
        let mut topics = Vec::with_capacity(k);
        while topics.len() < k {
            let t = pick(rng, &self.t.topics);
            if !topics.contains(&t) {
                topics.push(t);
            }
        }
        let s = &self.s;
        f.push(s.source, pick(rng, &self.t.knowledge_sources));
        f.push(s.document, pick(rng, &self.t.doc_pages));
        f.push(s.entities, Value::List(Arc::new(entities)));
        f.push(s.topics, Value::List(Arc::new(topics)));
        f.push(
            s.confidence,
            Value::Float((rng.random_range(0.55..0.99f64) * 1000.0).round() / 1000.0),
        );
    }

    fn user_action(&mut self, f: &mut Fields) {
        let rng = &mut self.rng;
        let u = rng.random_range(0..self.sessions.len());
        let session = &mut self.sessions[u];
        let action = if session.actions_left == 0 {
            session.id = rng.random_range(1..i64::from(u32::MAX));
            session.actions_left = rng.random_range(3..20);
            0
        } else if session.actions_left == 1 {
            USER_ACTIONS.len() - 1
        } else {
            1 + weighted(rng, &[40.0, 20.0, 8.0, 15.0, 12.0, 5.0])
        };
        session.actions_left -= 1;
        let page = if action == 0 {
            0
        } else {
            rng.random_range(0..PAGES.len())
        };
        let duration = (1500.0 * (0.9 * normal(rng)).exp()).round() as i64 + 20;
        let s = &self.s;
        f.push(s.user, Value::Str(self.roster.usernames[u].clone()));
        f.push(s.action, Value::Str(self.t.user_actions[action].clone()));
        f.push(s.page, Value::Str(self.t.pages[page].clone()));
        f.push(s.session_id, Value::Int(session.id));
        f.push(s.duration_ms, Value::Int(duration));
    }
}
