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
