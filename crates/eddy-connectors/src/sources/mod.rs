//! Sources, one module per `type`.
