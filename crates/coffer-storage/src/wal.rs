//! The write-ahead log in front of redb.
//!
//! A durable redb commit writes every B-tree page the transaction dirtied (tens of 4 KiB pages
//! for a group of small writes to scattered keys) and then fsyncs. Instead, the committer
//! appends each group's ops to this log as one record, fsyncs the log (one sequential write),
//! and applies the group to redb without an fsync of its own. Every so often a **checkpoint**
//! commits redb durably, which makes the log up to that point redundant, and the log starts
//! over.
//!
//! Invariants this module keeps:
//! - **A record is a group, whole.** It holds every request of one committed group with its
//!   ops in order, so replay reproduces exactly the groups that were applied.
//! - **Replay stops at the first record that is not of the current generation or fails its
//!   checksum.** A torn tail (a crash mid-append) was never acknowledged; records of earlier
//!   generations, left further along the file when it was reused after a checkpoint, are
//!   already in redb.
//! - **Replay is idempotent.** Ops are blind puts and deletes applied in log order, so applying
//!   a record whose effects redb already holds leaves the same state.
//! - The generation lives in redb and moves on in the checkpoint's own durable transaction, so
//!   redb and the log can never disagree about which records are still needed.
//!
//! **Zeros ahead of the records.** An fdatasync of a write that makes the file longer must also
//! write the file's new size (on ext4 an extra block write, and on this project's machine 0.8 ms
//! per group's fsync against 0.47 ms when the file kept its size). So the log is filled with
//! zeros [`ZERO_FILL_CHUNK`] at a time ahead of the next record, and records overwrite zeros:
//! their fsyncs write data alone. A zero header is of generation 0, which is no generation, so
//! replay stops there as at any other end. The file reaches its steady size (a checkpoint's
//! worth of records and a chunk) and is reused from the start after each checkpoint.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::{BatchOp, StorageError};

/// Record header: generation (u64), payload length (u32), CRC-32 of generation ‖ length ‖
/// payload (u32); all little-endian.
const HEADER_BYTES: usize = 16;

/// How much zero-filled room the log adds at a time when a record would reach past its end.
const ZERO_FILL_CHUNK: u64 = 4 * 1024 * 1024;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;

/// The open log file and where the next record goes.
pub(crate) struct Wal {
    file: File,
    /// Bytes of valid records of the current generation from the start of the file.
    len: u64,
    generation: u64,
    /// Whether records were appended since the last fsync.
    unsynced: bool,
    /// The file's length: records, then zeros or records of earlier generations.
    file_len: u64,
}

/// One request's ops as they appear in a record.
pub(crate) type RecordedRequest = Vec<BatchOp>;

impl Wal {
    /// Open (creating if missing) the log at `path` for `generation`, returning it with the
    /// requests of every valid record of that generation, in order, for replay.
    pub(crate) fn open(
        path: &Path,
        generation: u64,
    ) -> Result<(Wal, Vec<Vec<RecordedRequest>>), StorageError> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let mut records = Vec::new();
        let mut at = 0usize;
        while let Some((requests, next)) = decode_record(&bytes, at, generation) {
            records.push(requests);
            at = next;
        }
        Ok((
            Wal {
                file,
                len: at as u64,
                generation,
                unsynced: false,
                file_len: bytes.len() as u64,
            },
            records,
        ))
    }

    /// Swap in another handle for the log file (tests make appends fail with a read-only one).
    #[cfg(test)]
    pub(crate) fn replace_file_for_test(&mut self, file: File) {
        self.file = file;
    }

    /// Bytes of records since the last checkpoint.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Append one record holding `requests`; not yet durable (see [`Wal::sync`]). On failure
    /// the log is cut back to where it was, so a half-written record cannot be followed by
    /// good ones.
    pub(crate) fn append(&mut self, requests: &[&[BatchOp]]) -> Result<(), StorageError> {
        let record = encode_record(self.generation, requests);
        let end = self.len + record.len() as u64;
        let written = self
            .zero_fill_past(end)
            .and_then(|()| self.file.seek(SeekFrom::Start(self.len)))
            .and_then(|_| self.file.write_all(&record));
        if let Err(error) = written {
            // Zeroing the header makes the record invalid whatever else reached the disk.
            let _ = self
                .file
                .seek(SeekFrom::Start(self.len))
                .and_then(|_| self.file.write_all(&[0u8; HEADER_BYTES]));
            return Err(error.into());
        }
        self.len += record.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// Make the file at least `end` bytes long by appending zeros, a whole chunk past `end` at a
    /// time, so that the records written after it overwrite zeros instead of growing the file.
    /// The next fsync makes the zeros durable with the record that follows them.
    fn zero_fill_past(&mut self, end: u64) -> std::io::Result<()> {
        if end <= self.file_len {
            return Ok(());
        }
        let target = end + ZERO_FILL_CHUNK;
        let zeros = vec![0u8; 256 * 1024];
        self.file.seek(SeekFrom::Start(self.file_len))?;
        while self.file_len < target {
            let n = (target - self.file_len).min(zeros.len() as u64) as usize;
            self.file.write_all(&zeros[..n])?;
            self.file_len += n as u64;
        }
        Ok(())
    }

    /// Make every appended record durable; returns whether an fsync was needed.
    pub(crate) fn sync(&mut self) -> Result<bool, StorageError> {
        if !self.unsynced {
            return Ok(false);
        }
        self.file.sync_data()?;
        self.unsynced = false;
        Ok(true)
    }

    /// Start over after redb committed generation `generation` durably: the records so far
    /// are redundant; new ones are written from the start of the file with the new generation
    /// (older ones further along are ignored by replay).
    pub(crate) fn restart(&mut self, generation: u64) {
        self.generation = generation;
        self.len = 0;
        self.unsynced = false;
    }
}

