//! morph86's BIOS from power-on: POST to the boot attempt and its message
//! on the screen and the debug port; the services, called by an option ROM
//! (roms/bios/services.S) that POST runs, checked against the machine's
//! own description of itself (e820 map, ACPI/MP/SMBIOS tables); resets
//! through POST; PAM shadowing as the guest leaves it; the two engines
//! agreeing; and `--bios` with a bare ROM (roms/bios/bare.S).

use morph86_cpu::{Bus, SegReg};
use morph86_devices::{Device, ImageMode, ImageSpec, OutputSink, SerialBackend, SharedBuffer};
use morph86_machine::bios::{BootDevice, DEFAULT_BOOT_ORDER};
use morph86_machine::firmware::{build_tables, BoardDescription};
use morph86_machine::{Drives, EngineKind, EventLog, Machine, MachineConfig, RunExit, RunLimits};

const RAM_MIB: u32 = 32;
const NO_BOOT: &str = "No bootable device.";

use morph86_tests::{build_roms, roms_dir};

fn rom_file(name: &str) -> Vec<u8> {
    build_roms();
    let p = roms_dir().join("build").join(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The services option ROM with its mode byte, size byte and checksum set.
fn services_rom(mode: u8) -> Vec<u8> {
    let mut r = rom_file("services.bin");
    r.resize((r.len() + 1).div_ceil(512) * 512, 0);
    r[2] = (r.len() / 512) as u8;
    r[6] = mode;
    let sum = r.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    let last = r.len() - 1;
    r[last] = r[last].wrapping_sub(sum);
    r
}

/// Plain memory standing in for the VGA's text buffer at 0xB8000 until a
/// VGA device maps the legacy window.
struct TextBuffer(Vec<u8>);

impl Device for TextBuffer {
    fn name(&self) -> &str {
        "text-buffer"
    }
    fn mmio_read(&mut self, _: u64, off: u64, size: u8) -> u64 {
        (0..u64::from(size)).fold(0, |v, i| {
            v | u64::from(*self.0.get((off + i) as usize).unwrap_or(&0xFF)) << (8 * i)
        })
    }
    fn mmio_write(&mut self, _: u64, off: u64, size: u8, v: u64) {
        for i in 0..u64::from(size) {
            if let Some(b) = self.0.get_mut((off + i) as usize) {
                *b = (v >> (8 * i)) as u8;
            }
        }
    }
}

struct Run {
    m: Machine,
    e9: SharedBuffer,
    log: Option<SharedBuffer>,
    serial: SharedBuffer,
}

fn machine(engine: EngineKind, batch: u64, no_reboot: bool, event_log: bool) -> Run {
    machine_with(engine, batch, no_reboot, event_log, false)
}

fn machine_with(
    engine: EngineKind,
    batch: u64,
    no_reboot: bool,
    event_log: bool,
    no_fw_cfg: bool,
) -> Run {
    let e9 = SharedBuffer::new();
    let serial = SharedBuffer::new();
    let mut m = Machine::new(MachineConfig {
        memory_mib: RAM_MIB,
        serial: SerialBackend::buffer(serial.clone(), None),
        no_fw_cfg,
        debugcon: Some(OutputSink::Buffer(e9.clone())),
        no_reboot,
        engine,
        batch,
        ..Default::default()
    })
    .expect("machine");
    if !m.board.io.claims_mmio(0xB_8000) {
        let id = m.board.io.add(TextBuffer(vec![0; 0x8000]));
        m.board
            .io
            .map_mmio(id, 0xB_8000, 0x8000)
            .expect("text buffer");
    }
    let log = event_log.then(|| {
        let b = SharedBuffer::new();
        m.set_event_log(EventLog::new(Box::new(b.clone())));
        b
    });
    Run { m, e9, log, serial }
}

impl Run {
    /// Runs until the debug port has printed `pattern` `count` times (or
    /// the budget is spent); returns how the last run ended.
    fn until(&mut self, pattern: &str, count: usize, budget: u64) -> RunExit {
        let mut exit = RunExit::InstructionLimit;
        while self.e9.text().matches(pattern).count() < count && self.m.cpu.icount < budget {
            exit = self.m.run(RunLimits {
                max_insns: Some((self.m.cpu.icount + 100_000).min(budget)),
                timeout: None,
            });
            if exit != RunExit::InstructionLimit {
                break;
            }
        }
        exit
    }

    /// The text screen (page 0, 80x25), as read through the bus.
    fn screen(&mut self) -> String {
        let mut s = String::new();
        for row in 0..25u32 {
            for col in 0..80u32 {
                let c = self.m.board.read_u8(0xB_8000 + 2 * (row * 80 + col));
                s.push(if (0x20..0x7F).contains(&c) {
                    c as char
                } else {
                    ' '
                });
            }
            s.push('\n');
        }
        s
    }
}

/// The fields of a `LABEL eax ebx ecx edx flags` line the ROM printed.
fn report(e9: &str, label: &str) -> [u32; 5] {
    let line = e9
        .lines()
        .find(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.len() == 6 && f[0] == label && f[1..].iter().all(|h| h.len() == 8)
        })
        .unwrap_or_else(|| panic!("no {label} line in:\n{e9}"));
    let v: Vec<u32> = line
        .split(' ')
        .skip(1)
        .map(|h| u32::from_str_radix(h, 16).unwrap())
        .collect();
    v.try_into().unwrap_or_else(|_| panic!("bad line {line:?}"))
}

#[test]
fn power_on_post_reaches_the_boot_attempt_and_says_there_is_nothing_to_boot() {
    let mut r = machine(EngineKind::Interp, 0, true, false);
    r.m.boot_bios(None, &DEFAULT_BOOT_ORDER).unwrap();
    assert_eq!(r.m.cpu.state.seg(SegReg::Cs).selector, 0xF000);
    assert_eq!(r.m.cpu.state.seg(SegReg::Cs).base, 0xFFFF_0000);
    assert_eq!(r.m.cpu.state.eip, 0xFFF0);
    r.until(NO_BOOT, 1, 5_000_000);
    let e9 = r.e9.text();
    assert!(e9.contains("morph86 BIOS: POST"), "{e9}");
    for line in [
        "Booting from Hard Disk...",
        "Booting from Floppy...",
        "Booting from DVD/CD...",
        NO_BOOT,
    ] {
        assert!(e9.contains(line), "{line:?} not on the debug port:\n{e9}");
    }
    let screen = r.screen();
    assert!(screen.contains("morph86 BIOS"), "{screen}");
    assert!(screen.contains(NO_BOOT), "{screen}");
    // The BIOS waits for a key with interrupts on: the timer keeps ticking.
    let t0 = r.m.board.read_u32(0x46C);
    let exit = r.m.run(RunLimits {
        max_insns: Some(r.m.cpu.icount + 200_000),
        timeout: None,
    });
    assert_eq!(exit, RunExit::InstructionLimit);
    assert!(
        r.m.board.read_u32(0x46C) > t0,
        "no timer ticks while waiting"
    );
}

/// The services ROM's run: returns the debug port's text.
fn services_run(engine: EngineKind, batch: u64, event_log: bool) -> (String, Option<String>, Run) {
    let mut r = machine(engine, batch, true, event_log);
    r.m.map_option_rom(0xC_8000, services_rom(0)).unwrap();
    r.m.boot_bios(None, &[BootDevice::HardDisk]).unwrap();
    r.until(NO_BOOT, 1, 5_000_000);
    r.m.finish_event_log().unwrap();
    let log = r.log.as_ref().map(SharedBuffer::text);
    (r.e9.text(), log, r)
}

#[test]
fn services_answer_as_the_machine_describes_itself() {
    let (e9, _, mut r) = services_run(EngineKind::Interp, 0, false);
    assert!(e9.contains("DONE"), "{e9}");
    let ram = u64::from(RAM_MIB) << 20;
    let tables = build_tables(
        ram,
        &BoardDescription {
            pm_io_base: morph86_machine::machine::ACPI_PM_BASE,
        },
    )
    .unwrap();
    // INT 15h E820h gives the machine's map, entry for entry.
    let map: Vec<(u64, u64, u32)> = e9
        .lines()
        .filter_map(|l| l.strip_prefix("E820 "))
        .filter(|l| *l != "end")
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            (
                u64::from_str_radix(f[0], 16).unwrap(),
                u64::from_str_radix(f[1], 16).unwrap(),
                u32::from_str_radix(f[2], 16).unwrap(),
            )
        })
        .collect();
    let want: Vec<(u64, u64, u32)> = tables
        .e820
        .iter()
        .map(|e| (e.addr, e.size, e.kind as u32))
        .collect();
    assert_eq!(map, want);
    const CF: u32 = 1;
    const ZF: u32 = 1 << 6;
    assert_eq!(report(&e9, "INT12")[0] & 0xFFFF, 639);
    let eq = report(&e9, "INT11")[0] & 0xFFFF;
    // The board has no parallel port: no printer in the equipment word,
    // and INT 17h answers for a port that is not there (AH = 0, AL kept).
    assert_eq!(eq >> 14, 0, "no printer: {eq:#x}");
    assert_eq!(report(&e9, "INT17")[0] & 0xFFFF, 0x0000, "INT 17h status");
    assert_eq!(eq & 0x30, 0x20, "80x25 colour: {eq:#x}");
    assert_eq!(eq & 2, 2, "an FPU: {eq:#x}");
    assert_eq!(eq >> 9 & 7, 4, "four serial ports: {eq:#x}");
    let e801 = report(&e9, "E801");
    assert_eq!(e801[0] & 0xFFFF, 0x3C00);
    assert_eq!(e801[1] & 0xFFFF, (RAM_MIB - 16) * 16);
    assert_eq!(e801[4] & CF, 0);
    assert_eq!(report(&e9, "INT1588")[0] & 0xFFFF, (RAM_MIB - 1) * 1024);
    // The RTC's date under the virtual clock: 2024-01-01, just after midnight.
    let date = report(&e9, "DATE");
    assert_eq!((date[2] & 0xFFFF, date[3] & 0xFFFF), (0x2024, 0x0101));
    assert_eq!(report(&e9, "TIME")[2] & 0xFF00, 0);
    let pci = report(&e9, "PCI");
    assert_eq!(
        (pci[0] & 0xFFFF, pci[1] & 0xFFFF, pci[3]),
        (0x0001, 0x0210, 0x2049_4350)
    );
    let find = report(&e9, "PCIFIND");
    assert_eq!(
        (find[1] & 0xFFFF, find[4] & CF),
        (0x0008, 0),
        "PIIX3 at 00:01.0"
    );
    assert_eq!(report(&e9, "C0")[2] & 0xFF, 0xFC, "model byte");
    assert_eq!(report(&e9, "A20")[0] & 0xFF, 1);
    assert_eq!(report(&e9, "KBD")[4] & ZF, ZF, "no key waiting");
    let wait = report(&e9, "WAIT");
    assert_eq!(wait[2], 0, "INT 15h 86h failed");
    assert!(
        (1..=3).contains(&(wait[1] & 0xFFFF)),
        "100 ms took {} ticks",
        wait[1] & 0xFFFF
    );
    assert_eq!(report(&e9, "INT13")[4] & CF, CF, "no hard disk yet");
    // Keystrokes through the 8042, IRQ1 and the buffer: 'a', then 'A'.
    let keys = report(&e9, "KEYS");
    assert_eq!(
        (keys[1] & 0xFFFF, keys[2] & 0xFFFF),
        (0x1E61, 0x1E41),
        "{keys:x?}"
    );
    assert_eq!(keys[0] & 0x03, 0, "shift released");
    // INT 15h 87h to 2 MiB and back.
    assert_eq!(report(&e9, "MOVE1")[0] & 0xFF00, 0);
    assert_eq!(report(&e9, "MOVE2")[4] & CF, 0);
    assert!(e9.contains("MOVED BLOCK MOVE TEST!\n"), "{e9}");
    let moved: Vec<u8> = (0..16).map(|i| r.m.board.read_u8(0x20_0000 + i)).collect();
    assert_eq!(&moved, b"BLOCK MOVE TEST!");
    // The PCI IRQ routing table: eight slots, the first device 00:01.
    let pirq = report(&e9, "PIRQ");
    assert_eq!(pirq[0] & 0xFF00, 0);
    assert_eq!(
        (pirq[1] & 0xFFFF, pirq[2] & 0xFFFF, pirq[3] & 0xFFFF),
        (0x0C00, 128, 0x0800)
    );
    // The tables, where a guest's scan finds them, and byte for byte what
    // the machine's firmware module built.
    assert_eq!(report(&e9, "RSDP")[1], tables.acpi_images[0].addr);
    assert_eq!(report(&e9, "MP")[1], 0xF_0100);
    assert_eq!(report(&e9, "SMBIOS")[1], tables.smbios_images[0].addr);
    for p in tables.images() {
        let got: Vec<u8> = (0..p.bytes.len() as u32)
            .map(|i| r.m.board.read_u8(p.addr + i))
            .collect();
        assert!(got == p.bytes, "the table at {:#x} differs", p.addr);
    }
    let screen = r.screen();
    assert!(screen.contains("Hello from the option ROM"), "{screen}");
    assert_eq!(r.serial.text().replace('\r', ""), "INT 14h on COM1\n");
    // PCI as POST left it: PIRQ A-D to IRQ 10, 10, 11, 11; the IDE
    // bus-master BAR and the PM block where the FADT says.
    let cfg = |m: &mut Machine, dev: u32, func: u32, reg: u32| {
        m.board
            .io_write(0xCF8, 4, 0x8000_0000 | dev << 11 | func << 8 | reg);
        m.board.io_read(0xCFC, 4)
    };
    assert_eq!(cfg(&mut r.m, 1, 0, 0x60), 0x0B0B_0A0A);
    assert_eq!(cfg(&mut r.m, 1, 1, 0x20), 0xC001);
    assert_eq!(cfg(&mut r.m, 1, 1, 0x04) & 7, 5, "I/O and bus master on");
    assert_eq!(cfg(&mut r.m, 1, 3, 0x40), 0xB001);
    assert_eq!(cfg(&mut r.m, 1, 3, 0x3C) & 0xFF, 9, "the SCI's IRQ");
}

