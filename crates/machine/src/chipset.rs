//! The PC's devices wired together: which device sits where on the bus,
//! which lines each drives, and the interrupt routing from those lines
//! through the 8259A pair and the I/O APIC to the local APIC and the CPU.
//!
//! Devices drive their own interrupt lines and system signals (see
//! `morph86_devices::lines`). The machine calls [`Chipset::route`] at the
//! instruction boundary after a device access or at a device deadline; it
//! hands the line changes to the interrupt controllers, moves the windows
//! of PCI functions whose BARs the guest changed, and reports the system
//! signals (reset, power-off, exit, A20). Nothing is polled.
//!
//! QEMU's fw_cfg device (ports 0x510/0x511, DMA at 0x514..0x51B) is fitted
//! unless the configuration says otherwise; its contents come from the
//! machine's firmware tables ([`crate::firmware::fw_cfg`]).
//!
//! Routing: ISA lines go both to the 8259A pair and to the I/O APIC (ISA
//! IRQ 0 arrives at I/O APIC pin 2, as the MADT says). The PIC's output
//! reaches the CPU through the local APIC's LINT0, which firmware leaves in
//! ExtINT mode ("virtual wire"), or directly while a guest keeps the local
//! APIC software-disabled; the I/O APIC's messages go through the local
//! APIC.

use crate::board::Board;
use crate::firmware::{self, BoardDescription};
use crate::machine::MachineError;
use crate::storage::{Drives, Storage};
use morph86_devices::acpi_pm::PM_IO_LEN;
use morph86_devices::apic::{DEFAULT_TIMER_HZ, LAPIC_BASE, LAPIC_SIZE};
use morph86_devices::debugcon::DEBUGCON_PORT;
use morph86_devices::fw_cfg::{FW_CFG_DMA_PORT, FW_CFG_DMA_PORTS, FW_CFG_PORT, FW_CFG_PORTS};
use morph86_devices::ioapic::{Delivery, IOAPIC_BASE, IOAPIC_SIZE};
use morph86_devices::lines::BarMove;
use morph86_devices::pci::{
    BDF_HOST_BRIDGE, BDF_IDE, BDF_PM, PCI_CONFIG_PORT, PCI_CONFIG_PORTS, PIIX4_PMBA,
};
use morph86_devices::post::POST_PORT;
use morph86_devices::rtc::{RTC_PORT, RTC_PORTS};
use morph86_devices::sysctl::SYSTEM_CONTROL_A_PORT;
use morph86_devices::uart::COM1_PORT;
use morph86_devices::{
    AcpiPm, DebugCon, DebugExit, DeviceId, FwCfg, I8042Device, IoApic, LocalApic, OutputSink,
    PciHost, Pic8259Pair, Pit8254, PostPort, Rtc146818, RtcStart, SerialBackend, SystemControlA,
    Uart16550,
};

/// I/O base of the ACPI PM registers that firmware programs (the FADT
/// points here).
pub const ACPI_PM_BASE: u16 = 0xB000;

/// The other three serial ports: (base, IRQ). COM1 is at 0x3F8, IRQ 4.
const OTHER_COMS: [(u16, u8); 3] = [(0x2F8, 3), (0x3E8, 4), (0x2E8, 3)];

/// What the chipset is built with.
pub struct ChipsetConfig {
    /// COM1's back end.
    pub serial: SerialBackend,
    /// The debug console's output, if one is fitted.
    pub debugcon: Option<OutputSink>,
    /// The exit device's port, if one is fitted.
    pub exit_port: Option<u16>,
    /// Where the RTC's date starts.
    pub rtc_start: RtcStart,
    /// RAM in MiB (for the CMOS memory-size bytes).
    pub memory_mib: u32,
    /// Fit QEMU's fw_cfg device, describing the board as
    /// [`crate::firmware::fw_cfg`] says.
    pub fw_cfg: bool,
    /// Fit the VGA (see [`crate::video`]).
    pub vga: bool,
    /// The disk, CD and floppy images attached.
    pub drives: Drives,
}

