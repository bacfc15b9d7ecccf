//! Compiling a pipeline file into a validated [`Plan`].
//!
//! Every problem is collected, not just the first: unknown types and fields,
//! bad durations and expressions (from each component's deserialisation),
//! unknown or misaddressed inputs, and cycles. Nothing runs unless the plan
//! is clean.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::fmt;

use eddy_core::component::{Partitioning, ValidateContext, WatermarkSpec};
use eddy_core::config::{
    closest, parse_document, Diagnostic, Diagnostics, PipelineSettings, Section,
};
use eddy_core::output::{Output, Outputs, MAIN};

use crate::registry::{self, Factory};

mod paths;

/// An edge into a node: which node's which output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Input {
    /// Index of the upstream node in [`Plan::nodes`].
    pub node: usize,
    /// The upstream output, an id into that node's [`PlanNode::outputs`].
    pub output: Output,
}

/// One component of the compiled pipeline.
#[derive(Clone)]
pub struct PlanNode {
    /// The component name.
    pub name: String,
    /// Its `type`.
    pub kind: String,
    /// The configured factory.
    pub factory: Factory,
    /// Its inputs, in config order.
    pub inputs: Vec<Input>,
    /// What it can emit: `main`, `dead_letters` and what its factory
    /// declared, resolved to ids when the plan was compiled.
    pub outputs: Outputs,
    /// A hash of its configuration as written (keys sorted, positions
    /// ignored): a checkpoint's state is restored only into a node whose
    /// configuration is unchanged.
    pub fingerprint: u64,
}

impl PlanNode {
    /// How this node's input `slot` is partitioned over workers.
    pub fn partitioning(&self, slot: usize) -> Partitioning {
        match &self.factory {
            Factory::Transform(t) => t.partitioning(slot),
            _ => Partitioning::Forward,
        }
    }

    /// The bounded buffer in front of this node's own threads, when it
    /// runs apart from its upstream (network sinks, blocking transforms).
    pub fn buffer(&self) -> Option<usize> {
        match &self.factory {
            Factory::Transform(t) => t.buffer(),
            Factory::Sink(s) => s.buffer(),
            Factory::Source(_) => None,
        }
    }

    /// The source's watermark settings (sources only).
    pub fn watermarks(&self) -> Option<WatermarkSpec> {
        match &self.factory {
            Factory::Source(s) => Some(s.watermarks()),
            _ => None,
        }
    }

    /// How `NAME` (main) and `NAME.<output>` address this node's outputs,
    /// for diagnostics. A sink's only output is `dead_letters`.
    pub fn addresses(&self) -> Vec<String> {
        self.outputs
            .iter()
            .filter(|&(id, _)| !(id == Output::MAIN && self.is_sink()))
            .map(|(id, name)| {
                if id == Output::MAIN {
                    self.name.clone()
                } else {
                    format!("{}.{name}", self.name)
                }
            })
            .collect()
    }

    fn is_sink(&self) -> bool {
        matches!(self.factory, Factory::Sink(_))
    }
}

/// A validated pipeline: nodes in topological order (every node after its inputs).
#[derive(Clone)]
pub struct Plan {
    /// The pipeline's name: `[pipeline] name`, else the file's stem.
    pub name: String,
    /// `[pipeline]` settings.
    pub settings: PipelineSettings,
    /// `[checkpoint]` settings: present, checkpoints are durable and sinks
    /// exactly-once.
    pub checkpoint: Option<eddy_core::config::CheckpointSettings>,
    /// `[server]` settings: present, the run serves its API and dashboard.
    pub server: Option<eddy_core::config::ServerSettings>,
    /// The components, topologically sorted.
    pub nodes: Vec<PlanNode>,
}

