//! The device bus: one range-keyed port map and one range-keyed MMIO map
//! over a single list of devices.
//!
//! A device is added once ([`IoBus::add`]) and then maps as many windows as
//! it has: VGA, for one, has its ports, its memory window and the VBE ports.
//! Each access reaches the device with the base of the window it hit and
//! the offset into it, as in rust-vmm's `vm-device` and Firecracker's
//! `BusDevice`. Windows can be unmapped and mapped again, which is how a
//! device follows a PCI BAR that the guest moves.
//!
//! Port dispatch is one load from a 64 Ki-entry table of window slots, so a
//! port access costs an index and a virtual call. Accesses that straddle the
//! end of a window are split into byte accesses, each dispatched on its
//! own, which is what the ISA bus does with a wide access to 8-bit devices.
//! MMIO windows are kept in a `BTreeMap` keyed by base.
//!
//! The bus owns every device; the machine reaches one again through the
//! typed [`DeviceId`] it got when adding it. Devices with behaviour driven
//! by time report their next deadline ([`Device::next_deadline`]) and are
//! advanced when it comes ([`IoBus::advance`]).

use crate::clock::Nanos;
use crate::dma::{DmaMemory, NoDma};
use std::any::Any;
use std::collections::BTreeMap;
use std::marker::PhantomData;
use thiserror::Error;

/// A device on the bus. Every method but [`Device::name`] has a default:
/// a device implements the kinds of access it decodes.
///
/// Sizes are 1, 2 or 4 bytes for ports and 1, 2, 4 or 8 for memory; values
/// are in the low `size` bytes. `base` is the start of the window the access
/// hit (as mapped now), `offset` the distance from it.
pub trait Device: Send {
    /// A short name for logs and errors.
    fn name(&self) -> &str;

    /// Whether the access about to be made (a `write` or a read of `size`
    /// bytes at `offset` in the window at `base`, at the time the device
    /// now sees) may change something the machine must look at again: an
    /// interrupt line, a deadline, another device, guest memory. True
    /// unless the device knows better (a POST code latch; a status port
    /// computed from the time).
    fn access_reaches_machine(&self, base: u16, offset: u16, size: u8, write: bool) -> bool {
        let _ = (base, offset, size, write);
        true
    }

    /// Reads `size` bytes of the port window at `base`.
    fn pio_read(&mut self, base: u16, offset: u16, size: u8) -> u32 {
        let _ = (base, offset);
        crate::all_ones(size)
    }

    /// Writes the low `size` bytes of `value` to the port window at `base`.
    fn pio_write(&mut self, base: u16, offset: u16, size: u8, value: u32) {
        let _ = (base, offset, size, value);
    }

    /// [`Device::pio_read`] for a device that may reach guest memory
    /// through `mem` (a bus master); the default ignores `mem`.
    fn pio_read_dma(&mut self, base: u16, offset: u16, size: u8, mem: &mut dyn DmaMemory) -> u32 {
        let _ = mem;
        self.pio_read(base, offset, size)
    }

    /// [`Device::pio_write`] for a device that may reach guest memory
    /// through `mem` (a bus master starting a transfer); the default ignores
    /// `mem`.
    fn pio_write_dma(
        &mut self,
        base: u16,
        offset: u16,
        size: u8,
        value: u32,
        mem: &mut dyn DmaMemory,
    ) {
        let _ = mem;
        self.pio_write(base, offset, size, value)
    }

    /// Reads `size` bytes of the memory window at `base`.
    fn mmio_read(&mut self, base: u64, offset: u64, size: u8) -> u64 {
        let _ = (base, offset, size);
        crate::all_ones64(size)
    }

    /// Writes the low `size` bytes of `value` to the memory window at `base`.
    fn mmio_write(&mut self, base: u64, offset: u64, size: u8, value: u64) {
        let _ = (base, offset, size, value);
    }

    /// The next time at which the device changes state on its own, if any.
    fn next_deadline(&self) -> Option<Nanos> {
        None
    }

    /// Brings the device up to `now` (raising interrupt lines that fired).
    fn advance(&mut self, now: Nanos) {
        let _ = now;
    }

    /// Returns the device to its power-on state (a machine reset). Its
    /// wiring (interrupt lines, back ends) stays.
    fn reset(&mut self) {}
}

