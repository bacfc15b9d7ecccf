//! The `[checkpoint]` table: durable checkpoints and exactly-once output.

use serde::Deserialize;

use super::Duration;

/// `[checkpoint]`: take durable checkpoints, restore the latest on start,
/// and run sinks exactly-once. Absent, a run keeps no state across restarts.
///
/// ```toml
/// [checkpoint]
/// interval = "10s"
/// dir = "data/checkpoints/orders"   # or "file:///var/lib/eddy/orders"
/// retain = 3
/// ```
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CheckpointSettings {
    /// Time between the starts of two checkpoints (default 10 s).
    #[serde(default = "default_interval")]
    pub interval: Duration,
    /// A checkpoint not complete after this long is abandoned (default 10 min).
    #[serde(default = "default_timeout")]
    pub timeout: Duration,
    /// Least time between the end of one checkpoint and the start of the
    /// next (default 0).
    #[serde(default = "zero")]
    pub min_pause: Duration,
    /// Checkpoints in flight at once (default 1).
    #[serde(default = "one")]
    pub max_concurrent: usize,
    /// Completed checkpoints kept on disk, newest first (default 3).
    #[serde(default = "three")]
    pub retain: usize,
    /// Where checkpoints are stored: a directory or a `file://` URL
    /// (default `DATA_DIR/checkpoints/PIPELINE`).
    #[serde(default)]
    pub dir: Option<String>,
}

fn default_interval() -> Duration {
    Duration::from_ms(10_000)
}

fn default_timeout() -> Duration {
    Duration::from_ms(600_000)
}

fn zero() -> Duration {
    Duration::from_ms(0)
}

fn one() -> usize {
    1
}

fn three() -> usize {
    3
}

impl Default for CheckpointSettings {
    fn default() -> Self {
        CheckpointSettings {
            interval: default_interval(),
            timeout: default_timeout(),
            min_pause: zero(),
            max_concurrent: one(),
            retain: three(),
            dir: None,
        }
    }
}

impl CheckpointSettings {
    /// Problems deserialisation cannot see (durations are positive by
    /// their type), each with the key it concerns and a hint.
    pub fn problems(&self) -> Vec<(&'static str, String, &'static str)> {
        let mut out = Vec::new();
        if self.max_concurrent == 0 {
            out.push((
                "max_concurrent",
                "`max_concurrent` must be at least 1".to_string(),
                "the default, 1, takes one checkpoint at a time",
            ));
        }
        if self.retain == 0 {
            out.push((
                "retain",
                "`retain` must be at least 1: recovery needs a completed checkpoint".to_string(),
                "the default keeps the last 3",
            ));
        }
        if let Some(dir) = &self.dir {
            if let Err(problem) = local_dir(dir) {
                out.push((
                    "dir",
                    problem,
                    "use a local path or a file:///absolute/path URL",
                ));
            }
        }
        out
    }

    /// The checkpoint directory: `dir` if set, else
    /// `DATA_DIR/checkpoints/PIPELINE`.
    pub fn directory(&self, data_dir: &std::path::Path, pipeline: &str) -> std::path::PathBuf {
        match self.dir.as_deref().map(local_dir) {
            Some(Ok(dir)) => dir,
            _ => data_dir.join("checkpoints").join(pipeline),
        }
    }
}

/// A `dir` setting as a local path: plain paths as they are, `file://`
/// URLs without their scheme; other URLs are not supported yet.
fn local_dir(dir: &str) -> Result<std::path::PathBuf, String> {
    if let Some(path) = dir.strip_prefix("file://") {
        if !path.starts_with('/') {
            return Err(format!("`{dir}` is not an absolute file:// URL"));
        }
        return Ok(path.into());
    }
    if let Some((scheme, _)) = dir.split_once("://") {
        return Err(format!(
            "checkpoint storage `{scheme}://` is not supported yet; only local directories"
        ));
    }
    if dir.is_empty() {
        return Err("`dir` is empty".into());
    }
    Ok(dir.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_urls_and_paths_are_local_directories() {
        assert_eq!(
            local_dir("file:///var/eddy").unwrap(),
            std::path::PathBuf::from("/var/eddy")
        );
        assert_eq!(local_dir("chk").unwrap(), std::path::PathBuf::from("chk"));
        assert!(local_dir("s3://bucket/x")
            .unwrap_err()
            .contains("not supported"));
        assert!(local_dir("file://relative").is_err());
    }

    #[test]
    fn zero_counts_and_remote_dirs_are_problems() {
        let s = CheckpointSettings {
            retain: 0,
            max_concurrent: 0,
            dir: Some("s3://bucket/chk".into()),
            ..CheckpointSettings::default()
        };
        let keys: Vec<_> = s.problems().into_iter().map(|p| p.0).collect();
        assert_eq!(keys, ["max_concurrent", "retain", "dir"]);
    }
}
