//! The subset of Go `text/template` that Loki's `line_format` and `label_format` use:
//! fields, pipelines, `if`/`else if`/`else`/`with`, literals, trim markers, and Loki's
//! and Sprig's function list. Missing fields render as empty strings (missingkey=zero).

use regex::Regex;
use silt_gotime::{self as gotime, GoTime, Location};
use std::collections::HashMap;

/// A template value.
#[derive(Clone, Debug, PartialEq)]
pub enum V {
    /// String.
    S(String),
    /// Integer.
    I(i64),
    /// Float.
    F(f64),
    /// Boolean.
    B(bool),
    /// A time (`__timestamp__`, `now`, `toDate`, `unixToTime`).
    T(GoTime),
    /// No value.
    Nil,
}

impl V {
    fn truthy(&self) -> bool {
        match self {
            V::S(s) => !s.is_empty(),
            V::I(i) => *i != 0,
            V::F(f) => *f != 0.0,
            V::B(b) => *b,
            V::T(_) => true,
            V::Nil => false,
        }
    }

    /// Printed form.
    pub fn text(&self) -> String {
        match self {
            V::S(s) => s.clone(),
            V::I(i) => i.to_string(),
            V::F(f) => format!("{f}"),
            V::B(b) => b.to_string(),
            V::T(t) => t.go_string(),
            V::Nil => String::new(),
        }
    }

    fn as_i64(&self) -> i64 {
        match self {
            V::S(s) => s
                .trim()
                .parse::<i64>()
                .ok()
                .or_else(|| s.trim().parse::<f64>().ok().map(|f| f as i64))
                .unwrap_or(0),
            V::I(i) => *i,
            V::F(f) => *f as i64,
            V::B(b) => *b as i64,
            V::T(t) => t.secs,
            V::Nil => 0,
        }
    }

    fn as_f64(&self) -> f64 {
        match self {
            V::S(s) => s.trim().parse().unwrap_or(0.0),
            V::I(i) => *i as f64,
            V::F(f) => *f,
            V::B(b) => *b as i64 as f64,
            V::T(t) => t.secs as f64,
            V::Nil => 0.0,
        }
    }
}

#[derive(Debug, Clone)]
enum Arg {
    Field(String),
    Dot,
    Lit(V),
    Func(String),
    Sub(Pipeline),
}

type Command = Vec<Arg>;
type Pipeline = Vec<Command>;

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Print(Pipeline),
    If(Vec<(Pipeline, Vec<Node>)>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    /// Source uses no action: render is the text itself.
    literal: Option<String>,
}

/// What a template can read.
pub struct Ctx<'a> {
    /// Labels by name.
    pub labels: &'a HashMap<String, String>,
    /// The current line (`__line__`).
    pub line: &'a str,
    /// The entry time in ns (`__timestamp__`).
    pub ts: i64,
}

enum Tok {
    Text(String),
    Action(String),
}

fn split(src: &str) -> Result<Vec<Tok>, String> {
    let mut out = Vec::new();
    let mut rest = src;
    while let Some(i) = rest.find("{{") {
        let mut text = rest[..i].to_string();
        let after = &rest[i + 2..];
        let (trim_left, after) = match after.strip_prefix("- ") {
            Some(a) => (true, a),
            None => (false, after),
        };
        if trim_left {
            text = text.trim_end().to_string();
        }
        if !text.is_empty() {
            out.push(Tok::Text(text));
        }
        let end = find_close(after).ok_or("unclosed action")?;
        let mut inner = &after[..end];
        let mut next = &after[end + 2..];
        if let Some(s) = inner.strip_suffix(" -") {
            inner = s;
            next = next.trim_start();
        }
        out.push(Tok::Action(inner.trim().to_string()));
        rest = next;
    }
    if !rest.is_empty() {
        out.push(Tok::Text(rest.to_string()));
    }
    Ok(out)
}

