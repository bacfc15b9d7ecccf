//! Where part files go: an `object_store` store under a prefix, and the
//! bridge from the sink's blocking calls to the store's async API.
//!
//! Each sink instance owns a current-thread Tokio runtime and blocks on it.
//! The local file-system store needs nothing more; network stores (`s3://`,
//! to come behind a cargo feature) will also need the runtime's I/O and
//! timer drivers enabled, and `SinkFactory::buffer` so that the uploads run
//! on the sink's own thread.

use std::future::Future;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;

use eddy_core::SinkError;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{MultipartUpload, ObjectStore, ObjectStoreExt};
use tokio::runtime::Runtime;

/// Bytes collected before they go out as one part of a multipart upload;
/// above S3's 5 MiB minimum part size, so the same code serves it later.
const PART_SIZE: usize = 8 << 20;

/// Where a `parquet` sink writes, from its `path` or `url`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Target {
    /// A local directory.
    Local(PathBuf),
}

impl Target {
    /// The target of `url`, or why it cannot be used.
    pub fn parse_url(url: &str) -> Result<Target, String> {
        let Some((scheme, _)) = url.split_once("://") else {
            return Err(format!(
                "`{url}` is not a URL; use `file:///abs/dir`, or `path` for a local directory"
            ));
        };
        match scheme {
            "file" => {
                let parsed =
                    url::Url::parse(url).map_err(|e| format!("`{url}` is not a valid URL: {e}"))?;
                let dir = parsed.to_file_path().map_err(|()| {
                    format!("`{url}` is not an absolute local path (use `file:///abs/dir`)")
                })?;
                Ok(Target::Local(dir))
            }
            "s3" | "s3a" | "gs" | "az" | "abfs" | "abfss" | "http" | "https" => Err(format!(
                "`{scheme}://` object storage is not built into this Eddy yet; \
                 use `path` or a `file://` URL"
            )),
            _ => Err(format!(
                "unknown URL scheme `{scheme}://` in `{url}`; use `file:///abs/dir`"
            )),
        }
    }
}

/// An opened target: the store, the prefix files go under, and the runtime
/// that drives it.
pub struct Store {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    runtime: Arc<Runtime>,
    /// The target as the user wrote it, for messages.
    display: String,
}

impl Store {
    /// Opens `target`, creating a local directory if needed.
    pub fn open(target: &Target) -> Result<Store, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| format!("cannot start the object-store runtime: {e}"))?;
        match target {
            Target::Local(dir) => {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
                let store = LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| format!("cannot open directory {}: {e}", dir.display()))?;
                Ok(Store {
                    store: Arc::new(store),
                    prefix: ObjectPath::default(),
                    runtime: Arc::new(runtime),
                    display: dir.display().to_string(),
                })
            }
        }
    }

    fn block_on<F: Future>(&self, future: F) -> F::Output {
        self.runtime.block_on(future)
    }

    /// The location of `parts` (directories, then a file name) under the
    /// prefix.
    pub fn location<'a>(&self, parts: impl IntoIterator<Item = &'a str>) -> ObjectPath {
        parts
            .into_iter()
            .fold(self.prefix.clone(), |path, part| path.join(part))
    }

    /// The names of the files directly inside `dir` (a location from
    /// [`Store::location`]); none if it does not exist.
    pub fn file_names(&self, dir: &ObjectPath) -> Result<Vec<String>, SinkError> {
        let listing = self.block_on(self.store.list_with_delimiter(Some(dir)));
        match listing {
            Ok(list) => Ok(list
                .objects
                .into_iter()
                .filter_map(|o| o.location.filename().map(str::to_string))
                .collect()),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(self.error(dir, e)),
        }
    }

    /// Every file under the prefix, at any depth.
    pub fn all_files(&self) -> Result<Vec<ObjectPath>, SinkError> {
        use futures_util::TryStreamExt;
        let listing = self.block_on(
            self.store
                .list(Some(&self.prefix))
                .map_ok(|meta| meta.location)
                .try_collect::<Vec<_>>(),
        );
        match listing {
            Ok(files) => Ok(files),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(self.error(&self.prefix, e)),
        }
    }

    /// Renames `from` to `to` (atomically on a local directory).
    pub fn rename(&self, from: &ObjectPath, to: &ObjectPath) -> Result<(), SinkError> {
        self.block_on(self.store.rename(from, to))
            .map_err(|e| self.error(from, e))
    }

    /// Deletes `location`; a missing file is not an error.
    pub fn delete(&self, location: &ObjectPath) -> Result<(), SinkError> {
        match self.block_on(self.store.delete(location)) {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(location, e)),
        }
    }

    /// Starts writing the object at `location`; it appears there only when
    /// [`Upload::complete`] succeeds.
    pub fn create(&self, location: ObjectPath) -> Result<Upload, SinkError> {
        let upload = self
            .block_on(self.store.put_multipart(&location))
            .map_err(|e| self.error(&location, e))?;
        Ok(Upload {
            upload,
            runtime: self.runtime.clone(),
            buf: Vec::new(),
            location,
            display: self.display.clone(),
        })
    }

    fn error(&self, location: &ObjectPath, e: object_store::Error) -> SinkError {
        upload_error(&self.display, location, e)
    }
}

