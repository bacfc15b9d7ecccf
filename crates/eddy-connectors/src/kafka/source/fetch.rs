//! Reading records in batches from each assigned partition's own queue.
//!
//! librdkafka's consumer poll hands out one record per call, each wrapped
//! in an event that is allocated, timed and freed. Here every partition's
//! fetch queue is split off the consumer queue when the partition is
//! assigned (before fetching starts, so no record of it is left behind on
//! the consumer queue), and read with `rd_kafka_consume_batch_queue`: one
//! call returns up to a batch of records of one partition, in offset order.
//! The consumer queue still serves rebalances, statistics and client
//! errors.
//!
//! This is the Kafka source's only `unsafe` code: the rdkafka crate reads
//! partition queues one record at a time and offers no batch call.

use std::ffi::{c_void, CStr};
use std::ptr::NonNull;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use eddy_core::source::PartitionId;
use rdkafka::bindings as rdsys;

/// A queue handle split off the consumer: records of one partition.
pub(super) struct PartitionQueue {
    pub(super) id: PartitionId,
    queue: NonNull<rdsys::rd_kafka_queue_t>,
    /// Its callback's target: kept until the callback is disabled.
    _wake: Arc<Wake>,
}

// SAFETY: librdkafka queues are locked internally; the handle is used by
// one thread at a time (it moves from the rebalance callback to the source).
unsafe impl Send for PartitionQueue {}

impl PartitionQueue {
    /// Splits the fetch queue of `topic`/`partition` off the consumer
    /// queue and wakes `wake` when it receives records. Call before the
    /// partition is assigned. `None` if librdkafka has no such partition.
    pub(super) fn split(
        rk: *mut rdsys::rd_kafka_t,
        topic: &str,
        partition: i32,
        id: PartitionId,
        wake: &Arc<Wake>,
    ) -> Option<PartitionQueue> {
        let topic = std::ffi::CString::new(topic).ok()?;
        // SAFETY: `rk` is a live consumer handle; the returned handle is
        // owned here and destroyed in `drop`.
        let queue = NonNull::new(unsafe {
            rdsys::rd_kafka_queue_get_partition(rk, topic.as_ptr(), partition)
        })?;
        // SAFETY: forwarding to null marks the queue as the application's:
        // fetching then keeps records on it instead of the consumer queue.
        // The callback's opaque pointer is the `Wake`, which this handle
        // keeps alive until `drop` disables the callback.
        unsafe {
            rdsys::rd_kafka_queue_forward(queue.as_ptr(), std::ptr::null_mut());
            rdsys::rd_kafka_queue_cb_event_enable(
                queue.as_ptr(),
                Some(wake_on_records),
                Arc::as_ptr(wake) as *mut c_void,
            );
        }
        Some(PartitionQueue {
            id,
            queue,
            _wake: wake.clone(),
        })
    }

    /// Takes up to `max` records without waiting, into `buf` (whose
    /// earlier records are freed first).
    pub(super) fn take(&self, buf: &mut Batch, max: usize) {
        buf.free();
        let max = max.max(1);
        buf.messages.reserve(max);
        // SAFETY: the (empty) array has room for `max` pointers; librdkafka
        // writes `n` of them and hands their ownership to us.
        let n = unsafe {
            rdsys::rd_kafka_consume_batch_queue(
                self.queue.as_ptr(),
                0,
                buf.messages.as_mut_ptr(),
                max,
            )
        };
        // SAFETY: the first `n` slots were written (n is -1 on error).
        unsafe { buf.messages.set_len(n.max(0) as usize) };
    }
}

impl Drop for PartitionQueue {
    fn drop(&mut self) {
        // SAFETY: the callback is disabled before the handle goes: the
        // partition's queue outlives this handle.
        unsafe {
            rdsys::rd_kafka_queue_cb_event_enable(self.queue.as_ptr(), None, std::ptr::null_mut());
            rdsys::rd_kafka_queue_destroy(self.queue.as_ptr());
        }
    }
}

/// A handle on the consumer queue, to tell whether events wait on it.
pub(super) struct ConsumerQueue(NonNull<rdsys::rd_kafka_queue_t>);

// SAFETY: as for `PartitionQueue`.
unsafe impl Send for ConsumerQueue {}

impl ConsumerQueue {
    /// The consumer queue of `rk` (a consumer in a group).
    pub(super) fn of(rk: *mut rdsys::rd_kafka_t) -> Option<ConsumerQueue> {
        // SAFETY: `rk` is a live consumer; the handle is destroyed in drop.
        NonNull::new(unsafe { rdsys::rd_kafka_queue_get_consumer(rk) }).map(ConsumerQueue)
    }

    /// Events (rebalances, statistics, errors) waiting to be served.
    pub(super) fn len(&self) -> usize {
        // SAFETY: reads the live queue's length.
        unsafe { rdsys::rd_kafka_queue_length(self.0.as_ptr()) }
    }
}

impl Drop for ConsumerQueue {
    fn drop(&mut self) {
        // SAFETY: destroys this handle only; the queue is the consumer's.
        unsafe { rdsys::rd_kafka_queue_destroy(self.0.as_ptr()) }
    }
}

/// Called by librdkafka when a partition queue goes from empty to not.
unsafe extern "C" fn wake_on_records(_rk: *mut rdsys::rd_kafka_t, opaque: *mut c_void) {
    // SAFETY: `opaque` is the `Wake` given in `split`, which the queue's
    // handle keeps alive while the callback is enabled.
    let wake = unsafe { &*(opaque as *const Wake) };
    wake.notify();
}

