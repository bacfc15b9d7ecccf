//! Component factories: what a configured source, transform or sink offers
//! the runtime.
//!
//! Each component's config struct (deserialised from its `[section.NAME]`
//! table) implements one of these traits. A config struct holds only
//! configuration: it is compiled into a plan once and may be run many
//! times. Per run, the runtime calls `prepare` once per node with a
//! [`NodeContext`] (for what the node's instances share in that run: one
//! writer, one set of run-time switches), then `build` once per worker with
//! a [`BuildContext`] carrying what `prepare` returned. It also asks the
//! factory how each input is partitioned and which outputs it has.

use std::any::Any;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use crate::config::Diagnostic;
use crate::error::{Classify, Domain};
use crate::expr::Expression;
use crate::limits::Limits;
use crate::metrics::ComponentMetrics;
use crate::operator::Operator;
use crate::output::{Output, OutputSpec, Outputs};
use crate::sink::Sink;
use crate::source::Source;

/// What a factory knows once per run, before any instance is built.
#[derive(Clone, Debug)]
pub struct NodeContext {
    /// The component's name in the pipeline.
    pub name: String,
    /// Number of workers.
    pub workers: usize,
    /// Maximum events per source batch.
    pub batch_size: usize,
    /// Directory for state and default outputs.
    pub data_dir: PathBuf,
    /// A seed for deterministic generators, derived from the pipeline.
    pub seed: u64,
    /// The node's own counters and gauges, shared by its instances.
    pub metrics: Arc<ComponentMetrics>,
    /// The pipeline's resource bounds.
    pub limits: Limits,
    /// The node's outputs, resolved from its declaration when the plan
    /// was compiled.
    pub outputs: Outputs,
    /// The pipeline's name (`[pipeline] name`, else the file stem), for
    /// idempotency keys and staging names that must not collide across
    /// pipelines.
    pub pipeline: String,
    /// Checkpoints are stored durably (`[checkpoint]` is configured), so
    /// sinks run exactly-once: they stage what they receive between
    /// barriers and publish it only in [`crate::Sink::commit`]; see
    /// [`crate::Sink`] for the protocol.
    pub exactly_once: bool,
    /// State beyond a memory budget goes to disk (`[pipeline]
    /// state_memory`); `None` keeps all state in memory.
    pub spill: Option<crate::state::Spill>,
    /// Sources: the only top-level fields the pipeline reads of this
    /// source's events, when the plan can tell (`None`: any). A decoding
    /// source may skip the others (besides those it reads itself).
    pub projection: Option<Arc<[crate::Sym]>>,
}

/// The object a factory's `prepare` made for one run, shared by the
/// node's instances in that run (and by the caller that started the run,
/// through `Running::prepared`): a writer, run-time switches. Dropped with
/// the run, so a second run of the same plan makes its own.
#[derive(Clone)]
pub struct Prepared(Arc<dyn Any + Send + Sync>);

impl Prepared {
    /// Wraps this run's shared object.
    pub fn new<T: Any + Send + Sync>(value: T) -> Prepared {
        Prepared(Arc::new(value))
    }

    /// The object, if it is a `T`.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        Arc::clone(&self.0).downcast::<T>().ok()
    }
}

impl fmt::Debug for Prepared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Prepared(..)")
    }
}

/// What a factory knows when building one instance: its node's run-wide
/// context (reached through `Deref`: `cx.name`, `cx.limits`, ...) plus the
/// instance's worker and this run's prepared object.
#[derive(Clone, Debug)]
pub struct BuildContext {
    /// The run-wide context of the node.
    pub node: NodeContext,
    /// This instance's worker index, `0..workers`.
    pub worker: usize,
    /// What the factory's `prepare` returned for this run.
    pub prepared: Option<Prepared>,
}

impl std::ops::Deref for BuildContext {
    type Target = NodeContext;
    fn deref(&self) -> &NodeContext {
        &self.node
    }
}

impl std::ops::DerefMut for BuildContext {
    fn deref_mut(&mut self) -> &mut NodeContext {
        &mut self.node
    }
}

impl BuildContext {
    /// The context of instance `worker` of the node `node` describes.
    pub fn new(node: &NodeContext, worker: usize, prepared: Option<Prepared>) -> BuildContext {
        BuildContext {
            node: node.clone(),
            worker,
            prepared,
        }
    }

    /// The run-wide part of this context, as `prepare` gets it.
    pub fn node(&self) -> NodeContext {
        self.node.clone()
    }

    /// This context carrying `prepared` (for tests that build instances
    /// without a run).
    pub fn with_prepared(mut self, prepared: Option<Prepared>) -> BuildContext {
        self.prepared = prepared;
        self
    }

