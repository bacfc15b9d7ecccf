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
    fn line_and_column() {
        assert_eq!(line_col("ab\ncd", 0), (1, 1));
        assert_eq!(line_col("ab\ncd", 4), (2, 2));
        assert_eq!(line_col("é\nx", 3), (2, 1));
    }
}
