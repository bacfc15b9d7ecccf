//! The window operator's checkpoint format: what the state machines share
//! to write and read their state (keys, accumulators, the header and the
//! checksum), so a run restored from a snapshot continues exactly as the
//! uninterrupted run would.
//!
//! A snapshot is `version, kind, state, checksum` (the runtime keeps the
//! watermark beside it): the state is
//! written by [`Aligned`](super::aligned), [`Sessions`](super::session) or
//! [`Global`](super::global) in an order of their own (window start, then
//! key group and key; or key id), never in hash-table order, so the same state always gives the
//! same bytes. Every number is a varint; accumulators are written without
//! their variant (the specs give it, see [`Accumulator::encode_state`]).
//! The trailing 64-bit checksum catches truncation and bit flips before
//! anything is decoded; whatever passes it is still decoded with every
//! length and range checked.

use std::cmp::Ordering;
use std::hash::Hasher;

use eddy_core::codec::{DecodeError, Decoder, Encoder};
use eddy_core::state::KeyGroup;
use eddy_core::Value;
use rustc_hash::FxHasher;

use super::common::Key;
use crate::aggregate::{value_order, Accumulator};

/// The format written by this version of the operator.
pub(crate) const VERSION: u8 = 3;

/// Which state machine wrote a snapshot.
pub(crate) const KIND_ALIGNED: u8 = 0;
/// Session windows.
pub(crate) const KIND_SESSIONS: u8 = 1;
/// Global windows.
pub(crate) const KIND_GLOBAL: u8 = 2;
/// Sliding windows kept by slices (see `aligned`).
pub(crate) const KIND_SLICED: u8 = 3;

/// Why a snapshot cannot be restored; the operator turns it into
/// [`StateError::Corrupt`](eddy_core::state::StateError::Corrupt).
#[derive(Debug, thiserror::Error)]
pub(crate) enum SnapshotError {
    /// Shorter than a header and checksum.
    #[error("{0} bytes is too short for a window snapshot")]
    TooShort(usize),
    /// The checksum does not match the bytes.
    #[error("checksum mismatch (the snapshot is truncated or damaged)")]
    Checksum,
    /// Written by another version of the format.
    #[error("snapshot format version {found}, this version of Eddy reads version {VERSION}")]
    Version {
        /// The version byte found.
        found: u8,
    },
    /// Written by a window of another kind.
    #[error("snapshot of a {found} window, this window is a {want} window")]
    Kind {
        /// The kind in the snapshot.
        found: &'static str,
        /// This operator's kind.
        want: &'static str,
    },
    /// The state does not decode.
    #[error("state does not decode: {0}")]
    Decode(#[from] DecodeError),
    /// The state decodes but contradicts itself.
    #[error("inconsistent state: {0}")]
    Inconsistent(&'static str),
}

/// The name of a state kind in messages.
pub(crate) fn kind_name(kind: u8) -> &'static str {
    match kind {
        KIND_ALIGNED => "tumbling (or an earlier version's sliding)",
        KIND_SLICED => "sliding",
        KIND_SESSIONS => "session",
        KIND_GLOBAL => "global",
        _ => "unknown",
    }
}

/// The checksum appended to a snapshot.
fn checksum(bytes: &[u8]) -> u64 {
    let mut h = FxHasher::default();
    h.write(bytes);
    h.write_usize(bytes.len());
    h.finish()
}

/// The header of a snapshot: the format version and the state's kind.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Header {
    pub(crate) kind: u8,
}

impl Header {
    /// Writes the header.
    pub(crate) fn begin(&self, enc: &mut Encoder) {
        enc.u8(VERSION);
        enc.u8(self.kind);
    }
}

/// Appends the checksum and returns the snapshot's bytes.
pub(crate) fn seal(enc: Encoder) -> Vec<u8> {
    let mut bytes = enc.into_bytes();
    let sum = checksum(&bytes);
    bytes.extend_from_slice(&sum.to_le_bytes());
    bytes
}

/// Checks the checksum, version and kind; returns a decoder of the body
/// (the checksum removed) positioned at the state.
pub(crate) fn open(bytes: &[u8], kind: u8) -> Result<Decoder<'_>, SnapshotError> {
    if bytes.len() < 2 + 8 {
        return Err(SnapshotError::TooShort(bytes.len()));
    }
    let (body, sum) = bytes.split_at(bytes.len() - 8);
    let mut stored = [0u8; 8];
    stored.copy_from_slice(sum);
    if u64::from_le_bytes(stored) != checksum(body) {
        // A snapshot of another version may use another checksum: report
        // the version when the first byte is not ours.
        if body[0] != VERSION {
            return Err(SnapshotError::Version { found: body[0] });
        }
        return Err(SnapshotError::Checksum);
    }
    let mut dec = Decoder::new(body);
    let version = dec.u8()?;
    if version != VERSION {
        return Err(SnapshotError::Version { found: version });
    }
    let found = dec.u8()?;
    if found != kind {
        return Err(SnapshotError::Kind {
            found: kind_name(found),
            want: kind_name(kind),
        });
    }
    Ok(dec)
}

