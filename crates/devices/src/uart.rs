//! A National Semiconductor 16550A UART, as on every PC's COM ports.
//!
//! Registers (offset: DLAB=0 / DLAB=1):
//! 0 RBR (read) / THR (write) / DLL; 1 IER / DLM; 2 IIR (read) / FCR (write);
//! 3 LCR; 4 MCR; 5 LSR; 6 MSR; 7 SCR.
//!
//! Transmission is instantaneous (the byte goes to the back end when THR is
//! written), so THR and the 16-byte transmit FIFO always read as empty and
//! the baud rate only matters to the guest. Received bytes are pulled from
//! the back end into the 16-byte receive FIFO whenever there is room (the
//! back end is flow-controlled; bytes are never dropped), except in loopback
//! mode, where transmitted bytes go to the receive FIFO and can overrun it.
//!
//! Interrupt sources, highest priority first (IIR bits 3..0):
//! receiver line status (0110), received data available (0100) or character
//! timeout (1100), transmitter holding register empty (0010), modem status
//! (0000). Without a clock, a receive FIFO holding fewer bytes than the
//! trigger level reports the character timeout at once, as if four character
//! times had passed.
//!
//! The chip's interrupt output is [`Uart16550::interrupt`]; the PC gates it
//! with MCR.OUT2, which is [`Uart16550::irq_pending`], the level the UART
//! drives on its IRQ line after every access. A transmission that completes
//! while the line is already high gives a fresh edge (THR emptied again),
//! as the guest's edge-triggered PIC expects.

use crate::lines::IrqLine;
use crate::output::{OutputSink, SharedBuffer};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::mpsc::Receiver;

/// Base port of COM1.
pub const COM1_PORT: u16 = 0x3F8;
/// ISA IRQ line of COM1.
pub const COM1_IRQ: u8 = 4;

/// FIFO depth of the 16550A.
const FIFO_LEN: usize = 16;

// IER bits.
const IER_RDA: u8 = 1 << 0;
const IER_THRE: u8 = 1 << 1;
const IER_RLS: u8 = 1 << 2;
const IER_MSR: u8 = 1 << 3;
// LSR bits.
const LSR_DR: u8 = 1 << 0;
const LSR_OE: u8 = 1 << 1;
const LSR_ERRORS: u8 = 0x1E; // OE, PE, FE, BI
const LSR_THRE: u8 = 1 << 5;
const LSR_TEMT: u8 = 1 << 6;
// LCR / MCR bits.
const LCR_DLAB: u8 = 1 << 7;
const MCR_OUT2: u8 = 1 << 3;
const MCR_LOOP: u8 = 1 << 4;
// IIR interrupt identifications.
const IIR_NONE: u8 = 0x01;
const IIR_RLS: u8 = 0x06;
const IIR_RDA: u8 = 0x04;
const IIR_TIMEOUT: u8 = 0x0C;
const IIR_THRE: u8 = 0x02;
const IIR_MSR: u8 = 0x00;
const IIR_FIFO: u8 = 0xC0;

/// The UART's registers and FIFO: plain data, serializable for snapshots.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UartState {
    /// Receive FIFO (one byte deep when FIFOs are disabled).
    pub rx: VecDeque<u8>,
    /// Interrupt enable register (low 4 bits).
    pub ier: u8,
    /// Line control register.
    pub lcr: u8,
    /// Modem control register (low 5 bits).
    pub mcr: u8,
    /// Latched line-status error bits (OE, PE, FE, BI); cleared by reading LSR.
    pub lsr_errors: u8,
    /// Modem status delta bits (low nibble); cleared by reading MSR.
    pub msr_delta: u8,
    /// Scratch register.
    pub scr: u8,
    /// Divisor latch (DLM:DLL).
    pub divisor: u16,
    /// FIFO control as last written (bit 0 enable, bits 6-7 trigger level).
    pub fcr: u8,
    /// A THRE interrupt is latched (cleared by reading IIR or writing THR).
    pub thre_pending: bool,
    /// Transmissions completed: each one ends with THR empty again, which on
    /// real hardware is a fresh rising edge of the interrupt line even when
    /// the write that started it kept the line high throughout.
    #[serde(default)]
    pub tx_done: u64,
}

