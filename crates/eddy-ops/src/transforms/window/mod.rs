//! The `window` transform.
