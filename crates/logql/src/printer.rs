//! Single-line printing: `Display` (canonical, re-parses to the same AST) and
//! Loki's `String()` form (used by the pretty printer, not always re-parsable).

use std::fmt;

use silt_model::LabelMatcher;

use crate::ast::*;
use crate::lexer::{range_op_name, vector_op_name};
use crate::parser::binop_str;
use crate::units::{
    go_duration_string, go_float, go_float_f, go_quote, humanize_bytes, prom_duration_string,
    range_string,
};

/// Which single-line form to produce.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Style {
    /// Exact and re-parsable (`Display`).
    Canonical,
    /// Loki's `String()` (lossy in places, e.g. bytes are humanized).
    Loki,
}

pub(crate) fn expr(e: &Expr, s: Style) -> String {
    match e {
        Expr::Log(l) => log_expr(l, s),
        Expr::Metric(m) => metric(m, s),
    }
}

pub(crate) fn matcher(m: &LabelMatcher) -> String {
    format!("{}{}{}", m.name, m.op.as_str(), go_quote(&m.value))
}

pub(crate) fn selector(ms: &[LabelMatcher]) -> String {
    let inner: Vec<String> = ms.iter().map(matcher).collect();
    format!("{{{}}}", inner.join(", "))
}

pub(crate) fn log_expr(l: &LogExpr, s: Style) -> String {
    let mut out = selector(&l.selector);
    if !l.pipeline.is_empty() {
        out.push(' ');
        out.push_str(&stages(&l.pipeline, s));
    }
    out
}

pub(crate) fn stages(st: &[Stage], s: Style) -> String {
    st.iter().map(|x| stage(x, s)).collect::<Vec<_>>().join(" ")
}

pub(crate) fn line_filter_op(op: LineFilterOp) -> &'static str {
    match op {
        LineFilterOp::Contains => "|=",
        LineFilterOp::NotContains => "!=",
        LineFilterOp::Match => "|~",
        LineFilterOp::NotMatch => "!~",
        LineFilterOp::Pattern => "|>",
        LineFilterOp::NotPattern => "!>",
    }
}

pub(crate) fn line_filter_value(v: &LineFilterValue) -> String {
    match v {
        LineFilterValue::Str(x) => go_quote(x),
        LineFilterValue::Ip(x) => format!("ip({})", go_quote(x)),
    }
}

fn is_negative(op: LineFilterOp) -> bool {
    matches!(
        op,
        LineFilterOp::NotContains | LineFilterOp::NotMatch | LineFilterOp::NotPattern
    )
}

/// Loki rewrites `!= "a" or "b"` into `!= "a" != "b"`; canonical keeps the `or`.
pub(crate) fn line_filter(f: &LineFilter, s: Style) -> String {
    let op = line_filter_op(f.op);
    let vals: Vec<String> = f.values.iter().map(line_filter_value).collect();
    if s == Style::Loki && is_negative(f.op) {
        vals.iter()
            .map(|v| format!("{op} {v}"))
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        format!("{op} {}", vals.join(" or "))
    }
}

fn extraction(params: &[(String, String)]) -> String {
    params
        .iter()
        .map(|(l, e)| format!("{l}={}", go_quote(e)))
        .collect::<Vec<_>>()
        .join(",")
}

fn selections(sel: &[LabelSelection]) -> String {
    sel.iter()
        .map(|x| x.matcher.as_ref().map_or_else(|| x.name.clone(), matcher))
        .collect::<Vec<_>>()
        .join(",")
}

