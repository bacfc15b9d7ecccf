//! What the text-reading transforms share: reading a string field and
//! writing what was made of it, with one policy for events without it.

use eddy_core::{Batch, Collector, Value};
use eddy_ops::transforms::map::FieldPath;

/// At most `max` bytes of `text`, cut back to a character boundary.
pub(crate) fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let end = (0..=max)
        .rev()
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(0);
    &text[..end]
}

/// The text fields a transform reads and writes.
#[derive(Clone, Debug)]
pub(crate) struct TextField {
    /// The node's name (the dead letters' `stage`).
    pub name: String,
    /// Where the text is.
    pub field: FieldPath,
    /// Where the result goes.
    pub target: FieldPath,
}

impl TextField {
    /// Reads `field` and writes `target` for node `name`.
    pub fn new(name: &str, field: &FieldPath, target: &FieldPath) -> TextField {
        TextField {
            name: name.to_string(),
            field: field.clone(),
            target: target.clone(),
        }
    }

    /// Sets `target` to `enrich(text)` on every event of `batch` whose
    /// `field` is a string and emits the batch. Events without the field
    /// (or with it null) pass unchanged; a field that is not a string sends
    /// its event to the dead letters.
    pub fn apply(&self, batch: Batch, out: &mut Collector, mut enrich: impl FnMut(&str) -> Value) {
        self.try_apply(batch, out, |text| Ok(Some(enrich(text))));
    }

    /// As [`apply`](Self::apply), for enrichments that may find nothing
    /// (`Ok(None)`: the event passes unchanged) or find the text malformed
    /// (`Err(reason)`: the event goes to the dead letters).
    pub fn try_apply(
        &self,
        mut batch: Batch,
        out: &mut Collector,
        mut enrich: impl FnMut(&str) -> Result<Option<Value>, String>,
    ) {
        let Self {
            name,
            field,
            target,
        } = self;
        batch.events.retain_mut(|event| {
            let result = match event.fields.get_path(field.syms()) {
                None | Some(Value::Null) => return true,
                Some(Value::Str(text)) => enrich(text),
                Some(other) => Err(format!(
                    "field `{field}` is of type {}, not a string",
                    other.type_name()
                )),
            };
            match result {
                Ok(Some(value)) => event.fields.insert_path(target.syms(), value),
                Ok(None) => {}
                Err(reason) => {
                    out.dead_letter(name, reason, event);
                    return false;
                }
            }
            true
        });
        if !batch.events.is_empty() {
            out.emit_batch(batch);
        }
    }
}
