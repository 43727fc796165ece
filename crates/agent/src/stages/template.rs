//! A Go text/template subset for `template` and `replace`: `{{ .Value }}`, `{{ .Entry }}`,
//! `{{ .key }}` (extracted), string literals, pipelines (`{{ .x | ToUpper }}`) and the
//! functions ToUpper, ToLower, TrimSpace, Trim, TrimPrefix, TrimSuffix, Replace,
//! regexReplaceAll, regexReplaceAllLiteral, default. `{{-`/`-}}` trim whitespace.

use super::MapStage;
use crate::Record;
use regex::Regex;
use serde::Deserialize;

#[derive(Debug, Clone)]
enum Arg {
    Field(String),
    Str(String),
    Num(i64),
}

#[derive(Debug, Clone)]
struct Cmd {
    func: Option<String>,
    args: Vec<Arg>,
}

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Action(Vec<Cmd>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template(Vec<Part>);

const FUNCS: &[&str] = &[
    "ToUpper",
    "ToLower",
    "TrimSpace",
    "Trim",
    "TrimPrefix",
    "TrimSuffix",
    "Replace",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "default",
];

fn tokens(s: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut it = s.chars().peekable();
    while let Some(&c) = it.peek() {
        if c.is_whitespace() {
            it.next();
        } else if c == '"' || c == '`' {
            it.next();
            let mut t = String::from("\"");
            loop {
                match it.next() {
                    None => return Err(format!("unterminated string in {s:?}")),
                    Some(q) if q == c => break,
                    Some('\\') if c == '"' => match it.next() {
                        Some('n') => t.push('\n'),
                        Some('t') => t.push('\t'),
                        Some(x) => t.push(x),
                        None => return Err("bad escape".into()),
                    },
                    Some(x) => t.push(x),
                }
            }
            out.push(t);
        } else if c == '|' {
            it.next();
            out.push("|".into());
        } else {
            let mut t = String::new();
            while let Some(&x) = it.peek() {
                if x.is_whitespace() || x == '|' {
                    break;
                }
                t.push(x);
                it.next();
            }
            out.push(t);
        }
    }
    Ok(out)
}

impl Template {
    /// Parses `src`; unknown functions and unbalanced braces are errors.
    pub fn parse(src: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut rest = src;
        while let Some(i) = rest.find("{{") {
            let mut text = rest[..i].to_string();
            let after = &rest[i + 2..];
            let end = after
                .find("}}")
                .ok_or_else(|| format!("unclosed {{{{ in {src:?}"))?;
            let mut inner = &after[..end];
            if let Some(x) = inner.strip_prefix('-') {
                inner = x;
                text = text.trim_end().to_string();
            }
            let mut trim_next = false;
            if let Some(x) = inner.strip_suffix('-') {
                inner = x;
                trim_next = true;
            }
            parts.push(Part::Text(text));
            let mut cmds = Vec::new();
            for seg in tokens(inner)?.split(|t| t == "|") {
                let mut args = Vec::new();
                let mut func = None;
                for (k, t) in seg.iter().enumerate() {
                    if let Some(s) = t.strip_prefix('"') {
                        args.push(Arg::Str(s.to_string()));
                    } else if let Some(f) = t.strip_prefix('.') {
                        args.push(Arg::Field(f.to_string()));
                    } else if let Ok(n) = t.parse() {
                        args.push(Arg::Num(n));
                    } else if k == 0 && FUNCS.contains(&t.as_str()) {
                        func = Some(t.clone());
                    } else {
                        return Err(format!("unsupported template token {t:?}"));
                    }
                }
                if func.is_none() && args.len() != 1 {
                    return Err(format!("bad template action {inner:?}"));
                }
                cmds.push(Cmd { func, args });
            }
            parts.push(Part::Action(cmds));
            rest = &after[end + 2..];
            if trim_next {
                rest = rest.trim_start();
            }
        }
        parts.push(Part::Text(rest.to_string()));
        Ok(Template(parts))
    }

    /// Renders with `.Value` = `value`, `.Entry` = the line, `.x` = extracted `x`.
    pub fn render(&self, rec: &Record, value: &str) -> String {
        let mut out = String::new();
        for p in &self.0 {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Action(cmds) => {
                    let mut piped: Option<String> = None;
                    for c in cmds {
                        let mut args: Vec<String> = c
                            .args
                            .iter()
                            .map(|a| match a {
                                Arg::Str(s) => s.clone(),
                                Arg::Num(n) => n.to_string(),
                                Arg::Field(f) if f == "Value" => value.to_string(),
                                Arg::Field(f) if f == "Entry" => rec.entry.line.clone(),
                                Arg::Field(f) => rec.extracted.get(f).cloned().unwrap_or_default(),
                            })
                            .collect();
                        if let Some(p) = piped.take() {
                            args.push(p);
                        }
                        piped = Some(match &c.func {
                            None => args.pop().unwrap_or_default(),
                            Some(f) => call(f, &args),
                        });
                    }
                    out.push_str(&piped.unwrap_or_default());
                }
            }
        }
        out
    }
}