#[test]
fn without_fw_cfg_post_sizes_memory_from_cmos_and_still_boots() {
    let mut r = machine_with(EngineKind::Interp, 0, true, false, true);
    r.m.map_option_rom(0xC_8000, services_rom(0)).unwrap();
    r.m.boot_bios(None, &[BootDevice::HardDisk]).unwrap();
    r.until(NO_BOOT, 1, 5_000_000);
    let e9 = r.e9.text();
    assert!(e9.contains("fw_cfg: no etc/morph86/acpi"), "{e9}");
    assert_eq!(report(&e9, "INT1588")[0] & 0xFFFF, (RAM_MIB - 1) * 1024);
    assert!(
        e9.contains(&format!(
            "E820 0000000000100000 {:016x} 00000001",
            (u64::from(RAM_MIB) << 20) - 0x10_0000
        )),
        "{e9}"
    );
    assert_eq!(report(&e9, "RSDP")[1], 0, "no ACPI tables without fw_cfg");
    assert!(e9.contains(NO_BOOT));
}

#[test]
fn shadow_ram_is_left_as_the_pam_registers_say() {
    let (_, _, mut r) = services_run(EngineKind::Interp, 0, false);
    let b = &mut r.m.board;
    // F segment: shadow RAM, read-only; E segment: the BIOS's RAM;
    // C0000 (the VGA BIOS) and C8000 (the test ROM): shadowed, read-only.
    let pam = b.upper.pam();
    assert_eq!(pam[0], 0x10, "{pam:x?}");
    assert_eq!(pam[1] & 0x0F, 0x01, "{pam:x?}");
    assert_eq!(pam[2] & 0x0F, 0x01, "{pam:x?}");
    assert_eq!((pam[5], pam[6]), (0x33, 0x33), "{pam:x?}");
    // The tables sit in shadow RAM where the ROM image has nothing.
    let image = b.upper.bios().unwrap().to_vec();
    assert!(image[..8].iter().all(|&x| x == 0));
    let rsdp: Vec<u8> = (0..8).map(|i| b.read_u8(0xF_0000 + i)).collect();
    assert_eq!(&rsdp, b"RSD PTR ");
    b.write_u8(0xF_0000, 0);
    assert_eq!(
        b.read_u8(0xF_0000),
        b'R',
        "the F segment is write-protected"
    );
    b.write_u8(0xC_0000, 0);
    assert_eq!(
        b.read_u16(0xC_0000),
        0xAA55,
        "the VGA BIOS is write-protected"
    );
    let e = b.read_u8(0xE_8000);
    b.write_u8(0xE_8000, !e);
    assert_eq!(b.read_u8(0xE_8000), !e, "the E segment is RAM");
    b.write_u8(0xE_8000, e);
    // The reset vector, through the alias below 4 GiB.
    let v: Vec<u8> = (0..5).map(|i| b.read_u8(0xFFFF_FFF0 + i)).collect();
    assert_eq!(v, [0xEA, 0x5B, 0xE0, 0x00, 0xF0]);
    assert_eq!(&image[0xFFF0..0xFFF5], &v[..]);
}

