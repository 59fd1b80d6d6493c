//! Shared by the debugging examples: boot a kernel with COM1 captured (and
//! fed from a channel), type lines, and run until the output shows a text.
#![allow(dead_code)] // each example uses its own part

use morph86_devices::{SerialBackend, SharedBuffer};
use morph86_machine::{Machine, MachineConfig, RunExit, RunLimits};
use std::sync::mpsc::Sender;

/// The test guest's shell prompt.
pub const PROMPT: &str = "morph86# ";

/// A booted machine with its serial console.
pub struct Session {
    /// The machine.
    pub m: Machine,
    /// Everything COM1 sent.
    pub out: SharedBuffer,
    /// Bytes for COM1 to receive.
    pub input: Sender<u8>,
}

/// Boots `kernel` (a bzImage, or else a Multiboot kernel) with an optional
/// initrd file and a command line.
pub fn boot(kernel: &str, initrd: Option<&str>, cmdline: &str) -> Result<Session, String> {
    let image = std::fs::read(kernel).map_err(|e| format!("{kernel}: {e}"))?;
    let initrd = match initrd.filter(|p| !p.is_empty()) {
        Some(p) => Some(std::fs::read(p).map_err(|e| format!("{p}: {e}"))?),
        None => None,
    };
    let out = SharedBuffer::new();
    let (input, rx) = std::sync::mpsc::channel();
    // MORPH86_ENGINE=jit picks the engine for these debugging aids.
    let engine = std::env::var("MORPH86_ENGINE")
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or_default();
    let mut m = Machine::new(MachineConfig {
        no_reboot: true,
        serial: SerialBackend::buffer(out.clone(), Some(rx)),
        engine,
        ..Default::default()
    })
    .map_err(|e| e.to_string())?;
    if morph86_machine::linux::is_bzimage(&image) {
        m.boot_linux(image, initrd, cmdline)
    } else {
        m.boot_multiboot(image, cmdline, vec![]).map(|_| ())
    }
    .map_err(|e| e.to_string())?;
    Ok(Session { m, out, input })
}

impl Session {
    /// Sends `line` and a newline to COM1; returns the output length before.
    pub fn type_line(&self, line: &str) -> usize {
        let from = self.out.contents().len();
        for b in line.bytes().chain([b'\n']) {
            let _ = self.input.send(b);
        }
        from
    }

    /// Runs in slices of `slice` instructions, calling `each` after every
    /// slice, until the output after byte `from` contains `pat` (`None`), or
    /// `budget` instructions ran or the guest stopped (`Some`).
    pub fn run_until(
        &mut self,
        from: usize,
        pat: &str,
        budget: u64,
        slice: u64,
        mut each: impl FnMut(&Machine),
    ) -> Option<RunExit> {
        let end = self.m.cpu.icount + budget;
        // Looking at the output costs a copy: do it every 20 M instructions.
        let look = (20_000_000 / slice.max(1)).max(1);
        let mut n = 0u64;
        while self.m.cpu.icount < end {
            if n.is_multiple_of(look)
                && String::from_utf8_lossy(&self.out.contents()[from..]).contains(pat)
            {
                return None;
            }
            n += 1;
            let e = self.m.run(RunLimits {
                max_insns: Some(self.m.cpu.icount + slice),
                timeout: None,
            });
            each(&self.m);
            if e != RunExit::InstructionLimit {
                return Some(e);
            }
        }
        Some(RunExit::InstructionLimit)
    }
}
