//! The PCI host: configuration mechanism #1 and bus 0 of an i440FX/PIIX
//! board (the chipset QEMU's `pc` machine and SeaBIOS know best).
//!
//! # Ports
//!
//! The host claims 0xCF8-0xCFF (register it with [`PCI_CONFIG_PORT`] and
//! [`PCI_CONFIG_PORTS`]) and decodes them as the PIIX does:
//!
//! * a 32-bit access at 0xCF8 is `CONFIG_ADDRESS` (bit 31 enable, bits
//!   23-16 bus, 15-11 device, 10-8 function, 7-2 register);
//! * an 8-bit access at 0xCF9 is the Reset Control Register
//!   ([`ResetControl`]: writing 0x06 or 0x0E requests a reset);
//! * 0xCFC-0xCFF is `CONFIG_DATA`: an access of 1, 2 or 4 bytes at
//!   0xCFC + n reaches register `(CONFIG_ADDRESS & 0xFC) + n`;
//! * anything else (a byte at 0xCF8, a word at 0xCFA ...) reaches no
//!   register on the PIIX: reads are all ones, writes are dropped.
//!
//! # Bus 0
//!
//! | BDF     | ID        | function                                        |
//! |---------|-----------|-------------------------------------------------|
//! | 00:00.0 | 8086:1237 | i440FX host bridge (PAM, SMRAM: plain registers) |
//! | 00:01.0 | 8086:7000 | PIIX3 PCI-to-ISA bridge (PIRQ routes 0x60-0x63)  |
//! | 00:01.1 | 8086:7010 | PIIX3 IDE (legacy mode; bus-master BAR4)        |
//! | 00:01.3 | 8086:7113 | PIIX4 ACPI/PM (PMBA 0x40, PMREGMISC 0x80)        |
//!
//! Configuration writes keep read-only bits (IDs, class, header type,
//! interrupt pin), clear the write-one-to-clear bits of the status
//! register, and make BARs read back their size mask after all ones are
//! written. Registers from 0x40 up are plain read/write storage unless
//! described otherwise, so firmware can program the chipset (PAM shadowing,
//! IDE timings) and the machine can read the result with
//! [`PciHost::config_read`]. Reads of absent functions, of other buses, or
//! with the enable bit clear return all ones.
//!
//! The PIIX3 IDE function implements only BAR4 (bus-master IDE, 16 I/O
//! ports); BAR0-3 read 0 as on the real part, and its programming
//! interface 0x80 says both channels decode the legacy addresses
//! (0x1F0/0x3F6, 0x170/0x376) when IDETIM (0x40, 0x42) bit 15 is set.

use crate::lines::{BarMove, MemBarMove, SystemLink};
use crate::sysctl::ResetControl;
use serde::{Deserialize, Serialize};

/// First port of the configuration window.
pub const PCI_CONFIG_PORT: u16 = 0xCF8;
/// Number of ports the host claims (0xCF8-0xCFF).
pub const PCI_CONFIG_PORTS: u32 = 8;

/// Configuration space size of a conventional PCI function.
const CFG_SIZE: usize = 256;

// Standard header offsets.
const VENDOR_ID: usize = 0x00;
const DEVICE_ID: usize = 0x02;
const COMMAND: usize = 0x04;
const STATUS: usize = 0x06;
const REVISION: usize = 0x08;
const PROG_IF: usize = 0x09;
const SUBCLASS: usize = 0x0A;
const CLASS: usize = 0x0B;
const CACHE_LINE: usize = 0x0C;
const LATENCY: usize = 0x0D;
const HEADER_TYPE: usize = 0x0E;
const BAR0: usize = 0x10;
const INTERRUPT_LINE: usize = 0x3C;
const INTERRUPT_PIN: usize = 0x3D;

/// Command register bits a guest may change: I/O, memory, bus master,
/// parity error response, SERR#.
const COMMAND_WMASK: u16 = 0x0147;
/// Status register bits that are write-one-to-clear (parity, SERR, aborts).
const STATUS_W1C: u16 = 0xF900;