/// Position of `}}` outside string literals.
fn find_close(s: &str) -> Option<usize> {
    let b = s.as_bytes();
    let mut i = 0;
    while i + 1 < b.len() {
        match b[i] {
            b'"' => {
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'`' => {
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
            }
            b'}' if b[i + 1] == b'}' => return Some(i),
            _ => {}
        }
        i += 1;
    }
    None
}

fn words(s: &str) -> Result<Vec<String>, String> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b' ' | b'\t' | b'\n' => i += 1,
            b'|' => {
                out.push("|".into());
                i += 1;
            }
            b'"' => {
                let st = i;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                if i >= b.len() {
                    return Err("unterminated quoted string".into());
                }
                i += 1;
                out.push(s[st..i].to_string());
            }
            b'`' => {
                let st = i;
                i += 1;
                while i < b.len() && b[i] != b'`' {
                    i += 1;
                }
                if i >= b.len() {
                    return Err("unterminated raw string".into());
                }
                i += 1;
                out.push(s[st..i].to_string());
            }
            b'(' => {
                let st = i;
                let mut depth = 0;
                while i < b.len() {
                    match b[i] {
                        b'(' => depth += 1,
                        b')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        b'"' => {
                            i += 1;
                            while i < b.len() && b[i] != b'"' {
                                i += 1;
                            }
                        }
                        _ => {}
                    }
                    i += 1;
                }
                if i >= b.len() {
                    return Err("unclosed parenthesis".into());
                }
                i += 1;
                out.push(s[st..i].to_string());
            }
            b')' => return Err("unexpected right paren".into()),
            _ => {
                let st = i;
                while i < b.len() && !matches!(b[i], b' ' | b'\t' | b'\n' | b'|' | b'(' | b')') {
                    i += 1;
                }
                out.push(s[st..i].to_string());
            }
        }
    }
    Ok(out)
}

fn parse_pipeline(s: &str) -> Result<Pipeline, String> {
    let mut cmds = Vec::new();
    let mut cur: Command = Vec::new();
    for (idx, w) in words(s)?.into_iter().enumerate() {
        if w == "|" {
            if cur.is_empty() {
                return Err("missing command in pipeline".into());
            }
            cmds.push(std::mem::take(&mut cur));
            continue;
        }
        let _ = idx;
        cur.push(parse_arg(&w)?);
    }
    if cur.is_empty() {
        return Err("empty pipeline".into());
    }
    cmds.push(cur);
    Ok(cmds)
}

fn parse_arg(w: &str) -> Result<Arg, String> {
    if w == "." {
        return Ok(Arg::Dot);
    }
    if let Some(f) = w.strip_prefix('.') {
        return Ok(Arg::Field(f.to_string()));
    }
    if w.starts_with('"') {
        return unquote(w).map(|s| Arg::Lit(V::S(s)));
    }
    if let Some(r) = w.strip_prefix('`').and_then(|r| r.strip_suffix('`')) {
        return Ok(Arg::Lit(V::S(r.to_string())));
    }
    if let Some(inner) = w.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        return parse_pipeline(inner).map(Arg::Sub);
    }
    match w {
        "true" => return Ok(Arg::Lit(V::B(true))),
        "false" => return Ok(Arg::Lit(V::B(false))),
        "nil" => return Ok(Arg::Lit(V::Nil)),
        _ => {}
    }
    if let Ok(i) = w.parse::<i64>() {
        return Ok(Arg::Lit(V::I(i)));
    }
    if let Ok(f) = w.parse::<f64>() {
        return Ok(Arg::Lit(V::F(f)));
    }
    if w.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') && !w.is_empty() {
        if !is_function(w) {
            return Err(format!("function {w:?} not defined"));
        }
        return Ok(Arg::Func(w.to_string()));
    }
    Err(format!("unexpected {w:?} in template"))
}

fn unquote(w: &str) -> Result<String, String> {
    let inner = w
        .strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .ok_or("bad string")?;
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('"') => out.push('"'),
            Some('\\') => out.push('\\'),
            Some(o) => {
                out.push('\\');
                out.push(o);
            }
            None => return Err("bad escape".into()),
        }
    }
    Ok(out)
}

impl Template {
    /// Parses a template; errors are the user's (HTTP 400).
    pub fn parse(src: &str) -> Result<Template, String> {
        let toks = split(src)?;
        if toks.iter().all(|t| matches!(t, Tok::Text(_))) {
            return Ok(Template {
                nodes: Vec::new(),
                literal: Some(src.to_string()),
            });
        }
        let mut it = toks.into_iter().peekable();
        let (nodes, end) = parse_nodes(&mut it)?;
        if end.is_some() {
            return Err(format!("unexpected {{{{{}}}}}", end.unwrap_or_default()));
        }
        Ok(Template {
            nodes,
            literal: None,
        })
    }

    /// Every label the template can read (`.name` fields), for parser hints.
    pub fn fields(&self, out: &mut Vec<String>) {
        fn pipeline(p: &Pipeline, out: &mut Vec<String>) {
            for arg in p.iter().flatten() {
                match arg {
                    Arg::Field(f) => out.push(f.clone()),
                    Arg::Sub(p) => pipeline(p, out),
                    Arg::Dot | Arg::Lit(_) | Arg::Func(_) => {}
                }
            }
        }
        fn nodes(ns: &[Node], out: &mut Vec<String>) {
            for n in ns {
                match n {
                    Node::Text(_) => {}
                    Node::Print(p) => pipeline(p, out),
                    Node::If(branches, otherwise) => {
                        for (cond, body) in branches {
                            pipeline(cond, out);
                            nodes(body, out);
                        }
                        nodes(otherwise, out);
                    }
                    Node::With(p, body, otherwise) => {
                        pipeline(p, out);
                        nodes(body, out);
                        nodes(otherwise, out);
                    }
                }
            }
        }
        nodes(&self.nodes, out);
    }

