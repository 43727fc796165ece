//! `json`, `json a="…"` and `unpack` against Loki: lines, errors, details and labels.
//! Cases marked (loki) come from pkg/logql/log/parser_test.go; the others follow
//! grafana/jsonparser's ObjectEach/EachKey/Unescape step by step.

use super::*;
use silt_logql::ast::Expr;
use silt_model::Labels;
use std::sync::Arc;

const OBJ: &str = "Value looks like object, but can't find closing '}' symbol";
const ARR: &str = "Value is array, but can't find closing ']' symbol";
const STR: &str = "Value is string, but can't find closing '\"' symbol";
const JSN: &str = "Malformed JSON error";
const UNK: &str = "Unknown value type";
const ESC: &str = "Encountered an invalid escape sequence in a string";

/// Runs `{app="x"} <stages>` on `line` (stream label app="x", metadata uuid="bar"):
/// the output line and the parsed labels as `k=v` joined by spaces, errors included.
fn run(stages: &str, line: &str) -> (String, String) {
    let Expr::Log(l) = silt_logql::parse(&format!("{{app=\"x\"}} {stages}")).unwrap() else {
        panic!("not a log query")
    };
    let labels = EntryLabels::new(
        Arc::new(Labels::from_pairs([("app", "x")])),
        Labels::from_pairs([("uuid", "bar")]),
    );
    let (out, lb) = Pipeline::new(&l.pipeline)
        .unwrap()
        .process(0, line, labels)
        .unwrap();
    // Extracted labels first, then the error labels.
    let mut parsed: Vec<(bool, String)> = lb
        .parsed
        .iter()
        .map(|(k, v)| (k.starts_with("__error"), format!("{k}={v}")))
        .collect();
    parsed.sort();
    let parsed: Vec<String> = parsed.into_iter().map(|(_, kv)| kv).collect();
    (out, parsed.join(" "))
}

fn err(details: &str) -> String {
    if details.is_empty() {
        "__error__=JSONParserErr".into()
    } else {
        format!("__error__=JSONParserErr __error_details__={details}")
    }
}

fn with(labels: &str, details: &str) -> String {
    format!("{labels} {}", err(details)).trim().to_string()
}