#[test]
fn a_reset_goes_through_post_again_and_shutdown_code_0a_resumes() {
    let mut r = machine(EngineKind::Interp, 0, false, false);
    r.m.map_option_rom(0xC_8000, services_rom(1)).unwrap();
    r.m.boot_bios(None, &[BootDevice::HardDisk]).unwrap();
    r.until(NO_BOOT, 1, 10_000_000);
    let e9 = r.e9.text();
    let order: Vec<&str> = e9
        .lines()
        .filter(|l| l.starts_with("RESET TEST") || l.starts_with("morph86 BIOS: POST"))
        .collect();
    assert_eq!(
        order,
        [
            "morph86 BIOS: POST",
            "RESET TEST: first POST",
            "RESET TEST: resumed through 40:67",
            "morph86 BIOS: POST",
            "RESET TEST: POST after the cold reset",
        ],
        "{e9}"
    );
    assert_eq!(r.m.resets(), 2);
    assert!(
        e9.ends_with(&format!("{NO_BOOT}\nPress a key to try again.\n")),
        "{e9}"
    );
}

#[test]
fn both_engines_and_any_batch_size_run_the_bios_alike() {
    let (e9, log, _) = services_run(EngineKind::Interp, 0, true);
    let log = log.unwrap();
    assert!(e9.contains("DONE") && !log.is_empty());
    for (what, engine, batch) in [
        ("batch size 1", EngineKind::Interp, 1),
        ("the JIT", EngineKind::Jit, 0),
    ] {
        let (e9b, logb, _) = services_run(engine, batch, true);
        assert_eq!(e9b, e9, "{what}: the debug port differs");
        let logb = logb.unwrap();
        if logb != log {
            let at = log
                .lines()
                .zip(logb.lines())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            panic!(
                "{what}: the event logs differ at line {at}:\n{:?}\n{:?}",
                log.lines().nth(at),
                logb.lines().nth(at)
            );
        }
    }
}