/// Object-safe downcasting for added devices.
trait AnyDevice: Device {
    fn as_any_mut(&mut self) -> &mut dyn Any;
    fn as_any(&self) -> &dyn Any;
}

impl<T: Device + 'static> AnyDevice for T {
    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// A typed handle to a device on the bus.
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

/// Why a window could not be mapped.
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

/// A mapped port window.
#[derive(Clone, Copy, Debug)]
struct PortWindow {
    base: u16,
    len: u32,
    dev: usize,
}

/// A mapped memory window.
#[derive(Clone, Copy, Debug)]
struct MmioWindow {
    len: u64,
    dev: usize,
}

/// Number of ports.
const PORTS: usize = 0x1_0000;

/// The device bus (see the module docs).
pub struct IoBus {
    devices: Vec<Box<dyn AnyDevice>>,
    /// Window slot of each port: 0 = unclaimed, else index into `windows` + 1.
    slots: Box<[u16]>,
    /// Port windows; unmapped ones are `None` until reused.
    windows: Vec<Option<PortWindow>>,
    /// Memory windows by base, non-overlapping.
    mmio: BTreeMap<u64, MmioWindow>,
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
            devices: Vec::new(),
            slots: vec![0u16; PORTS].into_boxed_slice(),
            windows: Vec::new(),
            mmio: BTreeMap::new(),
        }
    }

    /// Adds `dev`, with no windows yet.
    pub fn add<T: Device + 'static>(&mut self, dev: T) -> DeviceId<T> {
        self.devices.push(Box::new(dev));
        DeviceId {
            index: self.devices.len() - 1,
            _t: PhantomData,
        }
    }

    /// Adds `dev` with one port window `base .. base + len`.
    pub fn register<T: Device + 'static>(
        &mut self,
        base: u16,
        len: u32,
        dev: T,
    ) -> Result<DeviceId<T>, BusError> {
        Self::check_ports(base, len)?;
        let id = self.add(dev);
        if let Err(e) = self.map_ports(id, base, len) {
            self.devices.pop();
            return Err(e);
        }
        Ok(id)
    }

    fn check_ports(base: u16, len: u32) -> Result<u32, BusError> {
        let end = u32::from(base) + len;
        if len == 0 || end > PORTS as u32 {
            return Err(BusError::BadRange { base, len });
        }
        Ok(end)
    }

    /// Maps ports `base .. base + len` to the device behind `id`.
    pub fn map_ports<T>(&mut self, id: DeviceId<T>, base: u16, len: u32) -> Result<(), BusError> {
        let end = Self::check_ports(base, len)?;
        for p in u32::from(base)..end {
            let s = self.slots[p as usize];
            if s != 0 {
                let owner = self.window(s).map_or(0, |w| w.dev);
                return Err(BusError::Overlap {
                    port: p as u16,
                    owner: self.devices[owner].name().to_string(),
                });
            }
        }
        let w = PortWindow {
            base,
            len,
            dev: id.index,
        };
        let at = match self.windows.iter().position(Option::is_none) {
            Some(free) => {
                self.windows[free] = Some(w);
                free
            }
            None => {
                self.windows.push(Some(w));
                self.windows.len() - 1
            }
        };
        let slot = u16::try_from(at + 1).expect("fewer than 65535 port windows");
        self.slots[usize::from(base)..end as usize].fill(slot);
        Ok(())
    }

    /// Unmaps the port window at `base` if the device behind `id` owns it.
    /// True when a window was unmapped.
    pub fn unmap_ports<T>(&mut self, id: DeviceId<T>, base: u16) -> bool {
        let s = self.slots[usize::from(base)];
        let Some(w) = self
            .window(s)
            .filter(|w| w.dev == id.index && w.base == base)
        else {
            return false;
        };
        self.slots[usize::from(w.base)..(u32::from(w.base) + w.len) as usize].fill(0);
        self.windows[usize::from(s) - 1] = None;
        true
    }

    /// Moves the device's port window at `old` (if mapped) to `new` (if
    /// any), as when the guest programs a PCI I/O BAR. A window that cannot
    /// go where asked (it would overlap another device) stays unmapped, as
    /// a conflicting BAR decodes nothing useful on real hardware.
    pub fn move_ports<T>(
        &mut self,
        id: DeviceId<T>,
        old: Option<u16>,
        new: Option<u16>,
        len: u32,
    ) -> Result<(), BusError> {
        if let Some(old) = old {
            self.unmap_ports(id, old);
        }
        match new {
            Some(base) => self.map_ports(id, base, len),
            None => Ok(()),
        }
    }

    /// Maps physical addresses `base .. base + len` to the device behind `id`.
    pub fn map_mmio<T>(&mut self, id: DeviceId<T>, base: u64, len: u64) -> Result<(), BusError> {
        let end = base
            .checked_add(len)
            .filter(|_| len > 0)
            .ok_or(BusError::MmioOverlap { base, len })?;
        let clash_prev = self
            .mmio
            .range(..=base)
            .next_back()
            .is_some_and(|(b, w)| b + w.len > base);
        let clash_next = self.mmio.range(base..end).next().is_some();
        if clash_prev || clash_next {
            return Err(BusError::MmioOverlap { base, len });
        }
        self.mmio.insert(base, MmioWindow { len, dev: id.index });
        Ok(())
    }

    /// Unmaps the memory window at `base` if the device behind `id` owns it.
    pub fn unmap_mmio<T>(&mut self, id: DeviceId<T>, base: u64) -> bool {
        if self.mmio.get(&base).is_some_and(|w| w.dev == id.index) {
            self.mmio.remove(&base);
            return true;
        }
        false
    }

    /// The device behind `id`.
    pub fn get<T: Device + 'static>(&self, id: DeviceId<T>) -> &T {
        self.devices[id.index]
            .as_any()
            .downcast_ref()
            .expect("DeviceId type matches its device")
    }

    /// The device behind `id`, mutably.
    pub fn get_mut<T: Device + 'static>(&mut self, id: DeviceId<T>) -> &mut T {
        self.devices[id.index]
            .as_any_mut()
            .downcast_mut()
            .expect("DeviceId type matches its device")
    }

    #[inline]
    fn window(&self, slot: u16) -> Option<PortWindow> {
        match slot {
            0 => None,
            s => self.windows[usize::from(s) - 1],
        }
    }

    /// The window owning `port`, if the whole `size`-byte access fits it.
    #[inline]
    fn route(&self, port: u16, size: u8) -> Option<PortWindow> {
        let w = self.window(self.slots[usize::from(port)])?;
        let off = port - w.base;
        (u32::from(off) + u32::from(size) <= w.len).then_some(w)
    }

    /// Whether the `size`-byte access (a `write` or a read) at `port` may
    /// change something the machine must look at again (see
    /// [`Device::access_reaches_machine`]): false for a port nobody claims.
    pub fn pio_reaches_machine(&self, port: u16, size: u8, write: bool) -> bool {
        match self.route(port, size) {
            Some(w) => {
                self.devices[w.dev].access_reaches_machine(w.base, port - w.base, size, write)
            }
            None => self.straddles(port, size),
        }
    }

    /// True when some byte of a multi-byte access is claimed (and `route`
    /// found that the access does not fit one window).
    fn straddles(&self, port: u16, size: u8) -> bool {
        size > 1 && (0..size).any(|i| self.slots[usize::from(port.wrapping_add(u16::from(i)))] != 0)
    }

    /// Reads `size` bytes (1, 2 or 4) from `port`. Unclaimed ports read all
    /// ones. Devices get no memory to reach ([`NoDma`]).
    pub fn pio_read(&mut self, port: u16, size: u8) -> u32 {
        self.pio_read_dma(port, size, &mut NoDma)
    }

    /// Writes the low `size` bytes (1, 2 or 4) of `value` to `port`.
    /// Writes to unclaimed ports are dropped. Devices get no memory to
    /// reach ([`NoDma`]).
    pub fn pio_write(&mut self, port: u16, size: u8, value: u32) {
        self.pio_write_dma(port, size, value, &mut NoDma)
    }

    /// [`IoBus::pio_read`], with guest memory for bus-master devices.
    pub fn pio_read_dma(&mut self, port: u16, size: u8, mem: &mut dyn DmaMemory) -> u32 {
        if let Some(w) = self.route(port, size) {
            return self.devices[w.dev].pio_read_dma(w.base, port - w.base, size, mem);
        }
        if self.straddles(port, size) {
            let mut v = 0;
            for i in 0..size {
                v |= self.pio_read_dma(port.wrapping_add(u16::from(i)), 1, mem) << (8 * i);
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

    /// [`IoBus::pio_write`], with guest memory for bus-master devices.
    pub fn pio_write_dma(&mut self, port: u16, size: u8, value: u32, mem: &mut dyn DmaMemory) {
        if let Some(w) = self.route(port, size) {
            return self.devices[w.dev].pio_write_dma(w.base, port - w.base, size, value, mem);
        }
        if self.straddles(port, size) {
            for i in 0..size {
                self.pio_write_dma(port.wrapping_add(u16::from(i)), 1, value >> (8 * i), mem);
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

    /// The memory window holding `addr`: its base and device.
    #[inline]
    fn mmio_route(&self, addr: u64) -> Option<(u64, usize)> {
        let (&base, w) = self.mmio.range(..=addr).next_back()?;
        (addr - base < w.len).then_some((base, w.dev))
    }

    /// True when a device claims physical address `addr`.
    pub fn claims_mmio(&self, addr: u64) -> bool {
        self.mmio_route(addr).is_some()
    }

    /// Reads a device at physical `addr`; `None` when no device claims it.
    pub fn mmio_read(&mut self, addr: u64, size: u8) -> Option<u64> {
        let (base, dev) = self.mmio_route(addr)?;
        Some(self.devices[dev].mmio_read(base, addr - base, size))
    }

    /// Writes a device at physical `addr`; false when no device claims it.
    pub fn mmio_write(&mut self, addr: u64, size: u8, value: u64) -> bool {
        match self.mmio_route(addr) {
            Some((base, dev)) => {
                self.devices[dev].mmio_write(base, addr - base, size, value);
                true
            }
            None => false,
        }
    }

    /// The earliest deadline of any device.
    pub fn next_deadline(&self) -> Option<Nanos> {
        self.devices.iter().filter_map(|d| d.next_deadline()).min()
    }

    /// Brings every device whose deadline has come up to `now`.
    pub fn advance(&mut self, now: Nanos) {
        for d in &mut self.devices {
            if d.next_deadline().is_some_and(|t| t <= now) {
                d.advance(now);
            }
        }
    }

    /// Returns every device to its power-on state.
    pub fn reset(&mut self) {
        for d in &mut self.devices {
            d.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records accesses; reads return offset + 0x10 * size + base.
    #[derive(Default)]
    struct Probe {
        log: Vec<(bool, u16, u16, u8, u32)>,
    }
    impl Device for Probe {
        fn pio_read(&mut self, base: u16, off: u16, size: u8) -> u32 {
            self.log.push((false, base, off, size, 0));
            u32::from(off) + 0x10 * u32::from(size)
        }
        fn pio_write(&mut self, base: u16, off: u16, size: u8, value: u32) {
            self.log.push((true, base, off, size, value));
        }
        fn name(&self) -> &str {
            "probe"
        }
    }

    #[test]
    fn dispatches_by_base_and_offset() {
        let mut bus = IoBus::new();
        let id = bus.register(0x3F8, 8, Probe::default()).unwrap();
        bus.map_ports(id, 0x2F8, 8).unwrap();
        assert_eq!(bus.pio_read(0x3FA, 1), 0x12);
        bus.pio_write(0x3FC, 2, 0xBEEF);
        assert_eq!(bus.pio_read(0x2FC, 4), 0x44);
        assert_eq!(
            bus.get(id).log,
            vec![
                (false, 0x3F8, 2, 1, 0),
                (true, 0x3F8, 4, 2, 0xBEEF),
                (false, 0x2F8, 4, 4, 0)
            ]
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
    fn only_ports_that_may_change_the_machine_reach_it() {
        let mut bus = IoBus::new();
        bus.register(0x3F8, 8, Probe::default()).unwrap();
        bus.register(crate::post::POST_PORT, 1, crate::post::PostPort::new())
            .unwrap();
        assert!(bus.pio_reaches_machine(0x3F8, 1, false));
        assert!(bus.pio_reaches_machine(0x3F8, 1, true));
        assert!(!bus.pio_reaches_machine(0x80, 1, true), "the POST latch");
        assert!(!bus.pio_reaches_machine(0x1234, 4, true), "nobody's port");
        assert!(
            bus.pio_reaches_machine(0x3F6, 4, false),
            "a word straddling into the probe"
        );
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
                (false, 0x100, 1, 1, 0),
                (true, 0x100, 0, 1, 0x4433_2211 >> 8),
                (true, 0x100, 1, 1, 0x4433_2211 >> 16)
            ]
        );
    }

    /// Writes each value written to it into memory at the port offset;
    /// reads give the byte there.
    struct Master;
    impl Device for Master {
        fn pio_read_dma(&mut self, _: u16, off: u16, _: u8, mem: &mut dyn DmaMemory) -> u32 {
            let mut b = [0u8];
            if mem.dma_read(u64::from(off), &mut b) {
                u32::from(b[0])
            } else {
                0xEE
            }
        }
        fn pio_write_dma(&mut self, _: u16, off: u16, _: u8, v: u32, mem: &mut dyn DmaMemory) {
            mem.dma_write(u64::from(off), &[v as u8]);
        }
        fn name(&self) -> &str {
            "master"
        }
    }

    #[test]
    fn dma_reaches_bus_masters_and_only_them() {
        let mut bus = IoBus::new();
        bus.register(0x200, 4, Master).unwrap();
        let probe = bus.register(0x300, 4, Probe::default()).unwrap();
        let mut mem = vec![0u8; 4];
        bus.pio_write_dma(0x202, 1, 0x5A, &mut mem);
        assert_eq!(mem, [0, 0, 0x5A, 0]);
        assert_eq!(bus.pio_read_dma(0x202, 1, &mut mem), 0x5A);
        // A straddling access reaches each byte with the memory.
        bus.pio_write_dma(0x203, 2, 0x6B6B, &mut mem);
        assert_eq!(mem[3], 0x6B);
        // The plain accessors give no memory; other devices are unaffected.
        assert_eq!(bus.pio_read(0x202, 1), 0xEE);
        bus.pio_write_dma(0x300, 1, 7, &mut mem);
        assert_eq!(bus.get(probe).log, vec![(true, 0x300, 0, 1, 7)]);
    }

    #[test]
    fn windows_move() {
        let mut bus = IoBus::new();
        let id = bus.add(Probe::default());
        let other = bus.register(0xD000, 16, Probe::default()).unwrap();
        bus.move_ports(id, None, Some(0xC000), 16).unwrap();
        assert_eq!(bus.pio_read(0xC004, 1), 0x14);
        bus.move_ports(id, Some(0xC000), Some(0xC100), 16).unwrap();
        assert_eq!(bus.pio_read(0xC004, 1), 0xFF);
        assert_eq!(bus.pio_read(0xC104, 1), 0x14);
        // Onto another device's window: refused, and the window is gone.
        assert!(bus.move_ports(id, Some(0xC100), Some(0xD008), 16).is_err());
        assert_eq!(bus.pio_read(0xC104, 1), 0xFF);
        assert!(!bus.unmap_ports(id, 0xD000), "not its window");
        assert_eq!(bus.get(other).log.len(), 0);
        assert_eq!(bus.get(id).log.len(), 2);
    }

    struct Mm(u64);
    impl Device for Mm {
        fn mmio_read(&mut self, base: u64, off: u64, _: u8) -> u64 {
            self.0 + off + (base & 0xF0_0000)
        }
        fn mmio_write(&mut self, _: u64, _: u64, _: u8, v: u64) {
            self.0 = v;
        }
        fn name(&self) -> &str {
            "mm"
        }
    }

    #[test]
    fn mmio_windows() {
        let mut bus = IoBus::new();
        let a = bus.add(Mm(0));
        let b = bus.add(Mm(100));
        bus.map_mmio(a, 0xFEC0_0000, 0x1000).unwrap();
        bus.map_mmio(b, 0xFEE0_0000, 0x1000).unwrap();
        assert!(bus.map_mmio(a, 0xFEC0_0800, 0x1000).is_err());
        assert!(bus.map_mmio(a, 0xFEBF_F800, 0x1000).is_err());
        assert!(bus.map_mmio(a, u64::MAX, 2).is_err());
        assert_eq!(bus.mmio_read(0xFEE0_0010, 4), Some(0x74 + 0xE0_0000));
        assert_eq!(bus.mmio_read(0xFEE0_1000, 4), None);
        assert!(bus.mmio_write(0xFEC0_0000, 4, 7));
        assert_eq!(bus.mmio_read(0xFEC0_0004, 4), Some(11 + 0xC0_0000));
        assert_eq!(bus.mmio_read(0x1000, 4), None);
        assert!(bus.unmap_mmio(a, 0xFEC0_0000));
        assert!(!bus.claims_mmio(0xFEC0_0004));
    }
}
