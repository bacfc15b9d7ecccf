//! The bounded channels between instances, with a receiver that sleeps
//! without handing its core to another thread first.
//!
//! A receiver waiting on an empty channel spins briefly, then parks until
//! a sender rings it. A plain blocking receive yields its core a few times
//! before it parks, and with two workers on one core that hands the core
//! back and forth: both stay warm there, so the scheduler never moves
//! either to the other core (31 migrations in a 2 M-event run), and when
//! both fire at once their firings share one core while the other idles.
//! A parked receiver is woken where the scheduler finds room: with a
//! source busy on one core of two, both workers still wake on the other
//! (a firing's way out of that is in `emissions`).

use std::sync::atomic::{fence, AtomicBool, Ordering::SeqCst};
use std::sync::{Arc, OnceLock};
use std::thread::Thread;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TryRecvError, TrySendError};

/// How many times an empty channel is looked at again before the
/// receiver parks.
const SPINS: u32 = 64;

/// What a sender rings to wake a parked receiver.
#[derive(Default)]
struct Bell {
    /// The receiver is parked or about to park.
    sleeping: AtomicBool,
    /// The receiving thread, known from its first wait.
    receiver: OnceLock<Thread>,
}

impl Bell {
    fn ring(&self) {
        // Pairs with the receiver's fence: either it sees the message, or
        // this sees it sleeping.
        fence(SeqCst);
        if self.sleeping.load(SeqCst) {
            if let Some(t) = self.receiver.get() {
                t.unpark();
            }
        }
    }
}

/// The sending side of a channel (cloned for every sender).
pub(crate) struct Tx<T> {
    inner: Sender<T>,
    bell: Arc<Bell>,
}

/// The receiving side of a channel (one instance).
pub(crate) struct Rx<T> {
    inner: Receiver<T>,
    bell: Arc<Bell>,
}

/// Why [`Rx::recv_timeout`] returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RecvError {
    /// Nothing arrived in time.
    Timeout,
    /// Every sender is gone and the channel is empty.
    Disconnected,
}

/// A channel holding at most `capacity` messages.
pub(crate) fn bounded<T>(capacity: usize) -> (Tx<T>, Rx<T>) {
    let (tx, rx) = crossbeam_channel::bounded(capacity);
    let bell = Arc::new(Bell::default());
    (
        Tx {
            inner: tx,
            bell: bell.clone(),
        },
        Rx { inner: rx, bell },
    )
}

impl<T> Clone for Tx<T> {
    fn clone(&self) -> Self {
        Tx {
            inner: self.inner.clone(),
            bell: self.bell.clone(),
        }
    }
}

impl<T> Drop for Tx<T> {
    fn drop(&mut self) {
        // The last sender gone disconnects the channel: the receiver should
        // see it now, not at its next timeout.
        self.bell.ring();
    }
}

impl<T> Tx<T> {
    /// Sends without waiting: a full channel gives the message back.
    pub(crate) fn try_send(&self, msg: T) -> Result<(), TrySendError<T>> {
        self.inner.try_send(msg)?;
        self.bell.ring();
        Ok(())
    }

    /// Sends, waiting while the channel is full. Fails when the receiver
    /// is gone.
    pub(crate) fn send(&self, msg: T) -> Result<(), T> {
        self.inner.send(msg).map_err(|e| e.0)?;
        self.bell.ring();
        Ok(())
    }
}

impl<T> Rx<T> {
    /// The next message if one is waiting.
    pub(crate) fn try_recv(&self) -> Option<T> {
        self.inner.try_recv().ok()
    }

    /// The next message, waiting up to `wait` for it.
    pub(crate) fn recv_timeout(&self, wait: Duration) -> Result<T, RecvError> {
        let deadline = Instant::now() + wait;
        let mut spins = 0;
        loop {
            match self.inner.try_recv() {
                Ok(msg) => return Ok(msg),
                Err(TryRecvError::Disconnected) => return Err(RecvError::Disconnected),
                Err(TryRecvError::Empty) => {}
            }
            if spins < SPINS {
                spins += 1;
                std::hint::spin_loop();
                continue;
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(RecvError::Timeout);
            }
            let bell = &self.bell;
            bell.receiver.get_or_init(std::thread::current);
            bell.sleeping.store(true, SeqCst);
            // Pairs with `Bell::ring`: a message sent before this fence is
            // seen below, one sent after it finds the receiver sleeping.
            fence(SeqCst);
            if self.inner.is_empty() {
                std::thread::park_timeout(deadline - now);
            }
            bell.sleeping.store(false, SeqCst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_parked_receiver_wakes_for_a_message_and_for_the_last_sender_leaving() {
        let (tx, rx) = bounded::<u32>(4);
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(|| {
                std::thread::sleep(Duration::from_millis(20));
                tx.send(7).unwrap();
            });
            assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(7));
        });
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken, not timed out"
        );
        assert_eq!(
            rx.recv_timeout(Duration::from_millis(5)),
            Err(RecvError::Timeout)
        );
        let started = Instant::now();
        std::thread::scope(|s| {
            s.spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                drop(tx);
            });
            assert_eq!(
                rx.recv_timeout(Duration::from_secs(10)),
                Err(RecvError::Disconnected)
            );
        });
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn every_message_arrives_once_in_order_from_each_sender() {
        let (tx, rx) = bounded::<(u32, u32)>(2);
        std::thread::scope(|s| {
            for sender in 0..3 {
                let tx = tx.clone();
                s.spawn(move || {
                    for i in 0..10_000 {
                        if let Err(TrySendError::Full(m)) = tx.try_send((sender, i)) {
                            tx.send(m).unwrap();
                        }
                    }
                });
            }
            drop(tx);
            let mut next = [0; 3];
            loop {
                match rx.recv_timeout(Duration::from_secs(10)) {
                    Ok((sender, i)) => {
                        assert_eq!(i, next[sender as usize]);
                        next[sender as usize] += 1;
                    }
                    Err(e) => {
                        assert_eq!(e, RecvError::Disconnected);
                        break;
                    }
                }
            }
            assert_eq!(next, [10_000; 3]);
        });
    }
}
