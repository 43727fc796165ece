//! Golden tests for `format_query`; the width-20 cases are Loki's `prettier_test.go`.

use silt_logql::{format_query, format_query_width, parse};

fn check(width: usize, input: &str, expected: &str) {
    let e = parse(input).unwrap_or_else(|err| panic!("{input}: {err}"));
    let got = format_query_width(&e, width);
    assert_eq!(
        got, expected,
        "\ninput: {input}\ngot:\n{got}\nexpected:\n{expected}"
    );
}

#[test]
fn loki_prettier_cases() {
    let cases: &[(&str, &str)] = &[
        (r#"{job="loki", instance="localhost"}"#, r#"{job="loki", instance="localhost"}"#),
        (
            r#"{job="loki", instance="localhost"}|logfmt|level="error" "#,
            "{job=\"loki\", instance=\"localhost\"}\n  | logfmt\n  | level=\"error\"",
        ),
        (
            r#"{job="loki", instance="localhost"}|= "error" != "memcached" |= ip("192.168.0.1") |logfmt"#,
            "{job=\"loki\", instance=\"localhost\"}\n  |= \"error\"\n  != \"memcached\"\n  |= ip(\"192.168.0.1\")\n  | logfmt",
        ),
        (
            r#"{job="loki", instance="localhost"}|logfmt|line_format "{{.error}}""#,
            "{job=\"loki\", instance=\"localhost\"}\n  | logfmt\n  | line_format \"{{.error}}\"",
        ),
        (
            r#"{job="loki", instance="localhost"}|logfmt|label_format dst="{{.src}}""#,
            "{job=\"loki\", instance=\"localhost\"}\n  | logfmt\n  | label_format dst=\"{{.src}}\"",
        ),
        (
            r#"count_over_time({job="loki", instance="localhost"}|logfmt[1m])"#,
            "count_over_time(\n  {job=\"loki\", instance=\"localhost\"}\n    | logfmt [1m]\n)",
        ),
        (
            r#"count_over_time({job="loki", instance="localhost"}|= "error"[5m] offset 20m)"#,
            "count_over_time(\n  {job=\"loki\", instance=\"localhost\"}\n    |= \"error\" [5m] offset 20m\n)",
        ),
        (
            r#"quantile_over_time(0.99,{container="ingress-nginx",service="hosted-grafana"}| json| unwrap response_latency_seconds| __error__=""[1m]) by (cluster)"#,
            "quantile_over_time(\n  0.99,\n  {container=\"ingress-nginx\", service=\"hosted-grafana\"}\n    | json\n    | unwrap response_latency_seconds\n    | __error__=\"\" [1m]\n) by (cluster)",
        ),
        (
            r#"count_over_time({job="loki", instance="localhost"}|= "error" != "memcached" |= ip("192.168.0.1") |logfmt[1m])"#,
            "count_over_time(\n  {job=\"loki\", instance=\"localhost\"}\n    |= \"error\"\n    != \"memcached\"\n    |= ip(\"192.168.0.1\")\n    | logfmt [1m]\n)",
        ),
        (
            r#"{job="loki", namespace="loki-prod", container="nginx-ingress"}| json first_server="servers[0]", ua="request.headers[\"User-Agent\"]" | level="error""#,
            "{job=\"loki\", namespace=\"loki-prod\", container=\"nginx-ingress\"}\n  | json first_server=\"servers[0]\",ua=\"request.headers[\\\"User-Agent\\\"]\"\n  | level=\"error\"",
        ),
        (
            r#"sum(count_over_time({foo="bar",namespace="loki",instance="localhost"}[5m])) by (container)"#,
            "sum by (container)(\n  count_over_time(\n    {foo=\"bar\", namespace=\"loki\", instance=\"localhost\"} [5m]\n  )\n)",
        ),
        (
            r#"topk(5, count_over_time({foo="bar",namespace="loki",instance="localhost"}[5m])) by (container)"#,
            "topk by (container)(\n  5,\n  count_over_time(\n    {foo=\"bar\", namespace=\"loki\", instance=\"localhost\"} [5m]\n  )\n)",
        ),
        (
            r#"label_replace(rate({job="api-server",service="a:c"}|= "err" [5m]), "foo", "$1", "service", "(.*):.*")"#,
            "label_replace(\n  rate(\n    {job=\"api-server\", service=\"a:c\"}\n      |= \"err\" [5m]\n  ),\n  \"foo\",\n  \"$1\",\n  \"service\",\n  \"(.*):.*\"\n)",
        ),
        (
            r#"label_replace(label_replace(rate({job="api-server",service="a:c"}|= "err" [5m]), "foo", "$1", "service", "(.*):.*"), "foo", "$1", "service", "(.*):.*")"#,
            "label_replace(\n  label_replace(\n    rate(\n      {job=\"api-server\", service=\"a:c\"}\n        |= \"err\" [5m]\n    ),\n    \"foo\",\n    \"$1\",\n    \"service\",\n    \"(.*):.*\"\n  ),\n  \"foo\",\n  \"$1\",\n  \"service\",\n  \"(.*):.*\"\n)",
        ),
        (
            r#"sum(rate({job="loki", namespace="loki-prod", instance="localhost"}[5m]))/sum(count_over_time({job="loki", namespace="loki-prod", instance="localhost"}[5m]))"#,
            "  sum(\n    rate(\n      {job=\"loki\", namespace=\"loki-prod\", instance=\"localhost\"} [5m]\n    )\n  )\n/\n  sum(\n    count_over_time(\n      {job=\"loki\", namespace=\"loki-prod\", instance=\"localhost\"} [5m]\n    )\n  )",
        ),
        (
            r#"sum(rate({job="loki"}[5m])) + sum(rate({job="loki-dev"}[5m])) / sum(rate({job="loki-prod"}[5m]))"#,
            "  sum(\n    rate(\n      {job=\"loki\"} [5m]\n    )\n  )\n+\n    sum(\n      rate(\n        {job=\"loki-dev\"} [5m]\n      )\n    )\n  /\n    sum(\n      rate(\n        {job=\"loki-prod\"} [5m]\n      )\n    )",
        ),
        (
            r#"sum(rate({job="loki"}[5m])) / sum(rate({job="loki-dev"}[5m])) + sum(rate({job="loki-prod"}[5m]))"#,
            "    sum(\n      rate(\n        {job=\"loki\"} [5m]\n      )\n    )\n  /\n    sum(\n      rate(\n        {job=\"loki-dev\"} [5m]\n      )\n    )\n+\n  sum(\n    rate(\n      {job=\"loki-prod\"} [5m]\n    )\n  )",
        ),
        (
            r#"sum(rate({job="loki"}[5m])) - sum(rate({job="loki-stage"}[5m])) / sum(rate({job="loki-dev"}[5m])) + sum(rate({job="loki-prod"}[5m]))"#,
            "    sum(\n      rate(\n        {job=\"loki\"} [5m]\n      )\n    )\n  -\n      sum(\n        rate(\n          {job=\"loki-stage\"} [5m]\n        )\n      )\n    /\n      sum(\n        rate(\n          {job=\"loki-dev\"} [5m]\n        )\n      )\n+\n  sum(\n    rate(\n      {job=\"loki-prod\"} [5m]\n    )\n  )",
        ),
        (
            r#"sum(rate({job="loki"}[5m])) - sum(rate({job="loki-stage"}[5m])) % sum(rate({job="loki-dev"}[5m])) + sum(rate({job="loki-prod"}[5m]))"#,
            "    sum(\n      rate(\n        {job=\"loki\"} [5m]\n      )\n    )\n  -\n      sum(\n        rate(\n          {job=\"loki-stage\"} [5m]\n        )\n      )\n    %\n      sum(\n        rate(\n          {job=\"loki-dev\"} [5m]\n        )\n      )\n+\n  sum(\n    rate(\n      {job=\"loki-prod\"} [5m]\n    )\n  )",
        ),
        (
            r#"sum(rate({job="loki"}[5m])) / sum(rate({job="loki-stage"}[5m])) % sum(rate({job="loki-dev"}[5m])) + sum(rate({job="loki-prod"}[5m]))"#,
            "      sum(\n        rate(\n          {job=\"loki\"} [5m]\n        )\n      )\n    /\n      sum(\n        rate(\n          {job=\"loki-stage\"} [5m]\n        )\n      )\n  %\n    sum(\n      rate(\n        {job=\"loki-dev\"} [5m]\n      )\n    )\n+\n  sum(\n    rate(\n      {job=\"loki-prod\"} [5m]\n    )\n  )",
        ),
        (
            r#"sum(rate({job="loki"}[5m])) / sum(rate({job="loki-stage"}[5m])) % sum(rate({job="loki-dev"}[5m])) * sum(rate({job="loki-prod"}[5m]))"#,
            "      sum(\n        rate(\n          {job=\"loki\"} [5m]\n        )\n      )\n    /\n      sum(\n        rate(\n          {job=\"loki-stage\"} [5m]\n        )\n      )\n  %\n    sum(\n      rate(\n        {job=\"loki-dev\"} [5m]\n      )\n    )\n*\n  sum(\n    rate(\n      {job=\"loki-prod\"} [5m]\n    )\n  )",
        ),
        (
            r#"sum(rate({job="loki"}[5m])) * on(instance, job) group_left (node) sum(rate({job="loki-prod"}[5m]))"#,
            "  sum(\n    rate(\n      {job=\"loki\"} [5m]\n    )\n  )\n* on (instance, job) group_left (node)\n  sum(\n    rate(\n      {job=\"loki-prod\"} [5m]\n    )\n  )",
        ),
    ];
    for (input, expected) in cases {
        check(20, input, expected);
    }
}

/// Width-100 cases (the `format_query` endpoint): derived from Loki's algorithm.
#[test]
fn default_width_cases() {
    let cases: &[(&str, &str)] = &[
        (r#"{app="foo"}"#, r#"{app="foo"}"#),
        (r#"{app="foo"  ,  env = "prod"}"#, r#"{app="foo", env="prod"}"#),
        (r#"{app="foo"}|="x"|json"#, r#"{app="foo"} |= "x" | json"#),
        (r#"{app="foo"} != "a" or "b""#, r#"{app="foo"} != "a" != "b""#),
        (r#"{app="foo"} |= "a" or "b""#, r#"{app="foo"} |= "a" or "b""#),
        (r#"{app="foo"} | logfmt --strict"#, r#"{app="foo"} | logfmt --strict"#),
        (r#"{app="foo"} | json a, b="c.d""#, r#"{app="foo"} | json a="a",b="c.d""#),
        (r#"{app="foo"} | status>=500 and method="GET""#, r#"{app="foo"} | ( status>=500 , method="GET" )"#),
        (r#"{app="foo"} | d > 1s or size < 2KB"#, r#"{app="foo"} | ( d>1s or size<2.0kB )"#),
        // BytesLabelFilter.String(): humanize.Bytes, decimal units, spaces removed.
        (r#"{app="foo"} | size > 5KiB"#, r#"{app="foo"} | size>5.1kB"#),
        (r#"{app="foo"} | size > 1MB"#, r#"{app="foo"} | size>1.0MB"#),
        (r#"{app="foo"} | size > 1.5KB"#, r#"{app="foo"} | size>1.5kB"#),
        (r#"{app="foo"} | size > 100B"#, r#"{app="foo"} | size>100B"#),
        (r#"{app="foo"} | size > 10KiB"#, r#"{app="foo"} | size>10kB"#),
        // DurationLabelFilter.String(): Go's time.Duration, which re-parses exactly.
        (r#"{app="foo"} | latency > 1m30s"#, r#"{app="foo"} | latency>1m30s"#),
        (r#"{app="foo"} | latency >= 90s"#, r#"{app="foo"} | latency>=1m30s"#),
        (r#"{app="foo"} | latency < 1.5ms"#, r#"{app="foo"} | latency<1.5ms"#),
        (r#"{app="foo"} | drop a, b="c" | keep d"#, r#"{app="foo"} | drop a,b="c" | keep d"#),
        (r#"{app="foo"} | label_format a=b, c="{{.d}}""#, r#"{app="foo"} | label_format a=b,c="{{.d}}""#),
        (r#"{app="foo"} | regexp "(?P<a>.)" | unpack | decolorize"#, r#"{app="foo"} | regexp "(?P<a>.)" | unpack | decolorize"#),
        (r#"rate({app="foo"}[5m])"#, r#"rate({app="foo"}[5m])"#),
        (r#"count_over_time({app="foo"}[1h] offset 30m)"#, r#"count_over_time({app="foo"}[1h] offset 30m0s)"#),
        (r#"sum by (a, b) (rate({app="foo"}[5m]))"#, r#"sum by (a,b)(rate({app="foo"}[5m]))"#),
        (r#"sum by () (rate({app="foo"}[5m]))"#, r#"sum(rate({app="foo"}[5m]))"#),
        (r#"topk(3, rate({app="foo"}[5m]))"#, r#"topk(3,rate({app="foo"}[5m]))"#),
        (r#"sum(rate({app="foo"}[5m])) / 2"#, r#"(sum(rate({app="foo"}[5m])) / 2)"#),
        (r#"1 + 1"#, "2"),
        (r#"vector(1)"#, "vector(1.000000)"),
        (r#"avg_over_time({app="foo"} | unwrap bytes(b) [5m]) by (x)"#, r#"avg_over_time({app="foo"} | unwrap bytes(b)[5m]) by (x)"#),
        (
            r#"sum(count_over_time({app="foo"}[5m])) == bool on() vector(5)"#,
            r#"(sum(count_over_time({app="foo"}[5m])) == bool on ()  vector(5.000000))"#,
        ),
        (
            r#"sum by (service_name) (count_over_time({cluster=~"cluster-.*", namespace="namespace-7"} |= "error" | json | level="error" [5m]))"#,
            "sum by (service_name)(\n  count_over_time(\n    {cluster=~\"cluster-.*\", namespace=\"namespace-7\"} |= \"error\" | json | level=\"error\" [5m]\n  )\n)",
        ),
        (
            r#"{service_name="web-server", namespace="production"} |= "error" != "timeout" | json | status >= 500 | line_format "{{.method}} {{.path}}""#,
            "{service_name=\"web-server\", namespace=\"production\"}\n  |= \"error\" != \"timeout\"\n  | json\n  | status>=500\n  | line_format \"{{.method}} {{.path}}\"",
        ),
    ];
    for (input, expected) in cases {
        let e = parse(input).unwrap_or_else(|err| panic!("{input}: {err}"));
        assert_eq!(format_query(&e), *expected, "input: {input}");
    }
}
