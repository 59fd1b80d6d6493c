//! The I/O bus: port I/O dispatch, and a slot for memory-mapped devices.
//!
//! Devices register for a range of ports and see only offsets into it, as
//! in Firecracker's `BusDevice` and rust-vmm's `vm-device`. Dispatch is one
//! load from a 64 Ki-entry table of device slots, so a port access costs an
//! index and a virtual call. Accesses that straddle the end of a device's
//! range are split into byte accesses, each dispatched on its own, which is
//! what the ISA bus does with a wide access to 8-bit devices.

use std::any::Any;
use std::marker::PhantomData;
use thiserror::Error;

/// A device reached through port I/O.
///
/// `size` is 1, 2 or 4 bytes; values are in the low `size` bytes.
pub trait PioDevice: Send {
    /// Reads `size` bytes at `port_offset` (relative to the registered base).
    fn pio_read(&mut self, port_offset: u16, size: u8) -> u32;
    /// Writes the low `size` bytes of `value` at `port_offset`.
    fn pio_write(&mut self, port_offset: u16, size: u8, value: u32);
    /// A short name for logs.
    fn name(&self) -> &str;
}

/// A device reached through memory-mapped I/O (not wired to the CPU yet:
/// the memory crate will route physical addresses that miss RAM here).
pub trait MmioDevice: Send {
    /// Reads `size` bytes (1, 2, 4 or 8) at `offset` into the device's range.
    fn mmio_read(&mut self, offset: u64, size: u8) -> u64;
    /// Writes the low `size` bytes of `value` at `offset`.
    fn mmio_write(&mut self, offset: u64, size: u8, value: u64);
    /// A short name for logs.
    fn name(&self) -> &str;
}

/// Object-safe downcasting for registered devices.
trait AnyPio: PioDevice {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn as_any(&self) -> &dyn Any;
}

impl<T: PioDevice + 'static> AnyPio for T {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A typed handle to a registered port device, for the machine to reach it
/// again (to poll its interrupt line, read its exit status and so on).
#[derive(Debug)]
pub struct DeviceId<T> {
    index: usize,
    _t: PhantomData<fn() -> T>,
}

impl<T> Clone for DeviceId<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for DeviceId<T> {}

/// Why a device could not be registered.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BusError {
    /// The range is empty or runs past port 0xFFFF.
    #[error("port range {base:#06x}+{len} is empty or runs past 0xffff")]
    BadRange {
        /// First port.
        base: u16,
        /// Number of ports.
        len: u32,
    },
    /// A port of the range already belongs to another device.
    #[error("port {port:#06x} is already claimed by {owner}")]
    Overlap {
        /// The first conflicting port.
        port: u16,
        /// The device that owns it.
        owner: String,
    },
    /// An MMIO range overlaps another or wraps around.
    #[error("MMIO range {base:#x}+{len:#x} overlaps another device or wraps")]
    MmioOverlap {
        /// First address.
        base: u64,
        /// Length in bytes.
        len: u64,
    },
}

struct PioEntry {
    base: u16,
    len: u32,
    dev: Box<dyn AnyPio>,
}

struct MmioEntry {
    base: u64,
    len: u64,
    dev: Box<dyn MmioDevice>,
}

/// Number of ports.
const PORTS: usize = 0x1_0000;

/// The I/O bus: port devices by range, and MMIO devices by range.
pub struct IoBus {
    /// Device slot of each port: 0 = unclaimed, else index + 1.
    slots: Box<[u16]>,
    pio: Vec<PioEntry>,
    /// Sorted by base, non-overlapping.
    mmio: Vec<MmioEntry>,
}

impl Default for IoBus {
    fn default() -> Self {
        Self::new()
    }
}

impl IoBus {
    /// An empty bus: every port reads all ones.
    pub fn new() -> IoBus {
        IoBus {
            slots: vec![0u16; PORTS].into_boxed_slice(),
            pio: Vec::new(),
            mmio: Vec::new(),
        }
    }

