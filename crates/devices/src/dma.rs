//! The DMA seam: how a device reaches guest memory.
//!
//! Devices live on the [`crate::IoBus`] beside the board's RAM and cannot
//! borrow it themselves. A DMA-capable device instead receives a
//! [`DmaMemory`] with each port access ([`crate::Device::pio_read_dma`],
//! [`crate::Device::pio_write_dma`]); the board passes a view of its RAM
//! whose writes go through the RAM's normal write tracking, so that decoded
//! code and cached page-table walks stay coherent with what devices write.
//!
//! Every transfer is all or nothing: when any byte of the range is not RAM
//! the device can reach (MMIO, the legacy VGA and ROM areas, beyond the end
//! of RAM, a range that wraps), the call returns false and nothing is
//! written. What the device does then is its own affair (fw_cfg reports an
//! error in the descriptor).

/// Guest memory as a bus-master device sees it.
pub trait DmaMemory {
    /// Reads `buf.len()` bytes at physical `addr`. False, with `buf`
    /// untouched, unless every byte is readable memory.
    fn dma_read(&mut self, addr: u64, buf: &mut [u8]) -> bool;

    /// Writes `data` at physical `addr`. False, writing nothing, unless
    /// every byte is writable RAM.
    fn dma_write(&mut self, addr: u64, data: &[u8]) -> bool;

    /// Sets `len` bytes at physical `addr` to `byte`. False, writing
    /// nothing, unless every byte is writable RAM.
    fn dma_fill(&mut self, addr: u64, len: u64, byte: u8) -> bool;
}

/// No memory at all: every transfer fails. What devices see through the
/// plain [`crate::IoBus::pio_read`] and [`crate::IoBus::pio_write`].
#[derive(Clone, Copy, Debug, Default)]
pub struct NoDma;

impl DmaMemory for NoDma {
    fn dma_read(&mut self, _: u64, _: &mut [u8]) -> bool {
        false
    }
    fn dma_write(&mut self, _: u64, _: &[u8]) -> bool {
        false
    }
    fn dma_fill(&mut self, _: u64, _: u64, _: u8) -> bool {
        false
    }
}

/// Plain memory from address 0 (for tests and tools): a byte vector,
/// every byte readable and writable.
impl DmaMemory for Vec<u8> {
    fn dma_read(&mut self, addr: u64, buf: &mut [u8]) -> bool {
        match span(addr, buf.len() as u64, self.len()) {
            Some(r) => {
                buf.copy_from_slice(&self[r]);
                true
            }
            None => false,
        }
    }
    fn dma_write(&mut self, addr: u64, data: &[u8]) -> bool {
        match span(addr, data.len() as u64, self.len()) {
            Some(r) => {
                self[r].copy_from_slice(data);
                true
            }
            None => false,
        }
    }
    fn dma_fill(&mut self, addr: u64, len: u64, byte: u8) -> bool {
        match span(addr, len, self.len()) {
            Some(r) => {
                self[r].fill(byte);
                true
            }
            None => false,
        }
    }
}

/// `addr..addr + len` as indices into `size` bytes, if it fits.
fn span(addr: u64, len: u64, size: usize) -> Option<std::ops::Range<usize>> {
    let end = addr.checked_add(len)?;
    (end <= size as u64).then_some(addr as usize..end as usize)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfers_are_all_or_nothing() {
        let mut m = vec![0u8; 16];
        assert!(m.dma_write(14, &[1, 2]));
        assert!(!m.dma_write(15, &[3, 4]));
        assert!(!m.dma_fill(u64::MAX, 2, 9));
        assert!(m.dma_fill(0, 2, 9));
        let mut b = [0u8; 4];
        assert!(m.dma_read(12, &mut b));
        assert_eq!(b, [0, 0, 1, 2]);
        assert!(!m.dma_read(13, &mut b));
        assert_eq!(&m[..3], &[9, 9, 0]);
        assert!(!NoDma.dma_write(0, &[1]));
    }
}
