use std::fmt;

/// A label set sorted by name with unique names; the canonical identity of a stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(String, String)>);

impl Labels {
    /// Empty label set.
    pub fn new() -> Self {
        Labels(Vec::new())
    }

    /// Builds from pairs in any order; later duplicates win, empty values are dropped
    /// (Loki treats an empty value as an absent label).
    pub fn from_pairs<I, K, V>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (K, V)>,
        K: Into<String>,
        V: Into<String>,
    {
        let mut b = LabelsBuilder::default();
        for (k, v) in pairs {
            b.set(k.into(), v.into());
        }
        b.build()
    }

    /// Wraps pairs that are already sorted, unique and non-empty.
    pub fn from_sorted_unchecked(pairs: Vec<(String, String)>) -> Self {
        debug_assert!(pairs.windows(2).all(|w| w[0].0 < w[1].0));
        Labels(pairs)
    }

    /// Value of `name`, if present.
    pub fn get(&self, name: &str) -> Option<&str> {
        // A few labels (the usual case, looked up per entry by pipelines): comparing
        // lengths first is cheaper than a binary search calling memcmp at every step.
        if self.0.len() <= 16 {
            return self
                .0
                .iter()
                .find(|(k, _)| k.len() == name.len() && k.as_bytes() == name.as_bytes())
                .map(|(_, v)| v.as_str());
        }
        self.0
            .binary_search_by(|(k, _)| k.as_str().cmp(name))
            .ok()
            .map(|i| self.0[i].1.as_str())
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets `name` to `value`; an empty value removes the label.
    pub fn set(&mut self, name: &str, value: &str) {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Ok(i) if value.is_empty() => {
                self.0.remove(i);
            }
            Ok(i) => self.0[i].1 = value.to_string(),
            Err(_) if value.is_empty() => {}
            Err(i) => self.0.insert(i, (name.to_string(), value.to_string())),
        }
    }

    /// Removes `name`; returns its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        match self.0.binary_search_by(|(k, _)| k.as_str().cmp(name)) {
            Ok(i) => Some(self.0.remove(i).1),
            Err(_) => None,
        }
    }

    /// Pairs in name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Number of labels.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The sorted pairs.
    pub fn as_slice(&self) -> &[(String, String)] {
        &self.0
    }

    /// Consumes into the sorted pairs.
    pub fn into_vec(self) -> Vec<(String, String)> {
        self.0
    }

    /// Only the labels named in `names`.
    pub fn keep_only(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(k, _)| names.iter().any(|n| n == k))
                .cloned()
                .collect(),
        )
    }

    /// All labels except those named in `names`.
    pub fn without(&self, names: &[String]) -> Labels {
        Labels(
            self.0
                .iter()
                .filter(|(k, _)| !names.iter().any(|n| n == k))
                .cloned()
                .collect(),
        )
    }

    /// Size in bytes of names and values, as counted by Loki's limits.
    pub fn byte_size(&self) -> usize {
        self.0.iter().map(|(k, v)| k.len() + v.len()).sum()
    }
}

/// Prometheus text form `{a="b", c="d"}`, as Loki prints stream labels.
impl fmt::Display for Labels {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{k}=\"")?;
            for c in v.chars() {
                match c {
                    '\\' => f.write_str("\\\\")?,
                    '"' => f.write_str("\\\"")?,
                    '\n' => f.write_str("\\n")?,
                    c => write!(f, "{c}")?,
                }
            }
            f.write_str("\"")?;
        }
        f.write_str("}")
    }
}

/// Collects labels in any order, then sorts once.
#[derive(Default, Debug, Clone)]
pub struct LabelsBuilder {
    pairs: Vec<(String, String)>,
}

impl LabelsBuilder {
    /// Adds or replaces a label; empty values remove it at build time.
    pub fn set(&mut self, name: String, value: String) {
        if let Some(p) = self.pairs.iter_mut().find(|(k, _)| *k == name) {
            p.1 = value;
        } else {
            self.pairs.push((name, value));
        }
    }

    /// Sorted, unique, non-empty label set.
    pub fn build(mut self) -> Labels {
        self.pairs.retain(|(_, v)| !v.is_empty());
        self.pairs.sort_by(|a, b| a.0.cmp(&b.0));
        Labels(self.pairs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorted_unique_and_empty_dropped() {
        let l = Labels::from_pairs([("b", "2"), ("a", "1"), ("c", ""), ("a", "3")]);
        assert_eq!(l.to_string(), r#"{a="3", b="2"}"#);
        assert_eq!(l.get("a"), Some("3"));
        assert_eq!(l.get("c"), None);
    }

    #[test]
    fn set_and_remove() {
        let mut l = Labels::new();
        l.set("x", "1");
        l.set("a", "q\"");
        assert_eq!(l.to_string(), r#"{a="q\"", x="1"}"#);
        l.set("x", "");
        assert_eq!(l.len(), 1);
        assert_eq!(l.remove("a").as_deref(), Some("q\""));
        assert!(l.is_empty());
    }
}