#[test]
fn a_bare_rom_runs_from_power_on_with_no_bios_underneath() {
    let rom = rom_file("bare.bin");
    assert_eq!(rom.len(), 64 * 1024);
    let mut r = machine(EngineKind::Interp, 0, true, false);
    r.m.boot_bios(Some(rom), &DEFAULT_BOOT_ORDER).unwrap();
    let exit = r.m.run(RunLimits {
        max_insns: Some(100_000),
        timeout: None,
    });
    assert!(
        matches!(
            exit,
            RunExit::Halted {
                cs: 0xF000,
                interrupts_enabled: false,
                ..
            }
        ),
        "{exit}"
    );
    assert_eq!(
        r.e9.text(),
        "bare ROM: running from the reset vector, no BIOS underneath\n"
    );
    assert!(r.m.cpu.icount < 1000, "{} instructions", r.m.cpu.icount);
    // Images that cannot be a BIOS are refused with a clear error.
    for n in [0, 1000, 48 * 1024, 96 * 1024, 320 * 1024] {
        let e =
            r.m.boot_bios(Some(vec![0; n]), &DEFAULT_BOOT_ORDER)
                .unwrap_err();
        assert!(e.to_string().contains("64 KiB to 256 KiB"), "{e}");
    }
}

/// A disk of `sectors` sectors, each starting with "SECTORnn", and a boot
/// sector at 0 if given.
fn disk_image(sectors: usize, boot: Option<&[u8]>) -> Vec<u8> {
    let mut d = vec![0u8; sectors * 512];
    for s in 0..sectors {
        let tag = format!("SECTOR{:02}", s % 100);
        d[s * 512..s * 512 + 8].copy_from_slice(tag.as_bytes());
    }
    if let Some(b) = boot {
        d[..b.len()].copy_from_slice(b);
    }
    d
}

