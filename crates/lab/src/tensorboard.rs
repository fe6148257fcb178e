//! TensorBoard event files: scalars by tag and step, readable by `tensorboard --logdir`.
//!
//! # Format
//!
//! An event file is a sequence of TFRecords, each
//!
//! ```text
//! length: u64 LE | masked_crc32c(length bytes): u32 LE | data: length bytes | masked_crc32c(data): u32 LE
//! ```
//!
//! with `masked_crc32c(b) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2³²)`, `c = CRC-32C(b)`
//! (TensorFlow's record format, `tensorflow/core/lib/io/record_writer.cc` and the `Mask` of
//! `tensorflow/core/lib/hash/crc32c.h`; CRC-32C is the Castagnoli polynomial 0x1EDC6F41,
//! reflected 0x82F63B78, of RFC 3720 §B.4). Each record's data is one `Event` protocol buffer
//! (`tensorflow/core/util/event.proto`, `tensorflow/core/framework/summary.proto`); the fields
//! written here are
//!
//! ```text
//! Event   { wall_time = 1: double, step = 2: int64, file_version = 3: string, summary = 5: Summary }
//! Summary { value = 1: repeated Value }
//! Value   { tag = 1: string, simple_value = 2: float }
//! ```
//!
//! and a file starts with an event holding only `file_version = "brain.Event:2"`. The protocol
//! buffers are encoded here by hand (varint keys `field << 3 | wire type`; wire types 0 varint,
//! 1 fixed 64-bit, 2 length-delimited, 5 fixed 32-bit), and decoded by a reader that skips the
//! fields it does not know. TensorBoard's `simple_value` is an f32: a metric is written rounded
//! to f32 (NaN and ±∞ kept).
//!
//! A file is named `events.out.tfevents.{unix seconds}.{host}.{pid}.{n}`, `n` counting the files
//! this process made; TensorBoard reads every file of a directory whose name contains
//! `tfevents`, in name order.
//!
//! # Where a run's events go, and resume
//!
//! The training loop ([`crate::train::train`]) mirrors its [`crate::metrics::Metrics`] into an
//! event file beside `metrics.csv`, in the run's own directory (`OUT/NAME/cells/LABEL/` for a
//! cell), through [`crate::metrics::EventLog`]: one event per metrics row, its values as
//! scalars named like the CSV's columns (`train_loss`, `valid_loss`, `lr`, `grad_norm`, and an
//! experiment's own norms or saturation), at the row's step. Rows are appended as they are
//! recorded, so a running job can be watched.
//!
//! A directory holds one event file, always the same data as the metrics: a process starts a
//! new file holding every row it inherited (on resume, the rows of the checkpoint it restored,
//! with the wall times the earlier files gave them), written under a name TensorBoard ignores
//! and renamed into place, and only then removes the earlier files. Rows an interrupted
//! process recorded after its last checkpoint are therefore dropped with its file and
//! recomputed (bit-identically) by the resumed run: no step is lost or doubled. A run started
//! afresh in an old directory (no `--resume`) replaces the old events the same way.
//!
//! # Viewing
//!
//! ```text
//! pip install tensorboard && tensorboard --logdir runs
//! # or, with the project's own install (into target/py-tensorboard):
//! cargo xtask setup --tensorboard
//! PYTHONPATH=target/py-tensorboard python3 -m tensorboard.main --logdir runs
//! ```
//!
//! then open <http://localhost:6006>: every training run under `runs/` is a TensorBoard run
//! named by its path (e.g. `saturation-training/cells/post-seed0`), its scalars by metric name.
//! Runs still training show their rows so far (reload to update).

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// The `file_version` of the first event of a file.
pub const FILE_VERSION: &str = "brain.Event:2";

/// What every event file's name starts with.
pub const FILE_PREFIX: &str = "events.out.tfevents.";

/// What reading or writing an event file can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EventFileError {
    /// Reading or writing the file failed.
    #[error("{path}: {source}")]
    Io { path: String, source: std::io::Error },
    /// The file ends inside a record.
    #[error("record at byte {offset}: truncated ({need} bytes needed, {have} left)")]
    Truncated { offset: usize, need: usize, have: usize },
    /// A record's length or data does not match its CRC.
    #[error("record at byte {offset}: the CRC of its {part} does not match")]
    Crc { offset: usize, part: &'static str },
    /// A record's data is not an `Event` protocol buffer.
    #[error("record at byte {offset}: not an Event: {reason}")]
    Decode { offset: usize, reason: String },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> EventFileError + '_ {
    move |source| EventFileError::Io { path: path.display().to_string(), source }
}