pub(crate) fn stage(st: &Stage, s: Style) -> String {
    match st {
        Stage::LineFilter(f) => line_filter(f, s),
        Stage::Json { params } if params.is_empty() => "| json".to_string(),
        Stage::Json { params } => format!("| json {}", extraction(params)),
        Stage::Logfmt {
            strict,
            keep_empty,
            params,
        } => {
            let mut out = "| logfmt".to_string();
            if *strict {
                out.push_str(" --strict");
            }
            if *keep_empty {
                out.push_str(" --keep-empty");
            }
            if !params.is_empty() {
                out.push(' ');
                out.push_str(&extraction(params));
            }
            out
        }
        Stage::Regexp(r) => format!("| regexp {}", go_quote(r)),
        Stage::Pattern(p) => format!("| pattern {}", go_quote(p)),
        Stage::Unpack => "| unpack".to_string(),
        Stage::LabelFilter(f) => format!("| {}", label_filter(f, s)),
        Stage::LineFormat(t) => format!("| line_format {}", go_quote(t)),
        Stage::LabelFormat(fs) => {
            let parts: Vec<String> = fs
                .iter()
                .map(|f| match f {
                    LabelFormat::Rename { dst, src } => format!("{dst}={src}"),
                    LabelFormat::Template { dst, template } => {
                        format!("{dst}={}", go_quote(template))
                    }
                })
                .collect();
            format!("| label_format {}", parts.join(","))
        }
        Stage::Drop(sel) => format!("| drop {}", selections(sel)),
        Stage::Keep(sel) => format!("| keep {}", selections(sel)),
        Stage::Decolorize => "| decolorize".to_string(),
    }
}

fn cmp_op(op: CmpOp) -> &'static str {
    match op {
        CmpOp::Eq => "==",
        CmpOp::Neq => "!=",
        CmpOp::Gt => ">",
        CmpOp::Gte => ">=",
        CmpOp::Lt => "<",
        CmpOp::Lte => "<=",
    }
}

pub(crate) fn label_filter(f: &LabelFilterExpr, s: Style) -> String {
    match f {
        LabelFilterExpr::And(l, r) => {
            format!("( {} , {} )", label_filter(l, s), label_filter(r, s))
        }
        LabelFilterExpr::Or(l, r) => {
            format!("( {} or {} )", label_filter(l, s), label_filter(r, s))
        }
        LabelFilterExpr::Matcher(m) => matcher(m),
        LabelFilterExpr::Number { name, op, value } => {
            // `-0` would lex as a duration; it equals `0` anyway.
            let v = if *value == 0.0 {
                "0".to_string()
            } else {
                go_float_f(*value)
            };
            format!("{name}{}{v}", cmp_op(*op))
        }
        LabelFilterExpr::Duration { name, op, value } => {
            format!(
                "{name}{}{}",
                cmp_op(*op),
                go_duration_string((value * 1e9).round() as i64)
            )
        }
        LabelFilterExpr::Bytes { name, op, value } => {
            let v = if s == Style::Loki {
                humanize_bytes(*value)
            } else {
                format!("{value}B")
            };
            format!("{name}{}{v}", cmp_op(*op))
        }
        LabelFilterExpr::Ip {
            name,
            negated,
            pattern,
        } => {
            format!(
                "{name}{}ip({})",
                if *negated { "!=" } else { "=" },
                go_quote(pattern)
            )
        }
    }
}

pub(crate) fn unwrap(u: &Unwrap, s: Style) -> String {
    let mut out = match u.conv {
        UnwrapConv::None => format!(" | unwrap {}", u.label),
        UnwrapConv::Duration => format!(" | unwrap duration({})", u.label),
        UnwrapConv::Bytes => format!(" | unwrap bytes({})", u.label),
    };
    for f in &u.post_filters {
        out.push_str(" | ");
        out.push_str(&label_filter(f, s));
    }
    out
}

/// `{…} | … | unwrap x[5m] offset 1h0m0s`
pub(crate) fn log_range(r: &RangeAggregation, s: Style) -> String {
    let mut out = log_expr(&r.log, s);
    if let Some(u) = &r.unwrap {
        out.push_str(&unwrap(u, s));
    }
    let range = if s == Style::Loki {
        prom_duration_string(r.range)
    } else {
        range_string(r.range)
    };
    out.push_str(&format!("[{range}]"));
    if r.offset != 0 {
        out.push_str(&format!(" offset {}", go_duration_string(r.offset)));
    }
    out
}

pub(crate) fn grouping(g: &Grouping) -> String {
    format!(
        " {} ({})",
        if g.without { "without" } else { "by" },
        g.labels.join(",")
    )
}

pub(crate) fn range_agg(r: &RangeAggregation, s: Style) -> String {
    let mut out = format!("{}(", range_op_name(r.op));
    if let Some(p) = r.param {
        out.push_str(&go_float_f(p));
        out.push(',');
    }
    out.push_str(&log_range(r, s));
    out.push(')');
    if let Some(g) = &r.grouping {
        out.push_str(&grouping(g));
    }
    out
}