/// PIIX3 ISA bridge: PIRQ[A-D] route control registers.
pub const PIIX_PIRQRC: u8 = 0x60;
/// PIIX4 PM: PM I/O base address register.
pub const PIIX4_PMBA: u8 = 0x40;
/// PIIX4 PM: miscellaneous power management (bit 0 enables PM I/O space).
pub const PIIX4_PMREGMISC: u8 = 0x80;
/// PIIX4 PM: SMBus base address register.
pub const PIIX4_SMBBA: u8 = 0x90;
/// Size of the PIIX4 PM I/O block.
pub const PIIX4_PM_IO_LEN: u16 = 64;

/// A PCI bus/device/function address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Bdf {
    /// Bus number.
    pub bus: u8,
    /// Device number (0-31).
    pub device: u8,
    /// Function number (0-7).
    pub function: u8,
}

impl Bdf {
    /// `bus:device.function`.
    pub const fn new(bus: u8, device: u8, function: u8) -> Bdf {
        Bdf {
            bus,
            device,
            function,
        }
    }
}

impl std::fmt::Display for Bdf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:02x}:{:02x}.{}", self.bus, self.device, self.function)
    }
}

/// The i440FX host bridge.
pub const BDF_HOST_BRIDGE: Bdf = Bdf::new(0, 0, 0);
/// The PIIX3 ISA bridge.
pub const BDF_ISA_BRIDGE: Bdf = Bdf::new(0, 1, 0);
/// The PIIX3 IDE controller.
pub const BDF_IDE: Bdf = Bdf::new(0, 1, 1);
/// The PIIX4 ACPI/PM function.
pub const BDF_PM: Bdf = Bdf::new(0, 1, 3);

/// One PCI function's configuration space, with what a guest may write.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciFunction {
    /// Its address.
    pub bdf: Bdf,
    /// The 256 bytes of configuration space.
    pub config: Vec<u8>,
    /// Per byte, the bits a write may change.
    pub wmask: Vec<u8>,
    /// Per byte, the bits a write of 1 clears.
    pub w1cmask: Vec<u8>,
}

impl PciFunction {
    /// A function with the given IDs and class, a type-0 header, the
    /// command register, cache line, latency timer, interrupt line and the
    /// device-specific registers 0x40-0xFF writable, and no BARs.
    pub fn new(bdf: Bdf, vendor: u16, device: u16, class: u32, revision: u8) -> PciFunction {
        let mut f = PciFunction {
            bdf,
            config: vec![0; CFG_SIZE],
            wmask: vec![0; CFG_SIZE],
            w1cmask: vec![0; CFG_SIZE],
        };
        f.set16(VENDOR_ID, vendor);
        f.set16(DEVICE_ID, device);
        f.config[REVISION] = revision;
        f.config[PROG_IF] = class as u8;
        f.config[SUBCLASS] = (class >> 8) as u8;
        f.config[CLASS] = (class >> 16) as u8;
        f.wmask[COMMAND..COMMAND + 2].copy_from_slice(&COMMAND_WMASK.to_le_bytes());
        f.w1cmask[STATUS..STATUS + 2].copy_from_slice(&STATUS_W1C.to_le_bytes());
        f.wmask[CACHE_LINE] = 0xFF;
        f.wmask[LATENCY] = 0xFF;
        f.wmask[INTERRUPT_LINE] = 0xFF;
        f.wmask[0x40..].fill(0xFF);
        f
    }

    fn set16(&mut self, off: usize, v: u16) {
        self.config[off..off + 2].copy_from_slice(&v.to_le_bytes());
    }

    fn set32(&mut self, off: usize, v: u32) {
        self.config[off..off + 4].copy_from_slice(&v.to_le_bytes());
    }

    fn get32(&self, off: usize) -> u32 {
        u32::from_le_bytes(self.config[off..off + 4].try_into().expect("4 bytes"))
    }

    /// Declares BAR `n` (0-5) as `size` bytes (a power of two) of I/O space
    /// or 32-bit memory space, initially at `base`.
    pub fn set_bar(&mut self, n: usize, size: u32, io: bool, base: u32) {
        assert!(n < 6 && size.is_power_of_two());
        let off = BAR0 + 4 * n;
        let (flags, min) = if io { (0x1, 4) } else { (0x0, 16) };
        let mask = !(size.max(min) - 1);
        self.set32(off, (base & mask) | flags);
        self.wmask[off..off + 4].copy_from_slice(&mask.to_le_bytes());
    }