/// Lets a source sleep until one of its partition queues has records.
#[derive(Default)]
pub(super) struct Wake {
    ready: Mutex<bool>,
    cond: Condvar,
}

impl Wake {
    fn notify(&self) {
        if let Ok(mut ready) = self.ready.lock() {
            *ready = true;
            self.cond.notify_one();
        }
    }

    /// Waits up to `timeout` for records (returns at once if some arrived
    /// since the last wait).
    pub(super) fn wait(&self, timeout: Duration) {
        let Ok(ready) = self.ready.lock() else { return };
        let Ok((mut ready, _)) = self.cond.wait_timeout_while(ready, timeout, |r| !*r) else {
            return;
        };
        *ready = false;
    }
}

/// Records taken from a partition queue, freed on the next take or drop.
#[derive(Default)]
pub(super) struct Batch {
    messages: Vec<*mut rdsys::rd_kafka_message_t>,
}

// SAFETY: the records are owned by this batch, which one thread uses.
unsafe impl Send for Batch {}

impl Batch {
    pub(super) fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The records of the last take.
    pub(super) fn records(&self) -> impl Iterator<Item = RawRecord<'_>> {
        // SAFETY: each pointer is a live message owned by this batch.
        self.messages.iter().map(|&m| RawRecord(unsafe { &*m }))
    }

    fn free(&mut self) {
        for m in self.messages.drain(..) {
            // SAFETY: owned, and freed once.
            unsafe { rdsys::rd_kafka_message_destroy(m) };
        }
    }
}

impl Drop for Batch {
    fn drop(&mut self) {
        self.free();
    }
}

/// A consumed record, read in place.
#[derive(Clone, Copy)]
pub(super) struct RawRecord<'a>(&'a rdsys::rd_kafka_message_t);

impl<'a> RawRecord<'a> {
    /// A record polled from the consumer queue.
    pub(super) fn of(msg: &'a rdkafka::message::BorrowedMessage<'_>) -> RawRecord<'a> {
        // SAFETY: the message is live as long as `msg` is borrowed.
        RawRecord(unsafe { &*msg.ptr() })
    }

    /// The consume error this record stands for, if it is one.
    pub(super) fn error(&self) -> Option<rdkafka::error::KafkaError> {
        use rdkafka::error::IsError;
        self.0.err.is_error().then(|| {
            rdkafka::error::KafkaError::MessageConsumption(rdkafka::types::RDKafkaErrorCode::from(
                self.0.err,
            ))
        })
    }

    pub(super) fn topic(&self) -> &'a str {
        if self.0.rkt.is_null() {
            return "";
        }
        // SAFETY: a record's topic handle and name live as long as it does.
        unsafe { CStr::from_ptr(rdsys::rd_kafka_topic_name(self.0.rkt)) }
            .to_str()
            .unwrap_or("")
    }

    pub(super) fn partition(&self) -> i32 {
        self.0.partition
    }

    pub(super) fn offset(&self) -> i64 {
        self.0.offset
    }

    pub(super) fn payload(&self) -> &'a [u8] {
        bytes(self.0.payload, self.0.len)
    }

    pub(super) fn key(&self) -> Option<&'a [u8]> {
        (!self.0.key.is_null()).then(|| bytes(self.0.key, self.0.key_len))
    }

    /// The record's timestamp in epoch milliseconds, if it has one.
    pub(super) fn timestamp_ms(&self) -> Option<i64> {
        let mut kind = rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE;
        // SAFETY: reads the live message.
        let t = unsafe { rdsys::rd_kafka_message_timestamp(self.0, &mut kind) };
        (kind != rdsys::rd_kafka_timestamp_type_t::RD_KAFKA_TIMESTAMP_NOT_AVAILABLE && t >= 0)
            .then_some(t)
    }

    /// Calls `f` with each header's name and value, in order.
    pub(super) fn for_each_header(&self, mut f: impl FnMut(&str, Option<&[u8]>)) {
        let mut headers = std::ptr::null_mut();
        let msg = self.0 as *const rdsys::rd_kafka_message_t as *mut _;
        // SAFETY: the headers belong to the live message.
        let err = unsafe { rdsys::rd_kafka_message_headers(msg, &mut headers) };
        if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || headers.is_null() {
            return;
        }
        for idx in 0.. {
            let (mut name, mut value, mut size) = (std::ptr::null(), std::ptr::null(), 0usize);
            // SAFETY: reads header `idx`; an error ends the list.
            let err = unsafe {
                rdsys::rd_kafka_header_get_all(headers, idx, &mut name, &mut value, &mut size)
            };
            if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
                return;
            }
            // SAFETY: the name is a NUL-terminated string of the header.
            let name = unsafe { CStr::from_ptr(name) }.to_string_lossy();
            let value = (!value.is_null()).then(|| bytes(value, size));
            f(&name, value);
        }
    }
}

fn bytes<'a>(ptr: *const c_void, len: usize) -> &'a [u8] {
    if ptr.is_null() || len == 0 {
        return &[];
    }
    // SAFETY: librdkafka gives `len` readable bytes at `ptr`, alive as
    // long as the message.
    unsafe { std::slice::from_raw_parts(ptr as *const u8, len) }
}