/// The system signals the devices raised, as [`Chipset::route`] reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Signals {
    /// A device asked for a reset (the 8042, port 0x92, port 0xCF9).
    pub reset: bool,
    /// The guest entered ACPI S5.
    pub poweroff: bool,
    /// The exit device's status, once written.
    pub exit: Option<u32>,
    /// The PAM registers changed what the ROM area shows.
    pub memory_map: bool,
}

/// The handles to the devices the machine talks to, and the routing state.
pub struct Chipset {
    serial: DeviceId<Uart16550>,
    coms: Vec<DeviceId<Uart16550>>,
    exit: Option<DeviceId<DebugExit>>,
    debugcon: Option<DeviceId<DebugCon>>,
    pic: DeviceId<Pic8259Pair>,
    i8042: DeviceId<I8042Device>,
    pm: DeviceId<AcpiPm>,
    lapic: DeviceId<LocalApic>,
    ioapic: DeviceId<IoApic>,
    pci: DeviceId<PciHost>,
    rtc: DeviceId<Rtc146818>,
    fw_cfg: Option<DeviceId<FwCfg>>,
    storage: Storage,
    /// Where the PM block's window is mapped now.
    pm_window: Option<u16>,
    /// IA32_APIC_BASE.EN as last applied.
    apic_enabled: bool,
    deliveries: Vec<Delivery>,
}

impl Chipset {
    /// Builds the PC's devices on `board` and wires them.
    pub fn build(board: &mut Board, cfg: ChipsetConfig) -> Result<Chipset, MachineError> {
        let fw_cfg = if cfg.fw_cfg {
            let desc = BoardDescription {
                pm_io_base: ACPI_PM_BASE,
            };
            let tables = firmware::build_tables(board.ram.len() as u64, &desc)?;
            Some(firmware::fw_cfg::fw_cfg_device(&tables)?)
        } else {
            None
        };
        let time = board.time.clone();
        let wires = board.wires.clone();
        let io = &mut board.io;
        let uart = |backend, irq: u8| {
            let mut u = Uart16550::new(backend);
            u.connect_irq(wires.irq(irq));
            u
        };
        let serial = io.register(COM1_PORT, 8, uart(cfg.serial, 4))?;
        let mut coms = Vec::new();
        for (base, irq) in OTHER_COMS {
            coms.push(io.register(base, 8, uart(SerialBackend::none(), irq))?);
        }
        io.register(POST_PORT, 1, PostPort::new())?;
        let exit = match cfg.exit_port {
            Some(port) => {
                let mut d = DebugExit::new();
                d.connect(wires.system());
                Some(io.register(port, 4, d)?)
            }
            None => None,
        };
        let debugcon = match cfg.debugcon {
            Some(out) => Some(io.register(DEBUGCON_PORT, 1, DebugCon::new(out))?),
            None => None,
        };
        let pic = Pic8259Pair::new().map(io)?;
        let mut pit = Pit8254::new(time.clone());
        pit.connect_irq(wires.irq(0));
        pit.map(io)?;
        let i8042 = I8042Device::new(wires.irq(1), wires.irq(12), wires.system()).map(io)?;
        let mut rtc = Rtc146818::new(time.clone(), cfg.rtc_start);
        rtc.set_memory_size(640, u64::from(cfg.memory_mib) * 1024 - 1024);
        rtc.connect_irq(wires.irq(8));
        let storage = Storage::fit(io, &wires, &time, &cfg.drives)?;
        storage.set_cmos(&mut rtc);
        let rtc = io.register(RTC_PORT, RTC_PORTS, rtc)?;
        let mut host = PciHost::new();
        host.connect(wires.system());
        let pci = io.register(PCI_CONFIG_PORT, PCI_CONFIG_PORTS, host)?;
        let mut sysa = SystemControlA::new();
        sysa.connect(wires.system());
        io.register(SYSTEM_CONTROL_A_PORT, 1, sysa)?;
        let mut pm = AcpiPm::new(time.clone(), 0);
        pm.connect(wires.system());
        let pm = io.add(pm);
        let lapic = io.add(LocalApic::new(0, DEFAULT_TIMER_HZ, time));
        io.map_mmio(lapic, LAPIC_BASE, LAPIC_SIZE)?;
        let ioapic = io.add(IoApic::new(1));
        io.map_mmio(ioapic, IOAPIC_BASE, IOAPIC_SIZE)?;
        let fw_cfg = match fw_cfg {
            Some(d) => {
                let id = io.register(FW_CFG_PORT, FW_CFG_PORTS, d)?;
                io.map_ports(id, FW_CFG_DMA_PORT, FW_CFG_DMA_PORTS)?;
                Some(id)
            }
            None => None,
        };
        if cfg.vga {
            board.video = Some(crate::video::fit_vga(board, pci)?);
        }
        Ok(Chipset {
            serial,
            coms,
            exit,
            debugcon,
            pic,
            i8042,
            pm,
            lapic,
            ioapic,
            pci,
            rtc,
            fw_cfg,
            storage,
            pm_window: None,
            apic_enabled: true,
            deliveries: Vec::new(),
        })
    }

