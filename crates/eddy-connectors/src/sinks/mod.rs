//! Sinks, one module per `type`.
