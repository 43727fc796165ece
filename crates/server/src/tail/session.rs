//! One live tail session: replay, then live entries through the query's pipeline.
//!
//! Two tasks share the socket. The producer (this module's `produce`) reads client
//! messages, receives acknowledged entries from the store's fan-out, runs the
//! pipeline, holds entries for `delay_for`, and hands frames to the writer through a
//! small bounded queue without ever waiting on it: when the queue is full, entries are
//! dropped and reported in the next frame's `dropped_entries`, as Loki does. The writer
//! sends frames and a ping every second; a slow client only ever blocks the writer.

use super::{Slot, TailRequest};
use crate::app::AppState;
use crate::encode::tail_frame;
use crate::query::{evaluate, Run};
use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use silt_logql::ast::Expr;
use silt_model::Direction;
use silt_query::engine::group_rows;
use silt_query::{LogRow, QueryResult};
use silt_storage::live::{Dropped, LiveStream, MAX_DROPPED};
use std::collections::{HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// Frames queued for the writer before entries are dropped (Loki buffers 10 responses).
const MAX_BUFFERED_FRAMES: usize = 10;
/// Most entries per frame (Loki's `maxEntriesPerTailResponse`).
const MAX_ENTRIES_PER_FRAME: usize = 100;
/// Pushes queued in the store's fan-out for this session before it drops entries.
const LIVE_QUEUE: usize = 1024;
/// Entries held back for `delay_for` at most; older ones are dropped beyond it.
const MAX_PENDING: usize = 10_000;
/// How often undelivered drop reports are retried while nothing else is sent.
const RETRY_EVERY: Duration = Duration::from_millis(200);
/// Loki pings every second to find dead connections.
const PING_EVERY: Duration = Duration::from_secs(1);
/// Close code Loki uses for every server-side error.
const CLOSE_INTERNAL_ERROR: u16 = 1011;

/// Runs the session to its end; the slot is freed when it returns.
pub(super) async fn run(socket: WebSocket, state: Arc<AppState>, req: TailRequest, slot: Slot) {
    let _slot = slot;
    let (sink, mut incoming) = socket.split();
    let (out, out_rx) = mpsc::channel::<Message>(MAX_BUFFERED_FRAMES);
    let writer = tokio::spawn(write_loop(sink, out_rx));
    let result = produce(&state, &req, &out, &mut incoming).await;
    if let Err(msg) = result {
        tracing::debug!(tenant = %req.tenant, error = %msg, "tail session ends with an error");
        let close = Message::Close(Some(CloseFrame {
            code: CLOSE_INTERNAL_ERROR,
            reason: msg.into(),
        }));
        let _ = tokio::time::timeout(Duration::from_secs(1), out.send(close)).await;
    }
    drop(out);
    // A client that stopped reading must not keep the session (and its slot) alive.
    let mut writer = writer;
    if tokio::time::timeout(Duration::from_secs(2), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

async fn write_loop(mut sink: SplitSink<WebSocket, Message>, mut rx: mpsc::Receiver<Message>) {
    let mut ping = tokio::time::interval_at(Instant::now() + PING_EVERY, PING_EVERY);
    loop {
        let msg = tokio::select! {
            m = rx.recv() => match m {
                Some(m) => m,
                None => break,
            },
            _ = ping.tick() => Message::Ping(Default::default()),
        };
        let closing = matches!(msg, Message::Close(_));
        if sink.send(msg).await.is_err() || closing {
            return;
        }
    }
    let _ = sink.close().await;
}

/// Why a session ended without error: the client left or the writer failed.
struct Ended;

async fn produce(
    state: &Arc<AppState>,
    req: &TailRequest,
    out: &mpsc::Sender<Message>,
    incoming: &mut SplitStream<WebSocket>,
) -> Result<Ended, String> {
    // Subscribe before the replay so nothing acknowledged in between is missed;
    // entries seen by both are sent once.
    let mut sub = state
        .store
        .live
        .subscribe(&req.tenant, req.expr.selector.clone(), LIVE_QUEUE);
    let deadline = tokio::time::sleep(state.cfg.limits.tail_max_duration);
    tokio::pin!(deadline);
    let replayed = tokio::select! {
        r = replay(state, req, out) => match r? {
            Some(seen) => seen,
            None => return Ok(Ended),
        },
        _ = &mut deadline => return Err("reached tail max duration limit".into()),
    };
    let mut s = Live {
        req,
        out,
        metrics: &state.metrics,
        pending: VecDeque::new(),
        dropped: Vec::new(),
        replayed,
    };
    loop {
        let due = s.pending.front().map(|(at, _)| *at);
        let retry = !s.dropped.is_empty();
        tokio::select! {
            biased;
            _ = &mut deadline => return Err("reached tail max duration limit".into()),
            _ = out.closed() => return Ok(Ended),
            msg = incoming.next() => match msg {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(Ended),
                Some(Ok(_)) => {}
            },
            live = sub.recv() => match live {
                Some(l) => {
                    s.accept(&l);
                    // Flushed here too: under a steady flood this branch always wins.
                    s.add_dropped(sub.take_dropped());
                    s.flush();
                }
                None => return Err("the store is shutting down".into()),
            },
            _ = tokio::time::sleep_until(due.unwrap_or_else(Instant::now)), if due.is_some() => {
                s.add_dropped(sub.take_dropped());
                s.flush();
            }
            _ = tokio::time::sleep(RETRY_EVERY), if retry => {
                s.add_dropped(sub.take_dropped());
                s.flush();
            }
        }
        // Drops in the fan-out are reported even when nothing else arrives.
        if s.pending.is_empty() && s.dropped.is_empty() {
            s.add_dropped(sub.take_dropped());
        }
    }
}

/// Sends up to `limit` of the newest entries since `start`, oldest first, in frames.
/// Returns identities of what was sent (to skip them live), `None` if the client left.
async fn replay(
    state: &Arc<AppState>,
    req: &TailRequest,
    out: &mpsc::Sender<Message>,
) -> Result<Option<HashSet<u64>>, String> {
    let now = crate::params::now_ns();
    let run = Run {
        tenant: req.tenant.clone(),
        expr: Expr::Log(req.expr.clone()),
        start: req.start.min(now),
        end: now,
        step: 0,
        interval: 0,
        limit: req.limit,
        direction: Direction::Backward,
        instant: false,
        categorize: req.categorize,
    };
    let result = evaluate(state, "tail", run)
        .await
        .map_err(|e| e.message)?
        .result;
    let QueryResult::Streams(streams) = result else {
        return Err("only log selector is supported".into());
    };
    let mut rows: Vec<LogRow> = streams.into_iter().flat_map(|s| s.rows).collect();
    // Backward per stream; the client gets them oldest first across streams.
    rows.sort_by_key(|r| r.ts);
    let seen = rows.iter().map(identity).collect();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<LogRow> = rows.by_ref().take(MAX_ENTRIES_PER_FRAME).collect();
        let frame = tail_frame(&group_rows(chunk, req.categorize), &[], req.categorize);
        if out.send(Message::Text(frame.into())).await.is_err() {
            return Ok(None);
        }
    }
    Ok(Some(seen))
}

/// Identity of a row after the pipeline, to send an entry once across replay and live.
fn identity(r: &LogRow) -> u64 {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    r.labels.stream.hash(&mut h);
    r.labels.metadata.hash(&mut h);
    r.ts.hash(&mut h);
    r.line.hash(&mut h);
    h.finish()
}

/// Live state of a session.
struct Live<'a> {
    req: &'a TailRequest,
    out: &'a mpsc::Sender<Message>,
    metrics: &'a crate::metrics::Metrics,
    /// Rows waiting for their send time (ack + `delay_for`), in ack order.
    pending: VecDeque<(Instant, LogRow)>,
    /// Entries lost since the last frame that reached the writer.
    dropped: Vec<Dropped>,
    replayed: HashSet<u64>,
}

impl Live<'_> {
    fn accept(&mut self, live: &LiveStream) {
        let due = Instant::from_std(live.acked) + self.req.delay_for;
        for row in self.req.pipeline.run_stream(&live.labels, &live.entries) {
            if !self.replayed.is_empty() && self.replayed.contains(&identity(&row)) {
                continue;
            }
            if self.pending.len() >= MAX_PENDING {
                if let Some((_, old)) = self.pending.pop_front() {
                    self.drop_rows(std::iter::once(old));
                }
            }
            self.pending.push_back((due, row));
        }
    }

    fn add_dropped(&mut self, d: Vec<Dropped>) {
        self.metrics.tail_dropped_entries.inc_by(d.len() as u64);
        let room = MAX_DROPPED.saturating_sub(self.dropped.len());
        self.dropped.extend(d.into_iter().take(room));
    }

    fn drop_rows(&mut self, rows: impl IntoIterator<Item = LogRow>) {
        let d = rows.into_iter().map(|r| (r.labels.stream, r.ts)).collect();
        self.add_dropped(d);
    }

    /// Sends every due row (frames of at most 100) and pending drop reports; whatever
    /// does not fit in the writer's queue is dropped, never waited for.
    fn flush(&mut self) {
        let now = Instant::now();
        loop {
            let n = self
                .pending
                .iter()
                .take(MAX_ENTRIES_PER_FRAME)
                .take_while(|(at, _)| *at <= now)
                .count();
            if n == 0 && self.dropped.is_empty() {
                return;
            }
            let rows: Vec<LogRow> = self.pending.drain(..n).map(|(_, r)| r).collect();
            if self.out.capacity() == 0 {
                // Blocked: keep the drop report for the next frame that fits.
                self.drop_rows(rows);
                if n == 0 {
                    return;
                }
                continue;
            }
            let streams = group_rows(rows, self.req.categorize);
            let frame = tail_frame(&streams, &self.dropped, self.req.categorize);
            match self.out.try_send(Message::Text(frame.into())) {
                Ok(()) => self.dropped.clear(),
                Err(_) => {
                    let rows = streams.into_iter().flat_map(|s| s.rows);
                    self.drop_rows(rows);
                }
            }
            if n == 0 {
                return;
            }
        }
    }
}