    /// Returns every device to its power-on state, then does what firmware
    /// would have done before handing over: the IDE bus-master BAR and the
    /// PM I/O block get addresses with their I/O decoding on, the local
    /// APIC is enabled with LINT0 in ExtINT and LINT1 in NMI mode (virtual
    /// wire mode, as SeaBIOS leaves it), and the ROM area reads shadow RAM
    /// (where the direct boots write the tables) and ignores writes.
    pub fn reset(&mut self, board: &mut Board) {
        self.power_on(board);
        let pci = board.io.get_mut(self.pci);
        pci.config_write(BDF_HOST_BRIDGE, 0x59, 1, 0x10);
        for reg in 0x5A..0x60 {
            pci.config_write(BDF_HOST_BRIDGE, reg, 1, 0x11);
        }
        pci.config_write(BDF_IDE, 0x20, 4, 0xC001);
        pci.config_write(BDF_IDE, 0x04, 2, 0x0005);
        // IDETIM: both channels decode their legacy ports (SeaBIOS's
        // set-up; Linux's ata_piix skips a channel whose enable bit is clear).
        pci.config_write(BDF_IDE, 0x40, 2, 0x8000);
        pci.config_write(BDF_IDE, 0x42, 2, 0x8000);
        pci.config_write(BDF_PM, PIIX4_PMBA, 4, u32::from(ACPI_PM_BASE) | 1);
        pci.config_write(BDF_PM, 0x80, 1, 1);
        if board.video.is_some() {
            // The VGA's framebuffer where SeaBIOS puts it, decoded.
            let vga = morph86_devices::vga::PCI_BDF;
            pci.config_write(vga, 0x10, 4, morph86_devices::vga::DEFAULT_LFB_BASE);
            pci.config_write(vga, 0x04, 2, 0x0003);
        }
        pci.sync_windows();
        board.reset_video();
        let lapic = board.io.get_mut(self.lapic);
        lapic.set_global_enable(true);
        lapic.write_reg(0xF0, 0x1FF);
        lapic.write_reg(0x350, 0x700);
        lapic.write_reg(0x360, 0x400);
        self.apic_enabled = true;
        self.sync_memory_map(board);
    }

    /// Returns every device to its power-on state and nothing more, for a
    /// boot through firmware (which programs the rest): the PAM registers
    /// send the ROM area to ROM, the local APIC is globally enabled but
    /// software-disabled.
    pub fn power_on(&mut self, board: &mut Board) {
        board.wires.reset_all();
        board.io.reset();
        board.io.get_mut(self.lapic).set_global_enable(true);
        self.apic_enabled = true;
        self.sync_memory_map(board);
    }

    /// Applies the host bridge's PAM registers to the board's ROM area;
    /// true when they changed.
    pub fn sync_memory_map(&self, board: &mut Board) -> bool {
        let pam = board.io.get(self.pci).pam();
        board.upper.set_pam(pam)
    }

    /// Sets a CMOS byte (firmware configuration, e.g. the boot order).
    pub fn set_cmos(&self, board: &mut Board, index: u8, v: u8) {
        board.io.get_mut(self.rtc).set_cmos(index, v);
    }