impl Plan {
    /// Compiles pipeline text. `file` names it in diagnostics; `env` holds
    /// the environment (`EDDY_` variables override values).
    pub fn compile(file: &str, text: &str, env: &[(String, String)]) -> Result<Plan, Diagnostics> {
        let fail = |list: Vec<Diagnostic>| Diagnostics {
            file: file.to_string(),
            text: text.to_string(),
            list,
        };
        let (doc, mut diags) = parse_document(text, env);
        let vcx = ValidateContext {
            limits: doc.settings.limits.clone(),
        };

        // `built[i]` is the node for `doc.components[docs[i]]` (None when it failed).
        let mut built: Vec<Option<PlanNode>> = Vec::new();
        let mut docs: Vec<usize> = Vec::new();
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (ci, c) in doc.components.iter().enumerate() {
            if let Some(&prev) = by_name.get(&c.name) {
                let prev_section = doc.components[docs[prev]].section.key();
                diags.push(
                    Diagnostic::new(
                        c.name_span.clone(),
                        format!("the name `{}` is already used in [{prev_section}]", c.name),
                    )
                    .hint(
                        "component names are shared by sources, transforms and sinks; rename one",
                    ),
                );
                continue;
            }
            by_name.insert(c.name.clone(), built.len());
            docs.push(ci);
            let table = registry::table(c.section);
            let names: Vec<&str> = table.iter().map(|(n, _)| *n).collect();
            // An alert without a `type` is a rule.
            let implied = (c.section == Section::Alerts && c.kind.is_none())
                .then(|| eddy_core::config::Spanned::new(c.name_span.clone(), "rule".to_string()));
            let Some(kind) = c.kind.as_ref().or(implied.as_ref()) else {
                diags.push(
                    Diagnostic::new(
                        c.name_span.clone(),
                        format!("`{}.{}` has no `type`", c.section.key(), c.name),
                    )
                    .hint(format!(
                        "add `type = \"...\"`, one of: {}",
                        names.join(", ")
                    )),
                );
                built.push(None);
                continue;
            };
            let Some((_, ctor)) = table.iter().find(|(n, _)| *n == kind.get_ref().as_str()) else {
                let hint = match closest(kind.get_ref(), &names) {
                    Some(best) => format!("did you mean `{best}`?"),
                    None => format!("{} types are: {}", singular(c.section), names.join(", ")),
                };
                diags.push(
                    Diagnostic::new(
                        kind.span(),
                        format!("unknown {} type `{}`", singular(c.section), kind.get_ref()),
                    )
                    .hint(hint),
                );
                built.push(None);
                continue;
            };
            match ctor(&c.body) {
                Ok(factory) => {
                    let mut found = match &factory {
                        Factory::Source(f) => f.validate(&vcx),
                        Factory::Transform(f) => f.validate(&vcx),
                        Factory::Sink(f) => f.validate(&vcx),
                    };
                    let outputs = match &factory {
                        Factory::Transform(f) => Outputs::declare(&f.outputs()),
                        Factory::Source(_) | Factory::Sink(_) => Ok(Outputs::default()),
                    };
                    // A faulty declaration is the transform's bug, not the
                    // user's; still reported, never a panic.
                    let outputs = outputs.unwrap_or_else(|e| {
                        found.push(Diagnostic::new(
                            c.name_span.clone(),
                            format!(
                                "`{kind}` declares its outputs wrongly: {e}",
                                kind = kind.get_ref()
                            ),
                        ));
                        Outputs::default()
                    });
                    // Checks without a position of their own point at the
                    // component's name.
                    diags.extend(found.into_iter().map(|mut d| {
                        if d.span.is_empty() {
                            d.span = c.name_span.clone();
                        }
                        d
                    }));
                    built.push(Some(PlanNode {
                        name: c.name.clone(),
                        kind: kind.get_ref().clone(),
                        factory,
                        inputs: vec![],
                        outputs,
                        fingerprint: fingerprint(&c.body),
                    }))
                }
                Err(d) => {
                    diags.push(d);
                    built.push(None);
                }
            }
        }

        // Inputs.
        for (idx, &ci) in docs.iter().enumerate() {
            let c = &doc.components[ci];
            let is_source = c.section == Section::Sources;
            if is_source && !c.inputs.is_empty() {
                diags.push(
                    Diagnostic::new(c.inputs[0].span(), "sources take no `inputs`")
                        .hint("remove `inputs` from this source"),
                );
                continue;
            }
            // A receiver without `inputs` reads what every `notify` node
            // routes to it.
            if c.section == Section::Receivers && c.inputs.is_empty() {
                let routed: Vec<Input> = built
                    .iter()
                    .enumerate()
                    .filter_map(|(from, n)| {
                        let n = n.as_ref().filter(|n| n.kind == "notify")?;
                        let output = n.outputs.get(&c.name)?;
                        Some(Input { node: from, output })
                    })
                    .collect();
                if routed.is_empty() && built[idx].is_some() {
                    diags.push(
                        Diagnostic::new(
                            c.name_span.clone(),
                            format!("no `notify` route sends to receiver `{}`", c.name),
                        )
                        .hint(format!(
                            "name it in a route of an [alerts.NAME] with type = \"notify\" (receiver = \"{}\"), or give it `inputs`",
                            c.name
                        )),
                    );
                }
                if let Some(node) = built[idx].as_mut() {
                    node.inputs = routed;
                }
                continue;
            }
            if !is_source && c.inputs.is_empty() {
                diags.push(
                    Diagnostic::new(c.name_span.clone(), format!("`{}` has no inputs", c.name))
                        .hint("add `inputs = [\"NAME\"]` naming a source or transform"),
                );
            }
            let mut inputs = Vec::new();
            for (i, input) in c.inputs.iter().enumerate() {
                let text = input.get_ref();
                if c.inputs[..i]
                    .iter()
                    .any(|earlier| earlier.get_ref() == text)
                {
                    diags.push(
                        Diagnostic::new(input.span(), format!("input `{text}` is listed twice"))
                            .hint(
                            "each input is read once; listing it again would double every record",
                        ),
                    );
                    continue;
                }
                let (base, suffix) = match text.split_once('.') {
                    Some((b, suffix)) => (b, Some(suffix)),
                    None => (text.as_str(), None),
                };
                let Some(&from) = by_name.get(base) else {
                    let names: Vec<&str> = by_name.keys().map(String::as_str).collect();
                    let hint = match closest(base, &names) {
                        Some(best) => format!("did you mean `{best}`?"),
                        None => {
                            "inputs name sources or transforms defined in this file".to_string()
                        }
                    };
                    diags.push(
                        Diagnostic::new(input.span(), format!("unknown input `{base}`")).hint(hint),
                    );
                    continue;
                };
                let Some(upstream) = &built[from] else {
                    continue;
                };
                // A sink's only output is what it gave up on.
                if upstream.is_sink() && suffix.is_none() {
                    diags.push(
                        Diagnostic::new(
                            input.span(),
                            format!("`{base}` is a sink and has no main output"),
                        )
                        .hint(format!(
                            "inputs name sources or transforms; `{base}.dead_letters` holds what the sink could not deliver"
                        )),
                    );
                    continue;
                }
                // `main` is addressed by the name alone, never as `NAME.main`.
                let found = match suffix {
                    None => Some(Output::MAIN),
                    Some(MAIN) => None,
                    Some(s) => upstream.outputs.get(s),
                };
                let Some(output) = found else {
                    let suffix = suffix.unwrap_or_default();
                    let offered = upstream.addresses();
                    let names: Vec<&str> = upstream.outputs.iter().map(|(_, n)| n).collect();
                    let offers = format!("`{}` offers: {}", upstream.kind, offered.join(", "));
                    let hint = match closest(suffix, &names) {
                        Some(MAIN) if !upstream.is_sink() => {
                            format!("the main output is addressed by the name alone: `{base}`")
                        }
                        Some(best) if best != MAIN => {
                            format!("did you mean `{base}.{best}`? {offers}")
                        }
                        _ => offers,
                    };
                    diags.push(
                        Diagnostic::new(
                            input.span(),
                            format!("`{base}` ({}) has no `.{suffix}` output", upstream.kind),
                        )
                        .hint(hint),
                    );
                    continue;
                };
                inputs.push(Input { node: from, output });
            }
            if let Some(node) = built[idx].as_mut() {
                node.inputs = inputs;
            }
        }

        diags.extend(paths::conflicts(docs.iter().zip(&built).filter_map(
            |(&ci, node)| Some((&doc.components[ci], node.as_ref()?)),
        )));

        // Cycles, then topological order.
        let order = match topo_order(&built) {
            Ok(order) => order,
            Err(cycle) => {
                let names: Vec<&str> = cycle
                    .iter()
                    .filter_map(|&i| built[i].as_ref().map(|n| n.name.as_str()))
                    .collect();
                let first = &doc.components[docs[cycle[0]]];
                diags.push(
                    Diagnostic::new(
                        first.name_span.clone(),
                        format!(
                            "inputs form a cycle: {} -> {}",
                            names.join(" -> "),
                            first.name
                        ),
                    )
                    .hint("a pipeline is a DAG; remove one of these inputs"),
                );
                vec![]
            }
        };
        let has_sink = built
            .iter()
            .flatten()
            .any(|n| matches!(n.factory, Factory::Sink(_)));
        if diags.is_empty() && !has_sink {
            diags.push(
                Diagnostic::new(0..0, "the pipeline has no sink, so its results go nowhere")
                    .hint("add a `[sinks.NAME]` table, e.g. type = \"stdout\""),
            );
        }
        if !diags.is_empty() {
            diags.sort_by_key(|d| d.span.start);
            return Err(fail(diags));
        }
        // Renumber nodes in topological order.
        let mut position = vec![0usize; built.len()];
        for (new, &old) in order.iter().enumerate() {
            position[old] = new;
        }
        let nodes = order
            .iter()
            .filter_map(|&old| built[old].clone())
            .map(|mut n| {
                for i in &mut n.inputs {
                    i.node = position[i.node];
                }
                n
            })
            .collect();
        let name = doc.settings.name.clone().unwrap_or_else(|| {
            std::path::Path::new(file)
                .file_stem()
                .map_or_else(|| "pipeline".into(), |s| s.to_string_lossy().into_owned())
        });
        Ok(Plan {
            name,
            settings: doc.settings,
            checkpoint: doc.checkpoint,
            server: doc.server,
            nodes,
        })
    }