impl Default for UartState {
    fn default() -> Self {
        UartState {
            rx: VecDeque::with_capacity(FIFO_LEN),
            ier: 0,
            lcr: 0,
            mcr: 0,
            lsr_errors: 0,
            msr_delta: 0,
            scr: 0,
            divisor: 12, // 9600 baud, as firmware leaves it
            fcr: 0,
            thre_pending: false,
            tx_done: 0,
        }
    }
}

/// Where a serial port's bytes go and come from.
#[derive(Debug, Default)]
pub struct SerialBackend {
    /// Transmitted bytes.
    pub out: OutputSink,
    /// Bytes to receive, if any source is attached.
    pub input: Option<Receiver<u8>>,
    /// A copy of every transmitted byte (for `--exit-on-serial` and tests).
    pub tap: Option<SharedBuffer>,
}

impl SerialBackend {
    /// Nothing attached: output is dropped and nothing is ever received.
    pub fn none() -> SerialBackend {
        SerialBackend::default()
    }
    /// Output to stdout; input (optional) from a channel, e.g. fed by a
    /// thread reading the terminal.
    pub fn stdio(input: Option<Receiver<u8>>) -> SerialBackend {
        SerialBackend {
            out: OutputSink::Stdout,
            input,
            tap: None,
        }
    }
    /// Output to a file (created or truncated).
    pub fn file(path: &Path) -> io::Result<SerialBackend> {
        Ok(SerialBackend {
            out: OutputSink::file(path)?,
            input: None,
            tap: None,
        })
    }
    /// Output to a shared buffer, input from an optional channel (tests).
    pub fn buffer(buf: SharedBuffer, input: Option<Receiver<u8>>) -> SerialBackend {
        SerialBackend {
            out: OutputSink::Buffer(buf),
            input,
            tap: None,
        }
    }
}

/// A 16550A UART with its back end.
#[derive(Debug, Default)]
pub struct Uart16550 {
    /// Registers and FIFO.
    pub state: UartState,
    backend: SerialBackend,
    irq: Option<IrqLine>,
}

impl Uart16550 {
    /// The back end (to attach a tap, for example).
    pub fn backend_mut(&mut self) -> &mut SerialBackend {
        &mut self.backend
    }

    /// A UART in its reset state, attached to `backend`.
    pub fn new(backend: SerialBackend) -> Uart16550 {
        Uart16550 {
            state: UartState::default(),
            backend,
            irq: None,
        }
    }

    /// Wires the UART's interrupt output (gated by OUT2) to `irq`.
    pub fn connect_irq(&mut self, irq: IrqLine) {
        self.irq = Some(irq);
        self.drive_irq(false);
    }

    /// Drives the IRQ line; with `fresh_edge`, a high line first drops so
    /// that the controller sees a new request.
    fn drive_irq(&self, fresh_edge: bool) {
        if let Some(l) = &self.irq {
            let level = self.irq_pending();
            if fresh_edge && level {
                l.set(false);
            }
            l.set(level);
        }
    }

    /// Takes received bytes from the back end (at the machine's host check
    /// points) and drives the IRQ line.
    pub fn receive(&mut self) -> bool {
        let got = self.poll_input();
        if got {
            self.drive_irq(false);
        }
        got
    }

    /// Flushes transmitted output.
    pub fn flush(&mut self) {
        self.backend.out.flush();
    }

    fn fifo_enabled(&self) -> bool {
        self.state.fcr & 1 != 0
    }

    fn rx_capacity(&self) -> usize {
        if self.fifo_enabled() {
            FIFO_LEN
        } else {
            1
        }
    }

    fn trigger_level(&self) -> usize {
        if !self.fifo_enabled() {
            return 1;
        }
        [1, 4, 8, 14][usize::from(self.state.fcr >> 6)]
    }

    /// Pulls received bytes from the back end while the FIFO has room.
    /// The machine calls this at its host check points; register reads
    /// also do. True when bytes arrived.
    pub fn poll_input(&mut self) -> bool {
        if self.state.mcr & MCR_LOOP != 0 {
            return false; // the receiver is connected to the transmitter
        }
        let cap = self.rx_capacity();
        let before = self.state.rx.len();
        if let Some(rx) = &self.backend.input {
            while self.state.rx.len() < cap {
                match rx.try_recv() {
                    Ok(b) => self.state.rx.push_back(b),
                    Err(_) => break,
                }
            }
        }
        self.state.rx.len() != before
    }