    /// A CMOS byte.
    pub fn cmos(&self, board: &Board, index: u8) -> u8 {
        board.io.get(self.rtc).cmos(index)
    }

    /// COM1.
    pub fn serial<'a>(&self, board: &'a mut Board) -> &'a mut Uart16550 {
        board.io.get_mut(self.serial)
    }

    /// The 8042 keyboard controller (host keys and mouse go in here).
    pub fn i8042<'a>(&self, board: &'a mut Board) -> &'a mut I8042Device {
        board.io.get_mut(self.i8042)
    }

    /// The exit device, if one is fitted.
    pub fn exit_device<'a>(&self, board: &'a Board) -> Option<&'a DebugExit> {
        self.exit.map(|id| board.io.get(id))
    }

    /// The fw_cfg device, if one is fitted.
    pub fn fw_cfg<'a>(&self, board: &'a Board) -> Option<&'a FwCfg> {
        self.fw_cfg.map(|id| board.io.get(id))
    }

    /// Flushes device output (the serial ports and the debug console)
    /// and makes disk image writes durable.
    pub fn flush(&self, board: &mut Board) {
        self.storage.flush(board);
        board.io.get_mut(self.serial).flush();
        for c in &self.coms {
            board.io.get_mut(*c).flush();
        }
        if let Some(d) = self.debugcon {
            board.io.get_mut(d).flush();
        }
    }

    /// Hands what changed on the wires to the interrupt controllers and the
    /// bus, runs the local APIC / I/O APIC exchange, and reports the system
    /// signals. `apic_msr_enabled` is IA32_APIC_BASE.EN.
    pub fn route(&mut self, board: &mut Board, apic_msr_enabled: bool) -> Signals {
        let mut signals = Signals::default();
        if board.wires.take_dirty() {
            let c = board.wires.take_irq_changes();
            let mut changed = c.changed;
            while changed != 0 {
                let n = changed.trailing_zeros() as u8;
                changed &= changed - 1;
                let level = c.levels & (1 << n) != 0;
                let rose = c.rose & (1 << n) != 0;
                // ISA IRQ 0 is I/O APIC pin 2 (the MADT's override).
                let gsi = if n == 0 { 2 } else { n };
                let pic = board.io.get_mut(self.pic);
                if n < 16 {
                    if rose {
                        // A fresh edge, even if the line was already high
                        // or has dropped again since.
                        pic.set_irq(n, false);
                        pic.set_irq(n, true);
                    }
                    pic.set_irq(n, level);
                }
                let ioapic = board.io.get_mut(self.ioapic);
                if rose {
                    ioapic.set_irq(gsi, false);
                    ioapic.set_irq(gsi, true);
                }
                ioapic.set_irq(gsi, level);
            }
            signals.reset = board.wires.take_reset();
            signals.poweroff = board.wires.take_poweroff();
            signals.exit = board.wires.exit_status();
            for m in board.wires.take_bar_moves() {
                self.move_window(board, m);
            }
            for m in board.wires.take_mem_bar_moves() {
                board.move_memory_window(m);
            }
        }
        // EOIs of level-triggered vectors go back to the I/O APIC.
        while let Some(v) = board.io.get_mut(self.lapic).take_eoi_for_level() {
            board.io.get_mut(self.ioapic).eoi(v);
        }
        board
            .io
            .get_mut(self.ioapic)
            .take_deliveries(&mut self.deliveries);
        for d in self.deliveries.drain(..) {
            board.io.get_mut(self.lapic).deliver(&d);
        }
        signals.memory_map = self.sync_memory_map(board);
        let intr = board.io.get(self.pic).interrupt_pending();
        let lapic = board.io.get_mut(self.lapic);
        lapic.lint0(intr);
        if apic_msr_enabled != self.apic_enabled {
            self.apic_enabled = apic_msr_enabled;
            lapic.set_global_enable(apic_msr_enabled);
        }
        signals
    }

    /// Follows a PCI function's I/O window to where the guest moved it.
    fn move_window(&mut self, board: &mut Board, m: BarMove) {
        let pm_devfn = BDF_PM.device << 3 | BDF_PM.function;
        if m.devfn == pm_devfn && m.register == PIIX4_PMBA {
            let len = u32::from(PM_IO_LEN);
            if let Err(e) = board.io.move_ports(self.pm, self.pm_window, m.base, len) {
                tracing::warn!("PM block not mapped at {:?}: {e}", m.base);
                self.pm_window = None;
            } else {
                self.pm_window = m.base;
            }
        } else if m.devfn == BDF_IDE.device << 3 | BDF_IDE.function && m.register == 0x20 {
            self.storage.move_bus_master(board, m.base);
        } else {
            tracing::debug!(?m, "I/O window move with no device behind it");
        }
    }

    /// A maskable interrupt is pending for the CPU.
    pub fn interrupt_pending(&self, board: &Board) -> bool {
        let lapic = board.io.get(self.lapic);
        lapic.pending_interrupt().is_some()
            || lapic.extint_pending()
            || (!lapic.software_enabled() && board.io.get(self.pic).interrupt_pending())
    }

    /// True (once) when an NMI is pending.
    pub fn take_nmi(&self, board: &mut Board) -> bool {
        board.io.get_mut(self.lapic).take_nmi()
    }

    /// The CPU's interrupt acknowledge: the vector of the interrupt it
    /// takes now, if one is still pending.
    pub fn acknowledge(&self, board: &mut Board) -> Option<u8> {
        let lapic = board.io.get_mut(self.lapic);
        if lapic.pending_interrupt().is_some() {
            return Some(lapic.acknowledge());
        }
        if lapic.extint_pending() {
            lapic.acknowledge_extint();
            let pic = board.io.get_mut(self.pic);
            let v = pic.acknowledge();
            let intr = pic.interrupt_pending();
            board.io.get_mut(self.lapic).lint0(intr);
            return Some(v);
        }
        if !lapic.software_enabled() && board.io.get(self.pic).interrupt_pending() {
            // A software-disabled local APIC (its state after reset) lets the
            // 8259's INTR through, as on PCs before firmware or the OS set
            // up virtual wire mode (QEMU's APIC does the same).
            return Some(board.io.get_mut(self.pic).acknowledge());
        }
        None
    }
}

