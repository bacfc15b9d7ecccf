//! Shared NDJSON plumbing for the `file` and `stdin` sources: a line reader
//! that caps line length and a decoder that turns lines into events or dead
//! letters.

use std::io::{self, BufRead};

use eddy_core::json::{JsonDecoder, JsonError};
use eddy_core::operator::{dead_letter, with_position};
use eddy_core::source::TimestampAssigner;
use eddy_core::{Event, Timestamp, Value};

#[cfg(test)]
use eddy_core::limits::DEFAULT_MAX_LINE_BYTES as MAX_LINE_BYTES;

/// How much of an over-long line is kept in its dead letter.
const OVERLONG_EXCERPT: usize = 1024;

/// The UTF-8 byte-order mark some editors put at the start of a file.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// One line read from the input.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line {
    /// A complete line is in [`LineReader::line`] (newline stripped).
    Complete,
    /// A line longer than the reader's limit: its first bytes are in
    /// [`LineReader::line`]; the total length and the limit are given.
    Overlong(u64, usize),
    /// End of input. In follow mode a partial trailing line stays buffered.
    Eof,
}

/// Reads newline-terminated lines from a `BufRead`, never buffering more than
/// its limit (`[pipeline.limits] max_line_bytes`) of one line, and tracking byte offsets and line numbers.
/// A UTF-8 byte-order mark at offset 0 (and only there) is dropped from the
/// line's content; offsets still count its bytes, so positions stay those of
/// the file.
pub(crate) struct LineReader<R> {
    reader: R,
    /// The current line (or the start of a partial one).
    pub(crate) line: Vec<u8>,
    /// Total length of the line being read, including discarded bytes.
    len: u64,
    /// Byte offset of the start of the line being read.
    pub(crate) line_start: u64,
    /// 1-based number of the line being read.
    pub(crate) line_no: u64,
    /// Whether a partial trailing line at EOF is kept for later (follow mode)
    /// instead of being returned as the last line.
    pub(crate) keep_partial: bool,
    /// Longest line returned whole, in bytes without the newline.
    max_line: usize,
}

impl<R: BufRead> LineReader<R> {
    /// A reader whose first line starts at `offset` and has number `line_no`.
    pub(crate) fn new(reader: R, offset: u64, line_no: u64, keep_partial: bool) -> Self {
        LineReader {
            reader,
            line: Vec::with_capacity(256),
            len: 0,
            line_start: offset,
            line_no,
            keep_partial,
            max_line: eddy_core::limits::DEFAULT_MAX_LINE_BYTES,
        }
    }

    /// Sets the longest line returned whole; longer ones are `Overlong`.
    pub(crate) fn max_line(mut self, bytes: usize) -> Self {
        self.max_line = bytes;
        self
    }

    /// The underlying reader.
    pub(crate) fn get_mut(&mut self) -> &mut R {
        &mut self.reader
    }

    /// Byte offset just after the last line returned (where to resume).
    pub(crate) fn resume_offset(&self) -> u64 {
        self.line_start
    }

    /// Whether bytes of an unfinished line are buffered.
    #[cfg(test)]
    pub(crate) fn has_partial(&self) -> bool {
        self.len > 0
    }

    /// Byte offset just after everything consumed, partial line included.
    pub(crate) fn read_offset(&self) -> u64 {
        self.line_start + self.len
    }

    /// Starts the next line: call after handling a returned line.
    fn finish_line(&mut self) {
        self.line_start += self.len;
        self.line_no += 1;
        self.len = 0;
    }

    /// Reads the next line. After `Complete`/`Overlong`, the line's number is
    /// `self.line_no - 1` (see [`LineReader::last_line_no`]).
    pub(crate) fn next_line(&mut self) -> io::Result<Line> {
        if self.len == 0 {
            self.line.clear();
        }
        loop {
            let buf = match self.reader.fill_buf() {
                Ok(b) => b,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if buf.is_empty() {
                if self.len > 0 && !self.keep_partial {
                    return Ok(self.complete(0));
                }
                return Ok(Line::Eof);
            }
            let (chunk, found) = match memchr_newline(buf) {
                Some(i) => (&buf[..i], true),
                None => (buf, false),
            };
            let room = self
                .max_line
                .saturating_add(1)
                .saturating_sub(self.line.len());
            self.line.extend_from_slice(&chunk[..chunk.len().min(room)]);
            let consumed = chunk.len() + usize::from(found);
            self.len += consumed as u64;
            self.reader.consume(consumed);
            if found {
                return Ok(self.complete(1));
            }
        }
    }

    fn complete(&mut self, newline: u64) -> Line {
        if self.line_start == 0 && self.line.starts_with(BOM) {
            self.line.drain(..BOM.len());
        }
        let content = self.len - newline;
        let out = if content > self.max_line as u64 {
            self.line.truncate(OVERLONG_EXCERPT);
            Line::Overlong(content, self.max_line)
        } else {
            if self.line.last() == Some(&b'\r') {
                self.line.pop();
            }
            Line::Complete
        };
        self.finish_line();
        out
    }

    /// The number of the line most recently returned.
    pub(crate) fn last_line_no(&self) -> u64 {
        self.line_no.saturating_sub(1)
    }
}

fn memchr_newline(buf: &[u8]) -> Option<usize> {
    memchr::memchr(b'\n', buf)
}

/// Decodes NDJSON lines into events, producing dead letters for bad ones.
pub(crate) struct NdjsonDecoder {
    decoder: JsonDecoder,
    assigner: TimestampAssigner,
    /// The source's name, written into dead letters.
    pub(crate) source: String,
    /// What positions are prefixed with (`PATH` or `stdin`).
    pub(crate) label: String,
}

impl NdjsonDecoder {
    pub(crate) fn new(assigner: TimestampAssigner, source: String, label: String) -> Self {
        NdjsonDecoder {
            decoder: JsonDecoder::new(),
            assigner,
            source,
            label,
        }
    }

