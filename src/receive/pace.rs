//! The slowest upload body rig-receive waits for (issue 17).
//!
//! A socket read timeout catches a client that goes silent, not one that
//! trickles a byte every few seconds: such an upload of 1 GB would hold its
//! connection and its space reservation for years. [`PaceReader`] counts
//! the bytes of each window of `server.stall_timeout_sec` and fails the next
//! read with `TimedOut` (answered 408, temp file removed) when a whole
//! window brought less than `server.upload_min_kib_per_sec` per second.

use std::io::{self, Read};
use std::time::{Duration, Instant};

/// A body reader that fails when the body arrives slower than a floor.
pub struct PaceReader<R> {
    inner: R,
    /// Least bytes per second over each window; 0 = no floor.
    min_rate: u64,
    window: Duration,
    window_start: Instant,
    window_bytes: u64,
}

impl<R: Read> PaceReader<R> {
    /// Reads `inner`, wanting at least `min_rate` bytes/s over each `window`.
    pub fn new(inner: R, min_rate: u64, window: Duration) -> PaceReader<R> {
        PaceReader {
            inner,
            min_rate,
            window,
            window_start: Instant::now(),
            window_bytes: 0,
        }
    }

    /// Closes the window when it is over; `TimedOut` if it was too slow.
    fn check(&mut self) -> io::Result<()> {
        let elapsed = self.window_start.elapsed();
        if self.min_rate == 0 || elapsed < self.window {
            return Ok(());
        }
        let wanted = (self.min_rate as f64 * elapsed.as_secs_f64()) as u64;
        if self.window_bytes < wanted {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!(
                    "{} bytes in {:.1} s, below the floor of {} bytes/s",
                    self.window_bytes,
                    elapsed.as_secs_f64(),
                    self.min_rate
                ),
            ));
        }
        self.window_start = Instant::now();
        self.window_bytes = 0;
        Ok(())
    }
}

impl<R: Read> Read for PaceReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.check()?;
        let n = self.inner.read(buf)?;
        self.window_bytes += n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Yields one byte a read, sleeping `gap` before each.
    struct Trickle {
        gap: Duration,
    }

    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            std::thread::sleep(self.gap);
            buf[0] = b'x';
            Ok(1)
        }
    }

    #[test]
    fn a_trickle_fails_after_one_window() {
        let window = Duration::from_millis(50);
        let mut r = PaceReader::new(Trickle { gap: window / 5 }, 1024, window);
        let mut buf = [0u8; 16];
        let mut got = 0;
        let err = loop {
            match r.read(&mut buf) {
                Ok(n) => got += n,
                Err(e) => break e,
            }
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        // Sleeps never end early, so one window holds at most 5 reads (10
        // allows for the window's edges); a loaded machine may fit fewer.
        assert!((1..=10).contains(&got), "one window of bytes, got {got}");
    }

    #[test]
    fn a_fast_body_and_no_floor_pass() {
        let data = vec![7u8; 1 << 20];
        let mut out = Vec::new();
        PaceReader::new(&data[..], 1024, Duration::ZERO)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, data);
        let mut slow = PaceReader::new(
            Trickle {
                gap: Duration::from_millis(2),
            },
            0,
            Duration::ZERO,
        );
        let mut buf = [0u8; 4];
        for _ in 0..5 {
            assert_eq!(slow.read(&mut buf).unwrap(), 1);
        }
    }
}