#[cfg(test)]
mod fw_cfg_tests {
    //! fw_cfg on the board: DMA through the RAM's write tracking, errors
    //! for destinations that are not RAM, and random traffic.
    use super::*;
    use crate::clock::ClockMode;
    use morph86_cpu::Bus;
    use morph86_devices::fw_cfg::{control, key, DMA_SIGNATURE};
    use morph86_devices::{RtcDateTime, SerialBackend};

    const RAM: usize = 8 << 20;

    fn board(fw_cfg: bool) -> Board {
        let mut b = Board::new(RAM, ClockMode::Virtual);
        Chipset::build(
            &mut b,
            ChipsetConfig {
                serial: SerialBackend::none(),
                debugcon: None,
                exit_port: None,
                rtc_start: RtcStart::Fixed(RtcDateTime::from_unix(0)),
                memory_mib: (RAM >> 20) as u32,
                fw_cfg,
                vga: true,
                drives: Drives::default(),
            },
        )
        .expect("chipset");
        b
    }

    /// Starts the descriptor at `desc` (64-bit, as two big-endian halves).
    fn start(b: &mut Board, desc: u64) {
        b.io_write(FW_CFG_DMA_PORT, 4, ((desc >> 32) as u32).swap_bytes());
        b.io_write(FW_CFG_DMA_PORT + 4, 4, (desc as u32).swap_bytes());
    }

    /// Writes a descriptor at `at` (in RAM), starts it and returns the
    /// control word it ends with.
    fn dma(b: &mut Board, at: u32, ctl: u32, len: u32, addr: u64) -> u32 {
        b.write_u32(at, ctl.swap_bytes());
        b.write_u32(at + 4, len.swap_bytes());
        b.write_u32(at + 8, ((addr >> 32) as u32).swap_bytes());
        b.write_u32(at + 12, (addr as u32).swap_bytes());
        start(b, u64::from(at));
        b.read_u32(at).swap_bytes()
    }

