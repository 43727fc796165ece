//! Any input: the parser returns Ok or Err, never panics; what parses prints back to
//! a query that re-parses to the same AST, and the printed form is a fixed point.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(q) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(expr) = silt_logql::parse(q) else {
        return;
    };
    let _ = silt_logql::format_query(&expr);
    let printed = expr.to_string();
    let again = match silt_logql::parse(&printed) {
        Ok(e) => e,
        Err(e) => panic!("{q:?} printed as {printed:?}, which does not parse: {e}"),
    };
    // Debug equality: NaN literals compare equal there.
    assert_eq!(
        format!("{expr:?}"),
        format!("{again:?}"),
        "{q:?} printed as {printed:?} parses differently"
    );
    assert_eq!(printed, again.to_string());
});
