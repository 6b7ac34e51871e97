//! Snapshot of the store to one file, so a restart keeps the analysis window.
//!
//! Layout (little endian): magic `AUGURSN1`, series count `u64`, then per
//! series: label count `u16`, each name and value as `u32` length + bytes,
//! sample count `u32`, samples as `i64` ms + `u64` value bits; last a CRC32
//! of everything before it. Written to a temp file, fsynced, then renamed, so
//! a crash leaves either the old or the new snapshot, never half of one.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

use super::{Appended, Store};

const MAGIC: &[u8; 8] = b"AUGURSN1";

/// Why a snapshot could not be written or read.
#[derive(Debug, Error)]
pub enum SnapshotError {
    /// Reading or writing the file failed.
    #[error("snapshot {path}: {source}")]
    Io {
        /// the snapshot file
        path: PathBuf,
        /// the I/O error
        #[source]
        source: io::Error,
    },
    /// The file is not a valid snapshot (truncated, corrupt, other format).
    #[error("snapshot {path} is corrupt at byte {offset}: {reason}")]
    Corrupt {
        /// the snapshot file
        path: PathBuf,
        /// where decoding stopped
        offset: usize,
        /// what was wrong
        reason: &'static str,
    },
}

/// What a snapshot held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotSummary {
    /// series written or read
    pub series: u64,
    /// samples written or read
    pub samples: u64,
    /// file size in bytes
    pub bytes: u64,
}

impl Store {
    /// Writes every series to `path` atomically (temp file, fsync, rename).
    pub fn write_snapshot(&self, path: &Path) -> Result<SnapshotSummary, SnapshotError> {
        let io_err = |source| SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut buf: Vec<u8> = Vec::new();
        let mut series = 0u64;
        let mut samples = 0u64;
        {
            let inner = self.inner.read();
            buf.extend_from_slice(MAGIC);
            buf.extend_from_slice(&inner.live.to_le_bytes());
            for s in inner.series.iter().flatten() {
                buf.extend_from_slice(&(s.labels.len() as u16).to_le_bytes());
                for (n, v) in s.labels.iter() {
                    for sym in [n, v] {
                        let text = inner.interner.get(*sym);
                        buf.extend_from_slice(&(text.len() as u32).to_le_bytes());
                        buf.extend_from_slice(text.as_bytes());
                    }
                }
                buf.extend_from_slice(&(s.ts.len() as u32).to_le_bytes());
                for (o, v) in s.ts.iter().zip(s.vals.iter()) {
                    buf.extend_from_slice(&(s.base + i64::from(*o)).to_le_bytes());
                    buf.extend_from_slice(&v.to_bits().to_le_bytes());
                }
                series += 1;
                samples += s.ts.len() as u64;
            }
        }
        let crc = crc32fast::hash(&buf);
        buf.extend_from_slice(&crc.to_le_bytes());

        let dir = path.parent().unwrap_or(Path::new("."));
        fs::create_dir_all(dir).map_err(io_err)?;
        let tmp = path.with_extension("tmp");
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
            fs::rename(&tmp, path)
        })();
        if let Err(e) = written {
            // A full disk must not keep a half-written file around.
            let _ = fs::remove_file(&tmp);
            return Err(io_err(e));
        }
        // Make the rename itself durable.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(SnapshotSummary {
            series,
            samples,
            bytes: buf.len() as u64,
        })
    }

    /// Reads a snapshot into this (normally empty) store, dropping samples
    /// older than `min_t`. Nothing is added unless the whole file is valid.
    pub fn load_snapshot(&self, path: &Path, min_t: i64) -> Result<SnapshotSummary, SnapshotError> {
        let data = fs::read(path).map_err(|source| SnapshotError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let decoded = decode(&data).map_err(|(offset, reason)| SnapshotError::Corrupt {
            path: path.to_path_buf(),
            offset,
            reason,
        })?;
        let mut summary = SnapshotSummary {
            series: 0,
            samples: 0,
            bytes: data.len() as u64,
        };
        let mut app = self.appender();
        for (labels, samples) in decoded {
            let kept: Vec<&(i64, f64)> = samples.iter().filter(|(t, _)| *t >= min_t).collect();
            if kept.is_empty() {
                continue;
            }
            let r = app.series(labels.iter().map(|(n, v)| (*n, *v)));
            summary.series += 1;
            for (t, v) in kept {
                if let Ok(Appended::Stored) = app.append(r, *t, *v) {
                    summary.samples += 1;
                }
            }
        }
        Ok(summary)
    }
}

type Decoded<'a> = Vec<(Vec<(&'a str, &'a str)>, Vec<(i64, f64)>)>;

fn decode(data: &[u8]) -> Result<Decoded<'_>, (usize, &'static str)> {
    if data.len() < MAGIC.len() + 8 + 4 {
        return Err((0, "file too short"));
    }
    if &data[..8] != MAGIC {
        return Err((0, "not an augur snapshot (bad magic)"));
    }
    let body = &data[..data.len() - 4];
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&data[data.len() - 4..]);
    if crc32fast::hash(body) != u32::from_le_bytes(crc) {
        return Err((data.len() - 4, "checksum mismatch (truncated or corrupt)"));
    }
    let mut r = Reader { b: body, pos: 8 };
    let n = r.u64()?;
    let mut out = Vec::new();
    for _ in 0..n {
        let nl = r.u16()?;
        let mut labels = Vec::with_capacity(nl as usize);
        for _ in 0..nl {
            let name = r.str()?;
            let value = r.str()?;
            labels.push((name, value));
        }
        let ns = r.u32()?;
        let mut samples = Vec::with_capacity((ns as usize).min(1 << 20));
        for _ in 0..ns {
            let t = r.u64()? as i64;
            let v = f64::from_bits(r.u64()?);
            samples.push((t, v));
        }
        out.push((labels, samples));
    }
    if r.pos != body.len() {
        return Err((r.pos, "trailing bytes after the last series"));
    }
    Ok(out)
}

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], (usize, &'static str)> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.b.len());
        let Some(end) = end else {
            return Err((self.pos, "unexpected end of data"));
        };
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn u16(&mut self) -> Result<u16, (usize, &'static str)> {
        let mut a = [0u8; 2];
        a.copy_from_slice(self.take(2)?);
        Ok(u16::from_le_bytes(a))
    }

    fn u32(&mut self) -> Result<u32, (usize, &'static str)> {
        let mut a = [0u8; 4];
        a.copy_from_slice(self.take(4)?);
        Ok(u32::from_le_bytes(a))
    }

    fn u64(&mut self) -> Result<u64, (usize, &'static str)> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }

    fn str(&mut self) -> Result<&'a str, (usize, &'static str)> {
        let n = self.u32()? as usize;
        let at = self.pos;
        std::str::from_utf8(self.take(n)?).map_err(|_| (at, "label is not UTF-8"))
    }
}