    /// Renders; execution errors are returned (the caller sets `TemplateFormatErr`).
    pub fn render(&self, ctx: &Ctx<'_>) -> Result<String, String> {
        if let Some(l) = &self.literal {
            return Ok(l.clone());
        }
        let mut out = String::new();
        render_nodes(&self.nodes, ctx, &mut out)?;
        Ok(out)
    }
}

/// Parses nodes until `end`/`else…`; returns them and the terminating keyword action.
fn parse_nodes(
    it: &mut std::iter::Peekable<std::vec::IntoIter<Tok>>,
) -> Result<(Vec<Node>, Option<String>), String> {
    let mut nodes = Vec::new();
    while let Some(t) = it.next() {
        match t {
            Tok::Text(s) => nodes.push(Node::Text(s)),
            Tok::Action(a) => {
                if a.starts_with("/*") {
                    continue;
                }
                if a == "end" || a == "else" || a.starts_with("else ") {
                    return Ok((nodes, Some(a)));
                }
                if let Some(cond) = a.strip_prefix("if ") {
                    let mut branches = vec![(parse_pipeline(cond)?, Vec::new())];
                    let mut otherwise = Vec::new();
                    loop {
                        let (body, end) = parse_nodes(it)?;
                        let end = end.ok_or("missing {{end}}")?;
                        if let Some(b) = branches.last_mut() {
                            if b.1.is_empty() {
                                b.1 = body;
                            } else {
                                otherwise = body;
                            }
                        }
                        if end == "end" {
                            break;
                        } else if let Some(c) = end.strip_prefix("else if ") {
                            branches.push((parse_pipeline(c)?, Vec::new()));
                        } else if end == "else" {
                            let (body, end2) = parse_nodes(it)?;
                            if end2.as_deref() != Some("end") {
                                return Err("missing {{end}}".into());
                            }
                            otherwise = body;
                            break;
                        } else {
                            return Err(format!("unexpected {{{{{end}}}}}"));
                        }
                    }
                    nodes.push(Node::If(branches, otherwise));
                } else if let Some(p) = a.strip_prefix("with ") {
                    let (body, end) = parse_nodes(it)?;
                    let mut otherwise = Vec::new();
                    match end.as_deref() {
                        Some("end") => {}
                        Some("else") => {
                            let (b, e2) = parse_nodes(it)?;
                            if e2.as_deref() != Some("end") {
                                return Err("missing {{end}}".into());
                            }
                            otherwise = b;
                        }
                        _ => return Err("missing {{end}}".into()),
                    }
                    nodes.push(Node::With(parse_pipeline(p)?, body, otherwise));
                } else if a.starts_with("range ")
                    || a.starts_with("define ")
                    || a.starts_with("template ")
                    || a.starts_with("block ")
                {
                    return Err(format!("{{{{{a}}}}} is not supported in LogQL templates"));
                } else {
                    nodes.push(Node::Print(parse_pipeline(&a)?));
                }
            }
        }
    }
    Ok((nodes, None))
}

fn render_nodes(nodes: &[Node], ctx: &Ctx<'_>, out: &mut String) -> Result<(), String> {
    for n in nodes {
        match n {
            Node::Text(s) => out.push_str(s),
            Node::Print(p) => out.push_str(&eval_pipeline(p, ctx)?.text()),
            Node::If(branches, otherwise) => {
                let mut done = false;
                for (cond, body) in branches {
                    if eval_pipeline(cond, ctx)?.truthy() {
                        render_nodes(body, ctx, out)?;
                        done = true;
                        break;
                    }
                }
                if !done {
                    render_nodes(otherwise, ctx, out)?;
                }
            }
            Node::With(p, body, otherwise) => {
                if eval_pipeline(p, ctx)?.truthy() {
                    render_nodes(body, ctx, out)?;
                } else {
                    render_nodes(otherwise, ctx, out)?;
                }
            }
        }
    }
    Ok(())
}

fn eval_arg(a: &Arg, ctx: &Ctx<'_>) -> Result<V, String> {
    Ok(match a {
        Arg::Field(f) => V::S(ctx.labels.get(f.as_str()).cloned().unwrap_or_default()),
        Arg::Dot => V::Nil,
        Arg::Lit(v) => v.clone(),
        Arg::Func(name) => call(name, &[], ctx)?,
        Arg::Sub(p) => eval_pipeline(p, ctx)?,
    })
}

