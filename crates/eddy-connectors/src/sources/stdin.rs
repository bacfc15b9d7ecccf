//! `type = "stdin"`: reads newline-delimited JSON from standard input.
//!
//! ```toml
//! [sources.input]
//! type = "stdin"
//! event_time = { field = "ts" }
//! ```
//!
//! A reader thread reads lines and hands them over in batches through a
//! bounded channel, so a slow pipeline applies back-pressure to the producer
//! instead of buffering without limit. The source finishes at end of input.
//! Only worker 0 reads; the other workers' instances finish at once.
//! Malformed lines become dead letters with position `stdin:LINE`. A UTF-8
//! byte-order mark at the very start of the input is skipped.
//!
//! The reader thread blocks in `read`; when the source is dropped it exits
//! after the next line (or end of input) arrives.

use std::collections::VecDeque;
use std::io::{self, BufReader, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TryRecvError};

use eddy_core::component::{BuildContext, BuildError, SourceFactory, WatermarkSpec};
use eddy_core::source::{EventTimeConfig, TimestampAssigner};
use eddy_core::time::now_ms;
use eddy_core::{Source, SourceBatch, SourceError, SourcePoll};
use serde::Deserialize;

use super::file::RecordFormat;
use super::lines::{Line, LineReader, NdjsonDecoder};

/// Lines per batch handed from the reader thread to the source.
const LINES_PER_BATCH: usize = 1024;
/// Batches the channel holds before the reader thread waits.
const CHANNEL_BATCHES: usize = 16;

/// Configuration of the `stdin` source.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct StdinConfig {
    /// The record format. Only `"json"` (newline-delimited JSON objects) is
    /// supported.
    #[serde(default)]
    pub format: RecordFormat,
    /// How event time is found: `"ingestion"` (the default) or
    /// `{ field = "ts", ... }` as for the `file` source.
    #[serde(default)]
    pub event_time: Option<EventTimeConfig>,
}

impl SourceFactory for StdinConfig {
    fn build(&self, cx: &BuildContext) -> Result<Box<dyn Source>, BuildError> {
        let assigner = TimestampAssigner::from_config(self.event_time.as_ref());
        if cx.worker != 0 {
            return Ok(Box::new(LineSource::finished()));
        }
        LineSource::spawn(io::stdin(), &cx.name, assigner, cx.limits.max_line_bytes)
            .map(|mut s| {
                s.decoder = s.decoder.map(|d| d.project(cx.projection.as_deref()));
                Box::new(s) as Box<dyn Source>
            })
            .map_err(|e| {
                BuildError::Input(format!(
                    "source `{}`: cannot start the stdin reader: {e}",
                    cx.name
                ))
            })
    }

    fn watermarks(&self) -> WatermarkSpec {
        TimestampAssigner::from_config(self.event_time.as_ref()).watermarks()
    }
}

/// A raw line with what the reader learnt about it.
struct RawLine {
    text: Vec<u8>,
    outcome: Line,
    line_no: u64,
}

enum Message {
    Lines(Vec<RawLine>),
    Error(io::Error),
}

/// Decodes lines that a reader thread reads from any `Read` (stdin in
/// production, a pipe or buffer in tests).
pub(crate) struct LineSource {
    rx: Option<Receiver<Message>>,
    pending: VecDeque<RawLine>,
    decoder: Option<NdjsonDecoder>,
}

impl LineSource {
    fn finished() -> LineSource {
        LineSource {
            rx: None,
            pending: VecDeque::new(),
            decoder: None,
        }
    }

    /// Starts a reader thread on `input`.
    pub(crate) fn spawn<R: Read + Send + 'static>(
        input: R,
        name: &str,
        assigner: TimestampAssigner,
        max_line: usize,
    ) -> io::Result<LineSource> {
        let (tx, rx) = sync_channel(CHANNEL_BATCHES);
        std::thread::Builder::new()
            .name(format!("stdin-{name}"))
            .spawn(move || read_lines(input, tx, max_line))?;
        Ok(LineSource {
            rx: Some(rx),
            pending: VecDeque::new(),
            decoder: Some(NdjsonDecoder::new(
                assigner,
                name.to_string(),
                "stdin".into(),
            )),
        })
    }
}

fn read_lines<R: Read>(input: R, tx: SyncSender<Message>, max_line: usize) {
    let mut reader =
        LineReader::new(BufReader::with_capacity(1 << 16, input), 0, 1, false).max_line(max_line);
    let mut batch = Vec::with_capacity(LINES_PER_BATCH);
    loop {
        match reader.next_line() {
            Ok(Line::Eof) => break,
            Ok(outcome) => {
                batch.push(RawLine {
                    text: std::mem::take(&mut reader.line),
                    outcome,
                    line_no: reader.last_line_no(),
                });
                // Hand lines over when the batch is full or when nothing more
                // is buffered (an interactive producer may pause here).
                if batch.len() >= LINES_PER_BATCH || reader.get_mut().buffer().is_empty() {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(LINES_PER_BATCH));
                    if tx.send(Message::Lines(full)).is_err() {
                        return;
                    }
                }
            }
            Err(e) => {
                if !batch.is_empty() {
                    let _ = tx.send(Message::Lines(std::mem::take(&mut batch)));
                }
                let _ = tx.send(Message::Error(e));
                return;
            }
        }
    }
    if !batch.is_empty() {
        let _ = tx.send(Message::Lines(batch));
    }
    // Dropping `tx` tells the source that input ended.
}

