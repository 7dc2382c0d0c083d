//! A connection's queue of bytes not yet accepted by the kernel.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::sync::Arc;

/// Output waiting for a writable socket: owned copies of small writes, and shared
/// `Arc<[u8]>` messages that many connections send without each holding a copy.
#[derive(Debug, Default)]
pub(crate) struct WriteBuffer {
    chunks: VecDeque<Chunk>,
    len: usize,
    /// A written-out owned chunk's allocation, kept for the next copy (at most
    /// [`SPARE_MAX`] bytes of capacity), so that a connection that queues a small reply per
    /// request does not allocate and free one per request.
    spare: Vec<u8>,
}

/// The most capacity a connection keeps in [`WriteBuffer::spare`] while it waits: small,
/// since an idle connection holds it for as long as it lives.
const SPARE_MAX: usize = 4 * 1024;

#[derive(Debug)]
enum Chunk {
    Owned { data: Vec<u8>, start: usize },
    Shared { data: Arc<[u8]>, start: usize },
}

impl Chunk {
    fn remaining(&self) -> &[u8] {
        match self {
            Chunk::Owned { data, start } => &data[*start..],
            Chunk::Shared { data, start } => &data[*start..],
        }
    }

    fn consume(&mut self, n: usize) {
        match self {
            Chunk::Owned { start, .. } | Chunk::Shared { start, .. } => *start += n,
        }
    }
}

/// At most this many chunks go to one `writev`.
const MAX_IOVECS: usize = 16;

impl WriteBuffer {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Queues a copy of `data`, appending to the last owned chunk where there is one.
    pub(crate) fn push_copy(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.len += data.len();
        if let Some(Chunk::Owned { data: last, .. }) = self.chunks.back_mut() {
            last.extend_from_slice(data);
            return;
        }
        let mut copy = std::mem::take(&mut self.spare);
        copy.clear();
        copy.extend_from_slice(data);
        self.chunks.push_back(Chunk::Owned {
            data: copy,
            start: 0,
        });
    }

    /// Queues `data[start..]`, taking the buffer as it is (no copy).
    pub(crate) fn push_owned(&mut self, data: Vec<u8>, start: usize) {
        if start >= data.len() {
            return;
        }
        self.len += data.len() - start;
        self.chunks.push_back(Chunk::Owned { data, start });
    }

    /// Queues `data[start..]` without copying it.
    pub(crate) fn push_shared(&mut self, data: Arc<[u8]>, start: usize) {
        if start >= data.len() {
            return;
        }
        self.len += data.len() - start;
        self.chunks.push_back(Chunk::Shared { data, start });
    }

    /// Writes queued bytes until the buffer is empty or the sink would block.
    ///
    /// Returns how many bytes were written; `WouldBlock` is not an error here, the caller
    /// sees it as a buffer that is still not empty.
    pub(crate) fn write_to<W: Write>(&mut self, sink: &mut W) -> io::Result<usize> {
        let mut written = 0;
        while !self.is_empty() {
            let result = if self.chunks.len() == 1 {
                sink.write(self.chunks[0].remaining())
            } else {
                // On the stack: no allocation per write.
                let mut slices = [IoSlice::new(&[]); MAX_IOVECS];
                let mut count = 0;
                for (slot, chunk) in slices.iter_mut().zip(&self.chunks) {
                    *slot = IoSlice::new(chunk.remaining());
                    count += 1;
                }
                sink.write_vectored(&slices[..count])
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    written += n;
                    self.consume(n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(written)
    }

    fn consume(&mut self, mut n: usize) {
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                return;
            };
            let left = front.remaining().len();
            if n < left {
                front.consume(n);
                return;
            }
            n -= left;
            if let Some(Chunk::Owned { data, .. }) = self.chunks.pop_front() {
                if data.capacity() <= SPARE_MAX && data.capacity() > self.spare.capacity() {
                    self.spare = data;
                }
            }
        }
    }

    /// Drops everything queued (the connection is gone).
    pub(crate) fn clear(&mut self) {
        self.chunks.clear();
        self.len = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sink that takes at most `limit` bytes per call, then blocks after `calls` calls.
    struct Trickle {
        got: Vec<u8>,
        limit: usize,
        calls: usize,
    }

    impl Write for Trickle {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.calls == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            self.calls -= 1;
            let n = buf.len().min(self.limit);
            self.got.extend_from_slice(&buf[..n]);
            Ok(n)
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn partial_writes_resume_where_they_stopped() {
        let shared: Arc<[u8]> = Arc::from(&b"shared-message"[..]);
        let mut buf = WriteBuffer::default();
        buf.push_copy(b"abc");
        buf.push_copy(b"def");
        buf.push_shared(shared.clone(), 7);
        buf.push_copy(b"xyz");
        assert_eq!(buf.len(), 6 + 7 + 3);

        let mut sink = Trickle {
            got: Vec::new(),
            limit: 4,
            calls: 2,
        };
        // Two short writes of the first (merged) chunk, then WouldBlock.
        assert_eq!(buf.write_to(&mut sink).unwrap(), 6);
        assert_eq!(buf.len(), 10);
        sink.calls = usize::MAX;
        assert_eq!(buf.write_to(&mut sink).unwrap(), 10);
        assert!(buf.is_empty());
        assert_eq!(sink.got, b"abcdefmessagexyz");
    }

    #[test]
    fn shared_chunks_are_not_copied() {
        let shared: Arc<[u8]> = Arc::from(vec![7u8; 1 << 20]);
        let mut buf = WriteBuffer::default();
        buf.push_shared(shared.clone(), 0);
        assert_eq!(Arc::strong_count(&shared), 2);
        buf.clear();
        assert_eq!(Arc::strong_count(&shared), 1);
    }

    #[test]
    fn a_sink_that_takes_nothing_is_an_error() {
        struct Zero;
        impl Write for Zero {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Ok(0)
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let mut buf = WriteBuffer::default();
        buf.push_copy(b"x");
        assert_eq!(
            buf.write_to(&mut Zero).unwrap_err().kind(),
            io::ErrorKind::WriteZero
        );
    }
}