/// An ISO 9660 image with an El Torito boot record (sector 17), a boot
/// catalogue (sector 20) whose default entry has `media` type and loads
/// `count` virtual sectors of `image` (placed at sector 24).
fn el_torito_iso(image: &[u8], media: u8, count: u16, damage: bool) -> Vec<u8> {
    let n = 24 + image.len().div_ceil(2048) + 8;
    let mut c = vec![0u8; n * 2048];
    let pvd = 16 * 2048;
    c[pvd..pvd + 7].copy_from_slice(b"\x01CD001\x01");
    let brvd = 17 * 2048;
    c[brvd..brvd + 7].copy_from_slice(b"\x00CD001\x01");
    c[brvd + 7..brvd + 30].copy_from_slice(b"EL TORITO SPECIFICATION");
    c[brvd + 0x47..brvd + 0x4B].copy_from_slice(&20u32.to_le_bytes());
    let term = 18 * 2048;
    c[term..term + 7].copy_from_slice(b"\xFFCD001\x01");
    let cat = 20 * 2048;
    let mut v = [0u8; 32];
    v[0] = 1;
    v[4..12].copy_from_slice(b"morph86 ");
    v[30] = 0x55;
    v[31] = 0xAA;
    let sum = v.chunks(2).fold(0u16, |s, w| {
        s.wrapping_add(u16::from_le_bytes([w[0], w[1]]))
    });
    v[28..30].copy_from_slice(&sum.wrapping_neg().to_le_bytes());
    if damage {
        v[28] ^= 0x40;
    }
    c[cat..cat + 32].copy_from_slice(&v);
    let e = cat + 32;
    c[e] = 0x88;
    c[e + 1] = media;
    c[e + 6..e + 8].copy_from_slice(&count.to_le_bytes());
    c[e + 8..e + 12].copy_from_slice(&24u32.to_le_bytes());
    c[24 * 2048..24 * 2048 + image.len()].copy_from_slice(image);
    c
}