impl From<EventFileError> for crate::LabError {
    fn from(e: EventFileError) -> Self {
        match e {
            EventFileError::Io { path, source } => crate::LabError::Io { path, source },
            other => crate::LabError::Run(format!("TensorBoard event file: {other}")),
        }
    }
}

/// The CRC-32C lookup table: entry `i` is the CRC of the byte `i` (reflected polynomial
/// 0x82F63B78), built at compile time.
const CRC32C_TABLE: [u32; 256] = {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut c = i as u32;
        let mut bit = 0;
        while bit < 8 {
            c = if c & 1 == 1 { (c >> 1) ^ 0x82F6_3B78 } else { c >> 1 };
            bit += 1;
        }
        table[i] = c;
        i += 1;
    }
    table
};

/// CRC-32C (Castagnoli): reflected, initial value and final xor 0xFFFFFFFF; the check value of
/// `b"123456789"` is 0xE3069283 (RFC 3720 §B.4).
pub fn crc32c(bytes: &[u8]) -> u32 {
    !bytes.iter().fold(!0u32, |c, &b| (c >> 8) ^ CRC32C_TABLE[((c ^ b as u32) & 0xff) as usize])
}

/// The CRC TFRecords store: `((c >> 15) | (c << 17)) + 0xa282ead8` with `c = crc32c(bytes)`,
/// so that a CRC of data holding CRCs stays well-mixed (TensorFlow's `crc32c::Mask`).
pub fn masked_crc32c(bytes: &[u8]) -> u32 {
    crc32c(bytes).rotate_right(15).wrapping_add(0xa282_ead8)
}

/// Appends `data` to `out` as one TFRecord (length, its masked CRC, data, its masked CRC).
pub fn frame(data: &[u8], out: &mut Vec<u8>) {
    let len = (data.len() as u64).to_le_bytes();
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc32c(&len).to_le_bytes());
    out.extend_from_slice(data);
    out.extend_from_slice(&masked_crc32c(data).to_le_bytes());
}

/// The records of `bytes` in order, each as (its offset, its data), checking both CRCs; the
/// first error ends the iteration (a file cut short by a crash yields its whole records, then
/// [`EventFileError::Truncated`]).
pub fn records(bytes: &[u8]) -> impl Iterator<Item = Result<(usize, &[u8]), EventFileError>> {
    let mut offset = 0;
    let mut failed = false;
    std::iter::from_fn(move || {
        if failed || offset == bytes.len() {
            return None;
        }
        let rest = &bytes[offset..];
        let record = (|| {
            let need = |need: usize| {
                if rest.len() < need {
                    Err(EventFileError::Truncated { offset, need, have: rest.len() })
                } else {
                    Ok(())
                }
            };
            need(12)?;
            let (len_bytes, len_crc) = (&rest[..8], u32_le(&rest[8..12]));
            if masked_crc32c(len_bytes) != len_crc {
                return Err(EventFileError::Crc { offset, part: "length" });
            }
            let len = u64::from_le_bytes(len_bytes.try_into().unwrap_or_default());
            let len = usize::try_from(len).map_err(|_| EventFileError::Truncated {
                offset,
                need: usize::MAX,
                have: rest.len(),
            })?;
            need(len.saturating_add(16))?;
            let data = &rest[12..12 + len];
            if masked_crc32c(data) != u32_le(&rest[12 + len..16 + len]) {
                return Err(EventFileError::Crc { offset, part: "data" });
            }
            Ok((offset, data, 16 + len))
        })();
        match record {
            Ok((at, data, size)) => {
                offset += size;
                Some(Ok((at, data)))
            }
            Err(e) => {
                failed = true;
                Some(Err(e))
            }
        }
    })
}

fn u32_le(b: &[u8]) -> u32 {
    u32::from_le_bytes(b.try_into().unwrap_or_default())
}

