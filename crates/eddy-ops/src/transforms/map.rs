//! The `map` transform.