    /// Registers `dev` for ports `base .. base + len`.
    pub fn register<T: PioDevice + 'static>(
        &mut self,
        base: u16,
        len: u32,
        dev: T,
    ) -> Result<DeviceId<T>, BusError> {
        let end = u32::from(base) + len;
        if len == 0 || end > PORTS as u32 {
            return Err(BusError::BadRange { base, len });
        }
        for p in u32::from(base)..end {
            let s = self.slots[p as usize];
            if s != 0 {
                return Err(BusError::Overlap {
                    port: p as u16,
                    owner: self.pio[usize::from(s) - 1].dev.name().to_string(),
                });
            }
        }
        let index = self.pio.len();
        assert!(index < usize::from(u16::MAX), "too many port devices");
        self.pio.push(PioEntry {
            base,
            len,
            dev: Box::new(dev),
        });
        let slot = (index + 1) as u16;
        self.slots[usize::from(base)..end as usize].fill(slot);
        Ok(DeviceId {
            index,
            _t: PhantomData,
        })
    }

    /// The device behind `id`.
    pub fn get<T: PioDevice + 'static>(&self, id: DeviceId<T>) -> &T {
        self.pio[id.index]
            .dev
            .as_any()
            .downcast_ref()
            .expect("DeviceId type matches its device")
    }

    /// The device behind `id`, mutably.
    pub fn get_mut<T: PioDevice + 'static>(&mut self, id: DeviceId<T>) -> &mut T {
        self.pio[id.index]
            .dev
            .as_any_mut()
            .downcast_mut()
            .expect("DeviceId type matches its device")
    }

    /// The device owning `port` and the port's offset in its range, if the
    /// whole `size`-byte access falls inside that one device.
    #[inline]
    fn route(&self, port: u16, size: u8) -> Option<(usize, u16)> {
        let s = self.slots[usize::from(port)];
        if s == 0 {
            return None;
        }
        let e = &self.pio[usize::from(s) - 1];
        let off = port - e.base;
        (u32::from(off) + u32::from(size) <= e.len).then_some((usize::from(s) - 1, off))
    }

    /// True when some byte of a multi-byte access is claimed (and `route`
    /// found that the access does not fit one device).
    fn straddles(&self, port: u16, size: u8) -> bool {
        size > 1 && (0..size).any(|i| self.slots[usize::from(port.wrapping_add(u16::from(i)))] != 0)
    }

    /// Reads `size` bytes (1, 2 or 4) from `port`. Unclaimed ports read all ones.
    pub fn pio_read(&mut self, port: u16, size: u8) -> u32 {
        if let Some((i, off)) = self.route(port, size) {
            return self.pio[i].dev.pio_read(off, size);
        }
        if self.straddles(port, size) {
            let mut v = 0;
            for i in 0..size {
                v |= self.pio_read(port.wrapping_add(u16::from(i)), 1) << (8 * i);
            }
            return v;
        }
        tracing::debug!(
            port = format_args!("{port:#06x}"),
            size,
            "read from unclaimed port"
        );
        crate::all_ones(size)
    }

    /// Writes the low `size` bytes (1, 2 or 4) of `value` to `port`.
    /// Writes to unclaimed ports are dropped.
    pub fn pio_write(&mut self, port: u16, size: u8, value: u32) {
        if let Some((i, off)) = self.route(port, size) {
            return self.pio[i].dev.pio_write(off, size, value);
        }
        if self.straddles(port, size) {
            for i in 0..size {
                self.pio_write(port.wrapping_add(u16::from(i)), 1, value >> (8 * i));
            }
            return;
        }
        tracing::debug!(
            port = format_args!("{port:#06x}"),
            size,
            value = format_args!("{value:#x}"),
            "write to unclaimed port"
        );
    }

    /// Registers a memory-mapped device for `base .. base + len`.
    pub fn register_mmio(
        &mut self,
        base: u64,
        len: u64,
        dev: Box<dyn MmioDevice>,
    ) -> Result<(), BusError> {
        let end = base.checked_add(len).filter(|_| len > 0);
        let Some(end) = end else {
            return Err(BusError::MmioOverlap { base, len });
        };
        let at = self.mmio.partition_point(|e| e.base < base);
        let clash_prev = at > 0 && {
            let p = &self.mmio[at - 1];
            p.base + p.len > base
        };
        let clash_next = self.mmio.get(at).is_some_and(|n| n.base < end);
        if clash_prev || clash_next {
            return Err(BusError::MmioOverlap { base, len });
        }
        self.mmio.insert(at, MmioEntry { base, len, dev });
        Ok(())
    }

    fn mmio_route(&mut self, addr: u64) -> Option<(&mut MmioEntry, u64)> {
        let at = self.mmio.partition_point(|e| e.base <= addr);
        let e = self.mmio.get_mut(at.checked_sub(1)?)?;
        let off = addr - e.base;
        (off < e.len).then_some((e, off))
    }

    /// Reads an MMIO device at physical `addr`; `None` when no device claims it.
    pub fn mmio_read(&mut self, addr: u64, size: u8) -> Option<u64> {
        let (e, off) = self.mmio_route(addr)?;
        Some(e.dev.mmio_read(off, size))
    }

    /// Writes an MMIO device at physical `addr`; false when no device claims it.
    pub fn mmio_write(&mut self, addr: u64, size: u8, value: u64) -> bool {
        match self.mmio_route(addr) {
            Some((e, off)) => {
                e.dev.mmio_write(off, size, value);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records accesses; reads return offset + 0x10 * size.
    #[derive(Default)]
    struct Probe {
        log: Vec<(bool, u16, u8, u32)>,
    }
    impl PioDevice for Probe {
        fn pio_read(&mut self, off: u16, size: u8) -> u32 {
            self.log.push((false, off, size, 0));
            u32::from(off) + 0x10 * u32::from(size)
        }
        fn pio_write(&mut self, off: u16, size: u8, value: u32) {
            self.log.push((true, off, size, value));
        }
        fn name(&self) -> &str {
            "probe"
        }
    }

    #[test]
    fn dispatches_by_offset() {
        let mut bus = IoBus::new();
        let id = bus.register(0x3F8, 8, Probe::default()).unwrap();
        assert_eq!(bus.pio_read(0x3FA, 1), 0x12);
        bus.pio_write(0x3FC, 2, 0xBEEF);
        assert_eq!(bus.pio_read(0x3FC, 4), 0x44);
        assert_eq!(
            bus.get(id).log,
            vec![(false, 2, 1, 0), (true, 4, 2, 0xBEEF), (false, 4, 4, 0)]
        );
    }

    #[test]
    fn unclaimed_ports_read_all_ones() {
        let mut bus = IoBus::new();
        assert_eq!(bus.pio_read(0x1234, 1), 0xFF);
        assert_eq!(bus.pio_read(0x1234, 2), 0xFFFF);
        assert_eq!(bus.pio_read(0xFFFF, 4), 0xFFFF_FFFF);
        bus.pio_write(0xFFFF, 4, 0); // dropped, no wrap panic
    }

    #[test]
    fn overlap_and_bad_ranges_are_refused() {
        let mut bus = IoBus::new();
        bus.register(0x60, 1, Probe::default()).unwrap();
        assert!(matches!(
            bus.register(0x5E, 4, Probe::default()),
            Err(BusError::Overlap { port: 0x60, .. })
        ));
        assert!(matches!(
            bus.register(0xFFFE, 4, Probe::default()),
            Err(BusError::BadRange { .. })
        ));
        assert!(bus.register(0x10, 0, Probe::default()).is_err());
    }

    #[test]
    fn straddling_access_is_split_into_bytes() {
        let mut bus = IoBus::new();
        let id = bus.register(0x100, 2, Probe::default()).unwrap();
        // Ports 0x101 (offset 1) and 0x102 (unclaimed).
        assert_eq!(bus.pio_read(0x101, 2), 0xFF11);
        bus.pio_write(0xFF, 4, 0x4433_2211);
        assert_eq!(
            bus.get(id).log,
            vec![
                (false, 1, 1, 0),
                (true, 0, 1, 0x4433_2211 >> 8),
                (true, 1, 1, 0x4433_2211 >> 16)
            ]
        );
    }

    struct Mm(u64);
    impl MmioDevice for Mm {
        fn mmio_read(&mut self, off: u64, _: u8) -> u64 {
            self.0 + off
        }
        fn mmio_write(&mut self, _: u64, _: u8, v: u64) {
            self.0 = v;
        }
        fn name(&self) -> &str {
            "mm"
        }
    }

    #[test]
    fn mmio_ranges() {
        let mut bus = IoBus::new();
        bus.register_mmio(0xFEC0_0000, 0x1000, Box::new(Mm(0)))
            .unwrap();
        bus.register_mmio(0xFEE0_0000, 0x1000, Box::new(Mm(100)))
            .unwrap();
        assert!(bus
            .register_mmio(0xFEC0_0800, 0x1000, Box::new(Mm(0)))
            .is_err());
        assert!(bus
            .register_mmio(0xFEBF_F800, 0x1000, Box::new(Mm(0)))
            .is_err());
        assert_eq!(bus.mmio_read(0xFEE0_0010, 4), Some(0x74));
        assert_eq!(bus.mmio_read(0xFEE0_1000, 4), None);
        assert!(bus.mmio_write(0xFEC0_0000, 4, 7));
        assert_eq!(bus.mmio_read(0xFEC0_0004, 4), Some(11));
        assert_eq!(bus.mmio_read(0x1000, 4), None);
    }
}
