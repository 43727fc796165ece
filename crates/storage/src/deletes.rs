//! Delete requests (Loki's `/loki/api/v1/delete`): stored as objects in the bucket
//! (`tenants/<t>/deletes/<id>.json`), applied at query time at once, and physically by
//! a maintenance pass (segments rewritten without the matched rows) once the cancel
//! period is over. The HTTP layer turns LogQL into the structured [`DeleteFilter`].

use crate::{Error, Result};
use regex::Regex;
use serde::{Deserialize, Serialize};
use silt_model::{Entry, LabelMatcher, Labels, MatchOp, Timestamp};

/// Status of a delete request, as Loki lists it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeleteStatus {
    /// Filtered at query time; not yet removed from segments.
    Received,
    /// Removed from every segment that existed when it was processed.
    Processed,
}

/// A line filter of a delete query.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum LineOp {
    /// `|=`: any of the values is a substring.
    Contains,
    /// `!=`: none of the values is a substring.
    NotContains,
    /// `|~`: any regex matches.
    Match,
    /// `!~`: no regex matches.
    NotMatch,
}

/// What a delete request removes: a selector and optional line filters, all must hold.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeleteFilter {
    /// `(name, op, value)` with op one of `=`, `!=`, `=~`, `!~`.
    pub matchers: Vec<(String, String, String)>,
    /// Line filters in pipeline order.
    pub lines: Vec<(LineOp, Vec<String>)>,
}

/// A stored delete request.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeleteRequest {
    /// Id (also the object name).
    pub request_id: String,
    /// Tenant.
    pub user_id: String,
    /// The LogQL query as given.
    pub query: String,
    /// What it removes.
    pub filter: DeleteFilter,
    /// First timestamp removed (ns, inclusive).
    pub start: Timestamp,
    /// Last timestamp removed (ns, inclusive).
    pub end: Timestamp,
    /// Creation time (ns).
    pub created_at: Timestamp,
    /// Status.
    pub status: DeleteStatus,
}

impl DeleteRequest {
    /// Object path of the request.
    pub fn path(&self) -> String {
        format!("tenants/{}/deletes/{}.json", self.user_id, self.request_id)
    }
}

/// A delete request ready to test entries.
#[derive(Clone, Debug)]
pub(crate) struct Compiled {
    pub req: DeleteRequest,
    matchers: Vec<LabelMatcher>,
    lines: Vec<(LineOp, Vec<String>, Vec<Regex>)>,
}

impl Compiled {
    pub(crate) fn new(req: DeleteRequest) -> Result<Compiled> {
        let bad = |m: String| Error::Config(format!("delete request {}: {m}", req.request_id));
        let mut matchers = Vec::new();
        for (name, op, value) in &req.filter.matchers {
            let op = match op.as_str() {
                "=" => MatchOp::Eq,
                "!=" => MatchOp::Neq,
                "=~" => MatchOp::Re,
                "!~" => MatchOp::Nre,
                o => return Err(bad(format!("unknown matcher op {o}"))),
            };
            matchers.push(
                LabelMatcher::new(name.clone(), op, value.clone())
                    .map_err(|e| bad(e.to_string()))?,
            );
        }
        let mut lines = Vec::new();
        for (op, values) in &req.filter.lines {
            let res = match op {
                LineOp::Match | LineOp::NotMatch => values
                    .iter()
                    .map(|v| Regex::new(v).map_err(|e| bad(e.to_string())))
                    .collect::<Result<Vec<_>>>()?,
                _ => Vec::new(),
            };
            lines.push((op.clone(), values.clone(), res));
        }
        Ok(Compiled {
            req,
            matchers,
            lines,
        })
    }

    /// Whether the request can remove anything of a stream over `[min_ts, max_ts]`.
    pub(crate) fn touches(&self, labels: &Labels, min_ts: Timestamp, max_ts: Timestamp) -> bool {
        min_ts <= self.req.end
            && max_ts >= self.req.start
            && self.matchers.iter().all(|m| m.matches_labels(labels))
    }

    /// Whether the request needs line contents.
    pub(crate) fn needs_lines(&self) -> bool {
        !self.lines.is_empty()
    }

    /// Whether `e` (of a stream the request [`touches`](Self::touches)) is deleted.
    pub(crate) fn deletes(&self, e: &Entry) -> bool {
        if e.ts < self.req.start || e.ts > self.req.end {
            return false;
        }
        self.lines.iter().all(|(op, values, res)| match op {
            LineOp::Contains => values.iter().any(|v| e.line.contains(v.as_str())),
            LineOp::NotContains => !values.iter().any(|v| e.line.contains(v.as_str())),
            LineOp::Match => res.iter().any(|r| r.is_match(&e.line)),
            LineOp::NotMatch => !res.iter().any(|r| r.is_match(&e.line)),
        })
    }
}
