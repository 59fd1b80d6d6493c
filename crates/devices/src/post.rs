//! The POST diagnostic port (0x80): firmware writes progress codes here.
//! Codes are logged through `tracing` and the last one is kept.

use serde::{Deserialize, Serialize};

/// The POST port.
pub const POST_PORT: u16 = 0x80;

/// A POST code latch.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PostPort {
    last: Option<u8>,
    count: u64,
}

impl PostPort {
    /// A latch that has seen no code.
    pub fn new() -> PostPort {
        PostPort::default()
    }
    /// The last code written.
    pub fn last(&self) -> Option<u8> {
        self.last
    }
    /// How many codes were written.
    pub fn count(&self) -> u64 {
        self.count
    }
}

impl crate::bus::Device for PostPort {
    fn pio_read(&mut self, _base: u16, _off: u16, size: u8) -> u32 {
        // Like a POST card's latch: the last code, all ones before any.
        match self.last {
            Some(c) if size == 1 => u32::from(c),
            _ => crate::all_ones(size),
        }
    }
    fn pio_write(&mut self, _base: u16, _off: u16, _size: u8, value: u32) {
        let code = value as u8;
        self.last = Some(code);
        self.count += 1;
        tracing::debug!(code = format_args!("{code:#04x}"), "POST");
    }
    fn name(&self) -> &str {
        "post"
    }
    fn access_reaches_machine(&self, _base: u16, _off: u16, _size: u8, _write: bool) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Device;

    #[test]
    fn latches_last_code() {
        let mut p = PostPort::new();
        assert_eq!(p.pio_read(0x80, 0, 1), 0xFF);
        p.pio_write(0x80, 0, 1, 0x55);
        p.pio_write(0x80, 0, 1, 0xAA);
        assert_eq!(p.last(), Some(0xAA));
        assert_eq!(p.count(), 2);
        assert_eq!(p.pio_read(0x80, 0, 1), 0xAA);
    }
}
