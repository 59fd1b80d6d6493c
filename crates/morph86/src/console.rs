//! The serial console's host side: standard input in raw terminal mode with
//! QEMU's escape (Ctrl-A x quits, Ctrl-A Ctrl-A sends Ctrl-A), and a TCP
//! back end.

use morph86_devices::{OutputSink, SerialBackend, SharedWriter};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;

/// Puts the terminal on standard input in raw mode (when it is a terminal)
/// and restores it when dropped, so the guest sees every key.
pub struct RawTerminal {
    saved: Option<libc::termios>,
}

impl RawTerminal {
    /// Enters raw mode if standard input is a terminal.
    pub fn enter() -> RawTerminal {
        // SAFETY: isatty/tcgetattr/tcsetattr only read or write the termios
        // struct we pass, which lives on our stack for the calls.
        unsafe {
            if libc::isatty(0) != 1 {
                return RawTerminal { saved: None };
            }
            let mut t: libc::termios = std::mem::zeroed();
            if libc::tcgetattr(0, &mut t) != 0 {
                return RawTerminal { saved: None };
            }
            let saved = t;
            libc::cfmakeraw(&mut t);
            // Keep output post-processing so the host terminal's newlines work.
            t.c_oflag |= libc::OPOST;
            if libc::tcsetattr(0, libc::TCSANOW, &t) != 0 {
                return RawTerminal { saved: None };
            }
            RawTerminal { saved: Some(saved) }
        }
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        if let Some(t) = self.saved {
            // SAFETY: restores the termios captured in `enter`.
            unsafe {
                libc::tcsetattr(0, libc::TCSANOW, &t);
            }
        }
    }
}

/// Reads standard input on a thread; Ctrl-A x sets `stop`, Ctrl-A Ctrl-A
/// sends one Ctrl-A, and other bytes go to the guest.
pub fn stdin_with_escape(stop: Arc<AtomicBool>) -> Receiver<u8> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        let mut escaped = false;
        let mut buf = [0u8; 256];
        let mut stdin = std::io::stdin();
        while let Ok(n) = stdin.read(&mut buf) {
            if n == 0 {
                break;
            }
            for &b in &buf[..n] {
                if escaped {
                    escaped = false;
                    match b {
                        b'x' | b'X' => {
                            stop.store(true, Ordering::Relaxed);
                            return;
                        }
                        0x01 => send(&tx, 0x01),
                        other => {
                            send(&tx, 0x01);
                            send(&tx, other);
                        }
                    }
                } else if b == 0x01 {
                    escaped = true;
                } else {
                    send(&tx, b);
                }
            }
        }
    });
    rx
}

fn send(tx: &Sender<u8>, b: u8) {
    // The machine may have finished; nothing to do then.
    let _ = tx.send(b);
}

/// A serial back end listening on `addr` for one TCP client at a time:
/// output goes to the client (dropped while none is connected), the
/// client's bytes go to the guest.
pub fn tcp_backend(addr: &str) -> std::io::Result<SerialBackend> {
    let listener = TcpListener::bind(addr)?;
    eprintln!(
        "morph86: serial console listening on {}",
        listener.local_addr()?
    );
    let slot = SharedWriter::default();
    let (tx, rx) = channel();
    let out = slot.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut stream) = conn else { continue };
            let Ok(writer) = stream.try_clone() else {
                continue;
            };
            *out.0.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Box::new(writer) as Box<dyn Write + Send>);
            let mut buf = [0u8; 256];
            while let Ok(n) = stream.read(&mut buf) {
                if n == 0 {
                    break;
                }
                for &b in &buf[..n] {
                    send(&tx, b);
                }
            }
            *out.0.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    });
    Ok(SerialBackend {
        out: OutputSink::Shared(slot),
        input: Some(rx),
        tap: None,
    })
}