fn eval_pipeline(p: &Pipeline, ctx: &Ctx<'_>) -> Result<V, String> {
    let mut prev: Option<V> = None;
    for cmd in p {
        let v = match &cmd[0] {
            Arg::Func(name) => {
                let mut args = Vec::with_capacity(cmd.len());
                for a in &cmd[1..] {
                    args.push(eval_arg(a, ctx)?);
                }
                if let Some(p) = prev.take() {
                    args.push(p);
                }
                call(name, &args, ctx)?
            }
            other => {
                if cmd.len() > 1 || prev.is_some() {
                    return Err("can't give argument to non-function".into());
                }
                eval_arg(other, ctx)?
            }
        };
        prev = Some(v);
    }
    Ok(prev.unwrap_or(V::Nil))
}

const FUNCTIONS: &[&str] = &[
    "and",
    "or",
    "not",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "len",
    "print",
    "printf",
    "println",
    "html",
    "js",
    "urlquery",
    "index",
    "slice",
    "__line__",
    "__timestamp__",
    "ToLower",
    "ToUpper",
    "Replace",
    "Trim",
    "TrimLeft",
    "TrimRight",
    "TrimPrefix",
    "TrimSuffix",
    "TrimSpace",
    "regexReplaceAll",
    "regexReplaceAllLiteral",
    "count",
    "urldecode",
    "urlencode",
    "bytes",
    "duration",
    "duration_seconds",
    "unixEpochMillis",
    "unixEpochNanos",
    "unixToTime",
    "alignLeft",
    "alignRight",
    "b64enc",
    "b64dec",
    "lower",
    "upper",
    "title",
    "trunc",
    "substr",
    "contains",
    "hasPrefix",
    "hasSuffix",
    "indent",
    "nindent",
    "replace",
    "repeat",
    "trim",
    "trimAll",
    "trimSuffix",
    "trimPrefix",
    "int",
    "float64",
    "add",
    "sub",
    "mul",
    "div",
    "mod",
    "addf",
    "subf",
    "mulf",
    "divf",
    "max",
    "min",
    "maxf",
    "minf",
    "ceil",
    "floor",
    "round",
    "default",
    "unixEpoch",
    "now",
    "fromJson",
    "toDateInZone",
    "date",
    "toDate",
];

fn is_function(name: &str) -> bool {
    FUNCTIONS.contains(&name)
}

fn s(args: &[V], i: usize) -> String {
    args.get(i).map(V::text).unwrap_or_default()
}

fn need(args: &[V], n: usize, name: &str) -> Result<(), String> {
    if args.len() < n {
        return Err(format!(
            "wrong number of args for {name}: want {n} got {}",
            args.len()
        ));
    }
    Ok(())
}

fn compare(a: &V, b: &V) -> std::cmp::Ordering {
    match (a, b) {
        (V::S(x), V::S(y)) => x.cmp(y),
        _ => a.as_f64().total_cmp(&b.as_f64()),
    }
}

