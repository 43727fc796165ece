use super::tokenize::{Tokenizer, Tokens};
use super::*;

const S: i64 = 1_000_000_000;

fn mine(lines: &[(&str, &str)], repeat: usize) -> Vec<PatternSeries> {
    let mut m = Miner::new(60_000);
    let mut ts = 1_704_067_200 * S;
    for _ in 0..repeat {
        for (_, line) in lines {
            m.add(0, "info", ts, line);
            ts += S;
        }
    }
    m.finish()
}

fn patterns(v: &[PatternSeries]) -> Vec<&str> {
    v.iter().map(|p| p.pattern.as_str()).collect()
}

#[test]
fn formats() {
    assert_eq!(detect_format(r#"{"a":1}"#), Format::Json);
    assert_eq!(
        detect_format(r#"level=info msg="a b" caller=x.go:1"#),
        Format::Logfmt
    );
    assert_eq!(detect_format("GET /index.html 200"), Format::Unknown);
    assert_eq!(detect_format("a=b and more"), Format::Unknown);
    assert_eq!(detect_format("x"), Format::Unknown);
}

#[test]
fn punctuation_tokens_and_join() {
    let t = Tokenizer(Format::Unknown)
        .tokenize("user=alice took 12ms, path /a/b")
        .unwrap();
    assert_eq!(
        t.tokens,
        ["user", "=", "alice", "took", "12ms", ",", "path", "/a/b"]
    );
    assert_eq!(
        Tokenizer(Format::Unknown).join(&t),
        "user=alice took 12ms, path /a/b"
    );
    let t = Tokens {
        tokens: vec!["<_>".into(), "<_>".into(), "x".into()],
        spaces_after: vec![],
    };
    assert_eq!(Tokenizer(Format::Unknown).join(&t), "<_>x");
}

#[test]
fn variable_tokens_become_wildcards() {
    let lines = [
        ("", "<19>host-17 systemd[8170]: Starting service..."),
        ("", "<16>host-67 systemd[7037]: Starting service..."),
        ("", "<15>host-41 systemd[7215]: Starting service..."),
    ];
    let got = mine(&lines, 20);
    assert_eq!(patterns(&got), ["<_> systemd[<_>]: Starting service..."]);
    assert_eq!(got[0].level, "info");
    assert_eq!(got[0].samples.iter().map(|s| s.1).sum::<u64>(), 60);
    // Words (no digits) on the tree path must match: another verb is another pattern,
    // here too rare (20 lines) to be answered.
    let lines = [
        ("", "<19>host-17 systemd[8170]: Starting service..."),
        ("", "<15>host-41 systemd[7215]: Stopping service..."),
    ];
    assert!(mine(&lines, 20).is_empty());
    assert_eq!(mine(&lines, 30).len(), 2);
}

#[test]
fn different_messages_stay_apart() {
    let lines = [
        ("", "connection from 10.0.0.1 accepted on port 443"),
        ("", "connection from 10.0.0.2 accepted on port 443"),
        ("", "disk usage at 91 percent on volume 3 now"),
        ("", "disk usage at 95 percent on volume 7 now"),
    ];
    let got = mine(&lines, 20);
    assert_eq!(
        patterns(&got),
        [
            "connection from <_> accepted on port 443",
            "disk usage at <_> percent on volume <_> now",
        ]
    );
}

#[test]
fn logfmt_keeps_keys_and_hides_timestamps() {
    let lines = [
        (
            "",
            r#"level=info ts=2024-01-01T00:00:00Z msg="user logged in" user=1"#,
        ),
        (
            "",
            r#"level=info ts=2024-01-01T00:00:01Z msg="user logged in" user=2"#,
        ),
    ];
    let got = mine(&lines, 20);
    assert_eq!(
        patterns(&got),
        [r#"level=info ts=<_> msg="user logged in" user=<_>"#]
    );
}

#[test]
fn json_mines_the_message_field() {
    let lines = [
        (
            "",
            r#"{"level":"info","msg":"served request for tenant 1 in 5ms"}"#,
        ),
        (
            "",
            r#"{"level":"info","msg":"served request for tenant 2 in 7ms"}"#,
        ),
        // Too few tokens: Loki skips such messages.
        ("", r#"{"level":"info","msg":"HTTP request"}"#),
    ];
    let got = mine(&lines, 20);
    assert_eq!(patterns(&got), ["<_>served request for tenant <_> in <_>"]);
}

#[test]
fn rare_patterns_are_pruned_and_buckets_filled() {
    let mut m = Miner::new(60_000);
    let t0 = 1_704_067_200 * S;
    for i in 0..40 {
        // Minutes 0 and 2 only: minute 1 is filled with 0.
        let ts = t0 + if i < 20 { i * S } else { 120 * S + i * S };
        m.add(0, "warn", ts, &format!("job {i} finished with status ok"));
    }
    for i in 0..5 {
        m.add(
            1,
            "warn",
            t0 + i * S,
            &format!("rare event number {i} seen here"),
        );
    }
    let got = m.finish();
    assert_eq!(patterns(&got), ["job <_> finished with status ok"]);
    let ms = t0 / 1_000_000;
    assert_eq!(
        got[0].samples,
        [(ms, 20), (ms + 60_000, 0), (ms + 120_000, 20)]
    );
}

#[test]
fn streams_with_the_same_pattern_are_summed() {
    let mut m = Miner::new(3_600_000);
    let t0 = 1_704_067_200 * S;
    for i in 0..20 {
        m.add(
            0,
            "info",
            t0 + i * S,
            &format!("request {i} served in time ok"),
        );
        m.add(
            7,
            "info",
            t0 + i * S,
            &format!("request {i} served in time ok"),
        );
        m.add(
            7,
            "error",
            t0 + i * S,
            &format!("request {i} served in time ok"),
        );
    }
    let got = m.finish();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].level, "info");
    assert_eq!(got[0].samples, [(t0 / 1_000_000, 40)]);
}

#[test]
fn short_and_long_lines_are_skipped() {
    let long = "word ".repeat(700);
    let got = mine(&[("", "a b c"), ("", long.as_str())], 50);
    assert!(got.is_empty(), "{got:?}");
}