fn put_u32(out: &mut Vec<u8>, value: usize) {
    out.extend_from_slice(&u32::try_from(value).unwrap_or(u32::MAX).to_le_bytes());
}

/// Encode one record. Lengths fit in u32: the committer bounds a group to far less.
fn encode_record(generation: u64, requests: &[&[BatchOp]]) -> Vec<u8> {
    let mut payload = Vec::new();
    put_u32(&mut payload, requests.len());
    for ops in requests {
        put_u32(&mut payload, ops.len());
        for op in ops.iter() {
            match op {
                BatchOp::Put { key, value } => {
                    payload.push(OP_PUT);
                    put_u32(&mut payload, key.len());
                    payload.extend_from_slice(key.as_bytes());
                    put_u32(&mut payload, value.len());
                    payload.extend_from_slice(value);
                }
                BatchOp::Delete { key } => {
                    payload.push(OP_DELETE);
                    put_u32(&mut payload, key.len());
                    payload.extend_from_slice(key.as_bytes());
                }
            }
        }
    }
    let mut record = Vec::with_capacity(HEADER_BYTES + payload.len());
    record.extend_from_slice(&generation.to_le_bytes());
    put_u32(&mut record, payload.len());
    let mut crc = crc32fast::Hasher::new();
    crc.update(&record[..12]);
    crc.update(&payload);
    record.extend_from_slice(&crc.finalize().to_le_bytes());
    record.extend_from_slice(&payload);
    record
}

/// A little-endian reader over a record's payload that fails (None) instead of running off
/// the end.
struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let slice = self.bytes.get(self.at..self.at.checked_add(n)?)?;
        self.at += n;
        Some(slice)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }

    fn u32(&mut self) -> Option<usize> {
        let b = self.take(4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    }

    fn string(&mut self) -> Option<String> {
        let n = self.u32()?;
        String::from_utf8(self.take(n)?.to_vec()).ok()
    }
}

