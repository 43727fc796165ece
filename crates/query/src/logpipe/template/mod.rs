//! The subset of Go `text/template` that Loki's `line_format` and `label_format` use:
//! fields, pipelines, `if`/`else if`/`else`/`with`, literals, trim markers, and Loki's
//! and Sprig's function list. Missing fields render as empty strings (missingkey=zero).

use silt_gotime::GoTime;
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

mod funcs;
#[cfg(test)]
mod tests;

use funcs::{call, is_function};