fn upload_error(display: &str, location: &ObjectPath, e: impl std::fmt::Display) -> SinkError {
    SinkError::Rejected {
        message: format!("parquet {display}/{location}: {e}"),
        // A store that failed (outage, permissions being fixed) may work
        // on a later try; nothing about the data itself was wrong.
        retryable: true,
    }
}

/// A file being written: bytes go out in parts of [`PART_SIZE`].
pub struct Upload {
    upload: Box<dyn MultipartUpload>,
    runtime: Arc<Runtime>,
    buf: Vec<u8>,
    location: ObjectPath,
    display: String,
}

impl Upload {
    fn send_part(&mut self) -> Result<(), object_store::Error> {
        let part = std::mem::take(&mut self.buf);
        self.runtime.block_on(self.upload.put_part(part.into()))
    }

    /// Sends what is left and makes the object visible.
    pub fn complete(&mut self) -> Result<(), SinkError> {
        let result = match self.buf.is_empty() {
            true => Ok(()),
            false => self.send_part(),
        };
        result
            .and_then(|()| self.runtime.block_on(self.upload.complete()).map(drop))
            .map_err(|e| upload_error(&self.display, &self.location, e))
    }
}

impl Write for Upload {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= PART_SIZE {
            self.send_part().map_err(std::io::Error::other)?;
        }
        Ok(data.len())
    }

    /// Parts are sent when full or on [`Upload::complete`]: a store may
    /// refuse small parts, so there is nothing to do here.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_file_urls() {
        assert_eq!(
            Target::parse_url("file:///tmp/lake%20house"),
            Ok(Target::Local(PathBuf::from("/tmp/lake house")))
        );
        assert!(Target::parse_url("file://relative/dir").is_err());
        assert!(Target::parse_url("ftp://host/x")
            .unwrap_err()
            .contains("unknown URL scheme"));
    }

    #[test]
    fn uploads_appear_complete_or_not_at_all() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&Target::Local(dir.path().join("lake"))).unwrap();
        let location = store.location(["day=2024-05-01", "hour=07", "part-0-0.bin"]);
        let mut upload = store.create(location).unwrap();
        let big = vec![7u8; PART_SIZE + 10];
        upload.write_all(&big).unwrap();
        upload.write_all(b"tail").unwrap();
        let file = dir.path().join("lake/day=2024-05-01/hour=07/part-0-0.bin");
        assert!(!file.exists(), "visible before complete");
        upload.complete().unwrap();
        assert_eq!(std::fs::read(&file).unwrap().len(), PART_SIZE + 14);
        let dir_location = store.location(["day=2024-05-01", "hour=07"]);
        assert_eq!(
            store.file_names(&dir_location).unwrap(),
            vec!["part-0-0.bin"]
        );
        assert!(store
            .file_names(&store.location(["missing"]))
            .unwrap()
            .is_empty());

        // Dropped before complete: nothing appears, no staging file stays.
        let mut dropped = store.create(store.location(["gone.bin"])).unwrap();
        dropped.write_all(b"x").unwrap();
        drop(dropped);
        let left: Vec<_> = std::fs::read_dir(dir.path().join("lake"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, vec!["day=2024-05-01"]);
    }
}