fn call(name: &str, args: &[V], ctx: &Ctx<'_>) -> Result<V, String> {
    use std::cmp::Ordering::*;
    let b = |x: bool| Ok(V::B(x));
    match name {
        "__line__" => Ok(V::S(ctx.line.to_string())),
        "__timestamp__" => Ok(V::T(GoTime::from_unix_nanos(ctx.ts))),
        "eq" => {
            need(args, 2, name)?;
            b(args[1..].iter().any(|x| compare(&args[0], x) == Equal))
        }
        "ne" => {
            need(args, 2, name)?;
            b(compare(&args[0], &args[1]) != Equal)
        }
        "lt" => {
            need(args, 2, name)?;
            b(compare(&args[0], &args[1]) == Less)
        }
        "le" => {
            need(args, 2, name)?;
            b(compare(&args[0], &args[1]) != Greater)
        }
        "gt" => {
            need(args, 2, name)?;
            b(compare(&args[0], &args[1]) == Greater)
        }
        "ge" => {
            need(args, 2, name)?;
            b(compare(&args[0], &args[1]) != Less)
        }
        "and" => Ok(args
            .iter()
            .find(|a| !a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(V::Nil)),
        "or" => Ok(args
            .iter()
            .find(|a| a.truthy())
            .or(args.last())
            .cloned()
            .unwrap_or(V::Nil)),
        "not" => b(!args.first().is_some_and(V::truthy)),
        "len" | "count" if name == "len" => Ok(V::I(s(args, 0).chars().count() as i64)),
        "count" => {
            need(args, 2, name)?;
            let re = Regex::new(&s(args, 0)).map_err(|e| e.to_string())?;
            Ok(V::I(re.find_iter(&s(args, 1)).count() as i64))
        }
        "print" => Ok(V::S(args.iter().map(V::text).collect::<Vec<_>>().join(""))),
        "println" => Ok(V::S(
            args.iter().map(V::text).collect::<Vec<_>>().join(" ") + "\n",
        )),
        "printf" => printf(&s(args, 0), &args[1.min(args.len())..]).map(V::S),
        "ToLower" | "lower" => Ok(V::S(s(args, 0).to_lowercase())),
        "ToUpper" | "upper" => Ok(V::S(s(args, 0).to_uppercase())),
        "title" => Ok(V::S(
            s(args, 0)
                .split(' ')
                .map(|w| {
                    let mut c = w.chars();
                    c.next()
                        .map(|f| f.to_uppercase().collect::<String>() + c.as_str())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" "),
        )),
        "Replace" => {
            need(args, 4, name)?;
            let n = args[3].as_i64();
            let src = s(args, 0);
            Ok(V::S(if n < 0 {
                src.replace(&s(args, 1), &s(args, 2))
            } else {
                src.replacen(&s(args, 1), &s(args, 2), n as usize)
            }))
        }
        "replace" => {
            need(args, 3, name)?;
            Ok(V::S(s(args, 2).replace(&s(args, 0), &s(args, 1))))
        }
        "Trim" => Ok(V::S(
            s(args, 0)
                .trim_matches(|c| s(args, 1).contains(c))
                .to_string(),
        )),
        "TrimLeft" => Ok(V::S(
            s(args, 0)
                .trim_start_matches(|c| s(args, 1).contains(c))
                .to_string(),
        )),
        "TrimRight" => Ok(V::S(
            s(args, 0)
                .trim_end_matches(|c| s(args, 1).contains(c))
                .to_string(),
        )),
        "TrimPrefix" => Ok(V::S(
            s(args, 0)
                .strip_prefix(s(args, 1).as_str())
                .map(str::to_string)
                .unwrap_or_else(|| s(args, 0)),
        )),
        "TrimSuffix" => Ok(V::S(
            s(args, 0)
                .strip_suffix(s(args, 1).as_str())
                .map(str::to_string)
                .unwrap_or_else(|| s(args, 0)),
        )),
        "trimPrefix" => Ok(V::S(
            s(args, 1)
                .strip_prefix(s(args, 0).as_str())
                .map(str::to_string)
                .unwrap_or_else(|| s(args, 1)),
        )),
        "trimSuffix" => Ok(V::S(
            s(args, 1)
                .strip_suffix(s(args, 0).as_str())
                .map(str::to_string)
                .unwrap_or_else(|| s(args, 1)),
        )),
        "TrimSpace" | "trim" => Ok(V::S(s(args, 0).trim().to_string())),
        "trimAll" => Ok(V::S(
            s(args, 1)
                .trim_matches(|c| s(args, 0).contains(c))
                .to_string(),
        )),
        "regexReplaceAll" | "regexReplaceAllLiteral" => {
            need(args, 3, name)?;
            let re = Regex::new(&s(args, 0)).map_err(|e| e.to_string())?;
            let (src, repl) = (s(args, 1), s(args, 2));
            Ok(V::S(if name == "regexReplaceAll" {
                re.replace_all(&src, repl.as_str()).into_owned()
            } else {
                re.replace_all(&src, regex::NoExpand(&repl)).into_owned()
            }))
        }
        "contains" => b(s(args, 1).contains(&s(args, 0))),
        "hasPrefix" => b(s(args, 1).starts_with(&s(args, 0))),
        "hasSuffix" => b(s(args, 1).ends_with(&s(args, 0))),
        "repeat" => Ok(V::S(
            s(args, 1).repeat(args.first().map(V::as_i64).unwrap_or(0).max(0) as usize),
        )),
        "trunc" => {
            need(args, 2, name)?;
            let n = args[0].as_i64();
            let src: Vec<char> = s(args, 1).chars().collect();
            let out: String = if n >= 0 {
                src.iter().take(n as usize).collect()
            } else {
                src[src.len().saturating_sub((-n) as usize)..]
                    .iter()
                    .collect()
            };
            Ok(V::S(out))
        }
        "substr" => {
            need(args, 3, name)?;
            let src: Vec<char> = s(args, 2).chars().collect();
            let (a, e) = (args[0].as_i64().max(0) as usize, args[1].as_i64());
            let e = if e < 0 || e as usize > src.len() {
                src.len()
            } else {
                e as usize
            };
            Ok(V::S(if a >= e {
                String::new()
            } else {
                src[a..e].iter().collect()
            }))
        }
        "indent" | "nindent" => {
            let pad = " ".repeat(args.first().map(V::as_i64).unwrap_or(0).max(0) as usize);
            let body = s(args, 1)
                .lines()
                .map(|l| format!("{pad}{l}"))
                .collect::<Vec<_>>()
                .join("\n");
            Ok(V::S(if name == "nindent" {
                format!("\n{body}")
            } else {
                body
            }))
        }
        "default" => Ok(if args.len() >= 2 && args[1].truthy() {
            args[1].clone()
        } else {
            args.first().cloned().unwrap_or(V::Nil)
        }),
        "int" => Ok(V::I(args.first().map(V::as_i64).unwrap_or(0))),
        "float64" => Ok(V::F(args.first().map(V::as_f64).unwrap_or(0.0))),
        "add" => Ok(V::I(
            args.iter().map(V::as_i64).fold(0i64, i64::wrapping_add),
        )),
        "mul" => Ok(V::I(
            args.iter().map(V::as_i64).fold(1i64, i64::wrapping_mul),
        )),
        "sub" => Ok(V::I(
            args.first()
                .map(V::as_i64)
                .unwrap_or(0)
                .wrapping_sub(args.get(1).map(V::as_i64).unwrap_or(0)),
        )),
        "div" | "mod" => {
            let (a, c) = (
                args.first().map(V::as_i64).unwrap_or(0),
                args.get(1).map(V::as_i64).unwrap_or(0),
            );
            if c == 0 {
                return Err("integer divide by zero".into());
            }
            Ok(V::I(if name == "div" { a / c } else { a % c }))
        }
        "addf" => Ok(V::F(args.iter().map(V::as_f64).sum())),
        "mulf" => Ok(V::F(args.iter().map(V::as_f64).product())),
        "subf" => Ok(V::F(
            args.first().map(V::as_f64).unwrap_or(0.0)
                - args.iter().skip(1).map(V::as_f64).sum::<f64>(),
        )),
        "divf" => {
            Ok(V::F(args.iter().skip(1).map(V::as_f64).fold(
                args.first().map(V::as_f64).unwrap_or(0.0),
                |a, c| a / c,
            )))
        }
        "max" => Ok(V::I(args.iter().map(V::as_i64).max().unwrap_or(0))),
        "min" => Ok(V::I(args.iter().map(V::as_i64).min().unwrap_or(0))),
        "maxf" => Ok(V::F(
            args.iter().map(V::as_f64).fold(f64::NEG_INFINITY, f64::max),
        )),
        "minf" => Ok(V::F(
            args.iter().map(V::as_f64).fold(f64::INFINITY, f64::min),
        )),
        "ceil" => Ok(V::F(args.first().map(V::as_f64).unwrap_or(0.0).ceil())),
        "floor" => Ok(V::F(args.first().map(V::as_f64).unwrap_or(0.0).floor())),
        "round" => {
            let p = 10f64.powi(args.get(1).map(V::as_i64).unwrap_or(0) as i32);
            Ok(V::F(
                (args.first().map(V::as_f64).unwrap_or(0.0) * p).round() / p,
            ))
        }
        "bytes" => Ok(super::filters::parse_bytes(&s(args, 0))
            .map(|b| V::F(b as f64))
            .unwrap_or(V::F(0.0))),
        "duration" | "duration_seconds" => Ok(V::F(
            super::filters::parse_go_duration(&s(args, 0)).unwrap_or(0.0),
        )),
        "unixEpoch" => Ok(V::S(time_arg(args, name)?.secs.to_string())),
        "unixEpochMillis" => Ok(V::I(time_arg(args, name)?.unix_nanos() / 1_000_000)),
        "unixEpochNanos" => Ok(V::I(time_arg(args, name)?.unix_nanos())),
        "now" => Ok(V::T(GoTime::from_unix_nanos(now_nanos()))),
        "date" => {
            need(args, 2, name)?;
            // Sprig: a time, or Unix seconds as an integer; anything else means now.
            // Sprig shows the time in the server's zone (UTC).
            let t = match &args[1] {
                V::T(t) => t.in_utc(),
                V::I(secs) => GoTime::from_unix_nanos(secs.saturating_mul(1_000_000_000)),
                _ => GoTime::from_unix_nanos(now_nanos()),
            };
            Ok(V::S(gotime::format(&t, &s(args, 0))))
        }
        "toDate" => {
            need(args, 2, name)?;
            Ok(V::T(
                gotime::parse(&s(args, 0), &s(args, 1), &Location::utc(), 0)
                    .unwrap_or_else(|_| GoTime::zero()),
            ))
        }
        "toDateInZone" => {
            need(args, 3, name)?;
            // Sprig falls back to UTC for a zone it cannot load.
            let loc = Location::load(&s(args, 1)).unwrap_or_else(Location::utc);
            Ok(V::T(
                gotime::parse(&s(args, 0), &s(args, 2), &loc, 0).unwrap_or_else(|_| GoTime::zero()),
            ))
        }
        "unixToTime" => {
            need(args, 1, name)?;
            let epoch = s(args, 0);
            let bad = || format!("unable to parse time '{epoch}'");
            let n: i64 = epoch.parse().map_err(|_| bad())?;
            // The digit count says the unit: days, seconds, ms, µs or ns.
            let ns = match epoch.len() {
                5 => n.checked_mul(86_400 * 1_000_000_000),
                10 => n.checked_mul(1_000_000_000),
                13 => n.checked_mul(1_000_000),
                16 => n.checked_mul(1_000),
                19 => Some(n),
                _ => None,
            };
            Ok(V::T(GoTime::from_unix_nanos(ns.ok_or_else(bad)?)))
        }
        "urlencode" | "urlquery" => Ok(V::S(url_encode(&s(args, 0)))),
        "urldecode" => Ok(V::S(url_decode(&s(args, 0)))),
        "alignLeft" => {
            let n = args.first().map(V::as_i64).unwrap_or(0).max(0) as usize;
            let src: String = s(args, 1).chars().take(n).collect();
            Ok(V::S(format!("{src:<n$}")))
        }
        "alignRight" => {
            let n = args.first().map(V::as_i64).unwrap_or(0).max(0) as usize;
            let src: Vec<char> = s(args, 1).chars().collect();
            let cut: String = src[src.len().saturating_sub(n)..].iter().collect();
            Ok(V::S(format!("{cut:>n$}")))
        }
        "html" | "js" => Ok(V::S(
            s(args, 0)
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;"),
        )),
        other => Err(format!("function {other:?} is not supported yet")),
    }
}

fn time_arg<'a>(args: &'a [V], name: &str) -> Result<&'a GoTime, String> {
    match args.first() {
        Some(V::T(t)) => Ok(t),
        Some(other) => Err(format!(
            "wrong type for value in {name}; expected time.Time; got {:?}",
            other.text()
        )),
        None => Err(format!("wrong number of args for {name}: want 1 got 0")),
    }
}

fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn url_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => {
                match u8::from_str_radix(std::str::from_utf8(&b[i + 1..i + 3]).unwrap_or("zz"), 16)
                {
                    Ok(v) => {
                        out.push(v);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Go `fmt.Sprintf` for the common verbs.
fn printf(fmt: &str, args: &[V]) -> Result<String, String> {
    let mut out = String::new();
    let mut it = fmt.chars().peekable();
    let mut ai = 0;
    while let Some(c) = it.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = String::new();
        while let Some(&n) = it.peek() {
            if n.is_ascii_digit() || n == '.' || n == '-' || n == '+' || n == ' ' || n == '0' {
                spec.push(n);
                it.next();
            } else {
                break;
            }
        }
        let Some(verb) = it.next() else { break };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args.get(ai).cloned().unwrap_or(V::Nil);
        ai += 1;
        let prec = spec
            .split_once('.')
            .and_then(|(_, p)| p.parse::<usize>().ok());
        let head = spec.split('.').next().unwrap_or("");
        let flags: String = head
            .chars()
            .take_while(|c| matches!(c, '-' | '+' | ' ' | '0'))
            .collect();
        let width = head[flags.len()..].parse::<usize>().unwrap_or(0);
        let zero = flags.contains('0') && !flags.contains('-');
        let body = match verb {
            's' | 'v' => arg.text(),
            'q' => format!("{:?}", arg.text()),
            'd' => arg.as_i64().to_string(),
            'f' | 'F' => format!("{:.*}", prec.unwrap_or(6), arg.as_f64()),
            'e' => format!("{:.*e}", prec.unwrap_or(6), arg.as_f64()),
            'g' => format!("{}", arg.as_f64()),
            'x' => match arg {
                V::S(s) => s.bytes().map(|b| format!("{b:02x}")).collect(),
                other => format!("{:x}", other.as_i64()),
            },
            't' => arg.truthy().to_string(),
            other => return Err(format!("unsupported printf verb %{other}")),
        };
        if flags.contains('-') {
            out.push_str(&format!("{body:<width$}"));
        } else if zero {
            let (sign, digits) = match body.strip_prefix('-') {
                Some(d) => ("-", d.to_string()),
                None => ("", body.clone()),
            };
            out.push_str(&format!(
                "{sign}{digits:0>w$}",
                w = width.saturating_sub(sign.len())
            ));
        } else {
            out.push_str(&format!("{body:>width$}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(t: &str, labels: &[(&str, &str)]) -> String {
        let m: HashMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Template::parse(t)
            .unwrap()
            .render(&Ctx {
                labels: &m,
                line: "the line",
                ts: 1_700_000_000_123_000_000,
            })
            .unwrap()
    }

    #[test]
    fn fields_pipes_and_conditions() {
        assert_eq!(
            render("{{.msg | ToUpper}} {{.missing}}", &[("msg", "hi")]),
            "HI "
        );
        assert_eq!(
            render(
                r#"{{ if eq .level "error" }}ERR{{ else }}ok{{ end }} {{ .caller | trunc 8 }}"#,
                &[("level", "warn"), ("caller", "ingester.go:315")]
            ),
            "ok ingester"
        );
        assert_eq!(
            render(
                r#"{{ if eq .level "error" }}E{{ else if eq .level "warn" }}W{{ end }}"#,
                &[("level", "warn")]
            ),
            "W"
        );
        assert_eq!(
            render(
                r#"{{ .key | regexReplaceAll ":.*" "" }}"#,
                &[("key", "key:1")]
            ),
            ""
        );
        assert_eq!(
            render(
                r#"{{ regexReplaceAll ":.*" .key "" }}"#,
                &[("key", "key:1")]
            ),
            "key"
        );
        assert_eq!(
            render(
                "{{ __line__ }} {{ printf \"%05.1f|%-3s|\" .n .s }}",
                &[("n", "3.14159"), ("s", "a")]
            ),
            "the line 003.1|a  |"
        );
        assert_eq!(render("{{- .a -}} x", &[("a", "1")]), "1x");
        assert_eq!(render("{{ add 1 .n | mul 2 }}", &[("n", "4")]), "10");
        assert_eq!(render("{{ .a | default \"none\" }}", &[]), "none");
        assert_eq!(render("plain", &[]), "plain");
    }

    #[test]
    fn time_functions() {
        // ts = 2023-11-14T22:13:20.123Z
        assert_eq!(
            render("{{ __timestamp__ }}", &[]),
            "2023-11-14 22:13:20.123 +0000 UTC"
        );
        assert_eq!(
            render(
                r#"{{ __timestamp__ | date "2006-01-02T15:04:05.000Z07:00" }}"#,
                &[]
            ),
            "2023-11-14T22:13:20.123Z"
        );
        assert_eq!(
            render(
                "{{ __timestamp__ | unixEpoch }} {{ __timestamp__ | unixEpochMillis }}",
                &[]
            ),
            "1700000000 1700000000123"
        );
        assert_eq!(
            render(
                r#"{{ toDate "02/Jan/2006:15:04:05 -0700" .t | unixEpoch }}"#,
                &[("t", "01/Jan/2024:02:00:00 +0200")]
            ),
            "1704067200"
        );
        assert_eq!(
            render(
                r#"{{ toDateInZone "2006-01-02 15:04" "+01:00" .t | date "15:04 MST" }}"#,
                &[("t", "2024-01-01 10:00")]
            ),
            "09:00 UTC"
        );
        // IANA zones with DST (Go prints the time in its zone).
        assert_eq!(
            render(
                r#"{{ toDateInZone "2006-01-02 15:04" "Europe/Berlin" .t }}|{{ toDateInZone "2006-01-02 15:04" "Europe/Berlin" .w | unixEpoch }}"#,
                &[("t", "2024-07-01 10:00"), ("w", "2024-01-01 10:00")]
            ),
            "2024-07-01 10:00:00 +0200 CEST|1704099600"
        );
        assert_eq!(
            render(
                r#"{{ .a | unixToTime | date "2006-01-02 15:04" }}|{{ .b | unixToTime | unixEpochNanos }}"#,
                &[("a", "1704067200"), ("b", "1704067200123")]
            ),
            "2024-01-01 00:00|1704067200123000000"
        );
        assert_eq!(
            render(r#"{{ toDate "2006" "nope" }}"#, &[]),
            "0001-01-01 00:00:00 +0000 UTC"
        );
        assert_eq!(render(r#"{{ date "2006" 86400 }}"#, &[]), "1970");
        let year: i64 = render(r#"{{ now | date "2006" }}"#, &[]).parse().unwrap();
        assert!(year >= 2024);
    }

    #[test]
    fn errors() {
        assert!(Template::parse("{{ .a ").is_err());
        assert!(Template::parse("{{ nosuchfunc .a }}").is_err());
        assert!(Template::parse("{{ if .a }}x").is_err());
        // found by fuzz/: a stray ')' once looped forever
        assert!(Template::parse("{{.net)}} {{ (.a)) }}").is_err());
        let m = HashMap::new();
        let t = Template::parse("{{ div 1 0 }}").unwrap();
        assert!(t
            .render(&Ctx {
                labels: &m,
                line: "",
                ts: 0
            })
            .is_err());
    }
}
