//! The plan-time check that no sink writes where a source reads or where
//! another sink writes.
//!
//! A `file` sink opening its own source's file truncates the input before
//! it is read, and two sinks appending to one file interleave partial
//! lines; both would destroy data while the run reports success. Paths are
//! compared after resolving them against the working directory and
//! following symbolic links, so `./a.ndjson`, `dir/../a.ndjson` and a link
//! to `a.ndjson` all name the same file.

use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use eddy_core::component::{PathScope, PathUse};
use eddy_core::config::{ComponentDoc, Diagnostic};

use super::PlanNode;
use crate::registry::Factory;

/// Files under a resolved path that one component uses.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Region {
    File(PathBuf),
    Dir(PathBuf),
    /// Files in a directory whose names start with a stem.
    Prefix(PathBuf, OsString),
}

impl Region {
    fn of(used: &PathUse) -> Region {
        let path = resolve(&used.path);
        match used.scope {
            PathScope::File => Region::File(path),
            PathScope::Directory => Region::Dir(path),
            PathScope::Prefix => {
                let stem = path.file_name().map(OsString::from).unwrap_or_default();
                let dir = path.parent().map(Path::to_path_buf).unwrap_or(path);
                Region::Prefix(dir, stem)
            }
        }
    }

    /// The path shown to the user.
    fn shown(&self) -> String {
        match self {
            Region::File(p) => p.display().to_string(),
            Region::Dir(p) => format!("{}/", p.display()),
            Region::Prefix(dir, stem) => {
                format!("{}*", dir.join(stem).display())
            }
        }
    }

    fn contains_file(&self, file: &Path) -> bool {
        match self {
            Region::File(p) => p == file,
            Region::Dir(d) => file.starts_with(d),
            Region::Prefix(dir, stem) => {
                file.parent() == Some(dir.as_path())
                    && file
                        .file_name()
                        .is_some_and(|n| n.as_encoded_bytes().starts_with(stem.as_encoded_bytes()))
            }
        }
    }

    fn overlaps(&self, other: &Region) -> bool {
        use Region::*;
        match (self, other) {
            (File(f), r) | (r, File(f)) => r.contains_file(f),
            (Dir(a), Dir(b)) => a.starts_with(b) || b.starts_with(a),
            (Dir(d), Prefix(dir, _)) | (Prefix(dir, _), Dir(d)) => dir.starts_with(d),
            (Prefix(da, sa), Prefix(db, sb)) => {
                let (a, b) = (sa.as_encoded_bytes(), sb.as_encoded_bytes());
                da == db && (a.starts_with(b) || b.starts_with(a))
            }
        }
    }
}

/// An absolute path with every symbolic link in its existing part
/// resolved, and `.` and `..` applied as the kernel would once missing
/// directories are created (a sink creates its parents).
fn resolve(path: &Path) -> PathBuf {
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(path))
            .unwrap_or_else(|_| path.to_path_buf())
    };
    // Component by component, so the prefix is always canonical and `..`
    // steps out of where a link led, not out of the link's own directory.
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => {
                out.push(other.as_os_str());
                if let Ok(real) = out.canonicalize() {
                    out = real;
                }
            }
        }
    }
    out
}

/// One diagnostic per component that uses files another one writes to.
pub(super) fn conflicts<'a, 'i: 'a>(
    nodes: impl Iterator<Item = (&'a ComponentDoc<'i>, &'a PlanNode)>,
) -> Vec<Diagnostic> {
    struct Use<'a, 'i> {
        doc: &'a ComponentDoc<'i>,
        writes: bool,
        region: Region,
    }
    let mut uses: Vec<Use<'a, 'i>> = Vec::new();
    for (doc, node) in nodes {
        let (list, writes) = match &node.factory {
            Factory::Source(s) => (s.reads(), false),
            Factory::Sink(s) => (s.writes(), true),
            Factory::Transform(_) => continue,
        };
        uses.extend(list.iter().map(|u| Use {
            doc,
            writes,
            region: Region::of(u),
        }));
    }
    let mut diags = Vec::new();
    for (i, later) in uses.iter().enumerate() {
        // Report each later component once, against the first it clashes with.
        let clash = uses[..i].iter().find(|earlier| {
            (earlier.writes || later.writes)
                && earlier.doc.name != later.doc.name
                && earlier.region.overlaps(&later.region)
        });
        let Some(earlier) = clash else { continue };
        let (message, hint) = match (earlier.writes, later.writes) {
            (true, true) => (
                format!(
                    "sinks `{}` and `{}` both write {}",
                    earlier.doc.name,
                    later.doc.name,
                    later.region.shown()
                ),
                "give each sink its own path: lines written by two sinks would interleave",
            ),
            _ => {
                let (source, sink) = if earlier.writes {
                    (later, earlier)
                } else {
                    (earlier, later)
                };
                (
                    format!(
                        "sink `{}` writes {}, which source `{}` reads",
                        sink.doc.name,
                        sink.region.shown(),
                        source.doc.name
                    ),
                    "write the output somewhere else: the sink would overwrite its own input",
                )
            }
        };
        diags.push(Diagnostic::new(later.doc.name_span.clone(), message).hint(hint));
    }
    diags
}

#[cfg(test)]
mod tests {
    use super::*;

    fn region(path: &Path, scope: PathScope) -> Region {
        Region::of(&PathUse {
            path: path.to_path_buf(),
            scope,
        })
    }

    #[test]
    fn resolves_dots_and_symbolic_links() {
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::fs::write(real.join("in.ndjson"), "").unwrap();
        std::os::unix::fs::symlink(&real, dir.path().join("link")).unwrap();
        let direct = resolve(&real.join("in.ndjson"));
        assert_eq!(resolve(&dir.path().join("link/in.ndjson")), direct);
        assert_eq!(resolve(&dir.path().join("link/./x/../in.ndjson")), direct);
        // A file that does not exist yet, below a link.
        assert_eq!(
            resolve(&dir.path().join("link/new/out.ndjson")),
            resolve(&real).join("new/out.ndjson")
        );
    }

    #[test]
    fn regions_overlap_by_scope() {
        let d = Path::new("/data");
        let file = region(&d.join("out/a.ndjson"), PathScope::File);
        let dir = region(&d.join("out"), PathScope::Directory);
        let rotated = region(&d.join("out/a-"), PathScope::Prefix);
        assert!(file.overlaps(&dir) && dir.overlaps(&file));
        assert!(!file.overlaps(&rotated));
        let rotated_file = region(
            &d.join("out/a-20240101T000000-000000.ndjson"),
            PathScope::File,
        );
        assert!(rotated.overlaps(&rotated_file));
        assert!(rotated.overlaps(&dir));
        assert!(!region(&d.join("other"), PathScope::Directory).overlaps(&rotated));
        assert!(!region(&d.join("outer"), PathScope::Directory).overlaps(&dir));
        assert!(region(&d.join("out/b-"), PathScope::Prefix)
            .overlaps(&region(&d.join("out/b-x"), PathScope::Prefix)));
    }
}
