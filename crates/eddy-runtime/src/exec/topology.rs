//! Splitting the plan into groups: chains of nodes fused into one thread.
//!
//! An edge is fused (a plain function call inside one worker thread) when its
//! target has that single input and needs no repartitioning; every other
//! edge goes through bounded channels. Each group therefore has one head (a
//! source or a channel-fed node) and a tree of fused nodes below it, and the
//! groups form a DAG, so blocking sends cannot deadlock.

use eddy_core::component::Partitioning;

use crate::plan::Plan;

/// How a channel edge picks the receiving instance.
#[derive(Clone, Debug)]
pub enum Route {
    /// Same worker index as the sender.
    Forward,
    /// By key group of the key expressions.
    Hash(Vec<eddy_core::Expression>),
    /// Always worker 0.
    Single,
}

impl Route {
    /// Whether the receiving instance is the sender's own worker.
    pub fn is_forward(&self) -> bool {
        matches!(self, Route::Forward)
    }
}

/// The fused structure of a plan for a number of workers.
#[derive(Debug)]
pub struct Topology {
    /// For each node, the head of its group.
    pub group_of: Vec<usize>,
    /// For each node, whether its (single) input edge is fused.
    pub fused: Vec<bool>,
    /// For each node and input slot, how that input is routed (channel
    /// heads only; fused inputs are `Forward`).
    pub route: Vec<Vec<Route>>,
    /// Heads, in plan order.
    pub heads: Vec<usize>,
}

impl Topology {
    /// Computes groups for `workers` workers.
    pub fn new(plan: &Plan, workers: usize) -> Topology {
        let n = plan.nodes.len();
        let mut fused = vec![false; n];
        let mut route = vec![Vec::new(); n];
        for (i, node) in plan.nodes.iter().enumerate() {
            route[i] = (0..node.inputs.len())
                .map(|slot| match node.partitioning(slot) {
                    Partitioning::Forward => Route::Forward,
                    _ if workers == 1 => Route::Forward,
                    Partitioning::Hash(keys) => Route::Hash(keys),
                    Partitioning::Single => Route::Single,
                })
                .collect();
            // Buffered sinks and blocking transforms get their own threads
            // behind a bounded channel.
            let buffered = node.buffer().is_some();
            fused[i] =
                node.inputs.len() == 1 && route[i].iter().all(Route::is_forward) && !buffered;
        }
        let mut group_of = vec![0; n];
        for i in 0..n {
            group_of[i] = if fused[i] {
                group_of[plan.nodes[i].inputs[0].node]
            } else {
                i
            };
        }
        let heads = (0..n).filter(|&i| !fused[i]).collect();
        Topology {
            group_of,
            fused,
            route,
            heads,
        }
    }

    /// The nodes of the group headed by `head`, in plan (topological) order.
    pub fn members(&self, head: usize) -> Vec<usize> {
        (0..self.group_of.len())
            .filter(|&i| self.group_of[i] == head)
            .collect()
    }
}
