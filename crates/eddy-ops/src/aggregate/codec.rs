//! Shared pieces of the accumulator codecs (see [`Accumulator`]'s
//! [`Encode`](eddy_core::codec::Encode) implementation): 128-bit varints
//! and range checks that turn bytes no encoder writes into errors.
//!
//! [`Accumulator`]: super::Accumulator

use eddy_core::codec::{DecodeError, Decoder, Encoder};

/// Writes an `i128` zigzagged as a LEB128 varint (one byte for small
/// magnitudes, at most 19).
pub(crate) fn put_i128(enc: &mut Encoder, v: i128) {
    let mut n = ((v << 1) ^ (v >> 127)) as u128;
    while n >= 0x80 {
        enc.u8((n as u8) | 0x80);
        n >>= 7;
    }
    enc.u8(n as u8);
}

/// Reads an `i128` written by [`put_i128`].
pub(crate) fn get_i128(dec: &mut Decoder<'_>) -> Result<i128, DecodeError> {
    let start = dec.position();
    let mut n = 0u128;
    for shift in (0..128).step_by(7) {
        let b = dec.u8()?;
        // The nineteenth byte may carry only the top two bits.
        if shift == 126 && b > 3 {
            return Err(DecodeError::Varint(start));
        }
        n |= u128::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(((n >> 1) as i128) ^ -((n & 1) as i128));
        }
    }
    Err(DecodeError::Varint(start))
}

/// Reads a finite float.
pub(crate) fn get_finite(dec: &mut Decoder<'_>, what: &'static str) -> Result<f64, DecodeError> {
    let f = dec.f64()?;
    if f.is_finite() {
        Ok(f)
    } else {
        Err(DecodeError::OutOfRange(what))
    }
}

/// Reads a zigzagged integer that must lie in `lo..=hi`.
pub(crate) fn get_in(
    dec: &mut Decoder<'_>,
    lo: i64,
    hi: i64,
    what: &'static str,
) -> Result<i64, DecodeError> {
    let v = dec.zigzag()?;
    if (lo..=hi).contains(&v) {
        Ok(v)
    } else {
        Err(DecodeError::OutOfRange(what))
    }
}

/// Reads a boolean byte (0 or 1).
pub(crate) fn get_bool(dec: &mut Decoder<'_>, what: &'static str) -> Result<bool, DecodeError> {
    match dec.u8()? {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(DecodeError::OutOfRange(what)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn i128_round_trips(v in any::<i128>()) {
            let mut enc = Encoder::new();
            put_i128(&mut enc, v);
            let bytes = enc.into_bytes();
            let mut dec = Decoder::new(&bytes);
            prop_assert_eq!(get_i128(&mut dec).unwrap(), v);
            prop_assert!(dec.is_empty());
        }
    }

    #[test]
    fn small_i128_is_one_byte_and_overlong_fails() {
        let mut enc = Encoder::new();
        put_i128(&mut enc, -3);
        assert_eq!(enc.bytes().len(), 1);
        let bad = [0xffu8; 20];
        assert!(get_i128(&mut Decoder::new(&bad)).is_err());
        assert!(get_i128(&mut Decoder::new(&bad[..3])).is_err());
    }
}
