//! Parse-time validation of `regexp` and `pattern` stages (Loki rejects these at parse).

/// Prometheus legacy label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_valid_label_name(s: &str) -> bool {
    let mut cs = s.chars();
    cs.next()
        .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
        && cs.all(|c| c == '_' || c.is_ascii_alphanumeric())
}

/// `| regexp "re"`: must compile and have ≥1 valid, unique named group.
pub(crate) fn regexp_stage(re: &str) -> Result<(), String> {
    let compiled = regex::Regex::new(re).map_err(|e| format!("invalid regexp parser: {e}"))?;
    let mut seen: Vec<&str> = Vec::new();
    for name in compiled.capture_names().flatten() {
        if !is_valid_label_name(name) {
            return Err(format!(
                "invalid regexp parser: invalid extracted label name '{name}'"
            ));
        }
        if seen.contains(&name) {
            return Err(format!(
                "invalid regexp parser: duplicate extracted label name '{name}'"
            ));
        }
        seen.push(name);
    }
    if seen.is_empty() {
        return Err(
            "invalid regexp parser: at least one named capture must be supplied".to_string(),
        );
    }
    Ok(())
}

/// `| pattern "…"`: ≥1 named capture, no two adjacent captures, unique names.
pub(crate) fn pattern_stage(p: &str) -> Result<(), String> {
    crate::pattern::Pattern::new(p)
        .map(|_| ())
        .map_err(|e| format!("invalid pattern parser: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regexp_rules() {
        assert!(regexp_stage("(?P<a>\\d+)").is_ok());
        assert!(regexp_stage("(?<a>x)").is_ok());
        assert!(regexp_stage("(\\d+)").is_err());
        assert!(regexp_stage("(").is_err());
        assert!(regexp_stage("(?P<a>x)(?P<a>y)").is_err());
    }

    #[test]
    fn pattern_rules() {
        assert!(pattern_stage("<ip> - <_> [<ts>]").is_ok());
        assert!(pattern_stage("<_> foo").is_err());
        assert!(pattern_stage("<a><b>").is_err());
        assert!(pattern_stage("<a> <a>").is_err());
        assert!(pattern_stage("plain text").is_err());
        assert!(pattern_stage("<1a> <b>").is_ok());
    }
}