/// Image files for the real IDE controller, in a temporary directory
/// that lives as long as the run.
struct Images {
    dir: tempfile::TempDir,
    drives: Drives,
}

impl Images {
    fn new() -> Images {
        Images {
            dir: tempfile::tempdir().expect("temp dir"),
            drives: Drives::default(),
        }
    }

    fn file(&self, name: &str, data: &[u8]) -> ImageSpec {
        let p = self.dir.path().join(name);
        std::fs::write(&p, data).expect("writing an image");
        ImageSpec::new(p, ImageMode::ReadWrite)
    }

    fn hda(mut self, data: &[u8]) -> Images {
        self.drives.hda = Some(self.file("hda.img", data));
        self
    }

    fn fda(mut self, data: &[u8]) -> Images {
        self.drives.fda = Some(self.file("fda.img", data));
        self
    }

    fn cdrom(mut self, data: &[u8]) -> Images {
        let mut spec = self.file("cd.iso", data);
        spec.mode = ImageMode::ReadOnly;
        self.drives.cdrom = Some(spec);
        self
    }
}

/// Runs a machine with the given images on the board's IDE controller and
/// the boot order to the boot sector's "BOOT DONE" or the BIOS's message
/// that nothing boots.
fn boot_with(images: &Images, order: &str) -> Run {
    let e9 = SharedBuffer::new();
    let serial = SharedBuffer::new();
    let mut m = Machine::new(MachineConfig {
        memory_mib: RAM_MIB,
        serial: SerialBackend::buffer(serial.clone(), None),
        debugcon: Some(OutputSink::Buffer(e9.clone())),
        no_reboot: true,
        drives: images.drives.clone(),
        ..Default::default()
    })
    .expect("machine");
    let order = morph86_machine::bios::parse_boot_order(order).unwrap();
    m.boot_bios(None, &order).unwrap();
    let mut r = Run {
        m,
        e9,
        log: None,
        serial,
    };
    r.until("BOOT DONE", 1, 20_000_000);
    if !r.e9.text().contains("BOOT DONE") {
        r.until(NO_BOOT, 1, 20_000_000);
    }
    r
}

#[test]
fn int13_serves_an_ata_disk_and_its_mbr_boots() {
    let boot = rom_file("bootsect.bin");
    let disk = disk_image(32768, Some(&boot));
    let images = Images::new().hda(&disk);
    let mut r = boot_with(&images, "c");
    let e9 = r.e9.text();
    assert!(e9.contains("BOOT 80\n"), "{e9}");
    assert!(e9.contains("GEOM 0000 "), "{e9}");
    assert!(
        e9.contains(" 1F3F 0F01 "),
        "16 heads, 63 sectors, 32 cylinders:\n{e9}"
    );
    assert!(e9.contains("EDD 3000 AA55 0007 "), "{e9}");
    assert!(e9.contains("PARAMS 0042 8000 0200 BEDD "), "{e9}");
    assert!(e9.contains("DATA SECTOR01 "), "42h read of LBA 1:\n{e9}");
    assert!(e9.contains("DATA SECTOR63 "), "02h read of C0 H1 S1:\n{e9}");
    let write = e9.lines().find(|l| l.starts_with("WRITE ")).unwrap();
    assert!(
        write.starts_with("WRITE 00") && write.ends_with("2"),
        "43h: {write}"
    );
    assert!(e9.contains("BOOT DONE"), "{e9}");
    // The write reached the disk: the boot sector as it ran (its code, and
    // its variables as they were), copied to LBA 2.
    r.m.flush();
    let d = std::fs::read(&images.drives.hda.as_ref().unwrap().path).unwrap();
    assert_eq!(&d[2 * 512..2 * 512 + 256], &boot[..256]);
    assert_eq!(&d[2 * 512 + 510..3 * 512], &[0x55, 0xAA]);
    assert_eq!(&d[3 * 512..3 * 512 + 8], b"SECTOR03", "and nothing more");
}

