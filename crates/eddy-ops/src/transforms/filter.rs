//! The `filter` transform.