#[test]
fn json_all_fields() {
    let cases: &[(&str, String)] = &[
        // (loki) multi depth, numeric, escaped, error rune, arrays, bad keys.
        (
            r#"{"app":"foo","namespace":"prod","pod":{"uuid":"foo","deployment":{"ref":"foobar"}}}"#,
            "app_extracted=foo namespace=prod pod_deployment_ref=foobar pod_uuid=foo".into(),
        ),
        (
            r#"{"counter":1, "price": {"_net_":5.56909}}"#,
            "counter=1 price__net_=5.56909".into(),
        ),
        (
            r#"{"counter":1,"foo":"foo\\\"bar"}"#,
            r#"counter=1 foo=foo\"bar"#.into(),
        ),
        (
            "{\"counter\":1,\"foo\":\"\u{FFFD}\"}",
            "counter=1 foo= ".into(),
        ),
        (
            r#"{"counter":1, "price": {"net_":["10","20"]}}"#,
            "counter=1".into(),
        ),
        (r#"{"cou-nter":1}"#, "cou_nter=1".into()),
        (r#"{"foo":{"cou-nter":1}}""#, "foo_cou_nter=1".into()),
        (r#"{" ": {"foo":"bar"}}"#, "foo=bar".into()),
        (r#"{n}"#, err(OBJ)),
        (r#"{"pod":"pod_parsed"}"#, "pod=pod_parsed".into()),
        // Not an object at all.
        ("", err(OBJ)),
        ("   ", err(OBJ)),
        ("[1,2]", err(OBJ)),
        (r#""str""#, err(OBJ)),
        ("42", err(OBJ)),
        ("not json", err(OBJ)),
        // Truncated: labels before the end are kept.
        ("{", err(JSN)),
        ("{  ", err(JSN)),
        (r#"{"a":1"#, with("a=1", ARR)),
        (r#"{"a":"b""#, with("a=b", ARR)),
        (r#"{"a":1,"#, with("a=1", ARR)),
        (r#"{"a":{"b":1}"#, with("a_b=1", ARR)),
        (r#"{"x":"y","a":{"b":1,"c":2"#, with("x=y", OBJ)),
        (r#"{"a":"b"#, err(STR)),
        (r#"{"a"#, err(JSN)),
        (r#"{"a":"#, err(JSN)),
        (r#"{"a":[1,2}"#, err(ARR)),
        // Keys without values, missing colons and commas.
        (r#"{"a"}"#, err(JSN)),
        (r#"{"a" 1}"#, err(JSN)),
        (r#"{"a"::1}"#, err(UNK)),
        (r#"{"a":}"#, err(UNK)),
        (r#"{"a":,"b":1}"#, err(UNK)),
        (r#"{"a":1 "b":2}"#, with("a=1", OBJ)),
        (r#"{"a":1,,"b":2}"#, with("a=1", OBJ)),
        (r#"{a:1}"#, err(OBJ)),
        // Trailing commas: only `,}` is refused (jsonparser moves its mark by off-1).
        (r#"{"a":1,}"#, with("a=1", OBJ)),
        (r#"{"a":1, }"#, "a=1".into()),
        // Bad literals; numbers are not checked at all.
        (r#"{"a":tru}"#, err(UNK)),
        (r#"{"a":nul}"#, err(UNK)),
        (r#"{"a":truex}"#, err(UNK)),
        (r#"{"a":x}"#, err(UNK)),
        (
            r#"{"a":1.2.3,"b":-,"c":1abc,"d":01}"#,
            "a=1.2.3 b=- c=1abc d=01".into(),
        ),
        (r#"{"x":"y","a":{"b":tru}}"#, with("x=y", UNK)),
        // Text after the object is ignored; arrays are only bracket-matched.
        (r#"{"a":1} trailing"#, "a=1".into()),
        (r#"{"a":"b"}{"c":"d"}"#, "a=b".into()),
        (r#"{}garbage"#, String::new()),
        (r#"{"a":[1,2,}]}"#, String::new()),
        // Escapes: a bad one in a value gives "", in a key an error.
        (r#"{"a":"x\qy","b":"c"}"#, "b=c".into()),
        (
            r#"{"a":"\ud83d","b":"\u00e9\ud83d\ude03"}"#,
            "b=\u{e9}\u{1F603}".into(),
        ),
        (r#"{"a\q":"v"}"#, err(ESC)),
        (r#"{"a\u0062":"v"}"#, "ab=v".into()),
        // appendSanitized: a digit gets `_` only at the start of the name.
        (
            r#"{"1x":{"2y":"v"}," a b ":1,"n":null,"t":true}"#,
            "_1x_2y=v a_b=1 t=true".into(),
        ),
    ];
    for (line, want) in cases {
        assert_eq!(run("| json", line).1, *want, "{line}");
    }
}

#[test]
fn json_with_paths() {
    // (loki) TestJSONExpressionParser's line.
    let line = r#"{"app":"foo","field with space":"value","field with ÜFT8👌":"value","null_field":null,"bool_field":false,"namespace":"prod","pod":{"uuid":"foo","deployment":{"ref":"foobar", "params": [1,2,3,"string_value"]}}}"#;
    let cases: &[(&str, &str, String)] = &[
        (r#"json app="app""#, line, "app_extracted=foo".into()),
        (
            r#"json test=`["field with space"]`"#,
            line,
            "test=value".into(),
        ),
        (r#"json u=`["field with ÜFT8👌"]`"#, line, "u=value".into()),
        (
            r#"json uuid="pod.uuid", ns="namespace""#,
            line,
            "ns=prod uuid_extracted=foo".into(),
        ),
        (r#"json p="pod.deployment.params[0]""#, line, "p=1".into()),
        (
            r#"json p="pod.deployment.params[3]""#,
            line,
            "p=string_value".into(),
        ),
        (
            r#"json p="pod.deployment.params""#,
            line,
            r#"p=[1,2,3,"string_value"]"#.into(),
        ),
        (
            r#"json d="pod.deployment""#,
            line,
            r#"d={"ref":"foobar", "params": [1,2,3,"string_value"]}"#.into(),
        ),
        (
            r#"json nope="pod.nope", nf="null_field", b="bool_field""#,
            line,
            "b=false".into(),
        ),
        (r#"json u="pod.uuid""#, "{}", String::new()),
        (r#"json u="will.not.work""#, "invalid json", err("")),
        (r#"json u="will.not.work""#, "", String::new()),
        (
            r#"json a="app""#,
            r#"{"app":"{ \"key\": \"value\", \"key2\":\"value2\"}"}"#,
            r#"a={ "key": "value", "key2":"value2"}"#.into(),
        ),
        (
            r#"json a="app""#,
            r#"{"app":{"name":"great \"loki\""}"#,
            r#"a={"name":"great \"loki\""}"#.into(),
        ),
        (
            r#"json a="app""#,
            r#"{"app":"foo","app":"duplicate"}"#,
            "a=foo".into(),
        ),
        // Malformed lines: only errors on the way to a wanted value are reported.
        (r#"json a="a""#, r#" {"a":1}"#, err("")),
        (r#"json a="a""#, r#"{"a":"#, err(JSN)),
        (r#"json a="a""#, r#"{"a":tru}"#, err(UNK)),
        (r#"json a="a""#, r#"{"a":"b"#, err(STR)),
        (r#"json a="a""#, r#"{"b":tru,"a":1"#, "a=1".into()),
        (r#"json x="x""#, r#"{"a":1} "x":2"#, err(JSN)),
        (r#"json a="a""#, r#""a":1"#, err(JSN)),
        (r#"json a="a""#, "[1,2]", String::new()),
        (r#"json b="a.b""#, r#"{"a":{"b":1}"#, "b=1".into()),
        (r#"json v="a[1]""#, r#"{"a":["x","y\n"]}"#, "v=y\n".into()),
    ];
    for (stage, line, want) in cases {
        assert_eq!(
            run(&format!("| {stage}"), line).1,
            *want,
            "{stage} on {line}"
        );
    }
}

#[test]
fn unpack_cases() {
    let entry = "10.1.0.88 - - [14/Dec/2020:22:56:24 +0000] GET /x HTTP/1.1";
    let packed = format!(r#"{{"job":"123","pod":"someuid123","app":"foo","_entry":"{entry}"}}"#);
    let cases: &[(&str, &str, String)] = &[
        // (loki) packed line: fields become labels, `_entry` the line.
        (
            &packed,
            entry,
            "app_extracted=foo job=123 pod=someuid123".into(),
        ),
        (r#"{"a":"b"}"#, r#"{"a":"b"}"#, String::new()),
        ("", "", String::new()),
        (
            "not json",
            "not json",
            err("expecting json object(6), but it is not"),
        ),
        (
            r#" {"_entry":"x"}"#,
            r#" {"_entry":"x"}"#,
            err("expecting json object(6), but it is not"),
        ),
        (
            r#"{"_entry":"x","a":"b""#,
            r#"{"_entry":"x","a":"b""#,
            err(ARR),
        ),
        (r#"{"_entry":"bad\q"}"#, r#"{"_entry":"bad\q"}"#, err(ESC)),
        (
            r#"{"_entry":"x","a":tru}"#,
            r#"{"_entry":"x","a":tru}"#,
            err(UNK),
        ),
        (
            r#"{"_entry":"l\"q","n":1,"o":{"k":"v"},"s":"\q"}"#,
            "l\"q",
            String::new(),
        ),
    ];
    for (line, want_line, want) in cases {
        let (out, labels) = run("| unpack", line);
        assert_eq!((out.as_str(), labels), (*want_line, want.clone()), "{line}");
    }
}
