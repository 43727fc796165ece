//! The Drain prefix tree (He et al., ICWS 2017) as Loki's pattern ingester runs it:
//! clusters are found by token count, then by the first tokens, then by similarity.

use super::tokenize::{Tokenizer, Tokens};
use super::PARAM;
use std::collections::{BTreeMap, HashMap};

/// Loki's `drain.DefaultConfig()`.
#[derive(Clone, Debug)]
pub struct Config {
    /// Tokens looked at on the way down the tree, plus two.
    pub depth: usize,
    /// Share of equal tokens above which a line joins a cluster.
    pub sim_th: f64,
    /// Children per tree node before new tokens go down the `<_>` branch.
    pub max_children: usize,
    /// Clusters kept per miner; the least recently used one is evicted past it.
    pub max_clusters: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            depth: 30,
            sim_th: 0.3,
            max_children: 15,
            max_clusters: 300,
        }
    }
}

/// One pattern and the lines that fell into it.
#[derive(Debug)]
pub struct Cluster {
    pub tokens: Tokens,
    /// Count per bucket start (ms).
    pub samples: BTreeMap<i64, u64>,
    last_used: u64,
}

#[derive(Default, Debug)]
struct Node {
    children: HashMap<String, Node>,
    clusters: Vec<usize>,
}

/// A Drain miner over the lines of one stream and level.
#[derive(Debug)]
pub struct Drain {
    cfg: Config,
    tokenizer: Tokenizer,
    root: Node,
    clusters: HashMap<usize, Cluster>,
    next_id: usize,
    clock: u64,
}

impl Drain {
    pub fn new(cfg: Config, tokenizer: Tokenizer) -> Drain {
        Drain {
            cfg,
            tokenizer,
            root: Node::default(),
            clusters: HashMap::new(),
            next_id: 0,
            clock: 0,
        }
    }

    /// Adds a line to its cluster (counted in `bucket`); skipped lines change nothing.
    pub fn train(&mut self, line: &str, bucket: i64) {
        let Some(t) = self.tokenizer.tokenize(line) else {
            return;
        };
        // Loki skips lines with too few or too many tokens to form a useful pattern.
        if t.tokens.len() < 4 || t.tokens.len() > 80 {
            return;
        }
        match self.tree_search(&t.tokens) {
            Some(id) => {
                let c = self.get(id).expect("found cluster exists");
                for (tok, new) in c.tokens.tokens.iter_mut().zip(&t.tokens) {
                    if tok != new {
                        *tok = PARAM.to_string();
                    }
                }
                *c.samples.entry(bucket).or_default() += 1;
            }
            None => {
                self.next_id += 1;
                let id = self.next_id;
                self.clock += 1;
                let cluster = Cluster {
                    tokens: t,
                    samples: BTreeMap::from([(bucket, 1)]),
                    last_used: self.clock,
                };
                self.clusters.insert(id, cluster);
                if self.clusters.len() > self.cfg.max_clusters {
                    self.evict_oldest();
                }
                self.add_to_tree(id);
            }
        }
    }

    /// Pattern text and samples of every cluster.
    pub fn patterns(&self) -> impl Iterator<Item = (String, &BTreeMap<i64, u64>)> + '_ {
        self.clusters
            .values()
            .map(|c| (self.tokenizer.join(&c.tokens), &c.samples))
    }

    /// A cluster, marked as just used (the LRU order Loki's cache keeps).
    fn get(&mut self, id: usize) -> Option<&mut Cluster> {
        self.clock += 1;
        let clock = self.clock;
        let c = self.clusters.get_mut(&id)?;
        c.last_used = clock;
        Some(c)
    }

    fn evict_oldest(&mut self) {
        if let Some(id) = self
            .clusters
            .iter()
            .min_by_key(|(_, c)| c.last_used)
            .map(|(id, _)| *id)
        {
            self.clusters.remove(&id);
        }
    }

    fn max_node_depth(&self) -> usize {
        self.cfg.depth.saturating_sub(2)
    }

    fn tree_search(&mut self, tokens: &[String]) -> Option<usize> {
        let n = tokens.len();
        let max_depth = self.max_node_depth();
        let mut node = self.root.children.get(&n.to_string())?;
        for (depth, tok) in (1..).zip(tokens) {
            if depth >= max_depth || depth == n {
                break;
            }
            node = node
                .children
                .get(tok)
                .or_else(|| node.children.get(PARAM))?;
        }
        let ids = node.clusters.clone();
        self.fast_match(&ids, tokens)
    }

    /// The most similar cluster (ties: more `<_>`), if similar enough.
    fn fast_match(&mut self, ids: &[usize], tokens: &[String]) -> Option<usize> {
        let mut best: Option<(f64, usize, usize)> = None;
        for &id in ids {
            let Some(c) = self.get(id) else { continue };
            let Some((sim, params)) = seq_distance(&c.tokens.tokens, tokens) else {
                continue;
            };
            let better = match best {
                None => true,
                Some((s, p, _)) => sim > s || (sim == s && params > p),
            };
            if better {
                best = Some((sim, params, id));
            }
        }
        best.filter(|(s, _, _)| *s >= self.cfg.sim_th)
            .map(|(_, _, id)| id)
    }

    fn add_to_tree(&mut self, id: usize) {
        let tokens = self.clusters[&id].tokens.tokens.clone();
        let n = tokens.len();
        let max_depth = self.max_node_depth();
        let max_children = self.cfg.max_children;
        // Ids of clusters still alive, collected before borrowing the tree mutably.
        let alive: std::collections::HashSet<usize> = self.clusters.keys().copied().collect();
        let mut node = self.root.children.entry(n.to_string()).or_default();
        if n == 0 {
            node.clusters.push(id);
            return;
        }
        let mut leaf = Vec::new();
        for (depth, tok) in (1..).zip(&tokens) {
            if depth >= max_depth || depth >= n {
                node.clusters.retain(|c| alive.contains(c));
                leaf = node.clusters.clone();
                node.clusters.push(id);
                break;
            }
            let key = if node.children.contains_key(tok) {
                tok.clone()
            } else if has_numbers(tok) {
                PARAM.to_string()
            } else if node.children.contains_key(PARAM) {
                if node.children.len() < max_children {
                    tok.clone()
                } else {
                    PARAM.to_string()
                }
            } else if node.children.len() + 1 < max_children {
                tok.clone()
            } else {
                PARAM.to_string()
            };
            node = node.children.entry(key).or_default();
        }
        // Loki reads (and so refreshes) each live cluster of the leaf while cleaning it.
        for id in leaf {
            self.get(id);
        }
    }
}

fn has_numbers(s: &str) -> bool {
    s.chars().any(char::is_numeric)
}

/// Share of equal tokens and count of `<_>` in the cluster; `None` when a token marked
/// for exact match (leading NUL) differs.
fn seq_distance(cluster: &[String], tokens: &[String]) -> Option<(f64, usize)> {
    if cluster.len() != tokens.len() || cluster.is_empty() {
        return None;
    }
    let (mut same, mut params) = (0, 0);
    for (a, b) in cluster.iter().zip(tokens) {
        if a.starts_with('\0') && a != b {
            return None;
        }
        if a == PARAM {
            params += 1;
        } else if a == b {
            same += 1;
        }
    }
    Some((same as f64 / cluster.len() as f64, params))
}
