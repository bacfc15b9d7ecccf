//! The `_manifest` file: a short text file a person can read.
//!
//! ```text
//! eddy-checkpoint 1
//! id 42
//! file 1234 9ae0daaf op-counts-kg-0-128
//! check 5d3c1a0e
//! ```
//!
//! The last line is the CRC-32 of every line before it, so a damaged
//! manifest is told apart from a damaged state file.

/// A file of a checkpoint as the manifest records it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// File name inside the checkpoint directory.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// CRC-32 (IEEE) of its bytes.
    pub crc32: u32,
}

const HEADER: &str = "eddy-checkpoint 1";

pub(crate) fn render(id: u64, files: &[FileEntry]) -> String {
    let mut text = format!("{HEADER}\nid {id}\n");
    for f in files {
        text.push_str(&format!("file {} {:08x} {}\n", f.size, f.crc32, f.name));
    }
    let check = crc32fast::hash(text.as_bytes());
    text.push_str(&format!("check {check:08x}\n"));
    text
}

/// Parses a manifest; the error says what is wrong with it.
pub(crate) fn parse(text: &str) -> Result<(u64, Vec<FileEntry>), String> {
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .map(|i| i + 1)
        .ok_or("manifest has no check line")?;
    let (body, last) = text.split_at(body_end);
    let check = last
        .trim_end()
        .strip_prefix("check ")
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .ok_or("manifest does not end with its check line")?;
    if crc32fast::hash(body.as_bytes()) != check {
        return Err("manifest checksum does not match".into());
    }
    let mut lines = body.lines();
    if lines.next() != Some(HEADER) {
        return Err("not a checkpoint manifest of format 1".into());
    }
    let id = lines
        .next()
        .and_then(|l| l.strip_prefix("id "))
        .and_then(|n| n.parse().ok())
        .ok_or("manifest has no id line")?;
    let mut files = Vec::new();
    for line in lines {
        let mut parts = line.splitn(4, ' ');
        let entry = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some("file"), Some(size), Some(crc), Some(name)) => size
                .parse()
                .ok()
                .zip(u32::from_str_radix(crc, 16).ok())
                .map(|(size, crc32)| FileEntry {
                    name: name.to_owned(),
                    size,
                    crc32,
                }),
            _ => None,
        };
        files.push(entry.ok_or_else(|| format!("manifest line {line:?} is malformed"))?);
    }
    Ok((id, files))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn manifests_round_trip_and_detect_edits() {
        let files = vec![FileEntry {
            name: "op-a-kg-0-128".into(),
            size: 10,
            crc32: 0xdead_beef,
        }];
        let text = render(7, &files);
        assert_eq!(parse(&text), Ok((7, files)));
        let edited = text
            .replace("size 10", "size 11")
            .replace("file 10", "file 11");
        assert!(parse(&edited).is_err());
        assert!(parse(&text[..text.len() - 3]).is_err());
        assert!(parse("").is_err());
    }
}
