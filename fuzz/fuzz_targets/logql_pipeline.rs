//! Input = `query \n line`: a log query that parses and compiles runs its pipeline
//! over the line (and its range aggregation's extractor) without panicking.
#![no_main]

use libfuzzer_sys::fuzz_target;
use silt_logql::ast::{Expr, MetricExpr, RangeAggregation};
use silt_model::Labels;
use silt_query::{EntryLabels, Pipeline, SampleExtractor};
use std::sync::Arc;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (q, line) = text.split_once('\n').unwrap_or((text, ""));
    let labels = || {
        EntryLabels::new(
            Arc::new(Labels::from_pairs([("app", "fuzz"), ("level", "info")])),
            Labels::from_pairs([("trace_id", "abc")]),
        )
    };
    match silt_logql::parse(q) {
        Ok(Expr::Log(l)) => {
            if let Ok(p) = Pipeline::new(&l.pipeline) {
                let _ = p.process(1_700_000_000_000_000_000, line, labels());
            }
        }
        Ok(Expr::Metric(m)) => {
            let mut aggs = Vec::new();
            range_aggregations(&m, &mut aggs);
            for agg in aggs {
                if let Ok(x) = SampleExtractor::new(agg) {
                    let _ = x.extract(1_700_000_000_000_000_000, line, labels());
                }
            }
        }
        Err(_) => {}
    }
});

fn range_aggregations<'a>(m: &'a MetricExpr, out: &mut Vec<&'a RangeAggregation>) {
    match m {
        MetricExpr::Range(r) => out.push(r),
        MetricExpr::Vector(v) => range_aggregations(&v.expr, out),
        MetricExpr::Binary(b) => {
            range_aggregations(&b.lhs, out);
            range_aggregations(&b.rhs, out);
        }
        MetricExpr::LabelReplace(l) => range_aggregations(&l.expr, out),
        MetricExpr::Literal(_) | MetricExpr::VectorLiteral(_) => {}
    }
}
