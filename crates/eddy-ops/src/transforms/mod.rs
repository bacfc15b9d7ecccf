//! Transforms, one module per `type`.

pub mod anomaly;
pub mod filter;
pub mod flat_map;
pub mod key;
pub mod map;
pub mod ordered;
pub mod window;
