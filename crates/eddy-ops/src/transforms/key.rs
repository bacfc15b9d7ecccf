//! Evaluating a keyed operator's key: the CEL expressions of its `key`,
//! the key group the runtime routed the event by, and the encoded bytes
//! its state tables and timers are keyed by.

use eddy_core::codec::Encoder;
use eddy_core::state::KeyGroup;
use eddy_core::{Event, Expression, Value};

/// A key's expressions with reused buffers: evaluating a key allocates
/// only its encoded bytes.
pub struct KeyEvaluator {
    exprs: Vec<Expression>,
    values: Vec<Value>,
    encoder: Encoder,
}

impl KeyEvaluator {
    /// Evaluates `exprs` (none: every event has the same, empty key).
    pub fn new(exprs: Vec<Expression>) -> KeyEvaluator {
        KeyEvaluator {
            exprs,
            values: Vec::new(),
            encoder: Encoder::new(),
        }
    }

    /// The key of `event`: its group, hashed as the runtime's
    /// `Partitioning::Hash` routes it (one value alone, several as a
    /// slice), and its encoded bytes; or why it has none, naming
    /// `operator` and the expression.
    pub fn eval(&mut self, operator: &str, event: &Event) -> Result<(KeyGroup, Vec<u8>), String> {
        self.values.clear();
        for k in &self.exprs {
            let v = k
                .eval(event)
                .map_err(|e| format!("`{operator}`: key `{}`: {e}", k.source()))?;
            self.values.push(v);
        }
        let g = match &self.values[..] {
            [] => KeyGroup::MIN,
            [one] => KeyGroup::of(one),
            many => KeyGroup::of(many),
        };
        self.encoder.reset_names();
        for v in &self.values {
            self.encoder.put(v);
        }
        Ok((g, self.encoder.take_bytes()))
    }

    /// The values of the key last evaluated, in `key` order.
    pub fn values(&self) -> &[Value] {
        &self.values
    }
}
