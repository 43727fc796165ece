//! Helpers shared by the storage tests.

use silt_model::{Direction, Entry, LabelMatcher, Labels};
use silt_query::{LogSource, SelectRequest};
use silt_storage::{Store, StoreSource};
use std::sync::Arc;

/// Every entry of `tenant`'s streams matching `m`, stream by stream, in `direction`.
pub fn select_all(
    store: &Arc<Store>,
    tenant: &str,
    m: LabelMatcher,
    direction: Direction,
) -> Vec<(Arc<Labels>, Entry)> {
    let m = [m];
    let req = SelectRequest {
        tenant,
        matchers: &m,
        start: 0,
        end: i64::MAX,
        direction,
        lines: true,
        line_filter: None,
        stats: Default::default(),
    };
    let mut out = Vec::new();
    for c in StoreSource(store.clone()).select(&req).unwrap() {
        for e in c.entries {
            out.push((c.labels.clone(), e.unwrap()));
        }
    }
    out
}
