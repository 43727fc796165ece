//! A fixed set of threads that decode pushes.
//!
//! Decoding a push allocates its decompressed body and WAL record (1–4 MiB each) on the
//! thread that runs it, and mimalloc keeps freed pages per thread. On tokio's blocking
//! pool a push could land on any of a dozen threads, each then holding its own pages of
//! those sizes: one thread per core held peak RSS ~10 MB lower, purged a quarter less
//! memory and ingested faster (BENCHMARKS.md). Pushes beyond the threads wait their turn,
//! which costs nothing as decoding is CPU-bound.

use parking_lot::Mutex;
use std::sync::mpsc;
use std::sync::Arc;

type Job = Box<dyn FnOnce() + Send>;

/// Threads that run decode jobs in turn.
pub(crate) struct DecodePool {
    tx: Mutex<mpsc::Sender<Job>>,
}

impl DecodePool {
    /// Starts `threads` threads (at least one).
    pub(crate) fn new(threads: usize) -> DecodePool {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("silt-decode-{i}"))
                .spawn(move || loop {
                    let job = match rx.lock().recv() {
                        Ok(job) => job,
                        Err(_) => return,
                    };
                    // A panicking job drops its answer channel (the caller gets an error);
                    // the thread stays for the next one.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                })
                .expect("start a decode thread");
        }
        DecodePool { tx: Mutex::new(tx) }
    }

    /// Runs `f` on one of the threads; `None` if it panicked.
    pub(crate) async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = tx.send(f());
        });
        self.tx.lock().send(job).ok()?;
        rx.await.ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn runs_jobs_and_survives_a_panic() {
        let pool = DecodePool::new(1);
        assert_eq!(pool.run(|| 2 + 2).await, Some(4));
        assert_eq!(pool.run(|| -> i32 { panic!("bad input") }).await, None);
        // The one thread is still there.
        let name = pool
            .run(|| std::thread::current().name().map(str::to_string))
            .await;
        assert_eq!(name, Some(Some("silt-decode-0".to_string())));
    }
}