    /// Reads `size` bytes (1, 2 or 4) at `off`; bytes past 0xFF read as ones.
    pub fn read(&self, off: u8, size: u8) -> u32 {
        (0..size).fold(0, |acc, i| {
            let b = self
                .config
                .get(usize::from(off) + usize::from(i))
                .copied()
                .unwrap_or(0xFF);
            acc | u32::from(b) << (8 * i)
        })
    }

    /// Writes the low `size` bytes of `value` at `off`, honouring the masks.
    pub fn write(&mut self, off: u8, size: u8, value: u32) {
        for i in 0..size {
            let at = usize::from(off) + usize::from(i);
            if at >= CFG_SIZE {
                break;
            }
            let v = (value >> (8 * i)) as u8;
            let (wm, w1c) = (self.wmask[at], self.w1cmask[at]);
            self.config[at] = (self.config[at] & !wm) | (v & wm);
            self.config[at] &= !(v & w1c);
        }
    }
}

/// The PCI host bridge's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciState {
    /// `CONFIG_ADDRESS` (0xCF8).
    pub address: u32,
    /// The functions on bus 0, by address.
    pub functions: Vec<PciFunction>,
    /// The reset control register at 0xCF9.
    pub reset_control: ResetControl,
}

/// The PCI host: configuration mechanism #1, bus 0 and the 0xCF9 reset
/// control register.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PciHost {
    /// All of its state.
    pub state: PciState,
    /// Where reset requests and I/O window moves are signalled.
    #[serde(skip)]
    system: Option<SystemLink>,
    /// The I/O windows as last signalled: (devfn, register, base).
    #[serde(skip)]
    decoded: Vec<(u8, u8, Option<u16>)>,
    /// The memory windows as last signalled: (devfn, register, base).
    #[serde(skip)]
    decoded_mem: Vec<(u8, u8, Option<u32>)>,
    /// Functions plugged in with [`PciHost::add_function`], in their
    /// power-on state (what a reset returns them to).
    #[serde(skip)]
    extra: Vec<PciFunction>,
}

impl Default for PciHost {
    fn default() -> Self {
        Self::new()
    }
}

impl PciHost {
    /// An i440FX/PIIX bus 0 in its power-on state.
    pub fn new() -> PciHost {
        let mut host = PciFunction::new(BDF_HOST_BRIDGE, 0x8086, 0x1237, 0x06_00_00, 0x02);
        host.set16(COMMAND, 0x0006);
        host.set16(STATUS, 0x0280);
        host.config[0x72] = 0x02; // SMRAM: compatible SMRAM at 0xA0000
        host.wmask[0x72] = 0x78; // D_OPEN, D_CLS, D_LCK, G_SMRAME

        let mut isa = PciFunction::new(BDF_ISA_BRIDGE, 0x8086, 0x7000, 0x06_01_00, 0x00);
        isa.config[HEADER_TYPE] = 0x80; // multi-function
        isa.set16(COMMAND, 0x0007);
        isa.set16(STATUS, 0x0200);
        for r in 0..4 {
            let at = usize::from(PIIX_PIRQRC) + r;
            isa.config[at] = 0x80; // routing disabled
            isa.wmask[at] = 0x8F;
        }
        isa.config[0x4C] = 0x4D; // ISA I/O recovery timer
        isa.config[0x4E] = 0x03; // X-bus chip select
        isa.config[0x69] = 0x02; // top of memory
        isa.config[0x70] = 0x80; // motherboard IRQ routing disabled
        isa.config[0x76] = 0x0C; // motherboard DMA disabled
        isa.config[0x77] = 0x0C;
        isa.config[0x78] = 0x02; // programmable chip select
        isa.config[0xA0] = 0x08; // SMI control
        isa.config[0xA8] = 0x0F;

        let mut ide = PciFunction::new(BDF_IDE, 0x8086, 0x7010, 0x01_01_80, 0x00);
        ide.set16(STATUS, 0x0280);
        ide.wmask[INTERRUPT_LINE] = 0; // legacy mode: IRQ 14/15, no INTx
        ide.set_bar(4, 16, true, 0);

        let mut pm = PciFunction::new(BDF_PM, 0x8086, 0x7113, 0x06_80_00, 0x03);
        pm.set16(STATUS, 0x0280);
        pm.config[INTERRUPT_PIN] = 0x01; // INTA# (the SCI)
        pm.set32(usize::from(PIIX4_PMBA), 0x0000_0001);
        pm.wmask[0x40..0x44].copy_from_slice(&0x0000_FFC0u32.to_le_bytes());
        pm.set32(usize::from(PIIX4_SMBBA), 0x0000_0001);
        pm.wmask[0x90..0x94].copy_from_slice(&0x0000_FFF0u32.to_le_bytes());
        pm.wmask[usize::from(PIIX4_PMREGMISC)] = 0x01;

        PciHost {
            state: PciState {
                address: 0,
                functions: vec![host, isa, ide, pm],
                reset_control: ResetControl::new(),
            },
            system: None,
            decoded: Vec::new(),
            decoded_mem: Vec::new(),
            extra: Vec::new(),
        }
    }