    /// The modem status inputs (MSR bits 4..7: CTS, DSR, RI, DCD). In
    /// loopback they are RTS, DTR, OUT1 and OUT2; otherwise the back end is
    /// always a connected modem: CTS, DSR and DCD on, RI off.
    fn modem_inputs(&self) -> u8 {
        let m = self.state.mcr;
        if m & MCR_LOOP != 0 {
            ((m & 0x02) << 3) | ((m & 0x01) << 5) | ((m & 0x04) << 4) | ((m & 0x08) << 4)
        } else {
            0xB0
        }
    }

    fn write_mcr(&mut self, v: u8) {
        let before = self.modem_inputs();
        self.state.mcr = v & 0x1F;
        let after = self.modem_inputs();
        let changed = before ^ after;
        let mut delta = 0;
        if changed & 0x10 != 0 {
            delta |= 0x01; // DCTS
        }
        if changed & 0x20 != 0 {
            delta |= 0x02; // DDSR
        }
        if before & 0x40 != 0 && after & 0x40 == 0 {
            delta |= 0x04; // TERI: trailing edge of RI
        }
        if changed & 0x80 != 0 {
            delta |= 0x08; // DDCD
        }
        self.state.msr_delta |= delta;
    }

    fn transmit(&mut self, b: u8) {
        if self.state.mcr & MCR_LOOP != 0 {
            if self.state.rx.len() < self.rx_capacity() {
                self.state.rx.push_back(b);
            } else {
                self.state.lsr_errors |= LSR_OE;
            }
        } else {
            self.backend.out.write_byte(b);
            if let Some(t) = &self.backend.tap {
                t.push(b);
            }
        }
        // The byte left THR at once: THR is empty again.
        self.state.thre_pending = true;
        self.state.tx_done += 1;
    }

    /// The highest-priority pending interrupt (IIR bits 3..0), or `IIR_NONE`.
    fn pending_id(&self) -> u8 {
        let s = &self.state;
        if s.ier & IER_RLS != 0 && s.lsr_errors & LSR_ERRORS != 0 {
            return IIR_RLS;
        }
        if s.ier & IER_RDA != 0 && !s.rx.is_empty() {
            return if s.rx.len() >= self.trigger_level() {
                IIR_RDA
            } else {
                IIR_TIMEOUT
            };
        }
        if s.ier & IER_THRE != 0 && s.thre_pending {
            return IIR_THRE;
        }
        if s.ier & IER_MSR != 0 && s.msr_delta != 0 {
            return IIR_MSR;
        }
        IIR_NONE
    }

    /// The chip's interrupt output (INTR).
    pub fn interrupt(&self) -> bool {
        self.pending_id() != IIR_NONE
    }

    /// The IRQ line as the PC sees it: INTR gated by MCR.OUT2.
    pub fn irq_pending(&self) -> bool {
        self.state.mcr & MCR_OUT2 != 0 && self.interrupt()
    }

    /// Reads register `reg` (0..=7).
    pub fn read_reg(&mut self, reg: u16) -> u8 {
        let dlab = self.state.lcr & LCR_DLAB != 0;
        match reg {
            0 if dlab => self.state.divisor as u8,
            0 => {
                self.poll_input();
                let b = self.state.rx.pop_front().unwrap_or(0);
                self.poll_input();
                b
            }
            1 if dlab => (self.state.divisor >> 8) as u8,
            1 => self.state.ier,
            2 => {
                self.poll_input();
                let id = self.pending_id();
                if id == IIR_THRE {
                    // Reading IIR while THRE is the source clears it.
                    self.state.thre_pending = false;
                }
                let fifo = if self.fifo_enabled() { IIR_FIFO } else { 0 };
                id | fifo
            }
            3 => self.state.lcr,
            4 => self.state.mcr,
            5 => {
                self.poll_input();
                let mut v = self.state.lsr_errors | LSR_THRE | LSR_TEMT;
                if !self.state.rx.is_empty() {
                    v |= LSR_DR;
                }
                self.state.lsr_errors = 0;
                v
            }
            6 => {
                let v = self.modem_inputs() | self.state.msr_delta;
                self.state.msr_delta = 0;
                v
            }
            _ => self.state.scr,
        }
    }