/// What an event carries (of the fields this module knows).
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// The first event of a file: `file_version`.
    FileVersion(String),
    /// A summary's `simple_value`s, by tag.
    Scalars(Vec<(String, f32)>),
    /// Neither (e.g. a graph or a session log, written by other tools).
    Other,
}

/// One `Event`: when, at which step, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Seconds since the Unix epoch.
    pub wall_time: f64,
    pub step: i64,
    pub kind: EventKind,
}

// protocol buffer wire types
const VARINT: u64 = 0;
const FIXED64: u64 = 1;
const LEN: u64 = 2;
const FIXED32: u64 = 5;

fn put_varint(mut x: u64, out: &mut Vec<u8>) {
    while x >= 0x80 {
        out.push((x as u8 & 0x7f) | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn put_key(field: u64, wire: u64, out: &mut Vec<u8>) {
    put_varint((field << 3) | wire, out);
}

fn put_bytes(field: u64, bytes: &[u8], out: &mut Vec<u8>) {
    put_key(field, LEN, out);
    put_varint(bytes.len() as u64, out);
    out.extend_from_slice(bytes);
}

impl Event {
    /// A file's first event.
    pub fn file_version(wall_time: f64) -> Event {
        Event { wall_time, step: 0, kind: EventKind::FileVersion(FILE_VERSION.to_string()) }
    }

    /// The `Event` protocol buffer: wall_time (1), step (2), then file_version (3) or summary
    /// (5) of values with tag (1) and simple_value (2).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        put_key(1, FIXED64, &mut out);
        out.extend_from_slice(&self.wall_time.to_le_bytes());
        put_key(2, VARINT, &mut out);
        put_varint(self.step as u64, &mut out); // int64: two's complement, 10 bytes if negative
        match &self.kind {
            EventKind::FileVersion(v) => put_bytes(3, v.as_bytes(), &mut out),
            EventKind::Scalars(values) => {
                let mut summary = Vec::new();
                for (tag, x) in values {
                    let mut value = Vec::new();
                    put_bytes(1, tag.as_bytes(), &mut value);
                    put_key(2, FIXED32, &mut value);
                    value.extend_from_slice(&x.to_le_bytes());
                    put_bytes(1, &value, &mut summary);
                }
                put_bytes(5, &summary, &mut out);
            }
            EventKind::Other => {}
        }
        out
    }

    /// Decodes an `Event`, skipping unknown fields; a summary value without `simple_value` is
    /// left out, and an event with neither a file version nor a scalar is [`EventKind::Other`].
    pub fn decode(bytes: &[u8]) -> Result<Event, String> {
        let mut event = Event { wall_time: 0.0, step: 0, kind: EventKind::Other };
        let mut scalars = Vec::new();
        for field in Fields(bytes) {
            match field? {
                (1, Field::Fixed64(x)) => event.wall_time = f64::from_bits(x),
                (2, Field::Varint(x)) => event.step = x as i64,
                (3, Field::Bytes(b)) => {
                    event.kind = EventKind::FileVersion(
                        String::from_utf8(b.to_vec()).map_err(|_| "file_version: not UTF-8")?,
                    )
                }
                (5, Field::Bytes(summary)) => {
                    for value in Fields(summary) {
                        if let (1, Field::Bytes(value)) = value? {
                            let (mut tag, mut simple) = (None, None);
                            for f in Fields(value) {
                                match f? {
                                    (1, Field::Bytes(t)) => {
                                        tag = Some(
                                            String::from_utf8(t.to_vec())
                                                .map_err(|_| "tag: not UTF-8")?,
                                        )
                                    }
                                    (2, Field::Fixed32(x)) => simple = Some(f32::from_bits(x)),
                                    _ => {}
                                }
                            }
                            if let (Some(tag), Some(x)) = (tag, simple) {
                                scalars.push((tag, x));
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        if !scalars.is_empty() {
            event.kind = EventKind::Scalars(scalars);
        }
        Ok(event)
    }
}

/// One protocol buffer field's value.
enum Field<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

/// The (field number, value) pairs of a message.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn varint(&mut self) -> Result<u64, String> {
        let mut x = 0u64;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.0.split_first().ok_or("varint: truncated")?;
            self.0 = rest;
            x |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Ok(x);
            }
        }
        Err("varint: longer than 10 bytes".into())
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        let n = usize::try_from(n).ok().filter(|&n| n <= self.0.len()).ok_or("field: truncated")?;
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn next_field(&mut self) -> Result<(u64, Field<'a>), String> {
        let key = self.varint()?;
        let value = match key & 7 {
            VARINT => Field::Varint(self.varint()?),
            FIXED64 => {
                Field::Fixed64(u64::from_le_bytes(self.take(8)?.try_into().map_err(|_| "fixed64")?))
            }
            LEN => {
                let n = self.varint()?;
                Field::Bytes(self.take(n)?)
            }
            FIXED32 => {
                Field::Fixed32(u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| "fixed32")?))
            }
            wire => return Err(format!("field {}: unsupported wire type {wire}", key >> 3)),
        };
        Ok((key >> 3, value))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = Result<(u64, Field<'a>), String>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.0.is_empty() {
            return None;
        }
        let field = self.next_field();
        if field.is_err() {
            self.0 = &[]; // an error ends the message
        }
        Some(field)
    }
}

/// The events of an event file's bytes, checking every record; the first bad record is an error.
pub fn parse_events(bytes: &[u8]) -> Result<Vec<Event>, EventFileError> {
    records(bytes)
        .map(|r| {
            let (offset, data) = r?;
            Event::decode(data).map_err(|reason| EventFileError::Decode { offset, reason })
        })
        .collect()
}

/// The events of the file at `path` (see [`parse_events`]).
pub fn read_event_file(path: &Path) -> Result<Vec<Event>, EventFileError> {
    parse_events(&std::fs::read(path).map_err(io_err(path))?)
}

/// The events of `path` up to its first bad record (a file cut short by a crash, or unreadable:
/// what could be read).
pub fn read_events_lossy(path: &Path) -> Vec<Event> {
    let Ok(bytes) = std::fs::read(path) else { return Vec::new() };
    records(&bytes).map_while(|r| r.ok().and_then(|(_, d)| Event::decode(d).ok())).collect()
}

/// The event files directly in `dir`, in name order (TensorBoard's reading order); none if
/// `dir` is absent.
pub fn event_files(dir: &Path) -> Result<Vec<PathBuf>, EventFileError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.starts_with(FILE_PREFIX)))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// Seconds since the Unix epoch, now.
pub fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How many event files this process has named (the `n` of the file name).
static FILES_MADE: AtomicUsize = AtomicUsize::new(0);

/// An event file being written: created whole with its first events, then appended to.
#[derive(Debug)]
pub struct EventFile {
    path: PathBuf,
    file: std::fs::File,
}

impl EventFile {
    /// Creates a new event file in `dir` holding the file-version event and then `events`,
    /// atomically: the bytes are written and synced under a name TensorBoard does not read
    /// (`.tb-PID-N.partial`), then renamed to `events.out.tfevents.…`.
    pub fn create(dir: &Path, events: &[Event]) -> Result<EventFile, EventFileError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let wall_time = now();
        let (pid, n) = (std::process::id(), FILES_MADE.fetch_add(1, Ordering::Relaxed));
        let name = format!(
            "{FILE_PREFIX}{}.{}.{pid}.{n}",
            wall_time as u64,
            crate::lock::host_name().replace(['/', '\\'], "_")
        );
        let (path, partial) = (dir.join(name), dir.join(format!(".tb-{pid}-{n}.partial")));
        let mut bytes = Vec::new();
        frame(&Event::file_version(wall_time).encode(), &mut bytes);
        for event in events {
            frame(&event.encode(), &mut bytes);
        }
        let mut file = std::fs::File::create(&partial).map_err(io_err(&partial))?;
        file.write_all(&bytes).map_err(io_err(&partial))?;
        file.sync_all().map_err(io_err(&partial))?;
        drop(file);
        std::fs::rename(&partial, &path).map_err(io_err(&path))?;
        let file = std::fs::OpenOptions::new().append(true).open(&path).map_err(io_err(&path))?;
        Ok(EventFile { path, file })
    }

    /// Appends `events` (one write; TensorBoard sees them on its next reload).
    pub fn append(&mut self, events: &[Event]) -> Result<(), EventFileError> {
        let mut bytes = Vec::new();
        for event in events {
            frame(&event.encode(), &mut bytes);
        }
        self.file.write_all(&bytes).map_err(io_err(&self.path))
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_matches_the_rfc_3720_check_value() {
        assert_eq!(crc32c(b"123456789"), 0xE306_9283);
        assert_eq!(crc32c(b""), 0);
        // RFC 3720 §B.4: 32 bytes of zeros
        assert_eq!(crc32c(&[0u8; 32]), 0x8A91_36AA);
    }

    #[test]
    fn masking_rotates_right_by_15_and_adds_the_constant() {
        // ((0xE3069283 >> 15) | (0xE3069283 << 17)) + 0xa282ead8 mod 2³², computed outside this code
        assert_eq!(masked_crc32c(b"123456789"), 0xC78A_B0E5);
    }

    #[test]
    fn a_framed_event_reads_back_with_its_tags_steps_and_values() {
        let events = [
            Event::file_version(1.5),
            Event {
                wall_time: 1_700_000_000.25,
                step: 300,
                kind: EventKind::Scalars(vec![
                    ("train_loss".into(), 2.5),
                    ("lr".into(), 3e-4),
                    ("diverged".into(), f32::NAN),
                ]),
            },
            Event { wall_time: 2.0, step: -1, kind: EventKind::Scalars(vec![("x".into(), 1.0)]) },
        ];
        let mut bytes = Vec::new();
        for e in &events {
            frame(&e.encode(), &mut bytes);
        }
        let back = parse_events(&bytes).unwrap();
        assert_eq!(back.len(), 3);
        assert_eq!(back[0], events[0]);
        assert_eq!((back[1].wall_time, back[1].step), (1_700_000_000.25, 300));
        let EventKind::Scalars(values) = &back[1].kind else { panic!("{:?}", back[1]) };
        assert_eq!(values[..2], [("train_loss".to_string(), 2.5), ("lr".to_string(), 3e-4)]);
        assert!(values[2].1.is_nan());
        assert_eq!(back[2], events[2]);
    }

    #[test]
    fn the_encoding_is_the_protocol_buffer_one() {
        // Event{wall_time: 1.0, step: 1, summary{value{tag: "a", simple_value: 1.0}}}
        let e =
            Event { wall_time: 1.0, step: 1, kind: EventKind::Scalars(vec![("a".into(), 1.0)]) };
        let mut want = vec![0x09];
        want.extend_from_slice(&1.0f64.to_le_bytes());
        want.extend_from_slice(&[0x10, 0x01, 0x2a, 0x0a, 0x0a, 0x08, 0x0a, 0x01, b'a', 0x15]);
        want.extend_from_slice(&1.0f32.to_le_bytes());
        assert_eq!(e.encode(), want);
        let mut big = Vec::new();
        put_varint(300, &mut big);
        assert_eq!(big, [0xac, 0x02]);
    }

    #[test]
    fn a_flipped_bit_or_a_cut_record_is_an_error_not_a_value() {
        let mut bytes = Vec::new();
        let e =
            Event { wall_time: 1.0, step: 7, kind: EventKind::Scalars(vec![("a".into(), 1.0)]) };
        frame(&e.encode(), &mut bytes);
        frame(&e.encode(), &mut bytes);
        let one = bytes.len() / 2;
        for (at, part) in [(3, "length"), (one - 6, "data")] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x10;
            match parse_events(&bad) {
                Err(EventFileError::Crc { offset: 0, part: p }) => assert_eq!(p, part),
                other => panic!("{other:?}"),
            }
        }
        let cut = &bytes[..bytes.len() - 3];
        assert!(matches!(parse_events(cut), Err(EventFileError::Truncated { .. })));
        let whole: Vec<_> = records(cut).map_while(Result::ok).collect();
        assert_eq!(whole.len(), 1, "the records before the cut still read");
    }

    #[test]
    fn garbage_never_panics() {
        let mut state = 1u64;
        for len in 0..200 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    state =
                        state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    (state >> 56) as u8
                })
                .collect();
            let _ = parse_events(&bytes);
            let _ = Event::decode(&bytes);
        }
    }
}
