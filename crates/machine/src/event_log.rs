//! The event log (`--event-log FILE`): every interrupt or exception the CPU
//! takes and every device access, each with the instruction count at which
//! it happened, one per line.
//!
//! Two runs, or two engines, compare by `diff`: under the virtual clock the
//! same inputs give the same log, whatever the batch size or engine. The
//! count is the number of instructions retired before the one that made the
//! access (see `morph86_cpu::engine` for what counts as an instruction).
//!
//! Lines:
//! ```text
//! <icount> exc <vector>            exception (each delivery attempt)
//! <icount> int <vector>            INT n, INT3, INTO
//! <icount> irq <vector>            external interrupt or NMI
//! <icount> in  <port>/<size> <value>
//! <icount> out <port>/<size> <value>
//! <icount> rd  <address>/<size> <value>   memory-mapped device read
//! <icount> wr  <address>/<size> <value>   memory-mapped device write
//! ```
//! Numbers are hexadecimal except the instruction count and the size.

use morph86_cpu::CpuEvent;
use std::io::{self, BufWriter, Write};

/// A device access, for [`EventLog::access`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A port read.
    In,
    /// A port write.
    Out,
    /// A memory-mapped read.
    Read,
    /// A memory-mapped write.
    Write,
}

/// A sink for event lines. Write errors are remembered and reported once,
/// at [`EventLog::finish`], so that logging never stops a run.
pub struct EventLog {
    out: BufWriter<Box<dyn Write + Send>>,
    error: Option<io::Error>,
}

impl std::fmt::Debug for EventLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EventLog")
    }
}

impl EventLog {
    /// A log written to `out`.
    pub fn new(out: Box<dyn Write + Send>) -> EventLog {
        EventLog {
            out: BufWriter::with_capacity(1 << 16, out),
            error: None,
        }
    }

    /// A log written to the file at `path` (created or truncated).
    pub fn create(path: &std::path::Path) -> io::Result<EventLog> {
        Ok(EventLog::new(Box::new(std::fs::File::create(path)?)))
    }

    fn line(&mut self, args: std::fmt::Arguments<'_>) {
        if self.error.is_none() {
            if let Err(e) = self.out.write_fmt(args) {
                self.error = Some(e);
            }
        }
    }

    /// Records an interrupt or exception.
    pub fn cpu_event(&mut self, icount: u64, ev: CpuEvent) {
        let (what, v) = match ev {
            CpuEvent::Exception(v) => ("exc", v),
            CpuEvent::Software(v) => ("int", v),
            CpuEvent::External(v) => ("irq", v),
        };
        self.line(format_args!("{icount} {what} {v:02x}\n"));
    }

    /// Records a device access of `size` bytes at `addr` (a port or a
    /// physical address) with `value`.
    pub fn access(&mut self, icount: u64, kind: Access, addr: u32, size: u8, value: u64) {
        let what = match kind {
            Access::In => "in ",
            Access::Out => "out",
            Access::Read => "rd ",
            Access::Write => "wr ",
        };
        self.line(format_args!(
            "{icount} {what} {addr:04x}/{size} {value:x}\n"
        ));
    }

    /// Flushes the log; reports the first write error, if any.
    pub fn finish(&mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use morph86_devices::SharedBuffer;

    #[test]
    fn lines_have_the_documented_shape() {
        let buf = SharedBuffer::new();
        let mut log = EventLog::new(Box::new(buf.clone()));
        log.cpu_event(7, CpuEvent::External(0x20));
        log.cpu_event(8, CpuEvent::Exception(0x0e));
        log.cpu_event(9, CpuEvent::Software(0x80));
        log.access(10, Access::Out, 0x3f8, 1, 0x41);
        log.access(11, Access::Read, 0xfee0_0030, 4, 0x14);
        log.finish().unwrap();
        assert_eq!(
            buf.text(),
            "7 irq 20\n8 exc 0e\n9 int 80\n10 out 03f8/1 41\n11 rd  fee00030/4 14\n"
        );
    }
}