    /// Adds a function to bus 0 (a device plugged in, such as the VGA),
    /// replacing any at the same address. It survives [`PciHost::reset`]
    /// as it was added; its memory BARs' moves are signalled
    /// ([`PciHost::mem_windows`]).
    pub fn add_function(&mut self, f: PciFunction) {
        self.state.functions.retain(|g| g.bdf != f.bdf);
        self.extra.retain(|g| g.bdf != f.bdf);
        self.extra.push(f.clone());
        self.state.functions.push(f);
        self.signal();
    }

    /// The memory windows the functions decode now: (devfn, register,
    /// base) of every 32-bit memory BAR, with a base while the function's
    /// memory space enable bit is set and the BAR is not all ones above its
    /// size (being sized).
    pub fn mem_windows(&self) -> Vec<(u8, u8, Option<u32>)> {
        let mut out = Vec::new();
        for f in &self.state.functions {
            let on = f.config[COMMAND] & 2 != 0;
            for n in 0..6 {
                let off = BAR0 + 4 * n;
                let mask = u32::from_le_bytes(f.wmask[off..off + 4].try_into().expect("4 bytes"));
                let bar = f.get32(off);
                if mask == 0 || bar & 1 != 0 {
                    continue;
                }
                let base = bar & mask;
                let devfn = f.bdf.device << 3 | f.bdf.function;
                out.push((devfn, off as u8, (on && base != mask).then_some(base)));
            }
        }
        out
    }

    /// Signals reset requests (0xCF9) and moves of the functions' I/O
    /// windows (the IDE bus-master BAR, the PM block) on `system`.
    pub fn connect(&mut self, system: SystemLink) {
        self.system = Some(system);
        self.decoded.clear();
        self.decoded_mem.clear();
        self.signal();
    }

    /// The I/O windows the functions decode now: (devfn, register, base).
    pub fn io_windows(&self) -> Vec<(u8, u8, Option<u16>)> {
        let devfn = |b: Bdf| b.device << 3 | b.function;
        let ide = self.function(BDF_IDE).and_then(|f| {
            (f.config[COMMAND] & 1 != 0).then(|| (f.get32(BAR0 + 16) & 0xFFFC) as u16)
        });
        vec![
            (devfn(BDF_IDE), (BAR0 + 16) as u8, ide),
            (devfn(BDF_PM), PIIX4_PMBA, self.pm_io_base()),
        ]
    }

    /// Signals the I/O windows' moves after configuration writes made with
    /// [`PciHost::config_write`] (which, like firmware's, signal nothing).
    pub fn sync_windows(&mut self) {
        self.signal();
    }

    /// Signals a reset request and window moves since the last look.
    fn signal(&mut self) {
        let Some(system) = &self.system else {
            return;
        };
        if self.state.reset_control.take_reset_request() {
            system.request_reset();
        }
        let mem = self.mem_windows();
        if mem != self.decoded_mem {
            for &(devfn, register, base) in &mem {
                let old = self
                    .decoded_mem
                    .iter()
                    .find(|w| w.0 == devfn && w.1 == register)
                    .map(|w| w.2);
                if old != Some(base) {
                    system.move_mem_bar(MemBarMove {
                        devfn,
                        register,
                        base,
                    });
                }
            }
            self.decoded_mem = mem;
        }
        let now = self.io_windows();
        if now != self.decoded {
            for &(devfn, register, base) in &now {
                let old = self
                    .decoded
                    .iter()
                    .find(|w| w.0 == devfn && w.1 == register)
                    .map(|w| w.2);
                if old != Some(base) {
                    system.move_bar(BarMove {
                        devfn,
                        register,
                        base,
                    });
                }
            }
            self.decoded = now;
        }
    }

