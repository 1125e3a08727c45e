//! One pass over the bytes: the pump copies ffmpeg's pipe into the file
//! through a hashing writer, and a sync thread `fdatasync`s the file on its
//! own clock so a slow fsync never stalls the pipe.

use std::fs::File;
use std::io::{self, Read, Write};
use std::sync::mpsc;
use std::time::Duration;

use crate::base::checksum::HashingWriter;

/// Read size of the pump (the pipe rarely holds more).
pub(super) const PUMP_BUF: usize = 1 << 20;

/// What the pump leaves behind: the writer (file + running digest), the
/// error that stopped it early if any, and when the last byte was written.
pub(super) struct PumpEnd {
    pub(super) writer: HashingWriter<File>,
    pub(super) error: Option<io::Error>,
    pub(super) last_byte: Option<jiff::Timestamp>,
}

/// Copies `src` into `writer` until end of input or the first error.
pub(super) fn pump(mut src: impl Read, mut writer: HashingWriter<File>) -> PumpEnd {
    let mut buf = vec![0u8; PUMP_BUF];
    let mut last_byte = None;
    loop {
        let n = match src.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                return PumpEnd {
                    writer,
                    error: Some(e),
                    last_byte,
                };
            }
        };
        if let Err(e) = writer.write_all(&buf[..n]) {
            return PumpEnd {
                writer,
                error: Some(e),
                last_byte,
            };
        }
        last_byte = Some(jiff::Timestamp::now());
    }
    PumpEnd {
        writer,
        error: None,
        last_byte,
    }
}

/// fdatasyncs `file` every `interval` until told to stop; returns how many
/// syncs it did and the first error.
pub(super) fn sync_loop(
    file: File,
    interval: Duration,
    stop: mpsc::Receiver<()>,
) -> (u64, Option<io::Error>) {
    let mut count = 0;
    let mut first_error = None;
    loop {
        match stop.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => match file.sync_data() {
                Ok(()) => count += 1,
                Err(e) => {
                    log::error!("fsync of the recording failed: {e}");
                    first_error.get_or_insert(e);
                }
            },
            _ => return (count, first_error),
        }
    }
}
