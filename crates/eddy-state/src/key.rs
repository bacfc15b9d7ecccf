//! Key groups: defined with the operator contract in
//! [`eddy_core::state`], re-exported here for table users.

pub use eddy_core::state::{GroupRange, KeyGroup};
