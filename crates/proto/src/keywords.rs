//! Loki's keyword heuristics for a line's level (`detectLevelFromLogLine`): the first of
//! `trace, debug, fatal, critical, error, err, warning, warn, info` whose first occurrence
//! in the lower-cased line is a whole word. Run on every pushed line without a level
//! field, so ASCII lines take one pass over their bytes instead of nine searches.

/// Go's `isWordBoundary` on a byte (a byte ≥ 0x80 is taken as the Latin-1 rune of that value).
fn is_word_boundary(s: &[u8], pos: Option<usize>) -> bool {
    let Some(&b) = pos.and_then(|p| s.get(p)) else {
        return true;
    };
    let c = char::from(b);
    !(c.is_alphabetic() || c.is_ascii_digit() || c == '_')
}

/// Whether the first occurrence of `word` in `log` stands alone (Loki's `logHasBoundedLevel`).
fn has_bounded_word(log: &str, word: &str) -> bool {
    match log.find(word) {
        Some(pos) => {
            let b = log.as_bytes();
            is_word_boundary(b, pos.checked_sub(1)) && is_word_boundary(b, Some(pos + word.len()))
        }
        None => false,
    }
}

/// Go's `strings.ToLower` (simple per-rune case mapping).
fn go_to_lower(s: &str) -> std::borrow::Cow<'_, str> {
    if s.bytes().all(|b| !b.is_ascii_uppercase() && b < 0x80) {
        return s.into();
    }
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c == '\u{130}' {
            out.push('i');
        } else {
            let mut l = c.to_lowercase();
            match (l.next(), l.next()) {
                (Some(x), None) => out.push(x),
                _ => out.push(c),
            }
        }
    }
    out.into()
}

/// Keyword heuristics on a line with no usable level field (Loki's `detectLevelFromLogLine`):
/// the first of `trace, debug, fatal, critical, error, err, warning, warn, info` whose first
/// occurrence in the lower-cased line is a whole word, else `unknown`.
pub fn detect_level_from_keywords(line: &str) -> &'static str {
    if line.is_ascii() {
        ascii(line.as_bytes())
    } else {
        searched(line)
    }
}

/// The general path: one search per keyword in the lower-cased line.
fn searched(line: &str) -> &'static str {
    let lower = go_to_lower(line);
    KEYWORDS
        .iter()
        .find(|(w, _)| has_bounded_word(&lower, w))
        .map_or("unknown", |(_, l)| l)
}

/// The keywords in priority order, with the level each gives.
const KEYWORDS: [(&str, &str); 9] = [
    ("trace", "trace"),
    ("debug", "debug"),
    ("fatal", "fatal"),
    ("critical", "critical"),
    ("error", "error"),
    ("err", "error"),
    ("warning", "warn"),
    ("warn", "warn"),
    ("info", "info"),
];

/// [`detect_level_from_keywords`] of an ASCII line: the first occurrence of every keyword
/// in one pass (a keyword can only start at its first letter), then the priority order.
fn ascii(b: &[u8]) -> &'static str {
    let mut first = [usize::MAX; KEYWORDS.len()];
    let mut missing = KEYWORDS.len();
    for i in 0..b.len() {
        let ks: &[usize] = match b[i].to_ascii_lowercase() {
            b't' => &[0],
            b'd' => &[1],
            b'f' => &[2],
            b'c' => &[3],
            b'e' => &[4, 5],
            b'w' => &[6, 7],
            b'i' => &[8],
            _ => continue,
        };
        for &k in ks {
            let word = KEYWORDS[k].0.as_bytes();
            if first[k] == usize::MAX
                && b.get(i..i + word.len())
                    .is_some_and(|w| w.eq_ignore_ascii_case(word))
            {
                first[k] = i;
                missing -= 1;
            }
        }
        if missing == 0 {
            break;
        }
    }
    KEYWORDS
        .iter()
        .zip(first)
        .find(|((word, _), pos)| {
            *pos != usize::MAX
                && is_word_boundary(b, pos.checked_sub(1))
                && is_word_boundary(b, Some(pos + word.len()))
        })
        .map_or("unknown", |((_, level), _)| level)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The one-pass path answers what the nine searches answer, on lines mixing the
    /// keywords, their prefixes and longer words, in any case, with any separators.
    #[test]
    fn one_pass_matches_the_searches() {
        let words = [
            "trace",
            "Debug",
            "FATAL",
            "critical",
            "error",
            "err",
            "errors",
            "warning",
            "WARN",
            "warned",
            "info",
            "information",
            "tracer",
            "x",
            "ok",
            "_err",
            "err_",
            "9info",
            "in",
            "deb",
            "ERR:",
            "[warn]",
            "e",
            "w",
        ];
        let seps = [" ", "", "-", "=", "_", "\t", ":", "1"];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut levels = std::collections::BTreeSet::new();
        for _ in 0..20_000 {
            let mut line = String::new();
            for _ in 0..next(6) + 1 {
                line.push_str(seps[next(seps.len())]);
                line.push_str(words[next(words.len())]);
            }
            let slow = searched(&line);
            assert_eq!(ascii(line.as_bytes()), slow, "{line:?}");
            levels.insert(slow);
        }
        assert_eq!(levels.len(), 8, "{levels:?}");
        // Non-ASCII lines take the general path.
        assert_eq!(detect_level_from_keywords("Ünïcode ERROR here"), "error");
        // Go reads the byte before a keyword as Latin-1: 0xA9 (of é) is no letter, 0xAA (of ê) is.
        assert_eq!(detect_level_from_keywords("éinfo"), "info");
        assert_eq!(detect_level_from_keywords("êinfo"), "unknown");
    }
}