fn call(f: &str, a: &[String]) -> String {
    let arg = |i: usize| a.get(i).map(String::as_str).unwrap_or("");
    match f {
        "ToUpper" => arg(0).to_uppercase(),
        "ToLower" => arg(0).to_lowercase(),
        "TrimSpace" => arg(0).trim().to_string(),
        "Trim" => arg(0).trim_matches(|c| arg(1).contains(c)).to_string(),
        "TrimPrefix" => arg(0).strip_prefix(arg(1)).unwrap_or(arg(0)).to_string(),
        "TrimSuffix" => arg(0).strip_suffix(arg(1)).unwrap_or(arg(0)).to_string(),
        "Replace" => {
            let n: i64 = arg(3).parse().unwrap_or(-1);
            if n < 0 {
                arg(0).replace(arg(1), arg(2))
            } else {
                arg(0).replacen(arg(1), arg(2), n as usize)
            }
        }
        "regexReplaceAll" | "regexReplaceAllLiteral" => match Regex::new(arg(0)) {
            Ok(re) if f == "regexReplaceAll" => re.replace_all(arg(1), arg(2)).into_owned(),
            Ok(re) => re.replace_all(arg(1), regex::NoExpand(arg(2))).into_owned(),
            Err(_) => arg(1).to_string(),
        },
        // `default "x" .v` → .v if non-empty else "x".
        "default" => {
            if arg(1).is_empty() {
                arg(0).to_string()
            } else {
                arg(1).to_string()
            }
        }
        _ => String::new(),
    }
}

/// `template` options.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TemplateConfig {
    /// Extracted key read as `.Value` and overwritten (created when missing).
    pub source: String,
    pub template: String,
}

pub struct TemplateStage {
    source: String,
    tpl: Template,
}

impl TemplateStage {
    pub fn new(c: &TemplateConfig) -> Result<TemplateStage, String> {
        Ok(TemplateStage {
            source: c.source.clone(),
            tpl: Template::parse(&c.template)?,
        })
    }
}

impl MapStage for TemplateStage {
    fn apply(&mut self, rec: &mut Record) -> bool {
        let v = rec.extracted.get(&self.source).cloned().unwrap_or_default();
        let r = self.tpl.render(rec, &v);
        rec.extracted.insert(self.source.clone(), r);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::*;

    #[test]
    fn renders() {
        let mut r = rec("the line");
        r.extracted.insert("lvl".into(), " Warn ".into());
        let t = |s: &str| Template::parse(s).unwrap().render(&r, "val");
        assert_eq!(t("{{ .Value }}-{{ .Entry }}"), "val-the line");
        assert_eq!(t("{{ .lvl | TrimSpace | ToUpper }}"), "WARN");
        assert_eq!(t("{{ ToLower .lvl }}"), " warn ");
        assert_eq!(t(r#"{{ Replace .Entry "the" "a" -1 }}"#), "a line");
        assert_eq!(
            t(r#"{{ regexReplaceAll "l(i)ne" .Entry "L${1}" }}"#),
            "the Li"
        );
        assert_eq!(t(r#"{{ .missing | default "none" }}"#), "none");
        assert_eq!(t("a {{- .Value -}} b"), "avalb");
        assert!(Template::parse("{{ .x").is_err());
        assert!(Template::parse("{{ nosuchfunc .x }}").is_err());
    }

    #[test]
    fn template_stage_creates_key() {
        let r = one(
            "[{template: {source: new, template: '{{ .Entry | ToUpper }}'}}]",
            "abc",
        );
        assert_eq!(r.extracted["new"], "ABC");
    }
}
