//! The dependency graph between stacks: cycles, start layers, closures, and the text, DOT and
//! Mermaid views `composectl graph` prints.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EdgeKind {
    Requires,
    Wants,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    nodes: BTreeSet<String>,
    /// Edges to stacks that exist, per stack, requires before wants.
    edges: BTreeMap<String, Vec<(String, EdgeKind)>>,
    /// Requires and wants naming stacks that are not nodes (not loaded: broken, or unknown),
    /// which only a closure follows, so that their problems count for a selection.
    dangling: BTreeMap<String, Vec<String>>,
}

impl Graph {
    /// Builds the graph from (stack, requires, wants); edges to unknown stacks are dropped, since
    /// validation reports them.
    pub fn new(stacks: impl IntoIterator<Item = (String, Vec<String>, Vec<String>)>) -> Self {
        let stacks: Vec<_> = stacks.into_iter().collect();
        let nodes: BTreeSet<String> = stacks.iter().map(|(name, ..)| name.clone()).collect();
        let mut edges = BTreeMap::new();
        let mut dangling = BTreeMap::new();
        for (name, requires, wants) in stacks {
            let (out, missing): (Vec<_>, Vec<_>) = requires
                .into_iter()
                .map(|to| (to, EdgeKind::Requires))
                .chain(wants.into_iter().map(|to| (to, EdgeKind::Wants)))
                .filter(|(to, _)| *to != name)
                .partition(|(to, _)| nodes.contains(to));
            if !missing.is_empty() {
                dangling.insert(
                    name.clone(),
                    missing.into_iter().map(|(to, _)| to).collect(),
                );
            }
            edges.insert(name, out);
        }
        Graph {
            nodes,
            edges,
            dangling,
        }
    }

    pub fn edges(&self) -> Vec<Edge> {
        self.edges
            .iter()
            .flat_map(|(from, out)| {
                out.iter().map(move |(to, kind)| Edge {
                    from: from.clone(),
                    to: to.clone(),
                    kind: *kind,
                })
            })
            .collect()
    }

    fn deps(&self, name: &str) -> impl Iterator<Item = &(String, EdgeKind)> {
        self.edges.get(name).into_iter().flatten()
    }

