//! Prometheus relabel rules (`relabel_configs` / Alloy `rule` blocks) over a label set.

use regex::Regex;
use serde::Deserialize;
use silt_model::Labels;

/// One rule as written in YAML (Prometheus field names and defaults).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RelabelConfig {
    /// Labels whose values are joined with `separator` to form the input.
    #[serde(default)]
    pub source_labels: Vec<String>,
    /// Joiner for `source_labels` (default `;`).
    #[serde(default = "d_sep")]
    pub separator: String,
    /// RE2-style regex, fully anchored (default `(.*)`).
    #[serde(default = "d_regex")]
    pub regex: String,
    /// Label written by replace/hashmod/lowercase/uppercase; compared by keepequal/dropequal.
    #[serde(default)]
    pub target_label: Option<String>,
    /// Replacement with `$1`, `${name}` references (default `$1`).
    #[serde(default = "d_repl")]
    pub replacement: String,
    /// Divisor for `hashmod`.
    #[serde(default)]
    pub modulus: Option<u64>,
    /// Action (default `replace`).
    #[serde(default)]
    pub action: Action,
}

fn d_sep() -> String {
    ";".into()
}
fn d_regex() -> String {
    "(.*)".into()
}
fn d_repl() -> String {
    "$1".into()
}

/// Relabel actions.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

struct Rule {
    cfg: RelabelConfig,
    re: Regex,
}

/// Compiled rules.
pub struct Relabeler {
    rules: Vec<Rule>,
}

impl Relabeler {
    /// Compiles and checks rules (e.g. `replace` needs a `target_label`).
    pub fn new(cfgs: &[RelabelConfig]) -> Result<Relabeler, String> {
        let mut rules = Vec::new();
        for (i, c) in cfgs.iter().enumerate() {
            let re = Regex::new(&format!("^(?s:{})$", c.regex))
                .map_err(|e| format!("rule {i}: invalid regex: {e}"))?;
            let needs_target = matches!(
                c.action,
                Action::Replace
                    | Action::HashMod
                    | Action::Lowercase
                    | Action::Uppercase
                    | Action::KeepEqual
                    | Action::DropEqual
            );
            if needs_target && c.target_label.as_deref().unwrap_or("").is_empty() {
                return Err(format!(
                    "rule {i}: action {:?} needs target_label",
                    c.action
                ));
            }
            if c.action == Action::HashMod && c.modulus.unwrap_or(0) == 0 {
                return Err(format!("rule {i}: hashmod needs modulus > 0"));
            }
            rules.push(Rule { cfg: c.clone(), re });
        }
        Ok(Relabeler { rules })
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies every rule; `None` when the set is dropped or ends up empty.
    pub fn apply(&self, labels: &Labels) -> Option<Labels> {
        let mut ls = labels.clone();
        for r in &self.rules {
            let c = &r.cfg;
            let val = c
                .source_labels
                .iter()
                .map(|n| ls.get(n).unwrap_or(""))
                .collect::<Vec<_>>()
                .join(&c.separator);
            let target = c.target_label.as_deref().unwrap_or("");
            match c.action {
                Action::Replace => {
                    if let Some(caps) = r.re.captures(&val) {
                        let mut name = String::new();
                        caps.expand(target, &mut name);
                        let mut v = String::new();
                        caps.expand(&c.replacement, &mut v);
                        if silt_proto::is_valid_label_name(&name) {
                            ls.set(&name, &v);
                        }
                    }
                }
                Action::Keep if !r.re.is_match(&val) => return None,
                Action::Drop if r.re.is_match(&val) => return None,
                Action::KeepEqual if ls.get(target).unwrap_or("") != val => return None,
                Action::DropEqual if ls.get(target).unwrap_or("") == val => return None,
                Action::HashMod => {
                    let d = md5(val.as_bytes());
                    let h = u64::from_be_bytes(d[8..16].try_into().unwrap_or([0; 8]));
                    ls.set(target, &(h % c.modulus.unwrap_or(1)).to_string());
                }
                Action::Lowercase => ls.set(target, &val.to_lowercase()),
                Action::Uppercase => ls.set(target, &val.to_uppercase()),
                Action::LabelMap => {
                    let mut adds = Vec::new();
                    for (k, v) in ls.iter() {
                        if let Some(caps) = r.re.captures(k) {
                            let mut name = String::new();
                            caps.expand(&c.replacement, &mut name);
                            adds.push((name, v.to_string()));
                        }
                    }
                    for (k, v) in adds {
                        ls.set(&k, &v);
                    }
                }
                Action::LabelDrop | Action::LabelKeep => {
                    let keep_if_match = c.action == Action::LabelKeep;
                    let names: Vec<String> = ls
                        .iter()
                        .filter(|(k, _)| r.re.is_match(k) != keep_if_match)
                        .map(|(k, _)| k.to_string())
                        .collect();
                    for n in names {
                        ls.remove(&n);
                    }
                }
                _ => {}
            }
        }
        (!ls.is_empty()).then_some(ls)
    }
}

/// MD5, only for `hashmod` (Prometheus shards with md5, so agents and Prometheus agree).
fn md5(input: &[u8]) -> [u8; 16] {
    const S: [u32; 64] = [
        7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5,
        9, 14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10,
        15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
    ];
    let k: Vec<u32> = (0..64)
        .map(|i| ((i as f64 + 1.0).sin().abs() * 4294967296.0) as u32)
        .collect();
    let (mut a0, mut b0, mut c0, mut d0) =
        (0x67452301u32, 0xefcdab89u32, 0x98badcfeu32, 0x10325476u32);
    let mut msg = input.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((input.len() as u64).wrapping_mul(8)).to_le_bytes());
    for chunk in msg.chunks(64) {
        let m: Vec<u32> = chunk
            .chunks(4)
            .map(|w| u32::from_le_bytes([w[0], w[1], w[2], w[3]]))
            .collect();
        let (mut a, mut b, mut c, mut d) = (a0, b0, c0, d0);
        for i in 0..64 {
            let (f, g) = match i / 16 {
                0 => ((b & c) | (!b & d), i),
                1 => ((d & b) | (!d & c), (5 * i + 1) % 16),
                2 => (b ^ c ^ d, (3 * i + 5) % 16),
                _ => (c ^ (b | !d), (7 * i) % 16),
            };
            let f = f.wrapping_add(a).wrapping_add(k[i]).wrapping_add(m[g]);
            a = d;
            d = c;
            c = b;
            b = b.wrapping_add(f.rotate_left(S[i]));
        }
        a0 = a0.wrapping_add(a);
        b0 = b0.wrapping_add(b);
        c0 = c0.wrapping_add(c);
        d0 = d0.wrapping_add(d);
    }
    let mut out = [0u8; 16];
    for (i, v) in [a0, b0, c0, d0].iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(yaml: &str, ls: &[(&str, &str)]) -> Option<Labels> {
        let cfgs: Vec<RelabelConfig> = serde_yaml::from_str(yaml).unwrap();
        Relabeler::new(&cfgs)
            .unwrap()
            .apply(&Labels::from_pairs(ls.iter().copied()))
    }

