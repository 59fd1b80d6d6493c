//! Where device output goes: stdout, a file, a shared buffer, or nowhere.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// A byte buffer shared between a device and whoever reads its output
/// (tests, the in-process ROM runner).
#[derive(Clone, Debug, Default)]
pub struct SharedBuffer(Arc<Mutex<Vec<u8>>>);

impl SharedBuffer {
    /// An empty buffer.
    pub fn new() -> SharedBuffer {
        SharedBuffer::default()
    }
    /// A copy of everything written so far.
    pub fn contents(&self) -> Vec<u8> {
        self.0.lock().map(|v| v.clone()).unwrap_or_default()
    }
    /// How many bytes were written so far.
    pub fn len(&self) -> usize {
        self.0.lock().map(|v| v.len()).unwrap_or_default()
    }
    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Everything written so far, as (lossy) UTF-8.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.contents()).into_owned()
    }
    /// Appends one byte.
    pub fn push(&self, b: u8) {
        if let Ok(mut v) = self.0.lock() {
            v.push(b);
        }
    }
}

impl Write for SharedBuffer {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        if let Ok(mut v) = self.0.lock() {
            v.extend_from_slice(b);
        }
        Ok(b.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// An output back end for a character device.
#[derive(Debug, Default)]
pub enum OutputSink {
    /// Discard output.
    #[default]
    None,
    /// The emulator's standard output.
    Stdout,
    /// A file (created or truncated when opened).
    File(BufWriter<File>),
    /// An in-memory buffer.
    Buffer(SharedBuffer),
    /// A writer that may come and go (a TCP client): output is dropped
    /// while none is attached.
    Shared(SharedWriter),
}

/// A writer slot shared with whoever attaches the writer (e.g. the thread
/// accepting TCP connections).
#[derive(Clone, Default)]
pub struct SharedWriter(pub Arc<Mutex<Option<Box<dyn Write + Send>>>>);

impl std::fmt::Debug for SharedWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SharedWriter")
    }
}

impl OutputSink {
    /// A sink writing to the file at `path` (created or truncated).
    pub fn file(path: &Path) -> io::Result<OutputSink> {
        Ok(OutputSink::File(BufWriter::new(File::create(path)?)))
    }

    /// Writes one byte. Errors (a closed pipe, a full disk) are logged and
    /// otherwise ignored: the guest cannot tell, and must not crash us.
    pub fn write_byte(&mut self, b: u8) {
        let r = match self {
            OutputSink::None => Ok(()),
            OutputSink::Stdout => {
                let mut out = io::stdout().lock();
                // stdout is line-buffered; flush on newline so output appears promptly.
                out.write_all(&[b])
            }
            // Whole lines reach the file promptly, for anyone watching it.
            OutputSink::File(f) => {
                f.write_all(&[b])
                    .and_then(|()| if b == b'\n' { f.flush() } else { Ok(()) })
            }
            OutputSink::Buffer(buf) => {
                buf.push(b);
                Ok(())
            }
            OutputSink::Shared(w) => {
                let mut slot = w.0.lock().unwrap_or_else(|e| e.into_inner());
                let r = match slot.as_mut() {
                    Some(out) => out.write_all(&[b]),
                    None => Ok(()),
                };
                if r.is_err() {
                    // The client went away; drop it and keep running.
                    *slot = None;
                }
                r
            }
        };
        if let Err(e) = r {
            tracing::debug!("device output lost: {e}");
        }
    }

    /// Flushes buffered output.
    pub fn flush(&mut self) {
        let r = match self {
            OutputSink::Stdout => io::stdout().lock().flush(),
            OutputSink::File(f) => f.flush(),
            _ => Ok(()),
        };
        if let Err(e) = r {
            tracing::debug!("device output flush failed: {e}");
        }
    }
}

impl Drop for OutputSink {
    fn drop(&mut self) {
        self.flush();
    }
}
