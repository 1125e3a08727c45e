use std::io::Read;
use std::io::Result as IoResult;
use std::sync::mpsc::channel;
use std::sync::mpsc::{Receiver, Sender};

use super::{Abandoned, DRAIN_LIMIT};

/// A `Reader` that reads exactly the number of bytes from a sub-reader.
///
/// If the limit is reached, it returns EOF. If the limit is not reached
/// when the destructor is called, the remaining bytes will be read and
/// thrown away, up to [`DRAIN_LIMIT`]; more than that, and the connection
/// is marked [`Abandoned`] instead (soccer-rig patch 7).
pub struct EqualReader<R>
where
    R: Read,
{
    reader: R,
    size: usize,
    last_read_signal: Sender<IoResult<()>>,
    abandoned: Abandoned,
}

impl<R> EqualReader<R>
where
    R: Read,
{
    pub fn new(
        reader: R,
        size: usize,
        abandoned: Abandoned,
    ) -> (EqualReader<R>, Receiver<IoResult<()>>) {
        let (tx, rx) = channel();

        let r = EqualReader {
            reader,
            size,
            last_read_signal: tx,
            abandoned,
        };

        (r, rx)
    }
}

impl<R> Read for EqualReader<R>
where
    R: Read,
{
    fn read(&mut self, buf: &mut [u8]) -> IoResult<usize> {
        if self.size == 0 {
            return Ok(0);
        }

        let buf = if buf.len() < self.size {
            buf
        } else {
            &mut buf[..self.size]
        };

        match self.reader.read(buf) {
            Ok(len) => {
                self.size -= len;
                Ok(len)
            }
            err @ Err(_) => err,
        }
    }
}

impl<R> Drop for EqualReader<R>
where
    R: Read,
{
    fn drop(&mut self) {
        let mut remaining_to_read = self.size;
        // soccer-rig patch 7: never read a body the connection gave up on
        // (the reply said `Connection: close`), and give up on one larger
        // than DRAIN_LIMIT rather than reading gigabytes nobody wants.
        if self.abandoned.is_set() || remaining_to_read > DRAIN_LIMIT {
            if remaining_to_read > 0 {
                self.abandoned.set();
            }
            return;
        }
        // soccer-rig patch 1: drain through a fixed buffer. The upstream code
        // allocated `vec![0; remaining]`, sized by the client's declared
        // Content-Length, which aborts the process when that exceeds RAM.
        let mut buf = [0u8; 64 * 1024];

        while remaining_to_read > 0 {
            let want = remaining_to_read.min(buf.len());
            match self.reader.read(&mut buf[..want]) {
                Err(e) => {
                    self.last_read_signal.send(Err(e)).ok();
                    break;
                }
                Ok(0) => {
                    self.last_read_signal.send(Ok(())).ok();
                    break;
                }
                Ok(other) => {
                    remaining_to_read -= other;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::EqualReader;
    use std::io::Read;

    #[test]
    fn test_limit() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let (mut equal_reader, _) = EqualReader::new(org_reader.by_ref(), 5, Default::default());

            let mut string = String::new();
            equal_reader.read_to_string(&mut string).unwrap();
            assert_eq!(string, "hello");
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }

    #[test]
    fn test_not_enough() {
        use std::io::Cursor;

        let mut org_reader = Cursor::new("hello world".to_string().into_bytes());

        {
            let (mut equal_reader, _) = EqualReader::new(org_reader.by_ref(), 5, Default::default());

            let mut vec = [0];
            equal_reader.read_exact(&mut vec).unwrap();
            assert_eq!(vec[0], b'h');
        }

        let mut string = String::new();
        org_reader.read_to_string(&mut string).unwrap();
        assert_eq!(string, " world");
    }

    // soccer-rig patch 7: a body over DRAIN_LIMIT is not read on drop; the
    // connection is marked abandoned instead.
    #[test]
    fn test_large_unread_body_is_abandoned_not_read() {
        use super::{Abandoned, DRAIN_LIMIT};
        use std::io::Cursor;

        let body = vec![7u8; DRAIN_LIMIT + 10];
        let mut org_reader = Cursor::new(body);
        let abandoned = Abandoned::default();
        {
            let (mut equal_reader, _) =
                EqualReader::new(org_reader.by_ref(), DRAIN_LIMIT + 10, abandoned.clone());
            let mut first = [0u8; 5];
            equal_reader.read_exact(&mut first).unwrap();
        }
        assert!(abandoned.is_set());
        assert_eq!(org_reader.position(), 5, "nothing read past what was asked");
    }
}