    /// Decodes only the top-level fields the pipeline reads of the events
    /// (`projection`, see `NodeContext::projection`) and the event time.
    pub(crate) fn project(mut self, projection: Option<&[eddy_core::Sym]>) -> Self {
        self.decoder.keep_only(self.assigner.keep(projection));
        self
    }

    fn dead(&self, reason: String, raw: &[u8], line_no: u64, now: Timestamp) -> Event {
        with_position(
            dead_letter(
                "decode",
                reason,
                Value::str(&String::from_utf8_lossy(raw)),
                now,
            ),
            &self.source,
            format!("{}:{line_no}", self.label),
        )
    }

    /// Decodes one line; blank lines yield nothing.
    pub(crate) fn decode(
        &mut self,
        line: &[u8],
        outcome: &Line,
        line_no: u64,
        now: Timestamp,
        events: &mut Vec<Event>,
        dead_letters: &mut Vec<Event>,
    ) {
        if let Line::Overlong(len, limit) = outcome {
            let reason = format!(
                "line is {len} bytes long; the limit is {limit} (`[pipeline.limits] max_line_bytes`)"
            );
            dead_letters.push(self.dead(reason, line, line_no, now));
            return;
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        match self.decoder.decode(line) {
            Ok(fields) => {
                let label = &self.label;
                match self
                    .assigner
                    .assign(fields, now, &self.source, || format!("{label}:{line_no}"))
                {
                    Ok(event) => events.push(event),
                    Err(mut dl) => {
                        // Keep the raw text rather than the decoded map, like
                        // the other dead letters of this source.
                        if let Some(v) = dl.fields.get_mut(eddy_core::sym!("event")) {
                            *v = Value::str(&String::from_utf8_lossy(line));
                        }
                        dead_letters.push(dl);
                    }
                }
            }
            Err(JsonError::NotUtf8(at)) => {
                let reason = format!("line is not valid UTF-8 (at byte {at})");
                dead_letters.push(self.dead(reason, line, line_no, now));
            }
            Err(e) => dead_letters.push(self.dead(e.to_string(), line, line_no, now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufReader;

    #[test]
    fn splits_lines_and_tracks_offsets() {
        let data = b"a\r\nbb\n\nccc";
        let mut r = LineReader::new(BufReader::with_capacity(2, &data[..]), 0, 1, false);
        let mut seen = Vec::new();
        loop {
            match r.next_line().unwrap() {
                Line::Eof => break,
                l => seen.push((l, r.line.clone(), r.last_line_no(), r.resume_offset())),
            }
        }
        assert_eq!(
            seen,
            vec![
                (Line::Complete, b"a".to_vec(), 1, 3),
                (Line::Complete, b"bb".to_vec(), 2, 6),
                (Line::Complete, b"".to_vec(), 3, 7),
                (Line::Complete, b"ccc".to_vec(), 4, 10),
            ]
        );
    }

    #[test]
    fn byte_order_mark_is_dropped_at_offset_zero_only() {
        let data = b"\xEF\xBB\xBF{}\n\xEF\xBB\xBFx\n";
        let mut r = LineReader::new(BufReader::with_capacity(2, &data[..]), 0, 1, false);
        assert_eq!(r.next_line().unwrap(), Line::Complete);
        assert_eq!(r.line, b"{}");
        assert_eq!(r.resume_offset(), 6);
        assert_eq!(r.next_line().unwrap(), Line::Complete);
        assert_eq!(r.line, b"\xEF\xBB\xBFx");
        assert_eq!(r.resume_offset(), 11);
        // Resuming mid-file: the bytes there are data, not a mark.
        let mut r = LineReader::new(&data[6..], 6, 2, false);
        assert_eq!(r.next_line().unwrap(), Line::Complete);
        assert_eq!(r.line, b"\xEF\xBB\xBFx");
    }

    #[test]
    fn partial_line_is_kept_in_follow_mode() {
        let data = b"x\nyy";
        let mut r = LineReader::new(&data[..], 0, 1, true);
        assert_eq!(r.next_line().unwrap(), Line::Complete);
        assert_eq!(r.next_line().unwrap(), Line::Eof);
        assert!(r.has_partial());
        assert_eq!(r.resume_offset(), 2);
    }

    #[test]
    fn overlong_lines_are_capped() {
        let mut data = vec![b'x'; MAX_LINE_BYTES + 10];
        data.extend_from_slice(b"\n{}\n");
        let mut r = LineReader::new(&data[..], 0, 1, false);
        assert_eq!(
            r.next_line().unwrap(),
            Line::Overlong(MAX_LINE_BYTES as u64 + 10, MAX_LINE_BYTES)
        );
        assert_eq!(r.line.len(), OVERLONG_EXCERPT);
        assert_eq!(r.next_line().unwrap(), Line::Complete);
        assert_eq!(r.line, b"{}");
        assert_eq!(r.last_line_no(), 2);
    }
}