impl Source for LineSource {
    fn poll(&mut self, max: usize) -> Result<SourcePoll, SourceError> {
        let (Some(rx), Some(decoder)) = (&self.rx, &mut self.decoder) else {
            return Ok(SourcePoll::Finished);
        };
        if self.pending.is_empty() {
            match rx.try_recv() {
                Ok(Message::Lines(lines)) => self.pending.extend(lines),
                Ok(Message::Error(source)) => {
                    self.rx = None;
                    return Err(SourceError::Io {
                        context: "stdin".into(),
                        source,
                    });
                }
                Err(TryRecvError::Empty) => return Ok(SourcePoll::Pending),
                Err(TryRecvError::Disconnected) => {
                    self.rx = None;
                    return Ok(SourcePoll::Finished);
                }
            }
        }
        let now = now_ms();
        let mut batch = SourceBatch::default();
        let max = max.max(1);
        while batch.events.len() < max && batch.dead_letters.len() < max {
            let Some(line) = self.pending.pop_front() else {
                break;
            };
            decoder.decode(
                &line.text,
                &line.outcome,
                line.line_no,
                now,
                &mut batch.events,
                &mut batch.dead_letters,
            );
        }
        Ok(SourcePoll::Ready(batch))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use eddy_core::limits::DEFAULT_MAX_LINE_BYTES;
    use eddy_core::{Sym, Value};

    /// A stdin source reading `input`, with ingestion time.
    fn from_bytes(input: Vec<u8>) -> LineSource {
        LineSource::spawn(
            std::io::Cursor::new(input),
            "in",
            TimestampAssigner::ingestion(),
            DEFAULT_MAX_LINE_BYTES,
        )
        .unwrap()
    }

    fn poll_all(src: &mut LineSource) -> (Vec<eddy_core::Event>, Vec<eddy_core::Event>) {
        let (mut ev, mut dl) = (Vec::new(), Vec::new());
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            match src.poll(3).unwrap() {
                SourcePoll::Ready(b) => {
                    ev.extend(b.events);
                    dl.extend(b.dead_letters);
                }
                SourcePoll::Pending => {
                    assert!(
                        std::time::Instant::now() < deadline,
                        "reader thread stalled"
                    );
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
                SourcePoll::Finished => return (ev, dl),
            }
        }
    }

    #[test]
    fn reads_lines_until_eof_with_dead_letters() {
        let input: Vec<u8> = (0..2500)
            .map(|i| {
                if i == 7 {
                    "garbage\n".to_string()
                } else {
                    format!("{{\"n\":{i}}}\n")
                }
            })
            .collect::<String>()
            .into_bytes();
        let mut src = from_bytes(input);
        let (ev, dl) = poll_all(&mut src);
        assert_eq!(ev.len(), 2499);
        assert_eq!(ev[7].get(Sym::intern("n")), Some(&Value::Int(8)));
        assert_eq!(dl.len(), 1);
        assert_eq!(
            dl[0].get(Sym::intern("position")),
            Some(&Value::str("stdin:8"))
        );
        assert!(matches!(src.poll(1).unwrap(), SourcePoll::Finished));
    }

    #[test]
    fn byte_order_mark_at_the_start_is_skipped() {
        let input = b"\xEF\xBB\xBF{\"n\":1}\n{\"n\":2}\n".to_vec();
        let mut src = from_bytes(input);
        let (ev, dl) = poll_all(&mut src);
        assert!(dl.is_empty(), "{dl:?}");
        assert_eq!(ev[0].get(Sym::intern("n")), Some(&Value::Int(1)));
        assert_eq!(ev.len(), 2);
    }

    #[test]
    fn pending_while_the_producer_is_silent() {
        struct Slow(std::sync::mpsc::Receiver<Vec<u8>>, Vec<u8>);
        impl Read for Slow {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                if self.1.is_empty() {
                    match self.0.recv() {
                        Ok(chunk) => self.1 = chunk,
                        Err(_) => return Ok(0),
                    }
                }
                let n = buf.len().min(self.1.len());
                buf[..n].copy_from_slice(&self.1[..n]);
                self.1.drain(..n);
                Ok(n)
            }
        }
        let (tx, rx) = std::sync::mpsc::channel();
        let mut src = LineSource::spawn(
            Slow(rx, Vec::new()),
            "in",
            TimestampAssigner::ingestion(),
            DEFAULT_MAX_LINE_BYTES,
        )
        .unwrap();
        assert!(matches!(src.poll(10).unwrap(), SourcePoll::Pending));
        tx.send(b"{\"a\":1}\n".to_vec()).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let got = loop {
            match src.poll(10).unwrap() {
                SourcePoll::Ready(b) => break b.events.len(),
                _ => {
                    assert!(std::time::Instant::now() < deadline);
                    std::thread::sleep(std::time::Duration::from_millis(1));
                }
            }
        };
        assert_eq!(
            got, 1,
            "a single line is delivered without waiting for more"
        );
        drop(tx);
        assert!(poll_all(&mut src).0.is_empty());
    }
}