#[test]
fn el_torito_boots_without_emulation() {
    let boot = rom_file("bootsect.bin");
    let iso = el_torito_iso(&boot, 0, 4, false);
    let sectors = iso.len() / 2048;
    let r = boot_with(&Images::new().cdrom(&iso), "d");
    let e9 = r.e9.text();
    assert!(e9.contains("BOOT E0\n"), "{e9}");
    assert!(e9.contains("EDD 3000 AA55 0007 "), "{e9}");
    let params = format!("PARAMS 0042 {sectors:04X} 0800 BEDD ");
    assert!(e9.contains(&params), "{params:?}:\n{e9}");
    assert!(e9.contains("CD001"), "42h read of sector 16:\n{e9}");
    assert!(e9.contains("EMU E000 0018 0004 07C0 "), "4B01h:\n{e9}");
    assert!(e9.contains("BOOT DONE"), "{e9}");
}

#[test]
fn el_torito_floppy_emulation_answers_as_drive_00() {
    let boot = rom_file("bootsect.bin");
    let floppy = disk_image(2880, Some(&boot));
    let iso = el_torito_iso(&floppy, 2, 1, false);
    let r = boot_with(&Images::new().cdrom(&iso), "d");
    let e9 = r.e9.text();
    assert!(e9.contains("BOOT 00\n"), "{e9}");
    assert!(
        e9.contains("GEOM 0000 0004 4F12 0101 "),
        "a 1.44 MB drive:\n{e9}"
    );
    assert!(e9.contains("DATA SECTOR01 "), "{e9}");
    assert!(e9.contains("BOOT DONE"), "{e9}");
}

#[test]
fn a_floppy_boots_through_the_fdc_and_the_8237() {
    let boot = rom_file("bootsect.bin");
    let floppy = disk_image(2880, Some(&boot));
    let r = boot_with(&Images::new().fda(&floppy), "a");
    let e9 = r.e9.text();
    assert!(e9.contains("Booting from Floppy..."), "{e9}");
    assert!(e9.contains("BOOT 00\n"), "{e9}");
    assert!(
        e9.contains("GEOM 0000 0004 4F12 0101 "),
        "a 1.44 MB drive from the CMOS:\n{e9}"
    );
    // CHS 0/0/2 read through the controller's DMA, carry clear.
    let data = e9.lines().find(|l| l.starts_with("DATA ")).unwrap();
    assert!(data.starts_with("DATA SECTOR01 "), "{e9}");
    assert_eq!(
        u16::from_str_radix(data.rsplit(' ').next().unwrap(), 16).unwrap() & 1,
        0,
        "{data}"
    );
    assert!(e9.contains("BOOT DONE"), "{e9}");
}

#[test]
fn boot_failures_are_reported_on_screen() {
    // A disk with no boot signature, and a CD whose catalogue is damaged.
    let boot = rom_file("bootsect.bin");
    let iso = el_torito_iso(&boot, 0, 4, true);
    let images = Images::new().hda(&disk_image(2048, None)).cdrom(&iso);
    let mut r = boot_with(&images, "cd");
    let e9 = r.e9.text();
    let screen = r.screen();
    for msg in [
        "Boot failed: not a bootable disk",
        "Boot failed: the CD's boot catalogue is damaged (bad validation entry)",
        NO_BOOT,
    ] {
        assert!(e9.contains(msg), "{msg:?} not on the debug port:\n{e9}");
        assert!(screen.contains(msg), "{msg:?} not on the screen:\n{screen}");
    }
    assert!(screen.contains("MORPH86 HARDDISK"), "{screen}");
}

