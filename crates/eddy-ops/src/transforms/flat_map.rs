//! The `flat_map` transform.