pub(crate) fn vector_agg(v: &VectorAggregation, s: Style) -> String {
    let mut out = vector_op_name(v.op).to_string();
    if let Some(g) = &v.grouping {
        // Loki omits `by ()` (same meaning as no grouping).
        if s == Style::Canonical || g.without || !g.labels.is_empty() {
            out.push_str(&grouping(g));
        }
    }
    out.push('(');
    if let Some(k) = v.param {
        out.push_str(&format!("{k},"));
    }
    out.push_str(&metric(&v.expr, s));
    out.push(')');
    out
}

pub(crate) fn binary(b: &BinaryExpr, s: Style) -> String {
    let mut op = binop_str(b.op).to_string();
    if b.return_bool {
        op.push_str(" bool");
    }
    if let Some(m) = &b.matching {
        let (group, extra) = match &m.card {
            Cardinality::OneToOne => ("", &[][..]),
            Cardinality::ManyToOne(x) => ("group_left", &x[..]),
            Cardinality::OneToMany(x) => ("group_right", &x[..]),
        };
        let on = if m.on { "on" } else { "ignoring" };
        if s == Style::Canonical {
            op = format!("{op} {on} ({})", m.labels.join(","));
            if !group.is_empty() {
                // Always parenthesized so a `(`-starting rhs is not taken as the list.
                op = format!("{op} {group} ({})", extra.join(","));
            }
        } else if m.on || !m.labels.is_empty() {
            let group = if extra.is_empty() {
                group.to_string()
            } else {
                format!("{group} ({})", extra.join(","))
            };
            op = format!("{op} {on} ({}) {group}", m.labels.join(","));
        }
    }
    format!("({} {op} {})", metric(&b.lhs, s), metric(&b.rhs, s))
}

pub(crate) fn label_replace(l: &LabelReplace, s: Style) -> String {
    format!(
        "label_replace({},{},{},{},{})",
        metric(&l.expr, s),
        go_quote(&l.dst),
        go_quote(&l.replacement),
        go_quote(&l.src),
        go_quote(&l.regex)
    )
}

/// A number that re-parses to itself: Go's form, except where Loki's own text would not
/// parse ("-0" lexes as a duration, "NaN" and "+Inf" as identifiers).
fn literal(v: f64) -> String {
    if v.is_nan() {
        "(0 / 0)".into()
    } else if v.is_infinite() {
        if v > 0.0 { "1e999" } else { "-1e999" }.into()
    } else if v == 0.0 && v.is_sign_negative() {
        "-0.0".into()
    } else {
        go_float(v)
    }
}

pub(crate) fn metric(m: &MetricExpr, s: Style) -> String {
    match m {
        MetricExpr::Range(r) => range_agg(r, s),
        MetricExpr::Vector(v) => vector_agg(v, s),
        MetricExpr::Binary(b) => binary(b, s),
        MetricExpr::Literal(v) if s != Style::Loki => literal(*v),
        MetricExpr::Literal(v) => go_float(*v),
        MetricExpr::VectorLiteral(v) if s == Style::Loki => format!("vector({v:.6})"),
        MetricExpr::VectorLiteral(v) => format!("vector({})", literal(*v)),
        MetricExpr::LabelReplace(l) => label_replace(l, s),
    }
}

macro_rules! display {
    ($ty:ty, $f:expr) => {
        /// Canonical single-line LogQL; re-parses to an equal value.
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&$f(self, Style::Canonical))
            }
        }
    };
}

display!(Expr, expr);
display!(LogExpr, log_expr);
display!(Stage, stage);
display!(LineFilter, line_filter);
display!(LabelFilterExpr, label_filter);
display!(Unwrap, unwrap);
display!(MetricExpr, metric);
display!(RangeAggregation, range_agg);
display!(VectorAggregation, vector_agg);
display!(BinaryExpr, binary);
display!(LabelReplace, label_replace);

/// ` by (a,b)` / ` without (a)`
impl fmt::Display for Grouping {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&grouping(self))
    }
}
