//! The functions templates can call: Loki's and Sprig's list, `printf`, time and URL helpers.

use super::{Ctx, V};
use regex::Regex;
use silt_gotime::{self as gotime, GoTime, Location};

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

pub(super) fn is_function(name: &str) -> bool {
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

pub(super) fn call(name: &str, args: &[V], ctx: &Ctx<'_>) -> Result<V, String> {
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
        "bytes" => Ok(crate::logpipe::filters::parse_bytes(&s(args, 0))
            .map(|b| V::F(b as f64))
            .unwrap_or(V::F(0.0))),
        "duration" | "duration_seconds" => Ok(V::F(
            crate::logpipe::filters::parse_go_duration(&s(args, 0)).unwrap_or(0.0),
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
