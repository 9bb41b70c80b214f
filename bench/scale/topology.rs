//! The benchmark's stacks: N one-container busybox stacks in layers, each stack requiring every
//! stack of the layer before, each container healthy 1 s after it starts, its healthcheck every
//! 500 ms. Written with the end-to-end tests' `Stacks` fixture (a temporary root, names unique to
//! this process, engine objects removed on drop).

use std::collections::BTreeMap;
use std::path::PathBuf;

use composectl_testkit::layered::ready_after_every;
use composectl_testkit::stacks::Stacks;

/// How often a container's healthcheck runs, and how long the container takes to be ready: its
/// second check, 1 s after its start, finds it healthy. Not 1 s itself: the check at 1 s would
/// race with it and make some stacks healthy half a second later than others, at random.
pub const HEALTHCHECK_EVERY: &str = "500ms";
pub const READY_AFTER: &str = "0.75";

pub struct Topology {
    pub stacks: Stacks,
    /// Stack names, layer by layer: the first layer requires nothing.
    pub layers: Vec<Vec<String>>,
    /// Stack → the stacks it requires (the whole layer before).
    pub requires: BTreeMap<String, Vec<String>>,
}

/// How many stacks each layer gets: 3 stacks are two layers (two stacks, then one requiring both:
/// a panel, a database and an app), more are four, the earlier layers taking what is left over.
pub fn layer_sizes(n: usize) -> Vec<usize> {
    let layers = match n {
        0 | 1 => n,
        2 | 3 => 2,
        _ => 4,
    };
    (0..layers)
        .map(|layer| n / layers + usize::from(layer < n % layers))
        .collect()
}

impl Topology {
    pub fn new(n: usize) -> Topology {
        let mut stacks = Stacks::new();
        let network = stacks.network("net");
        let mut layers: Vec<Vec<String>> = Vec::new();
        let mut requires = BTreeMap::new();
        for (layer, size) in layer_sizes(n).into_iter().enumerate() {
            let below: Vec<String> = layers.last().cloned().unwrap_or_default();
            let mut names = Vec::new();
            for index in 0..size {
                let short = format!("l{}s{index:02}", layer + 1);
                let name = stacks.name(&short);
                let meta = format!("x-composectl:\n  requires: [{}]\n", below.join(", "));
                let service = ready_after_every(&name, READY_AFTER, "", HEALTHCHECK_EVERY);
                stacks.custom(&short, &meta, &service, &network);
                requires.insert(name.clone(), below.clone());
                names.push(name);
            }
            layers.push(names);
        }
        Topology {
            stacks,
            layers,
            requires,
        }
    }

    /// Every stack, layer by layer.
    pub fn all(&self) -> impl Iterator<Item = &String> {
        self.layers.iter().flatten()
    }

    /// The last layer: starting these starts everything.
    pub fn top(&self) -> &[String] {
        self.layers.last().map_or(&[], Vec::as_slice)
    }

    /// What every name of this topology's engine objects begins with.
    pub fn prefix(&self) -> String {
        self.stacks.name("")
    }

    pub fn compose_file(&self, stack: &str) -> PathBuf {
        self.stacks
            .root()
            .join("stacks")
            .join(stack)
            .join("compose.yaml")
    }
}
