//! Configuration diagnostics rendered as `FILE:LINE:COL: message` plus a hint.

use std::fmt;
use std::ops::Range;

/// One problem found in a pipeline file.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// Byte range in the file the problem is about.
    pub span: Range<usize>,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub hint: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at `span`.
    pub fn new(span: Range<usize>, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            span,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds a fix hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Diagnostic {
        self.hint = Some(hint.into());
        self
    }

    /// Converts a TOML parse or deserialisation error, keeping its span and
    /// adding a hint for the common cases.
    pub fn from_toml(err: &toml::de::Error, fallback: Range<usize>) -> Diagnostic {
        let message = err.message().trim().to_string();
        let hint = hint_for(&message);
        Diagnostic {
            span: err.span().unwrap_or(fallback),
            message,
            hint,
        }
    }
}

/// Suggests a fix from a serde/TOML message.
fn hint_for(message: &str) -> Option<String> {
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, expected) = rest.split_once('`')?;
        let options: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return Some(match closest(field, &options) {
            Some(best) => format!("did you mean `{best}`?"),
            None if options.is_empty() => "remove this field".to_string(),
            None => format!("valid fields here: {}", options.join(", ")),
        });
    }
    if let Some(rest) = message.strip_prefix("unknown variant `") {
        let (v, expected) = rest.split_once('`')?;
        let options: Vec<&str> = expected.split('`').skip(1).step_by(2).collect();
        return Some(match closest(v, &options) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("use one of: {}", options.join(", ")),
        });
    }
    if message.starts_with("missing field `") {
        return Some("add the field to this table".into());
    }
    None
}

/// The option closest to `word` by edit distance, if reasonably close.
pub fn closest<'a>(word: &str, options: &[&'a str]) -> Option<&'a str> {
    options
        .iter()
        .map(|o| (edit_distance(word, o), *o))
        .filter(|(d, o)| *d <= (o.len().max(word.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, o)| o)
}

/// Edit distance counting a swap of two neighbouring letters as one edit
/// (optimal string alignment), so `fiel` is one edit from `file`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

/// Every problem found in one file, renderable with line and column numbers.
#[derive(Clone, Debug)]
pub struct Diagnostics {
    /// The file name as the user gave it.
    pub file: String,
    /// The file's text.
    pub text: String,
    /// The problems, in file order.
    pub list: Vec<Diagnostic>,
}

impl Diagnostics {
    /// 1-based line and column (in characters) of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        line_col(&self.text, offset)
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit('\n')
        .next()
        .map(|l| l.chars().count())
        .unwrap_or(0)
        + 1;
    (line, col)
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.list {
            let (line, col) = self.line_col(d.span.start);
            writeln!(f, "{}:{line}:{col}: {}", self.file, d.message)?;
            if let Some(h) = &d.hint {
                writeln!(f, "  hint: {h}")?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// The UTF-8 byte-order mark some editors write at the start of a file.
const BOM: &str = "\u{FEFF}";

/// The text of configuration file `file` (a pipeline, a topics file) from
/// its bytes: a leading UTF-8
/// byte-order mark is dropped (so columns are those an editor shows), and
/// bytes that are not UTF-8 are a diagnostic at the first invalid byte.
pub fn config_text<'a>(file: &str, bytes: &'a [u8]) -> Result<&'a str, Diagnostics> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.strip_prefix(BOM).unwrap_or(text)),
        Err(e) => {
            let valid = &bytes[..e.valid_up_to()];
            // The valid prefix is UTF-8 by definition; it locates the byte.
            let text = String::from_utf8_lossy(valid);
            let text = text.strip_prefix(BOM).unwrap_or(&text).to_string();
            let at = text.len();
            Err(Diagnostics {
                file: file.to_string(),
                text,
                list: vec![Diagnostic::new(at..at, "the file is not valid UTF-8").hint(
                    "save the file as UTF-8 (it may be in Latin-1, \
                         Windows-1252 or UTF-16)",
                )],
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hints_suggest_the_closest_field() {
        let h = hint_for("unknown field `conditon`, expected one of `inputs`, `condition`");
        assert_eq!(h.as_deref(), Some("did you mean `condition`?"));
        assert_eq!(closest("fiel", &["file", "stdin"]), Some("file"));
        let h = hint_for("unknown field `zzz`, expected `path` or `format`");
        assert_eq!(h.as_deref(), Some("valid fields here: path, format"));
    }

    #[test]
    fn config_text_drops_a_bom_and_locates_invalid_bytes() {
        assert_eq!(
            config_text("p.toml", b"\xEF\xBB\xBF[a]\n").ok(),
            Some("[a]\n")
        );
        assert_eq!(config_text("p.toml", b"x = 1\n").ok(), Some("x = 1\n"));
        let bad = |bytes: &[u8]| config_text("p.toml", bytes).unwrap_err().to_string();
        let e = bad(b"[sources.a]\nname = \"caf\xe9\"\n");
        assert_eq!(
            e.lines().next(),
            Some("p.toml:2:12: the file is not valid UTF-8"),
            "{e}"
        );
        assert!(e.contains("hint: save the file as UTF-8"), "{e}");
        // Columns count characters, not bytes; a BOM is not a column.
        let e = bad(b"\xEF\xBB\xBF# \xC3\xA9\xFF");
        assert!(e.starts_with("p.toml:1:4: "), "{e}");
        // UTF-16 text fails at its first byte.
        assert!(bad(b"\xFF\xFE[\x00").starts_with("p.toml:1:1: "));
    }

    #[test]
    fn line_and_column() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx", 3), (2, 1));
    }
}
