//! The Bochs/QEMU debug console: bytes written to port 0xE9 are printed.
//! Reading the port returns 0xE9, which is how guests detect it.

use crate::output::OutputSink;

/// The usual port of the debug console.
pub const DEBUGCON_PORT: u16 = 0xE9;

/// A one-port output device.
#[derive(Debug, Default)]
pub struct DebugCon {
    out: OutputSink,
}

impl DebugCon {
    /// A debug console writing to `out`.
    pub fn new(out: OutputSink) -> DebugCon {
        DebugCon { out }
    }
    /// Flushes buffered output.
    pub fn flush(&mut self) {
        self.out.flush();
    }
}

impl crate::bus::Device for DebugCon {
    fn pio_read(&mut self, _base: u16, _off: u16, size: u8) -> u32 {
        // QEMU returns the port number in the low byte of each byte read.
        0xE9 & crate::all_ones(size)
    }
    fn pio_write(&mut self, _base: u16, _off: u16, _size: u8, value: u32) {
        // Only the low byte is printed, whatever the access size (as QEMU does).
        self.out.write_byte(value as u8);
    }
    fn name(&self) -> &str {
        "debugcon"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Device;
    use crate::output::SharedBuffer;

    #[test]
    fn prints_written_bytes() {
        let buf = SharedBuffer::new();
        let mut d = DebugCon::new(OutputSink::Buffer(buf.clone()));
        for b in b"hi\n" {
            d.pio_write(0xE9, 0, 1, u32::from(*b));
        }
        d.pio_write(0xE9, 0, 2, 0x4121);
        assert_eq!(buf.text(), "hi\n!");
        assert_eq!(d.pio_read(0xE9, 0, 1), 0xE9);
    }
}
