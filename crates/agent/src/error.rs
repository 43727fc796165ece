use std::path::PathBuf;

/// Errors of the agent library. Push failures carry their retry class.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config: {0}")]
    Config(String),
    #[error("config {path}: {msg}")]
    ConfigFile { path: PathBuf, msg: String },
    #[error("i/o on {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("push failed with status {status}: {body}")]
    PushStatus {
        status: u16,
        body: String,
        /// Seconds from a `Retry-After` header, if any.
        retry_after: Option<u64>,
    },
    #[error("push transport error: {0}")]
    PushTransport(String),
}

impl Error {
    /// True for 429, 5xx and network failures: Loki stored nothing, sending again is safe.
    /// Other 4xx may have stored part of the batch, so retrying would duplicate it.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::PushStatus { status, .. } => *status == 429 || *status >= 500,
            Error::PushTransport(_) => true,
            _ => false,
        }
    }

    /// Prefixes a config error with the key it concerns.
    pub(crate) fn at(self, key: &str) -> Error {
        match self {
            Error::Config(m) => Error::Config(format!("{key}: {m}")),
            e => e,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Error {
        Error::Io {
            path: path.into(),
            source,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