    /// The nodes that read `node`'s outputs: (consumer, input slot, output).
    pub fn consumers(&self, node: usize) -> Vec<(usize, usize, Output)> {
        let mut out = Vec::new();
        for (j, n) in self.nodes.iter().enumerate() {
            for (slot, i) in n.inputs.iter().enumerate() {
                if i.node == node {
                    out.push((j, slot, i.output));
                }
            }
        }
        out
    }

    /// The top-level fields the pipeline reads of source `node`'s events,
    /// when every path they take says which (see
    /// [`TransformFactory::fields_read`](eddy_core::component::TransformFactory::fields_read));
    /// `None` when any field may be read: a sink receives them, a
    /// transform reads them freely, or some node's other output (dead
    /// letters, late events) hands them on whole.
    pub fn projection(&self, node: usize) -> Option<Vec<eddy_core::Sym>> {
        let mut fields: Vec<eddy_core::Sym> = Vec::new();
        let mut reached = vec![false; self.nodes.len()];
        let mut todo = vec![node];
        while let Some(from) = todo.pop() {
            for (j, _, output) in self.consumers(from) {
                // The source's own other outputs hold what it could not
                // decode, not its events.
                if output != Output::MAIN && from != node {
                    return None;
                }
                if output != Output::MAIN || reached[j] {
                    continue;
                }
                reached[j] = true;
                let Factory::Transform(t) = &self.nodes[j].factory else {
                    return None;
                };
                let read = t.fields_read()?;
                for f in read.fields {
                    if !fields.contains(&f) {
                        fields.push(f);
                    }
                }
                if read.passes_on {
                    todo.push(j);
                } else if self.consumers(j).iter().any(|&(_, _, o)| o != Output::MAIN) {
                    // Its dead letters or late events carry the input whole.
                    return None;
                }
            }
        }
        Some(fields)
    }
}