/// Key order of a snapshot: the values in turn, by the value order (a
/// strict total order, so distinct keys never tie).
pub(crate) fn key_order(a: &[Value], b: &[Value]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        match value_order(x, y) {
            Ordering::Equal => {}
            o => return o,
        }
    }
    a.len().cmp(&b.len())
}

/// The key group of a key, as the runtime routes it (one value hashed
/// alone, several as a list), in the top 7 bits, then more of the hash.
pub(crate) fn group_prefix(key: &[Value]) -> u64 {
    use std::hash::BuildHasher;
    let hash = match key {
        [one] => rustc_hash::FxBuildHasher.hash_one(one),
        many => rustc_hash::FxBuildHasher.hash_one(many),
    };
    let group = hash % u64::from(eddy_core::state::KEY_GROUPS);
    (group << 57) | (hash >> 7)
}

/// The key group of a key, as the runtime routes it.
#[inline]
pub(crate) fn group_of(key: &[Value]) -> KeyGroup {
    // The prefix's top 7 bits are a group below KEY_GROUPS.
    KeyGroup::new((group_prefix(key) >> 57) as u32).unwrap_or(KeyGroup::MIN)
}

/// Sorts `entries` by key group, then hash, then [`key_order`]: an order
/// of the keys alone (so the same keys give the same bytes) in which each
/// key group is contiguous. The prefix is computed once per key and
/// stored beside it, so comparisons rarely follow the key's pointer (each
/// a likely cache miss).
pub(crate) fn sort_by_key<T>(entries: &mut [(u64, &Key, T)]) {
    for e in entries.iter_mut() {
        let key = e.1;
        e.0 = group_prefix(key);
    }
    entries.sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| key_order(a.1, b.1)));
}

/// Writes a key (its length is the operator's number of key expressions).
pub(crate) fn put_key(enc: &mut Encoder, key: &[Value]) {
    for v in key {
        enc.put(v);
    }
}

/// Reads a key of `len` values.
pub(crate) fn get_key(dec: &mut Decoder<'_>, len: usize) -> Result<Key, DecodeError> {
    let mut values = Vec::with_capacity(len);
    for _ in 0..len {
        values.push(dec.get::<Value>()?);
    }
    Ok(Key::from(values))
}

/// Writes a window's accumulators (their number and kinds are the specs').
pub(crate) fn put_accs(enc: &mut Encoder, accs: &[Accumulator]) {
    for a in accs {
        a.encode_state(enc);
    }
}

/// Reads accumulators of the kinds of `like` (fresh ones of the specs).
pub(crate) fn get_accs(
    dec: &mut Decoder<'_>,
    like: &[Accumulator],
) -> Result<Vec<Accumulator>, DecodeError> {
    like.iter()
        .map(|l| Accumulator::decode_state(l, dec))
        .collect()
}

/// What reading a state needs from the operator.
pub(crate) struct Reader<'a> {
    /// Fresh accumulators of the operator's specs.
    pub(crate) like: &'a [Accumulator],
    /// Number of key expressions.
    pub(crate) key_len: usize,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        prop_oneof![
            (-3i64..3).prop_map(Value::Int),
            any::<i64>().prop_map(Value::Int),
            "[ab]{0,10}".prop_map(|s| Value::str(&s)),
            (-2.0f64..2.0).prop_map(Value::Float),
        ]
    }

    proptest! {
        /// The prefixed sort is an order of the keys alone: any arrival
        /// order of the same keys sorts the same way, in key-group order.
        #[test]
        fn prefixed_sort_is_key_order(
            keys in prop::collection::vec(prop::collection::vec(value(), 1..3), 0..40),
            mode in 0u8..3,
            texts in prop::collection::vec("[ab]{0,10}", 40),
        ) {
            let keys: Vec<Key> = keys
                .into_iter()
                .zip(&texts)
                .map(|(mut k, text)| {
                    match mode {
                        // Every first value an integer, or every one a string.
                        1 => k[0] = Value::Int(k.len() as i64),
                        2 => k[0] = Value::str(text),
                        _ => {}
                    }
                    Key::from(k)
                })
                .collect();
            let mut entries: Vec<(u64, &Key, ())> = keys.iter().map(|k| (0, k, ())).collect();
            sort_by_key(&mut entries);
            let mut reversed: Vec<(u64, &Key, ())> = keys.iter().rev().map(|k| (0, k, ())).collect();
            sort_by_key(&mut reversed);
            let got: Vec<&Key> = entries.iter().map(|e| e.1).collect();
            let again: Vec<&Key> = reversed.iter().map(|e| e.1).collect();
            prop_assert_eq!(&got, &again);
            let groups: Vec<u64> = got.iter().map(|k| group_prefix(k) >> 57).collect();
            prop_assert!(groups.windows(2).all(|w| w[0] <= w[1]));
            let want = |k: &Key| match &k[..] {
                [one] => eddy_core::state::key_group(one),
                many => eddy_core::state::key_group(many),
            };
            for k in &got {
                prop_assert_eq!(group_prefix(k) >> 57, u64::from(want(k)));
            }
        }
    }
}