    #[test]
    fn md5_known_vector() {
        let hex: String = md5(b"abc").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "900150983cd24fb0d6963f7d28e17f72");
    }

    #[test]
    fn actions() {
        let base = [("__meta_ns", "prod"), ("app", "Web"), ("x", "1")];
        let r = run("[{source_labels: [__meta_ns, app], target_label: job, replacement: '$1/$2', regex: '(.*);(.*)'}]", &base).unwrap();
        assert_eq!(r.get("job"), Some("prod/Web"));
        assert!(run("[{source_labels: [app], regex: web, action: keep}]", &base).is_none());
        assert!(run("[{source_labels: [app], regex: Web, action: keep}]", &base).is_some());
        assert!(run("[{source_labels: [app], regex: W.*, action: drop}]", &base).is_none());
        let r = run("[{regex: '__meta_(.*)', action: labelmap}]", &base).unwrap();
        assert_eq!(r.get("ns"), Some("prod"));
        let r = run("[{regex: '__.*', action: labeldrop}]", &base).unwrap();
        assert!(!r.contains("__meta_ns"));
        let r = run("[{regex: 'app', action: labelkeep}]", &base).unwrap();
        assert_eq!(r.len(), 1);
        let r = run(
            "[{source_labels: [app], target_label: lc, action: lowercase}]",
            &base,
        )
        .unwrap();
        assert_eq!(r.get("lc"), Some("web"));
        let r = run(
            "[{source_labels: [app], target_label: uc, action: uppercase}]",
            &base,
        )
        .unwrap();
        assert_eq!(r.get("uc"), Some("WEB"));
        assert!(run(
            "[{source_labels: [x], target_label: x, action: keepequal}]",
            &base
        )
        .is_some());
        assert!(run(
            "[{source_labels: [app], target_label: x, action: keepequal}]",
            &base
        )
        .is_none());
        assert!(run(
            "[{source_labels: [x], target_label: x, action: dropequal}]",
            &base
        )
        .is_none());
        let r = run(
            "[{source_labels: [app], target_label: shard, modulus: 4, action: hashmod}]",
            &base,
        )
        .unwrap();
        assert!(r.get("shard").unwrap().parse::<u64>().unwrap() < 4);
        // Empty replacement deletes the target; every label removed drops the set.
        let r = run(
            "[{source_labels: [nope], target_label: app, replacement: ''}]",
            &base,
        )
        .unwrap();
        assert!(!r.contains("app"));
        assert!(run("[{regex: '.*', action: labeldrop}]", &base).is_none());
    }

    #[test]
    fn bad_rules_are_rejected() {
        let cfgs: Vec<RelabelConfig> = serde_yaml::from_str("[{action: replace}]").unwrap();
        assert!(Relabeler::new(&cfgs).is_err());
        let cfgs: Vec<RelabelConfig> =
            serde_yaml::from_str("[{regex: '(', action: keep}]").unwrap();
        assert!(Relabeler::new(&cfgs).is_err());
    }
}