    /// The function at `bdf`, if present.
    pub fn function(&self, bdf: Bdf) -> Option<&PciFunction> {
        self.state.functions.iter().find(|f| f.bdf == bdf)
    }

    /// The function at `bdf`, mutably, if present.
    pub fn function_mut(&mut self, bdf: Bdf) -> Option<&mut PciFunction> {
        self.state.functions.iter_mut().find(|f| f.bdf == bdf)
    }

    /// Reads `size` bytes at register `off` of `bdf` (all ones if absent).
    pub fn config_read(&self, bdf: Bdf, off: u8, size: u8) -> u32 {
        match self.function(bdf) {
            Some(f) => f.read(off, size),
            None => crate::all_ones(size),
        }
    }

    /// Writes `size` bytes at register `off` of `bdf` (dropped if absent).
    pub fn config_write(&mut self, bdf: Bdf, off: u8, size: u8, value: u32) {
        if let Some(f) = self.function_mut(bdf) {
            tracing::trace!(%bdf, off, size, value = format_args!("{value:#x}"), "pci config write");
            f.write(off, size, value);
        }
    }

    /// `CONFIG_ADDRESS` as last written.
    pub fn config_address(&self) -> u32 {
        self.state.address
    }

    /// The function and register selected by `CONFIG_ADDRESS`, if enabled.
    fn selected(&self) -> Option<(Bdf, u8)> {
        let a = self.state.address;
        if a & 0x8000_0000 == 0 {
            return None;
        }
        let bdf = Bdf::new(
            (a >> 16) as u8,
            ((a >> 11) & 0x1F) as u8,
            ((a >> 8) & 7) as u8,
        );
        Some((bdf, (a & 0xFC) as u8))
    }

    /// Base of the PIIX4 ACPI PM I/O block (64 ports), when PMREGMISC bit 0
    /// enables it; the machine places the ACPI PM registers there.
    pub fn pm_io_base(&self) -> Option<u16> {
        let pm = self.function(BDF_PM)?;
        (pm.config[usize::from(PIIX4_PMREGMISC)] & 1 != 0)
            .then(|| (pm.get32(usize::from(PIIX4_PMBA)) & 0xFFC0) as u16)
    }

    /// The ISA IRQ that PIRQ `n` (0-3 for A-D) is routed to, if routing is on.
    pub fn pirq_route(&self, n: usize) -> Option<u8> {
        let isa = self.function(BDF_ISA_BRIDGE)?;
        let r = *isa
            .config
            .get(usize::from(PIIX_PIRQRC) + n)
            .filter(|_| n < 4)?;
        // IRQs 0-2, 8 and 13 are reserved encodings.
        let irq = r & 0x0F;
        (r & 0x80 == 0 && matches!(irq, 3..=7 | 9..=12 | 14 | 15)).then_some(irq)
    }

    /// The i440FX's PAM registers (0x59-0x5F), which decide per segment of
    /// 0xC0000-0xFFFFF whether reads and writes reach shadow RAM or ROM.
    pub fn pam(&self) -> [u8; 7] {
        let mut p = [0; 7];
        if let Some(h) = self.function(BDF_HOST_BRIDGE) {
            p.copy_from_slice(&h.config[0x59..0x60]);
        }
        p
    }

    /// The reset control register at 0xCF9.
    pub fn reset_control(&self) -> &ResetControl {
        &self.state.reset_control
    }

    /// True once after the guest requested a reset through 0xCF9.
    pub fn take_reset_request(&mut self) -> bool {
        self.state.reset_control.take_reset_request()
    }

    /// Back to the power-on state (after a machine reset).
    pub fn reset(&mut self) {
        self.state = PciHost::new().state;
        self.state.functions.extend(self.extra.iter().cloned());
        self.signal();
    }
}

