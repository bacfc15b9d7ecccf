//! The state crate's errors: [`eddy_core::state::StateError`], shared with
//! the operator contract.

pub use eddy_core::state::StateError;