    const READ_SIGNATURE: u32 = control::SELECT | control::READ;

    #[test]
    fn dma_into_a_code_page_bumps_its_code_generation() {
        let mut b = board(true);
        b.mark_code_page(0x20);
        b.mark_code_page(0x21);
        let (g0, g1, e0) = (
            b.code_generation(0x20),
            b.code_generation(0x21),
            b.ram.code_epoch(),
        );
        assert_eq!(dma(&mut b, 0x1000, READ_SIGNATURE, 4, 0x2_0000), 0);
        assert_eq!(b.read_u32(0x2_0000), u32::from_le_bytes(*b"QEMU"));
        assert_ne!(b.code_generation(0x20), g0, "the JIT would see the write");
        assert_ne!(b.ram.code_epoch(), e0);
        assert_eq!(
            b.code_generation(0x21),
            g1,
            "a page not written keeps its code"
        );
        // A page-table page written by DMA is reported as the CPU's are.
        b.mark_page_table(0x30);
        let mut pt = Vec::new();
        b.take_pt_writes(&mut pt);
        assert_eq!(dma(&mut b, 0x1000, READ_SIGNATURE, 4, 0x3_0010), 0);
        b.take_pt_writes(&mut pt);
        assert_eq!(pt, vec![0x30]);
    }

    #[test]
    fn destinations_outside_ram_set_error_and_write_nothing() {
        let mut b = board(true);
        let lapic_id = b.read_u32(0xFEE0_0020);
        let rom = b.read_u32(0xF_0000);
        for addr in [
            RAM as u64 - 2, // runs off the end of RAM
            RAM as u64,     // beyond RAM
            0xFEE0_0000,    // the local APIC
            0xFEC0_0000,    // the I/O APIC
            0xA_0000,       // the VGA window
            0xF_0000,       // the BIOS area (ROM)
            0xFFFF_FFFE,    // wraps at 4 GiB
            0x1_0000_0000,  // above 4 GiB
            u64::MAX - 1,   // wraps at 2^64
        ] {
            assert_eq!(
                dma(&mut b, 0x1000, READ_SIGNATURE, 4, addr),
                control::ERROR,
                "{addr:#x}"
            );
        }
        assert_eq!(b.read_u16(RAM as u32 - 2), 0, "nothing at the end of RAM");
        assert_eq!(b.read_u32(0xFEE0_0020), lapic_id);
        assert_eq!(b.read_u32(0xF_0000), rom);
        // A huge length from inside RAM: the item, then zeros that do not fit.
        let sel = 0x20 << 16 | control::SELECT | control::READ;
        assert_eq!(dma(&mut b, 0x1000, sel, u32::MAX, 0x4_0000), control::ERROR);
        // Descriptors that are not in RAM: nothing happens, nothing panics.
        for desc in [
            RAM as u64,
            0xFEE0_0000,
            0xFEC0_0000,
            0xFFFF_FFF8,
            u64::MAX - 3,
        ] {
            start(&mut b, desc);
        }
        assert_eq!(b.read_u32(0xFEE0_0020), lapic_id);
        // The device still answers.
        b.io_write(FW_CFG_PORT, 2, u32::from(key::SIGNATURE));
        assert_eq!(b.io_read(FW_CFG_PORT + 1, 1), u32::from(b'Q'));
    }

    #[test]
    fn dma_and_traditional_reads_agree() {
        let mut b = board(true);
        let ctl = u32::from(key::FILE_DIR) << 16 | control::SELECT | control::READ;
        assert_eq!(dma(&mut b, 0x1000, ctl, 4 + 7 * 64, 0x2_0000), 0);
        b.io_write(FW_CFG_PORT, 2, u32::from(key::FILE_DIR));
        for i in 0..4 + 7 * 64 {
            assert_eq!(b.read_u8(0x2_0000 + i), b.io_read(FW_CFG_PORT + 1, 1) as u8);
        }
        assert_eq!(b.read_u32(0x2_0000).swap_bytes(), 7, "seven files");
        let sig = u64::from(b.io_read(FW_CFG_DMA_PORT, 4).swap_bytes()) << 32
            | u64::from(b.io_read(FW_CFG_DMA_PORT + 4, 4).swap_bytes());
        assert_eq!(sig, DMA_SIGNATURE);
    }

