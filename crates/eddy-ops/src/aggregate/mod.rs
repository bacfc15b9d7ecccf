//! Aggregates computed by windows.
