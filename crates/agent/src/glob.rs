//! Path globs: `*` and `?` within one path component, `**` across components, `[...]`
//! classes and `{a,b}` alternation (doublestar semantics, as Alloy's file_match).

use regex::Regex;
use std::path::{Path, PathBuf};

/// A compiled glob plus the directory to start walking from.
#[derive(Debug, Clone)]
pub struct Glob {
    re: Regex,
    base: PathBuf,
    /// Path components below `base`; `None` when `**` makes the depth unbounded.
    depth: Option<usize>,
}

impl Glob {
    /// Compiles `pattern`; errors name the problem.
    pub fn new(pattern: &str) -> Result<Glob, String> {
        if pattern.is_empty() {
            return Err("empty glob".into());
        }
        let mut re = String::from("^");
        let chars: Vec<char> = pattern.chars().collect();
        let mut i = 0;
        let mut in_alt = 0usize;
        while i < chars.len() {
            let c = chars[i];
            match c {
                '*' if chars.get(i + 1) == Some(&'*') => {
                    // `**/` matches zero or more directories; a trailing `**` anything.
                    if chars.get(i + 2) == Some(&'/') {
                        re.push_str("(?:[^/]*/)*");
                        i += 3;
                    } else {
                        re.push_str(".*");
                        i += 2;
                    }
                    continue;
                }
                '*' => re.push_str("[^/]*"),
                '?' => re.push_str("[^/]"),
                '[' => {
                    let end = chars[i + 1..]
                        .iter()
                        .position(|&c| c == ']')
                        .ok_or_else(|| format!("unclosed '[' in glob {pattern:?}"))?;
                    let body: String = chars[i + 1..i + 1 + end].iter().collect();
                    let body = body
                        .strip_prefix('!')
                        .map(|b| format!("^{b}"))
                        .unwrap_or(body);
                    re.push('[');
                    re.push_str(&body.replace('\\', "\\\\"));
                    re.push(']');
                    i += end + 2;
                    continue;
                }
                '{' => {
                    in_alt += 1;
                    re.push_str("(?:");
                }
                '}' if in_alt > 0 => {
                    in_alt -= 1;
                    re.push(')');
                }
                ',' if in_alt > 0 => re.push('|'),
                c => re.push_str(&regex::escape(&c.to_string())),
            }
            i += 1;
        }
        if in_alt > 0 {
            return Err(format!("unclosed '{{' in glob {pattern:?}"));
        }
        re.push('$');
        let re = Regex::new(&re).map_err(|e| format!("invalid glob {pattern:?}: {e}"))?;
        // Walk from the longest literal directory prefix.
        let comps: Vec<&str> = pattern.split('/').collect();
        let lit = comps
            .iter()
            .take_while(|c| !c.contains(['*', '?', '[', '{']))
            .count()
            .min(comps.len().saturating_sub(1));
        let base = if lit == 0 {
            PathBuf::from(if pattern.starts_with('/') { "/" } else { "." })
        } else {
            PathBuf::from(comps[..lit].join("/")).join("")
        };
        let base = if base.as_os_str().is_empty() {
            PathBuf::from("/")
        } else {
            base
        };
        let depth = (!pattern.contains("**")).then(|| comps.len() - lit);
        Ok(Glob { re, base, depth })
    }

    /// Whether `path` matches.
    pub fn matches(&self, path: &Path) -> bool {
        path.to_str().is_some_and(|p| self.re.is_match(p))
    }

    /// Regular files (or symlinks to them) currently matching; unreadable dirs are skipped.
    pub fn walk(&self, out: &mut Vec<PathBuf>) {
        self.walk_dir(&self.base, 1, out, &mut None);
    }

    /// Like [`Glob::walk`], also listing the directories read (to watch them).
    pub fn walk_with_dirs(&self, out: &mut Vec<PathBuf>, dirs: &mut Vec<PathBuf>) {
        self.walk_dir(&self.base, 1, out, &mut Some(dirs));
    }

    fn walk_dir(
        &self,
        dir: &Path,
        level: usize,
        out: &mut Vec<PathBuf>,
        dirs: &mut Option<&mut Vec<PathBuf>>,
    ) {
        let Ok(rd) = std::fs::read_dir(dir) else {
            return;
        };
        if let Some(d) = dirs.as_mut() {
            d.push(dir.to_path_buf());
        }
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let p = clean(&e.path());
            if ft.is_dir() {
                if self.depth.is_none_or(|d| level < d) {
                    self.walk_dir(&p, level + 1, out, dirs);
                }
            } else if (ft.is_file() || (ft.is_symlink() && p.is_file())) && self.matches(&p) {
                out.push(p);
            }
        }
    }
}

/// Drops `./` prefixes so relative globs match what `read_dir` returns.
fn clean(p: &Path) -> PathBuf {
    p.strip_prefix("./")
        .map(Path::to_path_buf)
        .unwrap_or_else(|_| p.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(g: &str, p: &str) -> bool {
        Glob::new(g).unwrap().matches(Path::new(p))
    }

    #[test]
    fn matching() {
        assert!(m("/var/log/*.log", "/var/log/a.log"));
        assert!(!m("/var/log/*.log", "/var/log/x/a.log"));
        assert!(!m("/var/log/*.log", "/var/log/a.log.1"));
        assert!(m("/var/log/**/*.log", "/var/log/a.log"));
        assert!(m("/var/log/**/*.log", "/var/log/x/y/a.log"));
        assert!(m("/l/{a,b}.log", "/l/b.log"));
        assert!(!m("/l/{a,b}.log", "/l/c.log"));
        assert!(m("/l/[0-9].log", "/l/7.log"));
        assert!(m("/l/[!0-9].log", "/l/x.log"));
        assert!(m("/l/?.log", "/l/x.log"));
        assert!(m("/l/a+b.log", "/l/a+b.log"));
        assert!(Glob::new("/l/[a.log").is_err());
        assert!(Glob::new("/l/{a.log").is_err());
    }

    #[test]
    fn walks_from_the_literal_prefix() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        std::fs::create_dir_all(root.join("ns_pod_uid/c")).unwrap();
        std::fs::write(root.join("ns_pod_uid/c/0.log"), "x").unwrap();
        std::fs::write(root.join("ns_pod_uid/c/0.log.gz"), "x").unwrap();
        let g = Glob::new(&format!("{}/*/*/*.log", root.display())).unwrap();
        let mut out = vec![];
        g.walk(&mut out);
        assert_eq!(out, vec![root.join("ns_pod_uid/c/0.log")]);
        let g = Glob::new(&format!("{}/**/*.gz", root.display())).unwrap();
        let mut out = vec![];
        g.walk(&mut out);
        assert_eq!(out, vec![root.join("ns_pod_uid/c/0.log.gz")]);
    }
}
