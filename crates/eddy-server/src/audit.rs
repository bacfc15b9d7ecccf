//! The audit log: one JSON line per request that changed something
//! (every method but `GET`/`HEAD`), opened a live feed, or was refused
//! (`401`, `403`, `429`), with who (the key's name, or none) from where.
//! Paths are logged without their query, so a key passed as `?api_key=`
//! never reaches the file.

use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;

/// An append-only NDJSON file, written a line at a time.
#[derive(Debug)]
pub struct AuditLog {
    file: Mutex<File>,
}

/// One audited request.
pub(crate) struct Entry<'a> {
    pub(crate) client: &'a str,
    pub(crate) key: Option<&'a str>,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) status: u16,
    pub(crate) what: &'a str,
}

impl AuditLog {
    /// Opens (creating it and its directory if needed) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(AuditLog {
            file: Mutex::new(file),
        })
    }

    /// Appends `entry` as one line; a failed write is logged, never fatal.
    pub(crate) fn record(&self, entry: &Entry<'_>) {
        let line = serde_json::json!({
            "time": eddy_core::time::format_rfc3339(eddy_core::time::now_ms()),
            "what": entry.what,
            "client": entry.client,
            "key": entry.key,
            "method": entry.method,
            "path": entry.path,
            "status": entry.status,
        });
        let mut text = line.to_string();
        text.push('\n');
        let mut file = self
            .file
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = file.write_all(text.as_bytes()) {
            tracing::warn!(error = %e, "audit log: cannot write");
        }
    }
}
