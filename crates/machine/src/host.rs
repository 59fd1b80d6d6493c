//! The host's side of a running machine: input from a front end (keys,
//! mouse) and the hook a front end gets at the host check points.
//!
//! Determinism: host input reaches the guest only at the machine's host
//! check points (every [`crate::machine::CHECK_INTERVAL`] instructions
//! counted from power-on, and while the CPU is halted), never in the middle
//! of an engine's batch. A run is then a function of its inputs and the
//! instruction counts at which they arrived. Rendering the screen for a
//! window at a check point changes nothing the guest can see (it collects
//! video memory's dirty pages, which only decides which framebuffer writes
//! take the slow path).
//!
//! The machine knows no window: a front end implements [`HostLink`] and
//! talks to its user interface however it likes (the window crate uses
//! channels).

use crate::machine::{Machine, RunExit};

/// Input from the host for the guest's devices.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HostInput {
    /// A key pressed or released, as scan code set 2 bytes (make, or
    /// `F0` break, with `E0` prefixes); the 8042 translates to set 1 when
    /// the guest asked for it.
    Key(Vec<u8>),
    /// Relative mouse movement and the buttons held.
    Mouse {
        /// Movement to the right.
        dx: i32,
        /// Movement up (the PS/2 convention).
        dy: i32,
        /// Wheel movement, positive down.
        dz: i32,
        /// Buttons held: bit 0 left, 1 right, 2 middle.
        buttons: u8,
    },
}

/// A front end's hook, called at every host check point of
/// [`Machine::run`] (install it with [`Machine::set_host_link`]).
///
/// The hook may hand input to the guest ([`Machine::host_input`]), render
/// and read the screen, look at the instruction count, block (a pause), or
/// end the run by returning a [`RunExit`] (usually
/// [`RunExit::Stopped`]). It is called often while the CPU is halted, so
/// it must be cheap when there is nothing to do.
pub trait HostLink: Send {
    /// The check point's work; `Some` ends the run with that exit.
    fn check(&mut self, m: &mut Machine) -> Option<RunExit>;
}

impl Machine {
    /// Hands `input` to the device it is for (the 8042's keyboard or
    /// mouse). Call it only between runs or from a [`HostLink`], so that it
    /// lands at a check point.
    pub fn host_input(&mut self, input: &HostInput) {
        let dev = self.chipset_i8042();
        match *input {
            HostInput::Key(ref bytes) => dev.key_event(bytes),
            HostInput::Mouse {
                dx,
                dy,
                dz,
                buttons,
            } => dev.mouse_event_wheel(dx, dy, dz, buttons),
        }
        self.devices_changed();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::machine::{MachineConfig, RunLimits, CHECK_INTERVAL};
    use std::sync::{Arc, Mutex};

    use crate::multiboot::test_kernel as kernel;

    /// Sends one key at the first check point after `at` instructions, and
    /// records where each check point fell.
    struct Typist {
        at: u64,
        sent: Option<u64>,
        checks: Arc<Mutex<Vec<u64>>>,
    }

    impl HostLink for Typist {
        fn check(&mut self, m: &mut Machine) -> Option<RunExit> {
            let icount = m.cpu.icount;
            self.checks.lock().unwrap().push(icount);
            if self.sent.is_none() && icount >= self.at {
                // 'A' down in set 2.
                m.host_input(&HostInput::Key(vec![0x1C]));
                self.sent = Some(icount);
            }
            None
        }
    }

    /// A guest that polls the 8042 for a byte and reports it through the
    /// exit device sees the host's key (in set 2: without a BIOS, nothing
    /// turned the 8042's translation on), and the key arrives at a check
    /// point: a multiple of the check interval.
    #[test]
    fn keys_arrive_at_check_points_in_set_2() {
        let mut m = Machine::new(MachineConfig {
            memory_mib: 4,
            no_reboot: true,
            exit_port: Some(crate::machine::EXIT_PORT),
            ..Default::default()
        })
        .unwrap();
        let code = [
            0xE4, 0x64, // poll: in al, 0x64
            0xA8, 0x01, // test al, 1
            0x74, 0xFA, // jz poll
            0xE4, 0x60, // in al, 0x60
            0xE6, 0xF4, // out 0xf4, al
        ];
        m.boot_multiboot(kernel(&code), "", vec![]).unwrap();
        let checks = Arc::new(Mutex::new(Vec::new()));
        m.set_host_link(Some(Box::new(Typist {
            at: 100_000,
            sent: None,
            checks: checks.clone(),
        })));
        let exit = m.run(RunLimits {
            max_insns: Some(10_000_000),
            timeout: None,
        });
        // Set 2 make code of A is 0x1C: status (0x1C << 1) | 1.
        assert_eq!(exit, RunExit::ExitDevice(0x39));
        let checks = checks.lock().unwrap();
        assert!(checks.iter().all(|c| c % CHECK_INTERVAL == 0), "{checks:?}");
        assert_eq!(checks.last(), Some(&(2 * CHECK_INTERVAL)));
    }

    /// A link can end the run.
    #[test]
    fn a_link_can_stop_the_run() {
        struct Quit;
        impl HostLink for Quit {
            fn check(&mut self, m: &mut Machine) -> Option<RunExit> {
                (m.cpu.icount >= 3 * CHECK_INTERVAL).then_some(RunExit::Stopped)
            }
        }
        let mut m = Machine::new(MachineConfig {
            memory_mib: 4,
            no_reboot: true,
            ..Default::default()
        })
        .unwrap();
        m.boot_multiboot(kernel(&[0xEB, 0xFE]), "", vec![]).unwrap();
        m.set_host_link(Some(Box::new(Quit)));
        let exit = m.run(RunLimits::default());
        assert_eq!(exit, RunExit::Stopped);
        assert_eq!(m.cpu.icount, 3 * CHECK_INTERVAL);
    }
}
