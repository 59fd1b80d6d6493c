//! Debug aid: boots a kernel (bzImage or Multiboot) and prints where the CPU
//! is every N instructions, plus every exception (first M).
//! `probe KERNEL [INITRD] [CMDLINE] [EVERY] [MAX_EXC]`
use morph86_cpu::{SegReg, StepOutcome};
use morph86_devices::{SerialBackend, SharedBuffer};
use morph86_machine::{Machine, MachineConfig};

fn main() {
    let a: Vec<String> = std::env::args().collect();
    let kernel = std::fs::read(&a[1]).unwrap_or_default();
    let initrd = a
        .get(2)
        .filter(|s| !s.is_empty())
        .and_then(|p| std::fs::read(p).ok());
    let cmdline = a.get(3).cloned().unwrap_or_default();
    let every: u64 = a.get(4).and_then(|v| v.parse().ok()).unwrap_or(50_000_000);
    let max_exc: u32 = a.get(5).and_then(|v| v.parse().ok()).unwrap_or(30);
    let total: u64 = a.get(6).and_then(|v| v.parse().ok()).unwrap_or(500_000_000);
    let out = SharedBuffer::new();
    let Ok(mut m) = Machine::new(MachineConfig {
        no_reboot: true,
        serial: SerialBackend::buffer(out.clone(), None),
        ..Default::default()
    }) else {
        return;
    };
    let r = if morph86_machine::linux::is_bzimage(&kernel) {
        m.boot_linux(kernel, initrd, &cmdline)
    } else {
        m.boot_multiboot(kernel, &cmdline, vec![]).map(|_| ())
    };
    if let Err(e) = r {
        eprintln!("{e}");
        return;
    }
    let mut exc = 0;
    let mut printed = 0;
    while m.cpu.icount < total {
        m.board.time.set(m.cpu.icount);
        let o = m.cpu.step(&mut m.board);
        let s = &m.cpu.state;
        match o {
            StepOutcome::Exception(f) if exc < max_exc => {
                exc += 1;
                println!(
                    "[{}] exception {f} -> {:04x}:{:08x} cr2 {:08x}",
                    m.cpu.icount,
                    s.seg(SegReg::Cs).selector,
                    s.eip,
                    s.cr2
                );
            }
            StepOutcome::TripleFault(f) => {
                println!(
                    "[{}] triple fault {f} at {:04x}:{:08x}",
                    m.cpu.icount,
                    s.seg(SegReg::Cs).selector,
                    s.eip
                );
                break;
            }
            StepOutcome::Halted => {
                println!(
                    "[{}] halted at {:08x} IF={}",
                    m.cpu.icount,
                    s.eip,
                    s.eflags >> 9 & 1
                );
                break;
            }
            _ => {}
        }
        if m.cpu.icount % every == 0 {
            println!(
                "[{}] at {:04x}:{:08x} cr0 {:08x} cr3 {:08x} eflags {:08x}",
                m.cpu.icount,
                s.seg(SegReg::Cs).selector,
                s.eip,
                s.cr0,
                s.cr3,
                s.eflags
            );
        }
        let t = out.contents();
        if t.len() > printed {
            print!("{}", String::from_utf8_lossy(&t[printed..]));
            printed = t.len();
        }
    }
}