fn singular(s: Section) -> &'static str {
    match s {
        Section::Sources => "source",
        Section::Transforms => "transform",
        Section::Sinks => "sink",
        Section::Alerts => "alert",
        Section::Receivers => "receiver",
    }
}

/// Kahn's algorithm; on a cycle returns the nodes of one cycle.
fn topo_order(nodes: &[Option<PlanNode>]) -> Result<Vec<usize>, Vec<usize>> {
    let n = nodes.len();
    let mut indegree = vec![0usize; n];
    let mut children: Vec<Vec<usize>> = vec![vec![]; n];
    for (j, node) in nodes.iter().enumerate() {
        if let Some(node) = node {
            for i in &node.inputs {
                indegree[j] += 1;
                children[i.node].push(j);
            }
        }
    }
    // Always take the earliest ready node in file order, so the plan reads
    // like the file wherever the dependencies allow.
    let mut ready: BinaryHeap<Reverse<usize>> =
        (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
    let mut order = Vec::with_capacity(n);
    while let Some(Reverse(i)) = ready.pop() {
        order.push(i);
        for &c in &children[i] {
            indegree[c] -= 1;
            if indegree[c] == 0 {
                ready.push(Reverse(c));
            }
        }
    }
    if order.len() == n {
        return Ok(order);
    }
    // Walk back along inputs from a node left on a cycle until one repeats.
    let mut at = (0..n).find(|&i| indegree[i] > 0).unwrap_or(0);
    let mut seen = vec![usize::MAX; n];
    let mut path = Vec::new();
    loop {
        if seen[at] != usize::MAX {
            let mut cycle = path[seen[at]..].to_vec();
            cycle.reverse();
            return Err(cycle);
        }
        seen[at] = path.len();
        path.push(at);
        let next = nodes[at].as_ref().and_then(|node| {
            node.inputs
                .iter()
                .map(|i| i.node)
                .find(|&p| indegree[p] > 0)
        });
        match next {
            Some(p) => at = p,
            None => return Err(path),
        }
    }
}

/// FNV-1a of the component's table rendered canonically (a `toml::Value`
/// has sorted keys and no spans), so moving a component in the file or
/// reformatting it keeps its fingerprint.
fn fingerprint(body: &eddy_core::config::Spanned<toml::de::DeValue<'_>>) -> u64 {
    let text = eddy_core::config::deserialize_body::<toml::Value>(body)
        .map(|v| format!("{v:?}"))
        .unwrap_or_default();
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

impl fmt::Display for Plan {
    /// One line: the plan summary printed by `eddy validate`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count =
            |pred: fn(&Factory) -> bool| self.nodes.iter().filter(|n| pred(&n.factory)).count();
        let flow: Vec<String> = self
            .nodes
            .iter()
            .map(|n| format!("{}({})", n.name, n.kind))
            .collect();
        write!(
            f,
            "ok: {} sources, {} transforms, {} sinks: {}",
            count(|f| matches!(f, Factory::Source(_))),
            count(|f| matches!(f, Factory::Transform(_))),
            count(|f| matches!(f, Factory::Sink(_))),
            flow.join(", ")
        )
    }
}
