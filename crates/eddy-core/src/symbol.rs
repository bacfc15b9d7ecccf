//! Interned field names.
//!
//! Field names are interned once (when a pipeline is compiled or when a
//! decoder first meets a key) so that events compare and look up fields by
//! pointer instead of by string.

use std::collections::HashSet;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::{OnceLock, RwLock};

/// An interned field name. Two `Sym`s are equal exactly when their names are.
#[derive(Clone, Copy)]
pub struct Sym(&'static str);

/// Upper bound on distinct field names, so a stream of random keys cannot
/// grow the interner without bound.
pub const MAX_SYMBOLS: usize = 1 << 20;

fn table() -> &'static RwLock<HashSet<&'static str>> {
    static TABLE: OnceLock<RwLock<HashSet<&'static str>>> = OnceLock::new();
    TABLE.get_or_init(Default::default)
}

impl Sym {
    /// Interns `name`, returning `None` once [`MAX_SYMBOLS`] distinct names exist.
    pub fn try_intern(name: &str) -> Option<Sym> {
        if let Some(s) = table().read().ok()?.get(name) {
            return Some(Sym(s));
        }
        let mut t = table().write().ok()?;
        if let Some(s) = t.get(name) {
            return Some(Sym(s));
        }
        if t.len() >= MAX_SYMBOLS {
            return None;
        }
        let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
        t.insert(leaked);
        Some(Sym(leaked))
    }

    /// Interns a name chosen by Eddy or by a pipeline author (bounded in number).
    pub fn intern(name: &str) -> Sym {
        Self::try_intern(name).unwrap_or(Sym("_overflow"))
    }

    /// The field name.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

impl PartialEq for Sym {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0.as_ptr(), other.0.as_ptr())
    }
}
impl Eq for Sym {}

impl Hash for Sym {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.0.as_ptr() as usize).hash(state)
    }
}

impl fmt::Debug for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

impl fmt::Display for Sym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0)
    }
}

/// Interns a name once per call site and returns it cheaply afterwards.
#[macro_export]
macro_rules! sym {
    ($name:literal) => {{
        static S: ::std::sync::OnceLock<$crate::Sym> = ::std::sync::OnceLock::new();
        *S.get_or_init(|| $crate::Sym::intern($name))
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_names_are_equal_symbols() {
        let a = Sym::intern("merchant");
        let b = Sym::intern(&String::from("merchant"));
        assert_eq!(a, b);
        assert_ne!(a, Sym::intern("amount"));
        assert_eq!(a.as_str(), "merchant");
        assert_eq!(sym!("merchant"), a);
    }
}