    /// This run's shared object made by the factory's `prepare`, as a `T`.
    pub fn prepared<T: Any + Send + Sync>(&self) -> Result<Arc<T>, BuildError> {
        self.prepared
            .as_ref()
            .and_then(Prepared::get::<T>)
            .ok_or_else(|| {
                BuildError::Internal(format!(
                    "`{}` was built without the per-run object its `prepare` makes",
                    self.name
                ))
            })
    }

    /// The id of the output called `name`, which the factory must have
    /// declared (or `main` / `dead_letters`). Resolved once at build time
    /// so the operator emits by id.
    pub fn output(&self, name: &str) -> Result<Output, BuildError> {
        self.outputs.get(name).ok_or_else(|| {
            BuildError::Internal(format!(
                "`{}` asked for output `{name}`, which its factory does not declare",
                self.name
            ))
        })
    }

    /// This context with the outputs `declared` (for tests that build an
    /// operator without a plan).
    pub fn with_outputs(mut self, declared: &[OutputSpec]) -> Result<BuildContext, BuildError> {
        self.outputs =
            Outputs::declare(declared).map_err(|e| BuildError::Internal(e.to_string()))?;
        Ok(self)
    }

    /// A context for a single worker, for tests.
    pub fn single(name: &str) -> BuildContext {
        BuildContext {
            node: NodeContext {
                name: name.to_string(),
                workers: 1,
                batch_size: 1024,
                data_dir: PathBuf::from("data"),
                seed: 0,
                metrics: Arc::default(),
                limits: Limits::default(),
                outputs: Outputs::default(),
                pipeline: "test".into(),
                exactly_once: false,
                spill: None,
                projection: None,
            },
            worker: 0,
            prepared: None,
        }
    }
}

/// What a factory's `validate` may consult besides its own config.
#[derive(Clone, Debug, Default)]
pub struct ValidateContext {
    /// The pipeline's resource bounds.
    pub limits: Limits,
}

/// A place in the local file system that a source reads or a sink writes.
/// The plan refuses a pipeline in which a sink writes where a source reads
/// or where another sink writes: a sink truncating its own input, or two
/// sinks interleaving in one file, would destroy data without an error.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathUse {
    /// The path as configured (resolved by the plan against the working
    /// directory, following symbolic links).
    pub path: PathBuf,
    /// What under `path` is used.
    pub scope: PathScope,
}

/// Which files a [`PathUse`] covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PathScope {
    /// Exactly the file at the path.
    File,
    /// Every file below the directory at the path.
    Directory,
    /// Every file in the path's directory whose name starts with the path's
    /// file name (rotated files `STEM-…`).
    Prefix,
}

impl PathUse {
    /// One file.
    pub fn file(path: impl Into<PathBuf>) -> PathUse {
        PathUse {
            path: path.into(),
            scope: PathScope::File,
        }
    }

    /// A directory and everything below it.
    pub fn directory(path: impl Into<PathBuf>) -> PathUse {
        PathUse {
            path: path.into(),
            scope: PathScope::Directory,
        }
    }
}

/// Why a component could not be prepared or built. Each message names the
/// component and the file or address concerned.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The settings cannot work, found only when building: a bad address,
    /// a table that does not fit, a rate of zero.
    #[error("{0}")]
    Config(String),
    /// A source cannot open its input (a missing file, a reader thread).
    #[error("{0}")]
    Input(String),
    /// A sink cannot open its destination; `retryable` when the system
    /// behind it may come back.
    #[error("{message}")]
    Sink {
        /// What went wrong.
        message: String,
        /// Whether starting again later may succeed.
        retryable: bool,
    },
    /// The operator's state store cannot be opened.
    #[error(transparent)]
    State(#[from] crate::state::StateError),
    /// The factory and the runtime disagree: a bug in Eddy.
    #[error("internal error: {0}")]
    Internal(String),
}

impl Classify for BuildError {
    fn domain(&self) -> Domain {
        match self {
            BuildError::Config(_) => Domain::Config,
            BuildError::Input(_) => Domain::Input,
            BuildError::Sink { .. } => Domain::Sink,
            BuildError::State(_) => Domain::State,
            BuildError::Internal(_) => Domain::Internal,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            BuildError::Sink { retryable, .. } => *retryable,
            BuildError::State(e) => e.retryable(),
            _ => false,
        }
    }
}

/// How a source's event time and watermarks behave.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WatermarkSpec {
    /// Watermark lag behind the largest event time seen (ms).
    pub max_out_of_orderness: i64,
    /// After this long (ms) without events, the input stops holding back the
    /// watermark.
    pub idle_timeout: Option<i64>,
}