impl crate::bus::Device for PciHost {
    fn pio_read(&mut self, _base: u16, off: u16, size: u8) -> u32 {
        match (off, size) {
            (0, 4) => self.state.address,
            (1, 1) => u32::from(self.state.reset_control.read()),
            (4..=7, _) => match self.selected() {
                Some((bdf, reg)) => self.config_read(bdf, reg + (off - 4) as u8, size),
                None => crate::all_ones(size),
            },
            _ => crate::all_ones(size),
        }
    }

    fn pio_write(&mut self, _base: u16, off: u16, size: u8, value: u32) {
        match (off, size) {
            (0, 4) => self.state.address = value & 0x80FF_FFFC,
            (1, 1) => self.state.reset_control.write(value as u8),
            (4..=7, _) => {
                if let Some((bdf, reg)) = self.selected() {
                    self.config_write(bdf, reg + (off - 4) as u8, size, value);
                }
            }
            _ => {}
        }
        self.signal();
    }

    fn reset(&mut self) {
        PciHost::reset(self);
    }

    fn name(&self) -> &str {
        "pci-host"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::IoBus;

    fn bus() -> (IoBus, crate::DeviceId<PciHost>) {
        let mut bus = IoBus::new();
        let id = bus
            .register(PCI_CONFIG_PORT, PCI_CONFIG_PORTS, PciHost::new())
            .unwrap();
        (bus, id)
    }

    fn addr(b: u8, d: u8, f: u8, reg: u8) -> u32 {
        0x8000_0000 | u32::from(b) << 16 | u32::from(d) << 11 | u32::from(f) << 8 | u32::from(reg)
    }

    fn cfg_read(bus: &mut IoBus, b: u8, d: u8, f: u8, reg: u8, size: u8) -> u32 {
        bus.pio_write(0xCF8, 4, addr(b, d, f, reg & 0xFC));
        bus.pio_read(0xCFC + u16::from(reg & 3), size)
    }

    fn cfg_write(bus: &mut IoBus, b: u8, d: u8, f: u8, reg: u8, size: u8, v: u32) {
        bus.pio_write(0xCF8, 4, addr(b, d, f, reg & 0xFC));
        bus.pio_write(0xCFC + u16::from(reg & 3), size, v);
    }

    #[test]
    fn enumerates_bus_0_like_a_bios() {
        let (mut bus, _) = bus();
        // Probe as SeaBIOS and Linux do: function 0 of each device, then
        // functions 1-7 of multi-function devices.
        let mut found = Vec::new();
        for dev in 0..32 {
            for func in 0..8 {
                let id = cfg_read(&mut bus, 0, dev, func, 0, 4);
                if id == 0xFFFF_FFFF {
                    if func == 0 {
                        break;
                    }
                    continue;
                }
                let class = cfg_read(&mut bus, 0, dev, func, 0x08, 4) >> 8;
                found.push((dev, func, id, class));
                let header = cfg_read(&mut bus, 0, dev, func, 0x0E, 1);
                if func == 0 && header & 0x80 == 0 {
                    break;
                }
            }
        }
        assert_eq!(
            found,
            vec![
                (0, 0, 0x1237_8086, 0x06_00_00),
                (1, 0, 0x7000_8086, 0x06_01_00),
                (1, 1, 0x7010_8086, 0x01_01_80),
                (1, 3, 0x7113_8086, 0x06_80_00),
            ]
        );
        // Other buses and the disabled window read all ones.
        assert_eq!(cfg_read(&mut bus, 1, 0, 0, 0, 4), 0xFFFF_FFFF);
        bus.pio_write(0xCF8, 4, 0);
        assert_eq!(bus.pio_read(0xCFC, 4), 0xFFFF_FFFF);
        assert_eq!(bus.pio_read(0xCFE, 2), 0xFFFF);
    }

    #[test]
    fn sub_dword_data_accesses_hit_the_right_bytes() {
        let (mut bus, _) = bus();
        assert_eq!(cfg_read(&mut bus, 0, 0, 0, 0x02, 2), 0x1237);
        assert_eq!(cfg_read(&mut bus, 0, 0, 0, 0x00, 2), 0x8086);
        assert_eq!(cfg_read(&mut bus, 0, 1, 0, 0x0B, 1), 0x06);
        assert_eq!(cfg_read(&mut bus, 0, 1, 0, 0x0A, 1), 0x01);
        assert_eq!(cfg_read(&mut bus, 0, 1, 0, 0x0E, 1), 0x80);
        // CONFIG_ADDRESS reads back, with reserved bits clear.
        bus.pio_write(0xCF8, 4, 0xFFFF_FFFF);
        assert_eq!(bus.pio_read(0xCF8, 4), 0x80FF_FFFC);
        // Byte and word accesses to 0xCF8/0xCFA are not CONFIG_ADDRESS.
        bus.pio_write(0xCF8, 1, 0);
        bus.pio_write(0xCFA, 2, 0);
        assert_eq!(bus.pio_read(0xCF8, 4), 0x80FF_FFFC);
        assert_eq!(bus.pio_read(0xCFA, 2), 0xFFFF);
    }

    #[test]
    fn read_only_ids_and_command_register() {
        let (mut bus, _) = bus();
        cfg_write(&mut bus, 0, 1, 0, 0x00, 4, 0x1234_5678);
        cfg_write(&mut bus, 0, 1, 0, 0x08, 4, 0xFFFF_FFFF);
        assert_eq!(cfg_read(&mut bus, 0, 1, 0, 0x00, 4), 0x7000_8086);
        assert_eq!(cfg_read(&mut bus, 0, 1, 0, 0x08, 4), 0x0601_0000);
        cfg_write(&mut bus, 0, 1, 1, 0x04, 2, 0xFFFF);
        assert_eq!(
            cfg_read(&mut bus, 0, 1, 1, 0x04, 2),
            u32::from(COMMAND_WMASK)
        );
        cfg_write(&mut bus, 0, 1, 1, 0x04, 2, 0x0005);
        assert_eq!(cfg_read(&mut bus, 0, 1, 1, 0x04, 2), 0x0005);
        // Status: write-one-to-clear, other bits read-only.
        let st = cfg_read(&mut bus, 0, 0, 0, 0x06, 2);
        cfg_write(&mut bus, 0, 0, 0, 0x06, 2, 0xFFFF);
        assert_eq!(cfg_read(&mut bus, 0, 0, 0, 0x06, 2), st);
        // Interrupt line is writable, pin is not.
        cfg_write(&mut bus, 0, 1, 3, 0x3C, 2, 0x0209);
        assert_eq!(cfg_read(&mut bus, 0, 1, 3, 0x3C, 2), 0x0109);
    }

    #[test]
    fn bar_sizing() {
        let (mut bus, _) = bus();
        // IDE: BAR4 is 16 bytes of I/O space; BAR0-3 are not implemented.
        cfg_write(&mut bus, 0, 1, 1, 0x20, 4, 0xFFFF_FFFF);
        let v = cfg_read(&mut bus, 0, 1, 1, 0x20, 4);
        assert_eq!(v, 0xFFFF_FFF1);
        assert_eq!((!(v & !0x3)).wrapping_add(1), 16);
        cfg_write(&mut bus, 0, 1, 1, 0x20, 4, 0xC001);
        assert_eq!(cfg_read(&mut bus, 0, 1, 1, 0x20, 4), 0xC001);
        for bar in 0..4 {
            cfg_write(&mut bus, 0, 1, 1, 0x10 + 4 * bar, 4, 0xFFFF_FFFF);
            assert_eq!(cfg_read(&mut bus, 0, 1, 1, 0x10 + 4 * bar, 4), 0);
        }
        // The host bridge has no BARs.
        cfg_write(&mut bus, 0, 0, 0, 0x10, 4, 0xFFFF_FFFF);
        assert_eq!(cfg_read(&mut bus, 0, 0, 0, 0x10, 4), 0);
        // A memory BAR on a test function.
        let mut f = PciFunction::new(Bdf::new(0, 2, 0), 0x1234, 0x1111, 0x03_00_00, 2);
        f.set_bar(0, 16 << 20, false, 0);
        f.write(0x10, 4, 0xFFFF_FFFF);
        assert_eq!(f.read(0x10, 4), 0xFF00_0000);
    }

    #[test]
    fn pm_base_and_pirq_routes() {
        let (mut bus, id) = bus();
        assert_eq!(bus.get(id).pm_io_base(), None);
        cfg_write(&mut bus, 0, 1, 3, 0x40, 4, 0xFFFF_FFFF);
        assert_eq!(cfg_read(&mut bus, 0, 1, 3, 0x40, 4), 0xFFC1);
        cfg_write(&mut bus, 0, 1, 3, 0x40, 4, 0x0600);
        cfg_write(&mut bus, 0, 1, 3, 0x80, 1, 0x01);
        assert_eq!(bus.get(id).pm_io_base(), Some(0x0600));
        cfg_write(&mut bus, 0, 1, 3, 0x80, 1, 0x00);
        assert_eq!(bus.get(id).pm_io_base(), None);
        assert_eq!(cfg_read(&mut bus, 0, 1, 0, 0x60, 4), 0x8080_8080);
        cfg_write(&mut bus, 0, 1, 0, 0x60, 4, 0x0B0B_0A0A);
        assert_eq!(bus.get(id).pirq_route(0), Some(10));
        assert_eq!(bus.get(id).pirq_route(3), Some(11));
        cfg_write(&mut bus, 0, 1, 0, 0x61, 1, 0xFF);
        assert_eq!(cfg_read(&mut bus, 0, 1, 0, 0x61, 1), 0x8F);
        assert_eq!(bus.get(id).pirq_route(1), None);
        let json = serde_json::to_string(bus.get(id)).unwrap();
        assert_eq!(
            &serde_json::from_str::<PciHost>(&json).unwrap(),
            bus.get(id)
        );
    }

    #[test]
    fn an_added_function_with_a_memory_bar_signals_its_moves() {
        let wires = crate::Wires::new();
        let mut host = PciHost::new();
        host.connect(wires.system());
        wires.take_mem_bar_moves();
        let mut f = PciFunction::new(Bdf::new(0, 2, 0), 0x1234, 0x1111, 0x03_00_00, 2);
        f.set_bar(0, 16 << 20, false, 0xFD00_0000);
        host.add_function(f);
        let mv = |base| MemBarMove {
            devfn: 0x10,
            register: 0x10,
            base,
        };
        assert_eq!(
            wires.take_mem_bar_moves(),
            vec![mv(None)],
            "memory decoding off"
        );
        let mut bus = IoBus::new();
        let id = bus
            .register(PCI_CONFIG_PORT, PCI_CONFIG_PORTS, host)
            .unwrap();
        cfg_write(&mut bus, 0, 2, 0, 0x04, 2, 0x0002);
        assert_eq!(wires.take_mem_bar_moves(), vec![mv(Some(0xFD00_0000))]);
        // Sizing: all ones reads back the size; no window while it lasts.
        cfg_write(&mut bus, 0, 2, 0, 0x10, 4, 0xFFFF_FFFF);
        assert_eq!(cfg_read(&mut bus, 0, 2, 0, 0x10, 4), 0xFF00_0000);
        cfg_write(&mut bus, 0, 2, 0, 0x10, 4, 0xE000_0000);
        assert_eq!(
            wires.take_mem_bar_moves(),
            vec![mv(None), mv(Some(0xE000_0000))]
        );
        // A reset brings the function back as it was plugged in.
        bus.get_mut(id).reset();
        assert_eq!(cfg_read(&mut bus, 0, 2, 0, 0x00, 4), 0x1111_1234);
        assert_eq!(cfg_read(&mut bus, 0, 2, 0, 0x10, 4), 0xFD00_0000);
        assert_eq!(wires.take_mem_bar_moves(), vec![mv(None)]);
    }

    #[test]
    fn reset_through_cf9() {
        let (mut bus, id) = bus();
        bus.pio_write(0xCF8, 4, addr(0, 0, 0, 0));
        bus.pio_write(0xCF9, 1, 0x02);
        assert!(!bus.get_mut(id).take_reset_request());
        assert_eq!(bus.pio_read(0xCF9, 1), 0x02);
        assert_eq!(bus.pio_read(0xCF8, 4), addr(0, 0, 0, 0), "address kept");
        bus.pio_write(0xCF9, 1, 0x06);
        assert!(bus.get_mut(id).take_reset_request());
        assert!(!bus.get_mut(id).take_reset_request());
        bus.pio_write(0xCF9, 1, 0x0E);
        assert!(bus.get_mut(id).take_reset_request());
        // A dword write to 0xCF8 is never a reset.
        bus.pio_write(0xCF8, 4, 0x8000_0600);
        assert!(!bus.get_mut(id).take_reset_request());
    }
}