#[test]
fn vbe_sets_a_linear_framebuffer_mode_through_int_10h() {
    // roms/bios/vbeboot.S: INT 10h 4F00h/4F01h/4F02h for mode 142h
    // (640x480x32, linear framebuffer), then a pattern drawn from
    // protected mode into the framebuffer the BIOS reported.
    let boot = rom_file("vbeboot.bin");
    let disk = disk_image(2048, Some(&boot));
    let images = Images::new().hda(&disk);
    for engine in [EngineKind::Interp, EngineKind::Jit] {
        let e9 = SharedBuffer::new();
        let mut m = Machine::new(MachineConfig {
            memory_mib: RAM_MIB,
            debugcon: Some(OutputSink::Buffer(e9.clone())),
            no_reboot: true,
            drives: images.drives.clone(),
            engine,
            ..Default::default()
        })
        .expect("machine");
        let order = morph86_machine::bios::parse_boot_order("c").unwrap();
        m.boot_bios(None, &order).unwrap();
        let mut r = Run {
            m,
            e9,
            log: None,
            serial: SharedBuffer::new(),
        };
        r.until("VBE DONE", 1, 50_000_000);
        let e9 = r.e9.text();
        assert!(e9.contains("VBE00 004F 0300"), "VBE 3.0 controller: {e9}");
        // Attributes: supported, colour, graphics, linear framebuffer (and
        // TTY output); 640x480, 32 bpp, 2560 bytes a line; the BAR of the
        // VGA's framebuffer.
        let info = e9.lines().find(|l| l.starts_with("VBE01 ")).expect(&e9);
        let f: Vec<u32> = info
            .split(' ')
            .skip(1)
            .map(|h| u32::from_str_radix(h, 16).unwrap())
            .collect();
        assert_eq!(f[0], 0x4F, "{info}");
        assert_eq!(f[1] & 0x99, 0x99, "{info}");
        assert_eq!(&f[2..6], &[640, 480, 32, 2560], "{info}");
        assert_ne!(f[6] << 16 | f[7], 0, "{info}");
        assert!(e9.contains("VBE02 004F"), "{e9}");
        assert!(e9.contains("VBE DONE"), "{e9}");
        let frame = r.m.screenshot().expect("a display");
        assert_eq!((frame.width, frame.height), (640, 480), "{engine:?}");
        for y in 0..480 {
            for x in 0..640 {
                let want = (x & 0xFF) << 16 | (y & 0xFF) << 8 | ((x ^ y) & 0xFF);
                assert_eq!(frame.pixel(x, y), Some(want), "({x}, {y}) {engine:?}");
            }
        }
    }
}

#[test]
fn el_torito_hard_disk_emulation_answers_as_drive_80() {
    let boot = rom_file("bootsect.bin");
    // Two cylinders of 16 heads and 63 sectors; the BIOS takes the
    // geometry from the first partition's end (C1 H15 S63).
    let sectors = 2 * 16 * 63;
    let mut disk = disk_image(sectors, Some(&boot));
    let mut entry = [0x80, 1, 1, 0, 0x06, 15, 63, 1, 0, 0, 0, 0, 0, 0, 0, 0];
    entry[8..12].copy_from_slice(&63u32.to_le_bytes());
    entry[12..16].copy_from_slice(&(sectors as u32 - 63).to_le_bytes());
    disk[0x1BE..0x1CE].copy_from_slice(&entry);
    let iso = el_torito_iso(&disk, 4, 1, false);
    let r = boot_with(&Images::new().cdrom(&iso), "d");
    let e9 = r.e9.text();
    assert!(e9.contains("BOOT 80\n"), "{e9}");
    assert!(
        e9.contains("GEOM 0000 0000 013F 0F01 "),
        "2 cylinders, 16 heads, 63 sectors:\n{e9}"
    );
    assert!(e9.contains("EDD 3000 AA55 "), "{e9}");
    assert!(e9.contains("DATA SECTOR01 "), "42h read of LBA 1:\n{e9}");
    assert!(e9.contains("DATA SECTOR63 "), "02h read of C0 H1 S1:\n{e9}");
    // The CD is read-only: 43h fails with AH = 03h (write protected), CF.
    let write = e9.lines().find(|l| l.starts_with("WRITE ")).unwrap();
    assert!(write.starts_with("WRITE 03"), "{write}");
    let flags = u32::from_str_radix(write.rsplit(' ').next().unwrap(), 16).unwrap();
    assert_eq!(flags & 1, 1, "{write}");
    assert!(e9.contains("BOOT DONE"), "{e9}");
}