    /// Every cycle once, as a path that returns to its start: `[a, b, a]`.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Active,
            Done,
        }
        fn visit<'g>(
            graph: &'g Graph,
            node: &'g str,
            marks: &mut BTreeMap<&'g str, Mark>,
            path: &mut Vec<&'g str>,
            found: &mut Vec<Vec<String>>,
        ) {
            marks.insert(node, Mark::Active);
            path.push(node);
            for (dep, _) in graph.deps(node) {
                match marks.get(dep.as_str()).copied().unwrap_or(Mark::New) {
                    Mark::New => visit(graph, dep, marks, path, found),
                    Mark::Active => {
                        let start = path.iter().position(|n| n == dep).unwrap_or(0);
                        let mut cycle: Vec<String> =
                            path[start..].iter().map(|n| n.to_string()).collect();
                        cycle.push(dep.clone());
                        found.push(cycle);
                    }
                    Mark::Done => {}
                }
            }
            path.pop();
            marks.insert(node, Mark::Done);
        }
        let mut marks = BTreeMap::new();
        let mut found = Vec::new();
        for node in &self.nodes {
            if marks.get(node.as_str()).copied().unwrap_or(Mark::New) == Mark::New {
                visit(self, node, &mut marks, &mut Vec::new(), &mut found);
            }
        }
        found
    }

    /// How deep each node's longest chain of requirements and wants goes (0: it depends on
    /// none). A cycle (refused when a root is loaded) ends where it closes.
    pub fn depths(&self) -> BTreeMap<&str, usize> {
        fn depth<'g>(
            graph: &'g Graph,
            node: &'g str,
            memo: &mut BTreeMap<&'g str, usize>,
        ) -> usize {
            if let Some(d) = memo.get(node) {
                return *d;
            }
            // Marks the node while its dependencies are measured, so a cycle stops here.
            memo.insert(node, 0);
            let d = graph
                .deps(node)
                .map(|(dep, _)| depth(graph, dep, memo) + 1)
                .max()
                .unwrap_or(0);
            memo.insert(node, d);
            d
        }
        let mut memo = BTreeMap::new();
        for node in &self.nodes {
            depth(self, node, &mut memo);
        }
        memo
    }

    /// Start layers: layer 0 depends on nothing, layer n on stacks of earlier layers only.
    pub fn layers(&self) -> Vec<Vec<String>> {
        let mut layers: Vec<Vec<String>> = Vec::new();
        for (node, d) in self.depths() {
            if layers.len() <= d {
                layers.resize(d + 1, Vec::new());
            }
            layers[d].push(node.to_string());
        }
        layers
    }

    /// `names` and the nodes `keep` allows that require any of them, transitively: what must
    /// go with them, since a stack cannot stay without what it requires (wants do not count).
    pub fn with_dependents(
        &self,
        names: impl IntoIterator<Item = String>,
        keep: impl Fn(&str) -> bool,
    ) -> BTreeSet<String> {
        let mut found: BTreeSet<String> = names.into_iter().collect();
        loop {
            let more: Vec<String> = self
                .edges
                .iter()
                .filter(|(node, _)| !found.contains(*node) && keep(node))
                .filter(|(_, out)| {
                    out.iter()
                        .any(|(to, kind)| *kind == EdgeKind::Requires && found.contains(to))
                })
                .map(|(node, _)| node.clone())
                .collect();
            if more.is_empty() {
                return found;
            }
            found.extend(more);
        }
    }

    /// `names` and everything they require or want, transitively, stacks that are not nodes
    /// included.
    pub fn closure<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<String> = names.into_iter().map(str::to_string).collect();
        while let Some(name) = todo.pop() {
            if seen.insert(name.clone()) {
                todo.extend(self.deps(&name).map(|(dep, _)| dep.clone()));
                todo.extend(self.dangling.get(&name).into_iter().flatten().cloned());
            }
        }
        seen
    }

    /// The graph restricted to `keep`.
    pub fn subgraph(&self, keep: &BTreeSet<String>) -> Graph {
        Graph {
            dangling: BTreeMap::new(),
            nodes: self.nodes.intersection(keep).cloned().collect(),
            edges: self
                .edges
                .iter()
                .filter(|(name, _)| keep.contains(*name))
                .map(|(name, out)| {
                    (
                        name.clone(),
                        out.iter()
                            .filter(|(to, _)| keep.contains(to))
                            .cloned()
                            .collect(),
                    )
                })
                .collect(),
        }
    }

    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for (index, layer) in self.layers().iter().enumerate() {
            let _ = writeln!(out, "layer {index}:");
            for name in layer {
                let list = |kind| {
                    self.deps(name)
                        .filter(|(_, k)| *k == kind)
                        .map(|(to, _)| to.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                let (requires, wants) = (list(EdgeKind::Requires), list(EdgeKind::Wants));
                let _ = write!(out, "  {name}");
                if !requires.is_empty() {
                    let _ = write!(out, "  requires: {requires}");
                }
                if !wants.is_empty() {
                    let _ = write!(out, "  wants: {wants}");
                }
                out.push('\n');
            }
        }
        out
    }

    pub fn to_dot(&self) -> String {
        let mut out = String::from("digraph composectl {\n  rankdir=BT;\n  node [shape=box];\n");
        for node in &self.nodes {
            let _ = writeln!(out, "  \"{node}\";");
        }
        for edge in self.edges() {
            let style = match edge.kind {
                EdgeKind::Requires => "[label=\"requires\"]",
                EdgeKind::Wants => "[label=\"wants\", style=dashed]",
            };
            let _ = writeln!(out, "  \"{}\" -> \"{}\" {style};", edge.from, edge.to);
        }
        out.push_str("}\n");
        out
    }

    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("graph BT\n");
        for node in &self.nodes {
            let _ = writeln!(out, "  {node}");
        }
        for edge in self.edges() {
            let arrow = match edge.kind {
                EdgeKind::Requires => "-->|requires|",
                EdgeKind::Wants => "-.->|wants|",
            };
            let _ = writeln!(out, "  {} {arrow} {}", edge.from, edge.to);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(spec: &[(&str, &[&str], &[&str])]) -> Graph {
        Graph::new(spec.iter().map(|(n, r, w)| {
            (
                n.to_string(),
                r.iter().map(|s| s.to_string()).collect(),
                w.iter().map(|s| s.to_string()).collect(),
            )
        }))
    }

    #[test]
    fn layers_put_dependencies_first() {
        let g = graph(&[
            ("genai", &["database", "panel"], &["metrics"]),
            ("database", &[], &[]),
            ("panel", &[], &[]),
            ("metrics", &["panel"], &[]),
        ]);
        assert_eq!(
            g.layers(),
            vec![vec!["database", "panel"], vec!["metrics"], vec!["genai"]]
        );
        assert!(g.cycles().is_empty());
        assert_eq!(
            g.closure(["metrics"]).into_iter().collect::<Vec<_>>(),
            ["metrics", "panel"]
        );
    }

    #[test]
    fn cycles_are_reported_as_paths() {
        let g = graph(&[
            ("a", &["b"], &[]),
            ("b", &[], &["c"]),
            ("c", &["a"], &[]),
            ("d", &[], &[]),
        ]);
        assert_eq!(g.cycles(), vec![vec!["a", "b", "c", "a"]]);
    }

    #[test]
    fn views_name_every_edge() {
        let g = graph(&[
            ("genai", &["database"], &["metrics"]),
            ("database", &[], &[]),
            ("metrics", &[], &[]),
        ]);
        assert!(
            g.to_dot()
                .contains("\"genai\" -> \"database\" [label=\"requires\"];")
        );
        assert!(g.to_mermaid().contains("genai -.->|wants| metrics"));
        assert_eq!(
            g.to_text(),
            "layer 0:\n  database\n  metrics\nlayer 1:\n  genai  requires: database  wants: metrics\n"
        );
    }
}
