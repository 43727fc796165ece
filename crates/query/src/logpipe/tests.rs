use super::*;
use silt_logql::ast::{Expr, MetricExpr};
use silt_model::Labels;
use std::sync::Arc;

fn pipeline(q: &str) -> Pipeline {
    match silt_logql::parse(q).unwrap() {
        Expr::Log(l) => Pipeline::new(&l.pipeline).unwrap(),
        _ => panic!("not a log query"),
    }
}

fn run(q: &str, line: &str) -> Option<(String, Labels)> {
    let labels = EntryLabels::new(
        Arc::new(Labels::from_pairs([("app", "x"), ("level", "stream")])),
        Labels::from_pairs([("trace_id", "t1")]),
    );
    pipeline(q)
        .process(7, line, labels)
        .map(|(l, lb)| (l, lb.flatten()))
}

#[test]
fn json_label_filter_and_keep() {
    let line = r#"{"method":"GET","status":503,"duration_ms":454}"#;
    let (_, l) = run(
        r#"{app="x"} | json | status >= 500 | keep method, status"#,
        line,
    )
    .unwrap();
    assert_eq!(
        l,
        Labels::from_pairs([("method", "GET"), ("status", "503")])
    );
    assert!(run(r#"{app="x"} | json | status >= 500"#, r#"{"status":200}"#).is_none());
    // A parse error keeps the line for numeric filters; only string matchers can drop it.
    let (_, l) = run(r#"{app="x"} | json | status >= 500"#, "not json").unwrap();
    assert_eq!(l.get("__error__"), Some("JSONParserErr"));
    assert!(run(r#"{app="x"} | json | __error__="""#, "not json").is_none());
}

#[test]
fn logfmt_duration_and_line_format() {
    let line = r#"level=info msg="Request completed" duration=632ms"#;
    assert!(run(r#"{app="x"} | logfmt | duration > 1s"#, line).is_none());
    let (out, l) = run(
        r#"{app="x"} | logfmt | duration < 1s | line_format "{{.msg | ToUpper}} {{.nope}}""#,
        line,
    )
    .unwrap();
    assert_eq!(out, "REQUEST COMPLETED ");
    assert_eq!(l.get("level_extracted"), Some("info"));
}

#[test]
fn label_format_rename_and_drop() {
    let (_, l) = run(
        r#"{app="x"} | logfmt | label_format component=caller | drop trace_id"#,
        "caller=a.go:1",
    )
    .unwrap();
    assert_eq!(l.get("component"), Some("a.go:1"));
    assert!(l.get("caller").is_none());
    assert!(l.get("trace_id").is_none());
}

#[test]
fn filters_on_formatted_line() {
    assert!(run(r#"{app="x"} | line_format "changed" |= "changed""#, "orig").is_some());
    assert!(run(r#"{app="x"} |= "a" or "zz" != "b""#, "xa").is_some());
    assert!(run(r#"{app="x"} |~ "(?i)TIME""#, "timeout").is_some());
    let (out, _) = run(r#"{app="x"} | decolorize"#, "\u{1b}[31mred\u{1b}[0m").unwrap();
    assert_eq!(out, "red");
}

#[test]
fn unwrap_extraction() {
    let Expr::Metric(MetricExpr::Range(r)) =
        silt_logql::parse(r#"sum_over_time({app="x"} | logfmt | unwrap bytes(size) [1m])"#)
            .unwrap()
    else {
        panic!()
    };
    let ex = SampleExtractor::new(&r).unwrap();
    let labels = || EntryLabels::new(Arc::new(Labels::from_pairs([("app", "x")])), Labels::new());
    let (series, v) = ex.extract(1, "size=5KiB", labels()).unwrap();
    let series = series.flatten();
    assert_eq!((series.get("size"), v), (None, 5120.0));
    assert!(ex.extract(1, "other=1", labels()).is_none());
    let (series, _) = ex.extract(1, "size=lots", labels()).unwrap();
    let series = series.flatten();
    assert_eq!(series.get("__error__"), Some("SampleExtractionErr"));
}

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    const QUERIES: &[&str] = &[
        r#"{a="b"} | json | x > 1 | line_format "{{.x | trunc 3}} {{ __line__ | ToUpper }}""#,
        r#"{a="b"} | logfmt --strict | label_format y=`{{ .k | regexReplaceAll "é+" "" }}`"#,
        r#"{a="b"} | logfmt --keep-empty k, v="z" | drop k | keep v"#,
        r#"{a="b"} | pattern "<a> é <b> [<_>]" | a=~"x.*""#,
        r#"{a="b"} | regexp "(?P<w>\\w+)é(?P<n>\\d*)" | n >= 3 or w="é""#,
        r#"{a="b"} | unpack | decolorize |> "<_>é<_>" !> "x<_>""#,
        r#"{a="b"} | json p="a.b[0]", q="c[\"d\"]" | p = ip("10.0.0.0/8") | duration > 1s | size > 1KB"#,
    ];

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn pipelines_never_panic(line in "(\\PC|[\\\\\"=é{}<>\\[\\] ]){0,80}") {
            for q in QUERIES {
                let _ = run(q, &line);
            }
        }
        /// Lines made of JSON's own tokens reach deep into the json scanner.
        #[test]
        fn json_scanner_never_panics(parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "{", "}", "[", "]", "\"", ":", ",", " ", "\\", "\\u12", "\\n", "a", "1",
                "-", ".", "e", "true", "tru", "null", "\"k\":", "é", "\u{FFFD}",
            ]),
            0..40,
        )) {
            let line: String = parts.concat();
            for q in QUERIES {
                let _ = run(q, &line);
            }
        }
    }
}

#[test]
fn run_stream_keeps_passing_rows_in_order() {
    let stream = Arc::new(Labels::from_pairs([("app", "x")]));
    let entries: Vec<Entry> = ["x err", "y err", "x ok", "x err 2"]
        .iter()
        .enumerate()
        .map(|(i, l)| Entry {
            ts: i as i64,
            line: l.to_string(),
            metadata: Labels::new(),
        })
        .collect();
    let rows = pipeline(r#"{app="x"} |= "x" | line_format "{{__line__}}!" |~ "err""#)
        .run_stream(&stream, &entries);
    let got: Vec<(i64, &str)> = rows.iter().map(|r| (r.ts, r.line.as_str())).collect();
    assert_eq!(got, [(0, "x err!"), (3, "x err 2!")]);
    assert_eq!(rows[0].labels.stream, stream);
}

/// Hinted parsers set only the wanted labels (and still every error); the engine tests
/// compare whole answers with and without hints.
#[test]
fn hints_limit_parsed_labels() {
    let hints = Some(Hints::new(vec!["level".into(), "user_id".into()]));
    let hinted = |q: &str, line: &str| {
        let labels = EntryLabels::new(
            Arc::new(Labels::from_pairs([("app", "x")])),
            Labels::from_pairs([("trace_id", "t1")]),
        );
        pipeline(q)
            .with_hints(hints.clone())
            .process(7, line, labels)
            .map(|(_, l)| l.parsed)
            .unwrap()
    };
    let json = r#"{"level":"error","msg":"m","user":{"id":7,"name":"n"},"trace_id":"t2"}"#;
    assert_eq!(
        hinted(r#"{app="x"} | json"#, json),
        Labels::from_pairs([("level", "error"), ("user_id", "7")])
    );
    let broken = r#"{"level":"error","msg":"m" "x":1}"#;
    assert_eq!(
        hinted(r#"{app="x"} | json"#, broken),
        Labels::from_pairs([
            ("level", "error"),
            ("__error__", "JSONParserErr"),
            (
                "__error_details__",
                "Value looks like object, but can't find closing '}' symbol"
            )
        ])
    );
    assert_eq!(
        hinted(
            r#"{app="x"} | logfmt"#,
            "level=info msg=x __error__=y user_id=3"
        ),
        Labels::from_pairs([("level", "info"), ("__error__", "y"), ("user_id", "3")])
    );
}

/// Over lines made of JSON or logfmt tokens, a hinted parser sets exactly the wanted
/// labels an unhinted one sets, and the same errors.
mod hinted_vs_plain {
    use super::*;
    use proptest::prelude::*;

    fn same(q: &str, line: &str) -> std::result::Result<(), TestCaseError> {
        let wanted = ["k", "a_b", "app_extracted", "x"];
        let hints = Hints::new(wanted.iter().map(|s| s.to_string()).collect());
        let labels = || {
            EntryLabels::new(
                Arc::new(Labels::from_pairs([("app", "s")])),
                Labels::from_pairs([("x", "m")]),
            )
        };
        let p = pipeline(q);
        let plain = p.process(1, line, labels()).map(|(_, l)| l.parsed);
        let p = p.with_hints(Some(hints));
        let hinted = p.process(1, line, labels()).map(|(_, l)| l.parsed);
        let keep = |l: Labels| {
            Labels::from_pairs(l.iter().filter(|(k, _)| {
                wanted.contains(k) || *k == "__error__" || *k == "__error_details__"
            }))
        };
        prop_assert_eq!(plain.map(keep), hinted.map(keep), "{} on {:?}", q, line);
        Ok(())
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn json(parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "{", "}", "\"k\":", "\"a\":", "\"b\":", "\"app\":", "\"x\":", "\"__error__\":",
                "\"a b\":", "\"v\"", "\"w\\\"\"", "1", "true", "tru", ",", " ", "[", "]", ":",
            ]),
            0..30,
        )) {
            same(r#"{app="s"} | json"#, &parts.concat())?;
        }

        #[test]
        fn logfmt(parts in proptest::collection::vec(
            proptest::sample::select(vec![
                "k=", "a-b=", "a_b=", "app=", "x=", "__error__=", "v", "\"", " ", "=", "\\",
                "é", "\"q\\\"r\"",
            ]),
            0..30,
        )) {
            let line = parts.concat();
            same(r#"{app="s"} | logfmt"#, &line)?;
            same(r#"{app="s"} | logfmt --strict"#, &line)?;
        }
    }
}
