//! Walking state that lives behind pointers (keys, accumulators) with the
//! next entries' memory requested ahead: a firing or a merge reads two
//! heap blocks per key, and with the key's work being long, the processor
//! would otherwise wait for each block in turn.

/// How many entries ahead of the one being worked on are requested.
pub const AHEAD: usize = 6;

/// Asks the processor to bring the cache line at `p` in. A hint only: it
/// never faults, whatever `p` points to, and does nothing on processors
/// without the instruction.
#[inline(always)]
pub fn prefetch<T: ?Sized>(p: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: `prefetcht0` needs SSE, which every x86-64 processor has,
    // and it does not access memory architecturally: any address is fine.
    unsafe {
        core::arch::x86_64::_mm_prefetch::<{ core::arch::x86_64::_MM_HINT_T0 }>(p.cast::<i8>());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

/// Calls `f` on each item of `items`, first calling `ahead` on the item
/// [`AHEAD`] places further on (which should [`prefetch`] what `f` will
/// read of it). `items` is walked twice, so it should be cheap to clone.
#[inline]
pub fn each_ahead<I: Iterator + Clone>(
    items: I,
    ahead: impl Fn(&I::Item),
    mut f: impl FnMut(I::Item),
) {
    let mut later = items.clone().skip(AHEAD);
    for item in items {
        if let Some(next) = later.next() {
            ahead(&next);
        }
        f(item);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_item_is_worked_on_once_in_order_and_looked_ahead_at_once() {
        let mut seen = Vec::new();
        let ahead = std::cell::RefCell::new(Vec::new());
        super::each_ahead(0..10, |&i| ahead.borrow_mut().push(i), |i| seen.push(i));
        assert_eq!(seen, (0..10).collect::<Vec<_>>());
        assert_eq!(ahead.into_inner(), (super::AHEAD..10).collect::<Vec<_>>());
        super::prefetch(std::ptr::null::<u8>());
    }
}
