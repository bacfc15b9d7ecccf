//! Text templates for keys, channels and similar per-event names:
//! literal text with `{expr}` parts, each a CEL expression evaluated on the
//! event (`"kpi:{department}"`, `"user:{user.id}:{string(_time / 1000)}"`).
//! `{{` and `}}` stand for literal braces.
//!
//! Templates are compiled once, when the pipeline is; rendering appends to
//! a reused buffer, so the hot path allocates nothing for literal parts.

use std::fmt;

use eddy_core::json::write_value;
use eddy_core::{Event, Expression, Value};
use serde::{Deserialize, Deserializer};

/// One piece of a template.
#[derive(Clone, Debug, PartialEq)]
enum Part {
    Text(String),
    Expr(Expression),
}

/// A compiled template.
#[derive(Clone, PartialEq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl fmt::Debug for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Template({:?})", self.source)
    }
}

impl Template {
    /// Parses `source`, compiling each `{expr}` part.
    pub fn compile(source: &str) -> Result<Template, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = source.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '{' if chars.peek().is_some_and(|(_, n)| *n == '{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek().is_some_and(|(_, n)| *n == '}') => {
                    chars.next();
                    text.push('}');
                }
                '}' => {
                    return Err(format!(
                        "unmatched `}}` at column {}: write `}}}}` for a literal brace",
                        i + 1
                    ))
                }
                '{' => {
                    let end = closing_brace(source, i + 1)
                        .ok_or_else(|| format!("`{{` at column {} is never closed", i + 1))?;
                    let expr = source[i + 1..end].trim();
                    if expr.is_empty() {
                        return Err(format!("empty `{{}}` at column {}", i + 1));
                    }
                    let compiled = Expression::compile(expr)
                        .map_err(|e| format!("bad expression `{expr}`: {e}"))?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Expr(compiled));
                    // Skip to the closing brace.
                    while chars.peek().is_some_and(|(j, _)| *j <= end) {
                        chars.next();
                    }
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template {
            source: source.to_string(),
            parts,
        })
    }

    /// The template text as written.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The text, when the template has no `{expr}` parts.
    pub fn literal(&self) -> Option<&str> {
        match self.parts.as_slice() {
            [] => Some(""),
            [Part::Text(t)] => Some(t),
            _ => None,
        }
    }

    /// Appends the template rendered for `event` to `out`. Strings are
    /// inserted as they are, other values as JSON; a part that fails to
    /// evaluate or is null (a missing field) is an error naming it.
    pub fn render(&self, event: &Event, out: &mut Vec<u8>) -> Result<(), String> {
        for part in &self.parts {
            match part {
                Part::Text(t) => out.extend_from_slice(t.as_bytes()),
                Part::Expr(e) => match e.eval_ref(event) {
                    Ok(v) => match v.as_ref() {
                        Value::Null => {
                            return Err(format!(
                                "`{{{}}}` in `{}` is missing or null",
                                e.source(),
                                self.source
                            ))
                        }
                        v => write_plain(out, v),
                    },
                    Err(err) => {
                        return Err(format!("`{{{}}}` in `{}`: {err}", e.source(), self.source))
                    }
                },
            }
        }
        Ok(())
    }
}

/// Appends `value` as text: strings without quotes, everything else as JSON.
pub fn write_plain(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Str(s) => out.extend_from_slice(s.as_bytes()),
        other => write_value(out, other),
    }
}

/// The byte offset of the `}` closing an expression that starts at `from`,
/// skipping nested braces and quoted strings.
fn closing_brace(source: &str, from: usize) -> Option<usize> {
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (j, c) in source[from..].char_indices() {
        if let Some(q) = quote {
            match c {
                _ if escaped => escaped = false,
                '\\' => escaped = true,
                c if c == q => quote = None,
                _ => {}
            }
            continue;
        }
        match c {
            '"' | '\'' => quote = Some(c),
            '{' => depth += 1,
            '}' if depth == 0 => return Some(from + j),
            '}' => depth -= 1,
            _ => {}
        }
    }
    None
}

impl<'de> Deserialize<'de> for Template {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Template, D::Error> {
        let text = String::deserialize(d)?;
        Template::compile(&text)
            .map_err(|e| serde::de::Error::custom(format!("bad template `{text}`: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::{Fields, Sym};

    fn render(template: &str, event: &Event) -> Result<String, String> {
        let t = Template::compile(template)?;
        let mut out = Vec::new();
        t.render(event, &mut out)?;
        Ok(String::from_utf8_lossy(&out).into_owned())
    }

    #[test]
    fn renders_literals_fields_and_expressions() {
        let mut f = Fields::default();
        f.push(Sym::intern("department"), Value::str("sales"));
        f.push(Sym::intern("n"), Value::Int(7));
        let e = Event::new(5_000, f);
        assert_eq!(render("kpi:{department}", &e).as_deref(), Ok("kpi:sales"));
        assert_eq!(render("{n * 2}/{ _time }", &e).as_deref(), Ok("14/5000"));
        assert_eq!(
            render("{{x}}:{ {\"a\": n}[\"a\"] }", &e).as_deref(),
            Ok("{x}:7")
        );
        assert_eq!(render("{'}'}", &e).as_deref(), Ok("}"));
        assert_eq!(Template::compile("plain").unwrap().literal(), Some("plain"));
        assert!(Template::compile("a:{n}").unwrap().literal().is_none());
    }

    #[test]
    fn reports_bad_templates_and_missing_fields() {
        let e = Event::new(0, Fields::default());
        assert!(render("kpi:{department", &e)
            .unwrap_err()
            .contains("never closed"));
        assert!(render("kpi:}", &e).unwrap_err().contains("unmatched"));
        assert!(render("kpi:{}", &e).unwrap_err().contains("empty"));
        assert!(render("kpi:{1 +}", &e)
            .unwrap_err()
            .contains("bad expression"));
        let err = render("kpi:{department}", &e).unwrap_err();
        assert!(err.contains("missing or null"), "{err}");
    }
}