/// A configured source.
pub trait SourceFactory: Send + Sync {
    /// Makes what this source's instances share in one run; `build` finds
    /// it in [`BuildContext::prepared`]. Called once per run, before any
    /// `build`.
    fn prepare(&self, _cx: &NodeContext) -> Result<Option<Prepared>, BuildError> {
        Ok(None)
    }

    /// Builds the instance for `cx.worker`, reading that worker's share.
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError>;

    /// How watermarks are generated for this source.
    fn watermarks(&self) -> WatermarkSpec;

    /// Checks that need more than deserialisation; `Diagnostic` spans point
    /// into the file.
    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        Vec::new()
    }

    /// The local files this source reads.
    fn reads(&self) -> Vec<PathUse> {
        Vec::new()
    }

    /// Whether any instance may come to own any partition (a consumer
    /// group assigns them), so on restore every instance is given the
    /// positions all instances stored and uses those of the partitions it
    /// gets. By default each instance gets back its own.
    fn positions_follow_partitions(&self) -> bool {
        false
    }
}

/// How a transform's input is spread over workers.
#[derive(Clone, Debug)]
pub enum Partitioning {
    /// Each worker processes what its upstream instance produced.
    Forward,
    /// Events with equal keys go to the same worker.
    Hash(Vec<Expression>),
    /// Everything goes to worker 0 (global aggregates).
    Single,
}

/// What a transform reads of its input events (see
/// [`TransformFactory::fields_read`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldsRead {
    /// The top-level fields.
    pub fields: Vec<crate::Sym>,
    /// Its main output carries its input events on (a filter), so what
    /// its own consumers read counts too.
    pub passes_on: bool,
}

/// A configured transform.
pub trait TransformFactory: Send + Sync {
    /// Makes what this transform's instances share in one run; `build`
    /// finds it in [`BuildContext::prepared`]. Called once per run, before
    /// any `build`.
    fn prepare(&self, _cx: &NodeContext) -> Result<Option<Prepared>, BuildError> {
        Ok(None)
    }

    /// Builds the instance for `cx.worker`.
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Operator>, BuildError>;

    /// How the events arriving on input `input` (the index in the node's
    /// `inputs`) are spread over workers. Inputs may differ: a join keys
    /// each side by its own expression, so equal key values meet on one
    /// worker (both hash into the same key groups).
    fn partitioning(&self, _input: usize) -> Partitioning {
        Partitioning::Forward
    }

    /// Whether this transform blocks on I/O (a lookup service, model
    /// inference, an alert receiver): `Some(n)` runs each instance on its
    /// own thread behind a bounded channel of `n` batches, as network sinks
    /// run, so a slow call stalls only this node until its buffer is full
    /// (then its upstream waits: backpressure, not unbounded memory).
    /// `None` (CPU-only transforms) runs it inline with its upstream.
    fn buffer(&self) -> Option<usize> {
        None
    }

    /// The outputs this transform writes besides the implicit `main` and
    /// `dead_letters`, addressed downstream as `NAME.<output>`. Their ids
    /// follow in declaration order; an operator resolves them with
    /// [`BuildContext::output`].
    fn outputs(&self) -> Vec<OutputSpec> {
        Vec::new()
    }

    /// The top-level fields of its input events it reads, or `None` when
    /// it may read any (the default). A source whose events only reach
    /// transforms that say may skip the other fields when it decodes.
    fn fields_read(&self) -> Option<FieldsRead> {
        None
    }

    /// Checks that need more than deserialisation.
    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        Vec::new()
    }
}

/// A configured sink.
pub trait SinkFactory: Send + Sync {
    /// Makes what this sink's instances share in one run (the `file` sink's
    /// writer); `build` finds it in [`BuildContext::prepared`]. Called once
    /// per run, before any `build`.
    fn prepare(&self, _cx: &NodeContext) -> Result<Option<Prepared>, BuildError> {
        Ok(None)
    }

    /// Builds the instance for `cx.worker`.
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Sink>, BuildError>;

    /// Sinks that wait on the network return how many batches to buffer:
    /// each instance then runs on its own thread behind a bounded channel of
    /// that size, so a slow sink stalls the others only once its buffer is
    /// full. `None` (local sinks) runs the sink inline with its upstream.
    fn buffer(&self) -> Option<usize> {
        None
    }

    /// Checks that need more than deserialisation.
    fn validate(&self, _cx: &ValidateContext) -> Vec<Diagnostic> {
        Vec::new()
    }

    /// The local files this sink writes.
    fn writes(&self) -> Vec<PathUse> {
        Vec::new()
    }
}