    #[test]
    fn without_fw_cfg_the_ports_are_open_bus() {
        let mut b = board(false);
        b.io_write(FW_CFG_PORT, 2, 0);
        assert_eq!(b.io_read(FW_CFG_PORT + 1, 1), 0xFF);
        assert_eq!(b.io_read(FW_CFG_DMA_PORT, 4), 0xFFFF_FFFF);
    }

    /// Seeded random traffic on 0x510..0x51B: selectors, data reads, and
    /// DMA descriptors anywhere (in RAM, beyond it, in MMIO, wrapping at
    /// 4 GiB and 2^64) with any control word and length, never panics, and
    /// the device keeps answering.
    #[test]
    fn random_traffic_never_panics() {
        let mut b = board(true);
        let mut x: u64 = 0x5851_F42D_4C95_7F2D;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let places = [
            0,
            0x1000,
            RAM as u64 - 16,
            RAM as u64 - 3,
            RAM as u64,
            0xA_0000,
            0xF_FFF8,
            0xFEC0_0000,
            0xFEE0_0000,
            0xFEE0_0FF8,
            0xFFFF_FFF0,
            0xFFFF_FFFF,
            0x1_0000_0000,
            u64::MAX - 15,
            u64::MAX,
        ];
        let lengths = [0, 1, 3, 16, 0x1000, 0x10_0000, 0x7FFF_FFFF, u32::MAX];
        // Transfers that completed, and that ended in ERROR.
        let mut outcomes = [0u32; 2];
        for _ in 0..50_000 {
            let r = next();
            let pick = |n: usize, s: u32| (r >> s) as usize % n;
            match r % 8 {
                0 => b.io_write(FW_CFG_PORT, 2, (r >> 8) as u32),
                1 | 2 => {
                    let _ = b.io_read(FW_CFG_PORT + (r >> 8) as u16 % 2, 1);
                }
                3 => {
                    let port = FW_CFG_PORT + (r >> 8) as u16 % 12;
                    let size = [1u8, 2, 4][pick(3, 12)];
                    if r >> 20 & 1 == 0 {
                        b.io_write(port, size, (r >> 32) as u32);
                    } else {
                        let _ = b.io_read(port, size);
                    }
                }
                _ => {
                    // A descriptor: in RAM (random or fixed place), or not.
                    let desc = if r >> 8 & 3 == 0 {
                        places[pick(places.len(), 10)]
                    } else {
                        ((r >> 16) % (RAM as u64 - 16)) & !3
                    };
                    let ctl = match pick(4, 40) {
                        0 => (r >> 20) as u32,
                        _ => {
                            (next() as u32 & 0x3F_0000) | [2u32, 4, 8, 0x10, 0xA, 0x1E][pick(6, 44)]
                        }
                    };
                    let len = match pick(3, 50) {
                        0 => next() as u32,
                        _ => lengths[pick(lengths.len(), 54)],
                    };
                    let addr = match pick(3, 58) {
                        0 => next(),
                        1 => places[pick(places.len(), 60)],
                        _ => next() % RAM as u64,
                    };
                    if desc.checked_add(16).is_some_and(|end| end <= RAM as u64) {
                        outcomes[usize::from(dma(&mut b, desc as u32, ctl, len, addr) != 0)] += 1;
                    } else {
                        start(&mut b, desc);
                    }
                }
            }
        }
        assert!(outcomes[0] > 1000 && outcomes[1] > 1000, "{outcomes:?}");
        b.io_write(FW_CFG_PORT, 2, u32::from(key::SIGNATURE));
        let sig: Vec<u8> = (0..4).map(|_| b.io_read(FW_CFG_PORT, 1) as u8).collect();
        assert_eq!(sig, b"QEMU");
    }
}