    /// Writes register `reg` (0..=7).
    pub fn write_reg(&mut self, reg: u16, v: u8) {
        let dlab = self.state.lcr & LCR_DLAB != 0;
        match reg {
            0 if dlab => self.state.divisor = (self.state.divisor & 0xFF00) | u16::from(v),
            0 => self.transmit(v),
            1 if dlab => self.state.divisor = (self.state.divisor & 0x00FF) | u16::from(v) << 8,
            1 => {
                let old = self.state.ier;
                self.state.ier = v & 0x0F;
                // Enabling the THRE interrupt while THR is empty raises it.
                if old & IER_THRE == 0 && v & IER_THRE != 0 {
                    self.state.thre_pending = true;
                }
            }
            2 => {
                let was = self.fifo_enabled();
                if (v & 1 != 0) != was || v & 0x02 != 0 {
                    self.state.rx.clear();
                }
                self.state.fcr = v & 0xC1;
                self.poll_input();
            }
            3 => self.state.lcr = v,
            4 => self.write_mcr(v),
            5 | 6 => {} // LSR and MSR are read-only (factory test writes ignored)
            _ => self.state.scr = v,
        }
    }
}

impl crate::bus::Device for Uart16550 {
    fn pio_read(&mut self, _base: u16, off: u16, size: u8) -> u32 {
        // Wider accesses read consecutive registers, as the ISA bus splits them.
        let v = (0..u16::from(size)).fold(0, |acc, i| {
            acc | u32::from(self.read_reg((off + i) & 7)) << (8 * i)
        });
        self.drive_irq(false);
        v
    }
    fn pio_write(&mut self, _base: u16, off: u16, size: u8, value: u32) {
        let sent = self.state.tx_done;
        for i in 0..u16::from(size) {
            self.write_reg((off + i) & 7, (value >> (8 * i)) as u8);
        }
        self.drive_irq(self.state.tx_done != sent);
    }
    fn reset(&mut self) {
        self.state = UartState::default();
        self.drive_irq(false);
    }
    fn name(&self) -> &str {
        "uart16550"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::Device;
    use std::sync::mpsc;

    fn uart() -> (Uart16550, SharedBuffer) {
        let buf = SharedBuffer::new();
        (
            Uart16550::new(SerialBackend::buffer(buf.clone(), None)),
            buf,
        )
    }

    #[test]
    fn transmit_goes_to_backend() {
        let (mut u, buf) = uart();
        for b in b"PASS x\n" {
            assert_ne!(u.read_reg(5) & LSR_THRE, 0);
            u.write_reg(0, *b);
        }
        assert_eq!(buf.text(), "PASS x\n");
        assert_eq!(u.read_reg(5), LSR_THRE | LSR_TEMT);
    }

    #[test]
    fn divisor_latch_shadows_rbr_and_ier() {
        let (mut u, buf) = uart();
        u.write_reg(1, 0x05);
        u.write_reg(3, 0x83);
        u.write_reg(0, 0x01);
        u.write_reg(1, 0x00);
        assert_eq!(u.state.divisor, 1);
        assert_eq!((u.read_reg(0), u.read_reg(1)), (1, 0));
        u.write_reg(3, 0x03);
        assert_eq!(u.read_reg(1), 0x05, "IER kept");
        assert_eq!(buf.text(), "", "divisor writes are not transmitted");
    }

    #[test]
    fn loopback_echo_and_overrun() {
        let (mut u, buf) = uart();
        u.write_reg(4, MCR_LOOP);
        u.write_reg(0, b'A');
        assert_eq!(u.read_reg(5) & LSR_DR, LSR_DR);
        assert_eq!(u.read_reg(0), b'A');
        assert_eq!(u.read_reg(5) & LSR_DR, 0);
        // Without FIFOs the receiver holds one byte: a second one overruns.
        u.write_reg(0, 1);
        u.write_reg(0, 2);
        assert_eq!(u.read_reg(5) & (LSR_OE | LSR_DR), LSR_OE | LSR_DR);
        assert_eq!(u.read_reg(5) & LSR_OE, 0, "OE clears on read");
        assert_eq!(u.read_reg(0), 1);
        // With FIFOs, 16 bytes fit.
        u.write_reg(2, 0x07);
        for i in 0..17 {
            u.write_reg(0, i);
        }
        assert_eq!(u.state.rx.len(), 16);
        assert_ne!(u.read_reg(5) & LSR_OE, 0);
        assert_eq!(buf.text(), "", "loopback sends nothing out");
    }

    #[test]
    fn loopback_modem_lines_and_deltas() {
        let (mut u, _) = uart();
        u.write_reg(4, MCR_LOOP);
        let _ = u.read_reg(6);
        u.write_reg(4, MCR_LOOP | 0x0F);
        // CTS, DSR, RI, DCD on, with DCTS, DDSR, DDCD (no TERI on a rising edge).
        assert_eq!(u.read_reg(6), 0xF0 | 0x0B);
        assert_eq!(u.read_reg(6), 0xF0);
        u.write_reg(4, MCR_LOOP | 0x0B); // RI falls
        assert_eq!(u.read_reg(6), 0xB4);
    }

    #[test]
    fn interrupt_priority_and_iir() {
        let (mut u, _) = uart();
        u.write_reg(4, MCR_LOOP | MCR_OUT2);
        let _ = u.read_reg(6);
        assert_eq!(u.read_reg(2), IIR_NONE);
        assert!(!u.irq_pending());
        // Enabling THRE with THR empty raises it; reading IIR clears it.
        u.write_reg(1, IER_THRE);
        assert!(u.irq_pending());
        assert_eq!(u.read_reg(2), IIR_THRE);
        assert_eq!(u.read_reg(2), IIR_NONE);
        // Received data outranks THRE; line status outranks received data.
        u.write_reg(1, IER_RDA | IER_THRE | IER_RLS | IER_MSR);
        u.write_reg(0, 7); // loops back, THR empties again
        u.write_reg(0, 8); // overrun
        assert_eq!(u.read_reg(2), IIR_RLS);
        let _ = u.read_reg(5);
        assert_eq!(u.read_reg(2), IIR_RDA);
        assert_eq!(u.read_reg(0), 7);
        assert_eq!(u.read_reg(2), IIR_THRE);
        assert_eq!(u.read_reg(2), IIR_NONE);
        // Modem status is lowest.
        u.write_reg(4, MCR_LOOP | MCR_OUT2 | 0x01);
        assert_eq!(u.read_reg(2), IIR_MSR);
        let _ = u.read_reg(6);
        assert_eq!(u.read_reg(2), IIR_NONE);
        // OUT2 gates the PC's IRQ line but not the chip's output.
        u.write_reg(4, MCR_LOOP | 0x01);
        assert!(u.interrupt());
        assert!(!u.irq_pending());
    }

    #[test]
    fn fifo_trigger_level_and_timeout() {
        let (mut u, _) = uart();
        u.write_reg(4, MCR_LOOP);
        u.write_reg(2, 0x81); // FIFO on, trigger 8
        u.write_reg(1, IER_RDA);
        assert_eq!(u.read_reg(2), IIR_FIFO | IIR_NONE);
        for i in 0..7 {
            u.write_reg(0, i);
        }
        assert_eq!(u.read_reg(2), IIR_FIFO | IIR_TIMEOUT);
        u.write_reg(0, 7);
        assert_eq!(u.read_reg(2), IIR_FIFO | IIR_RDA);
        u.write_reg(2, 0x83); // clear the receive FIFO
        assert_eq!(u.read_reg(5) & LSR_DR, 0);
    }

    #[test]
    fn receives_from_channel() {
        let (tx, rx) = mpsc::channel();
        let mut u = Uart16550::new(SerialBackend::buffer(SharedBuffer::new(), Some(rx)));
        for b in b"hello" {
            tx.send(*b).unwrap();
        }
        let mut got = Vec::new();
        while u.read_reg(5) & LSR_DR != 0 {
            got.push(u.read_reg(0));
        }
        assert_eq!(got, b"hello");
    }

    #[test]
    fn port_io_and_serde_state() {
        let (mut u, buf) = uart();
        u.pio_write(0x3F8, 7, 1, 0x5A);
        assert_eq!(u.pio_read(0x3F8, 7, 1), 0x5A);
        u.pio_write(0x3F8, 0, 2, u32::from(b'Z')); // THR then IER
        assert_eq!(buf.text(), "Z");
        let json = serde_json::to_string(&u.state).unwrap();
        let back: UartState = serde_json::from_str(&json).unwrap();
        assert_eq!(back, u.state);
    }
}
