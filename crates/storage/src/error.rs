/// Storage errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Local disk I/O failed (WAL, cache).
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The object store failed.
    #[error("object store: {0}")]
    ObjectStore(#[from] object_store::Error),
    /// Parquet encoding or decoding failed.
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    /// Arrow array handling failed.
    #[error("arrow: {0}")]
    Arrow(#[from] arrow_schema::ArrowError),
    /// JSON (index sidecars) failed.
    #[error("json: {0}")]
    Json(#[from] serde_json::Error),
    /// Stored data is damaged.
    #[error("corrupt data: {0}")]
    Corrupt(String),
    /// Invalid settings.
    #[error("config: {0}")]
    Config(String),
    /// The WAL reached its disk cap because segments cannot be written out.
    #[error("WAL is full ({used} of {cap} bytes) because flushed data cannot be uploaded to the object store ({cause}); retry later")]
    WalFull {
        /// Bytes in the WAL.
        used: u64,
        /// The configured cap.
        cap: u64,
        /// Why the WAL is not draining.
        cause: String,
    },
    /// The in-memory heads reached `max_head_memory`: ingest is ahead of flushing.
    #[error("ingester is over its memory limit ({held} of {cap} bytes held in memory heads waiting to be written as segments): {cause}; push refused, retry later")]
    HeadFull {
        /// Bytes held by the active and frozen heads.
        held: usize,
        /// The configured cap.
        cap: usize,
        /// Why the heads are not draining.
        cause: String,
    },
    /// This process no longer holds the backend lease: its maintenance stopped.
    #[error("the backend lease is not held (expired or taken over); maintenance stopped")]
    LeaseLost,
    /// The store is shutting down.
    #[error("storage is shutting down")]
    ShuttingDown,
    /// A bug.
    #[error("internal: {0}")]
    Internal(String),
}

/// Result alias of this crate.
pub type Result<T> = std::result::Result<T, Error>;