/// The record at `at` if it is whole, of `generation` and intact: its requests and where the
/// next record starts.
fn decode_record(
    bytes: &[u8],
    at: usize,
    generation: u64,
) -> Option<(Vec<RecordedRequest>, usize)> {
    let header = bytes.get(at..at.checked_add(HEADER_BYTES)?)?;
    let record_generation = u64::from_le_bytes(header[..8].try_into().ok()?);
    let len = u32::from_le_bytes(header[8..12].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[12..16].try_into().ok()?);
    if record_generation != generation {
        return None;
    }
    let start = at + HEADER_BYTES;
    let payload = bytes.get(start..start.checked_add(len)?)?;
    let mut check = crc32fast::Hasher::new();
    check.update(&header[..12]);
    check.update(payload);
    if check.finalize() != crc {
        return None;
    }
    let mut cursor = Cursor {
        bytes: payload,
        at: 0,
    };
    let request_count = cursor.u32()?;
    let mut requests = Vec::with_capacity(request_count.min(4096));
    for _ in 0..request_count {
        let op_count = cursor.u32()?;
        let mut ops = Vec::with_capacity(op_count.min(4096));
        for _ in 0..op_count {
            let op = match cursor.u8()? {
                OP_PUT => {
                    let key = cursor.string()?;
                    let n = cursor.u32()?;
                    BatchOp::Put {
                        key,
                        value: cursor.take(n)?.to_vec(),
                    }
                }
                OP_DELETE => BatchOp::Delete {
                    key: cursor.string()?,
                },
                _ => return None,
            };
            ops.push(op);
        }
        requests.push(ops);
    }
    (cursor.at == payload.len()).then_some((requests, start + len))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &[u8]) -> BatchOp {
        BatchOp::Put {
            key: key.into(),
            value: value.to_vec(),
        }
    }

    fn keys(records: &[Vec<RecordedRequest>]) -> Vec<Vec<Vec<String>>> {
        records
            .iter()
            .map(|r| {
                r.iter()
                    .map(|ops| ops.iter().map(|op| op.key().to_string()).collect())
                    .collect()
            })
            .collect()
    }

    #[test]
    fn records_come_back_in_order_with_their_request_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, replay) = Wal::open(&path, 1).unwrap();
        assert!(replay.is_empty());
        let first = [put("a", b"1"), BatchOp::Delete { key: "b".into() }];
        let second = [put("c", b"")];
        wal.append(&[&first, &second]).unwrap();
        wal.append(&[&[put("d", &[0u8; 1000])]]).unwrap();
        assert!(wal.sync().unwrap());
        assert!(!wal.sync().unwrap(), "nothing new to sync");
        drop(wal);
        let (wal, replay) = Wal::open(&path, 1).unwrap();
        assert_eq!(
            keys(&replay),
            vec![vec![vec!["a", "b"], vec!["c"]], vec![vec!["d"]]]
        );
        assert!(matches!(&replay[1][0][0], BatchOp::Put { value, .. } if value.len() == 1000));
        assert!(wal.len() > 0);
    }

    #[test]
    fn a_torn_or_corrupt_tail_ends_replay_and_earlier_records_survive() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, _) = Wal::open(&path, 1).unwrap();
        wal.append(&[&[put("kept", b"v")]]).unwrap();
        let kept_len = wal.len();
        wal.append(&[&[put("torn", b"vvvvvvvv")]]).unwrap();
        let end = wal.len() as usize;
        drop(wal);
        let full = std::fs::read(&path).unwrap();
        assert!(full.len() > end, "zeros follow the records");
        let (_, replay) = Wal::open(&path, 1).unwrap();
        assert_eq!(
            keys(&replay),
            vec![vec![vec!["kept"]], vec![vec!["torn"]]],
            "the zeros after the last record end replay"
        );
        for cut in kept_len as usize..end {
            std::fs::write(&path, &full[..cut]).unwrap();
            let (_, replay) = Wal::open(&path, 1).unwrap();
            assert_eq!(keys(&replay), vec![vec![vec!["kept"]]], "cut at {cut}");
        }
        // One flipped byte anywhere in the second record voids it, and only it.
        for flip in kept_len as usize..end {
            let mut bytes = full.clone();
            bytes[flip] ^= 0x40;
            std::fs::write(&path, &bytes).unwrap();
            let (_, replay) = Wal::open(&path, 1).unwrap();
            assert_eq!(keys(&replay), vec![vec![vec!["kept"]]], "flip at {flip}");
        }
    }

    #[test]
    fn records_overwrite_zeros_instead_of_growing_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, _) = Wal::open(&path, 1).unwrap();
        let file_len = || std::fs::metadata(&path).unwrap().len();
        wal.append(&[&[put("first", b"v")]]).unwrap();
        let filled = file_len();
        assert!(filled >= wal.len() + ZERO_FILL_CHUNK, "{filled}");
        let value = vec![7u8; 64 * 1024];
        let mut appended = 1;
        while wal.len() + value.len() as u64 + 64 < filled {
            wal.append(&[&[put("more", &value)]]).unwrap();
            appended += 1;
            assert_eq!(file_len(), filled, "record {appended} grew the file");
        }
        // The record that no longer fits adds the next chunk of zeros past itself.
        wal.append(&[&[put("past", &value)]]).unwrap();
        assert!(file_len() >= wal.len() + ZERO_FILL_CHUNK);
        wal.sync().unwrap();
        drop(wal);
        let (wal, replay) = Wal::open(&path, 1).unwrap();
        assert_eq!(replay.len(), appended + 1);
        assert_eq!(replay.last().map(|r| r[0][0].key()), Some("past"));
        // After a restart, records go over the old ones and the file keeps its length.
        let mut wal = wal;
        let before = file_len();
        wal.restart(2);
        wal.append(&[&[put("new", &value)]]).unwrap();
        assert_eq!(file_len(), before);
    }

    #[test]
    fn after_a_restart_older_records_further_along_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("log");
        let (mut wal, _) = Wal::open(&path, 1).unwrap();
        for key in ["old-1", "old-2", "old-3"] {
            wal.append(&[&[put(key, b"long enough to outlast the new record")]])
                .unwrap();
        }
        wal.restart(2);
        wal.append(&[&[put("new", b"v")]]).unwrap();
        wal.sync().unwrap();
        drop(wal);
        let (_, replay) = Wal::open(&path, 2).unwrap();
        assert_eq!(keys(&replay), vec![vec![vec!["new"]]]);
        let (_, replay) = Wal::open(&path, 3).unwrap();
        assert!(
            replay.is_empty(),
            "a later generation has nothing to replay"
        );
    }
}
