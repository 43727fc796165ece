//! Who is calling, and as which tenant: basic auth against an htpasswd file (bcrypt),
//! bearer tokens from a `user:token` file, and the user → tenants map.

use crate::config::GatewayConfig;
use base64::Engine as _;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Why a request was refused: 401 (who are you?) or 403 (not that).
#[derive(Debug)]
pub(crate) enum Denied {
    Unauthenticated(String),
    Forbidden(String),
}

/// A credentials file, re-read when its modification time changes.
struct Watched {
    path: PathBuf,
    mtime: Option<SystemTime>,
    entries: HashMap<String, String>,
}

impl Watched {
    fn new(path: &Path) -> Watched {
        Watched {
            path: path.to_path_buf(),
            mtime: None,
            entries: HashMap::new(),
        }
    }

    /// The entries (key → secret) as the file holds them now; the last good read when
    /// the file cannot be read.
    fn current(&mut self, parse: fn(&str) -> Option<(String, String)>) -> &HashMap<String, String> {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        if mtime.is_some() && mtime != self.mtime {
            match std::fs::read_to_string(&self.path) {
                Ok(text) => {
                    self.entries = text
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .filter_map(parse)
                        .collect();
                    self.mtime = mtime;
                }
                Err(e) => {
                    tracing::warn!(file = %self.path.display(), error = %e, "cannot read credentials, keeping the previous ones")
                }
            }
        }
        &self.entries
    }
}

fn user_secret(line: &str) -> Option<(String, String)> {
    let (u, s) = line.split_once(':')?;
    Some((u.to_string(), s.to_string()))
}

/// Token file lines are `user:token`; kept as token → user.
fn token_user(line: &str) -> Option<(String, String)> {
    let (u, t) = line.split_once(':')?;
    Some((t.to_string(), u.to_string()))
}

/// Equal without an early exit, so timing does not tell how much of a token matched.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The gateway's authenticator.
pub(crate) struct Auth {
    passwords: Option<Mutex<Watched>>,
    tokens: Option<Mutex<Watched>>,
    tenants: HashMap<String, Vec<String>>,
    /// (user, password, bcrypt hash) checked before: bcrypt costs ~50 ms a check by design,
    /// too much for every request of a busy client.
    verified: Mutex<HashMap<(String, String), String>>,
}

impl Auth {
    pub(crate) fn new(cfg: &GatewayConfig) -> Auth {
        Auth {
            passwords: cfg
                .basic_auth_file
                .as_deref()
                .map(|p| Mutex::new(Watched::new(p))),
            tokens: cfg
                .tokens_file
                .as_deref()
                .map(|p| Mutex::new(Watched::new(p))),
            tenants: cfg
                .tenants
                .iter()
                .map(|(u, t)| (u.clone(), t.to_vec()))
                .collect(),
            verified: Mutex::new(HashMap::new()),
        }
    }

    /// The tenant a request acts as: from its credentials and `X-Scope-OrgID` (`asked`).
    /// Without auth configured, `asked` is passed on as it is.
    pub(crate) fn tenant(
        &self,
        authorization: Option<&str>,
        asked: Option<&str>,
    ) -> Result<Option<String>, Denied> {
        if self.passwords.is_none() && self.tokens.is_none() {
            return Ok(asked.map(str::to_string));
        }
        let user = self.user(authorization)?;
        let allowed = self.tenants.get(&user).ok_or_else(|| {
            Denied::Forbidden(format!("user {user:?} is not mapped to any tenant"))
        })?;
        match asked {
            Some(t) if allowed.iter().any(|a| a == t) => Ok(Some(t.to_string())),
            Some(t) => Err(Denied::Forbidden(format!(
                "user {user:?} may not act as tenant {t:?}"
            ))),
            None if allowed.len() == 1 => Ok(Some(allowed[0].clone())),
            None => Err(Denied::Forbidden(format!(
                "user {user:?} has several tenants: choose one with X-Scope-OrgID"
            ))),
        }
    }

    fn user(&self, authorization: Option<&str>) -> Result<String, Denied> {
        let missing = || Denied::Unauthenticated("authentication required".into());
        let header = authorization.ok_or_else(missing)?;
        let (scheme, value) = header.trim().split_once(' ').ok_or_else(missing)?;
        let bad = || Denied::Unauthenticated("invalid credentials".into());
        if scheme.eq_ignore_ascii_case("basic") {
            let passwords = self.passwords.as_ref().ok_or_else(bad)?;
            let raw = base64::engine::general_purpose::STANDARD
                .decode(value.trim())
                .map_err(|_| bad())?;
            let text = String::from_utf8(raw).map_err(|_| bad())?;
            let (user, password) = text.split_once(':').ok_or_else(bad)?;
            let hash = passwords
                .lock()
                .current(user_secret)
                .get(user)
                .cloned()
                .ok_or_else(bad)?;
            let key = (user.to_string(), password.to_string());
            if self.verified.lock().get(&key) == Some(&hash) {
                return Ok(user.to_string());
            }
            if !hash.starts_with("$2") {
                tracing::warn!(
                    user,
                    "htpasswd entry is not bcrypt; only bcrypt (htpasswd -B) is accepted"
                );
                return Err(bad());
            }
            if bcrypt::verify(password, &hash).unwrap_or(false) {
                let mut v = self.verified.lock();
                // Bounded: a flood of distinct good passwords cannot grow it without end.
                if v.len() > 10_000 {
                    v.clear();
                }
                v.insert(key, hash);
                return Ok(user.to_string());
            }
            Err(bad())
        } else if scheme.eq_ignore_ascii_case("bearer") {
            let tokens = self.tokens.as_ref().ok_or_else(bad)?;
            let mut t = tokens.lock();
            let found = t
                .current(token_user)
                .iter()
                .find(|(tok, _)| same(tok.as_bytes(), value.trim().as_bytes()))
                .map(|(_, u)| u.clone());
            found.ok_or_else(bad)
        } else {
            Err(bad())
        }
    }
}
