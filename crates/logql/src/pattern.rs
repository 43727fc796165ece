//! LogQL pattern expressions (`<ip> - <_> [<ts>]`): parsing and Loki's matcher, shared by
//! the query engine's `| pattern` stage and the agent's `pattern` stage.

/// One piece of a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    /// Literal text.
    Lit(String),
    /// `<name>`, or `<_>` (None).
    Cap(Option<String>),
}

/// A parsed pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    parts: Vec<Part>,
    names: Vec<String>,
}

/// Loki's pattern lexer: `<name>` (name = `[A-Za-z_][A-Za-z0-9_]*`) is a capture, all
/// else literal text.
pub fn parts(p: &str) -> Vec<Part> {
    let mut out: Vec<Part> = Vec::new();
    let mut rest = p;
    while !rest.is_empty() {
        if let Some(after) = rest.strip_prefix('<') {
            let len = after
                .find(|c: char| !(c == '_' || c.is_ascii_alphanumeric()))
                .unwrap_or(after.len());
            let name = &after[..len];
            let valid_start = name
                .chars()
                .next()
                .is_some_and(|c| c == '_' || c.is_ascii_alphabetic());
            if valid_start && after[len..].starts_with('>') {
                out.push(Part::Cap((name != "_").then(|| name.to_string())));
                rest = &after[len + 1..];
                continue;
            }
        }
        let step = rest.chars().next().map_or(1, char::len_utf8);
        match out.last_mut() {
            Some(Part::Lit(l)) => l.push_str(&rest[..step]),
            _ => out.push(Part::Lit(rest[..step].to_string())),
        }
        rest = &rest[step..];
    }
    out
}

impl Pattern {
    /// Parses and validates like Loki: ≥1 named capture, no two adjacent captures, unique
    /// names. Errors read like Loki's (`found consecutive capture '<a><b>'`).
    pub fn new(p: &str) -> Result<Pattern, String> {
        let parts = parts(p);
        let names: Vec<String> = parts
            .iter()
            .filter_map(|part| match part {
                Part::Cap(Some(n)) => Some(n.clone()),
                _ => None,
            })
            .collect();
        if names.is_empty() {
            return Err("at least one capture is required".into());
        }
        for w in parts.windows(2) {
            if let [Part::Cap(a), Part::Cap(b)] = w {
                let n = |c: &Option<String>| c.clone().unwrap_or_else(|| "_".into());
                return Err(format!(
                    "found consecutive capture '<{}><{}>': invalid expression",
                    n(a),
                    n(b)
                ));
            }
        }
        for (i, n) in names.iter().enumerate() {
            if names[..i].contains(n) {
                return Err(format!("duplicate capture name ({n}): invalid expression"));
            }
        }
        Ok(Pattern { parts, names })
    }

    /// Named captures in order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Loki's `Matches`: a leading literal must start the input; each capture runs to the
    /// next literal. If a literal is missing, the capture before it takes the rest and
    /// matching stops, so fewer values than names can come back (the first ones). Empty
    /// input or a wrong start gives none.
    pub fn matches<'a>(&self, input: &'a str) -> Vec<&'a str> {
        let mut caps = Vec::new();
        if input.is_empty() {
            return caps;
        }
        let mut parts = self.parts.as_slice();
        let mut rest = input;
        if let Some(Part::Lit(l)) = parts.first() {
            match rest.strip_prefix(l.as_str()) {
                Some(r) => rest = r,
                None => return caps,
            }
            parts = &parts[1..];
        }
        while let Some(Part::Cap(name)) = parts.first() {
            let Some(Part::Lit(l)) = parts.get(1) else {
                // Ends on a capture.
                if name.is_some() {
                    caps.push(rest);
                }
                break;
            };
            parts = &parts[2..];
            match rest.find(l.as_str()) {
                Some(i) => {
                    if name.is_some() {
                        caps.push(&rest[..i]);
                    }
                    rest = &rest[i + l.len()..];
                }
                None => {
                    if name.is_some() {
                        caps.push(rest);
                    }
                    break;
                }
            }
        }
        caps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_like_loki() {
        let p = Pattern::new(r#"<ip> - <user> [<_>] "<method> <path> <_>" <status>"#).unwrap();
        assert_eq!(p.names(), ["ip", "user", "method", "path", "status"]);
        assert_eq!(
            p.matches(r#"1.2.3.4 - - [01/Jan] "GET /x HTTP/1.1" 200 12"#),
            ["1.2.3.4", "-", "GET", "/x", "200 12"]
        );
        // A missing literal: the capture takes the rest, later ones are absent.
        assert_eq!(
            p.matches("1.2.3.4 - bob no bracket"),
            ["1.2.3.4", "bob no bracket"]
        );
        let p = Pattern::new("level=<lvl> ").unwrap();
        assert!(p.matches("msg=x level=info ").is_empty());
        assert_eq!(p.matches("level=info rest"), ["info"]);
        assert!(p.matches("").is_empty());
        // `<1a>` and `<a-b>` are literal text.
        let p = Pattern::new("<1a> <b-c> <é> <x>").unwrap();
        assert_eq!(p.names(), ["x"]);
        assert_eq!(p.matches("<1a> <b-c> <é> 9"), ["9"]);
    }

    #[test]
    fn validation() {
        assert!(Pattern::new("<a><b>").unwrap_err().contains("consecutive"));
        assert!(Pattern::new("<a> <a>").unwrap_err().contains("duplicate"));
        assert!(Pattern::new("<_> plain").is_err());
        assert!(Pattern::new("plain").is_err());
    }
}
