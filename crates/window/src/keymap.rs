//! Host keys to PS/2 scan codes.
//!
//! The window hands the guest physical keys (winit's [`KeyCode`], the key's
//! place on a US layout, whatever the host's layout), as the keyboard
//! itself would: the guest applies its own layout. The 8042 model takes
//! scan code set 2 (what a PS/2 keyboard sends at power-on) and translates
//! to set 1 when the guest's command byte asks for it (the default), so
//! this table is set 2 only. Codes are those of the IBM PS/2 keyboard and
//! Microsoft's "Keyboard Scan Code Specification" (set 2 column).

use winit::keyboard::KeyCode;

/// Scan code set 2 prefix of the extended keys.
pub const EXTENDED: u8 = 0xE0;
/// Scan code set 2 prefix of a break (release) code.
pub const BREAK: u8 = 0xF0;

/// Set 2 make code of `key`: one byte, or [`EXTENDED`] and one byte.
/// `None` for keys a PC keyboard does not have (and for Print Screen and
/// Pause, whose sequences are special: see [`make_code`]).
fn base_code(key: KeyCode) -> Option<(bool, u8)> {
    use KeyCode::*;
    let plain = |c| Some((false, c));
    let ext = |c| Some((true, c));
    match key {
        KeyA => plain(0x1C),
        KeyB => plain(0x32),
        KeyC => plain(0x21),
        KeyD => plain(0x23),
        KeyE => plain(0x24),
        KeyF => plain(0x2B),
        KeyG => plain(0x34),
        KeyH => plain(0x33),
        KeyI => plain(0x43),
        KeyJ => plain(0x3B),
        KeyK => plain(0x42),
        KeyL => plain(0x4B),
        KeyM => plain(0x3A),
        KeyN => plain(0x31),
        KeyO => plain(0x44),
        KeyP => plain(0x4D),
        KeyQ => plain(0x15),
        KeyR => plain(0x2D),
        KeyS => plain(0x1B),
        KeyT => plain(0x2C),
        KeyU => plain(0x3C),
        KeyV => plain(0x2A),
        KeyW => plain(0x1D),
        KeyX => plain(0x22),
        KeyY => plain(0x35),
        KeyZ => plain(0x1A),
        Digit1 => plain(0x16),
        Digit2 => plain(0x1E),
        Digit3 => plain(0x26),
        Digit4 => plain(0x25),
        Digit5 => plain(0x2E),
        Digit6 => plain(0x36),
        Digit7 => plain(0x3D),
        Digit8 => plain(0x3E),
        Digit9 => plain(0x46),
        Digit0 => plain(0x45),
        Backquote => plain(0x0E),
        Minus => plain(0x4E),
        Equal => plain(0x55),
        BracketLeft => plain(0x54),
        BracketRight => plain(0x5B),
        Backslash => plain(0x5D),
        Semicolon => plain(0x4C),
        Quote => plain(0x52),
        Comma => plain(0x41),
        Period => plain(0x49),
        Slash => plain(0x4A),
        IntlBackslash => plain(0x61),
        IntlRo => plain(0x51),
        IntlYen => plain(0x6A),
        Space => plain(0x29),
        Enter => plain(0x5A),
        Backspace => plain(0x66),
        Tab => plain(0x0D),
        Escape => plain(0x76),
        CapsLock => plain(0x58),
        ShiftLeft => plain(0x12),
        ShiftRight => plain(0x59),
        ControlLeft => plain(0x14),
        ControlRight => ext(0x14),
        AltLeft => plain(0x11),
        AltRight => ext(0x11),
        SuperLeft => ext(0x1F),
        SuperRight => ext(0x27),
        ContextMenu => ext(0x2F),
        F1 => plain(0x05),
        F2 => plain(0x06),
        F3 => plain(0x04),
        F4 => plain(0x0C),
        F5 => plain(0x03),
        F6 => plain(0x0B),
        F7 => plain(0x83),
        F8 => plain(0x0A),
        F9 => plain(0x01),
        F10 => plain(0x09),
        F11 => plain(0x78),
        F12 => plain(0x07),
        ScrollLock => plain(0x7E),
        NumLock => plain(0x77),
        Insert => ext(0x70),
        Delete => ext(0x71),
        Home => ext(0x6C),
        End => ext(0x69),
        PageUp => ext(0x7D),
        PageDown => ext(0x7A),
        ArrowUp => ext(0x75),
        ArrowDown => ext(0x72),
        ArrowLeft => ext(0x6B),
        ArrowRight => ext(0x74),
        Numpad0 => plain(0x70),
        Numpad1 => plain(0x69),
        Numpad2 => plain(0x72),
        Numpad3 => plain(0x7A),
        Numpad4 => plain(0x6B),
        Numpad5 => plain(0x73),
        Numpad6 => plain(0x74),
        Numpad7 => plain(0x6C),
        Numpad8 => plain(0x75),
        Numpad9 => plain(0x7D),
        NumpadDecimal => plain(0x71),
        NumpadAdd => plain(0x79),
        NumpadSubtract => plain(0x7B),
        NumpadMultiply => plain(0x7C),
        NumpadDivide => ext(0x4A),
        NumpadEnter => ext(0x5A),
        _ => None,
    }
}

/// The set 2 bytes a PS/2 keyboard sends when `key` goes down (`pressed`)
/// or up; empty for keys it does not have. Auto-repeat is the host's: a
/// repeated press sends the make code again, as the keyboard's typematic
/// repeat would.
///
/// Print Screen is `E0 12 E0 7C` / `E0 F0 7C E0 F0 12`; Pause sends its
/// whole make-and-break sequence `E1 14 77 E1 F0 14 F0 77` on press and
/// nothing on release, as the real key does.
pub fn scancodes(key: KeyCode, pressed: bool) -> Vec<u8> {
    match (key, pressed) {
        (KeyCode::PrintScreen, true) => vec![0xE0, 0x12, 0xE0, 0x7C],
        (KeyCode::PrintScreen, false) => vec![0xE0, 0xF0, 0x7C, 0xE0, 0xF0, 0x12],
        (KeyCode::Pause, true) => vec![0xE1, 0x14, 0x77, 0xE1, 0xF0, 0x14, 0xF0, 0x77],
        (KeyCode::Pause, false) => Vec::new(),
        _ => match base_code(key) {
            None => Vec::new(),
            Some((ext, code)) => {
                let mut v = Vec::with_capacity(3);
                if ext {
                    v.push(EXTENDED);
                }
                if !pressed {
                    v.push(BREAK);
                }
                v.push(code);
                v
            }
        },
    }
}

/// True for the modifier keys the host chords use.
pub fn is_ctrl(key: KeyCode) -> bool {
    matches!(key, KeyCode::ControlLeft | KeyCode::ControlRight)
}

/// True for either Alt key.
pub fn is_alt(key: KeyCode) -> bool {
    matches!(key, KeyCode::AltLeft | KeyCode::AltRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The set 1 code the 8042 would produce from a set 2 code (through
    /// the device's own translation), to check both tables agree.
    fn via_8042(bytes: &[u8]) -> Vec<u8> {
        use morph86_devices::i8042::{CB_KBD_INT, CB_XLATE};
        let mut c = morph86_devices::I8042::new();
        // Translation on, as a BIOS leaves it (write command byte 0x60).
        c.write_command(0x60);
        c.write_data(CB_XLATE | CB_KBD_INT);
        c.key_event(bytes);
        let mut out = Vec::new();
        while c.read_status() & 1 != 0 {
            out.push(c.read_data());
        }
        out
    }

    #[test]
    fn letters_digits_and_punctuation() {
        assert_eq!(scancodes(KeyCode::KeyA, true), [0x1C]);
        assert_eq!(scancodes(KeyCode::KeyA, false), [0xF0, 0x1C]);
        assert_eq!(scancodes(KeyCode::KeyZ, true), [0x1A]);
        assert_eq!(scancodes(KeyCode::Digit1, true), [0x16]);
        assert_eq!(scancodes(KeyCode::Digit0, false), [0xF0, 0x45]);
        assert_eq!(scancodes(KeyCode::Slash, true), [0x4A]);
        assert_eq!(scancodes(KeyCode::Semicolon, true), [0x4C]);
        assert_eq!(scancodes(KeyCode::Backquote, true), [0x0E]);
        assert_eq!(scancodes(KeyCode::Enter, true), [0x5A]);
        assert_eq!(scancodes(KeyCode::Backspace, false), [0xF0, 0x66]);
        assert_eq!(scancodes(KeyCode::Tab, true), [0x0D]);
        assert_eq!(scancodes(KeyCode::Escape, true), [0x76]);
        assert_eq!(scancodes(KeyCode::Space, true), [0x29]);
    }

    #[test]
    fn modifiers_and_function_keys() {
        assert_eq!(scancodes(KeyCode::ShiftLeft, true), [0x12]);
        assert_eq!(scancodes(KeyCode::ShiftRight, true), [0x59]);
        assert_eq!(scancodes(KeyCode::ControlLeft, true), [0x14]);
        assert_eq!(scancodes(KeyCode::ControlRight, true), [0xE0, 0x14]);
        assert_eq!(scancodes(KeyCode::ControlRight, false), [0xE0, 0xF0, 0x14]);
        assert_eq!(scancodes(KeyCode::AltLeft, false), [0xF0, 0x11]);
        assert_eq!(scancodes(KeyCode::AltRight, true), [0xE0, 0x11]);
        let f: Vec<u8> = [
            KeyCode::F1,
            KeyCode::F2,
            KeyCode::F3,
            KeyCode::F4,
            KeyCode::F5,
            KeyCode::F6,
            KeyCode::F7,
            KeyCode::F8,
            KeyCode::F9,
            KeyCode::F10,
            KeyCode::F11,
            KeyCode::F12,
        ]
        .iter()
        .map(|&k| scancodes(k, true)[0])
        .collect();
        assert_eq!(
            f,
            [0x05, 0x06, 0x04, 0x0C, 0x03, 0x0B, 0x83, 0x0A, 0x01, 0x09, 0x78, 0x07]
        );
    }

    #[test]
    fn extended_keys_carry_e0_before_the_break_prefix() {
        for (k, c) in [
            (KeyCode::ArrowUp, 0x75),
            (KeyCode::ArrowDown, 0x72),
            (KeyCode::ArrowLeft, 0x6B),
            (KeyCode::ArrowRight, 0x74),
            (KeyCode::Home, 0x6C),
            (KeyCode::End, 0x69),
            (KeyCode::PageUp, 0x7D),
            (KeyCode::PageDown, 0x7A),
            (KeyCode::Insert, 0x70),
            (KeyCode::Delete, 0x71),
            (KeyCode::NumpadEnter, 0x5A),
            (KeyCode::NumpadDivide, 0x4A),
        ] {
            assert_eq!(scancodes(k, true), [0xE0, c], "{k:?}");
            assert_eq!(scancodes(k, false), [0xE0, 0xF0, c], "{k:?}");
        }
        // The keypad's own keys are not extended.
        assert_eq!(scancodes(KeyCode::Numpad8, true), [0x75]);
        assert_eq!(
            scancodes(KeyCode::PrintScreen, false),
            [0xE0, 0xF0, 0x7C, 0xE0, 0xF0, 0x12]
        );
        assert_eq!(scancodes(KeyCode::Pause, true).len(), 8);
        assert!(scancodes(KeyCode::Pause, false).is_empty());
        assert!(scancodes(KeyCode::F13, true).is_empty());
    }

    /// Through the 8042's translation the set 2 codes become the familiar
    /// set 1 (XT) codes, extended keys keeping E0 and breaks setting bit 7.
    #[test]
    fn the_8042_translates_them_to_set_1() {
        assert_eq!(via_8042(&scancodes(KeyCode::KeyA, true)), [0x1E]);
        assert_eq!(via_8042(&scancodes(KeyCode::KeyA, false)), [0x9E]);
        assert_eq!(via_8042(&scancodes(KeyCode::Escape, true)), [0x01]);
        assert_eq!(via_8042(&scancodes(KeyCode::Enter, true)), [0x1C]);
        assert_eq!(via_8042(&scancodes(KeyCode::Digit1, true)), [0x02]);
        assert_eq!(via_8042(&scancodes(KeyCode::F1, true)), [0x3B]);
        assert_eq!(via_8042(&scancodes(KeyCode::F7, true)), [0x41]);
        assert_eq!(via_8042(&scancodes(KeyCode::F12, true)), [0x58]);
        assert_eq!(via_8042(&scancodes(KeyCode::ArrowUp, true)), [0xE0, 0x48]);
        assert_eq!(via_8042(&scancodes(KeyCode::ArrowUp, false)), [0xE0, 0xC8]);
        assert_eq!(via_8042(&scancodes(KeyCode::Delete, true)), [0xE0, 0x53]);
        assert_eq!(
            via_8042(&scancodes(KeyCode::ControlRight, false)),
            [0xE0, 0x9D]
        );
        assert_eq!(
            via_8042(&scancodes(KeyCode::Pause, true)),
            [0xE1, 0x1D, 0x45, 0xE1, 0x9D, 0xC5]
        );
        assert_eq!(
            via_8042(&scancodes(KeyCode::PrintScreen, true)),
            [0xE0, 0x2A, 0xE0, 0x37]
        );
    }

    /// Every key winit names that a PC keyboard has maps to a distinct
    /// make code.
    #[test]
    fn make_codes_are_distinct() {
        use std::collections::HashMap;
        let keys = [
            KeyCode::KeyA,
            KeyCode::KeyB,
            KeyCode::KeyC,
            KeyCode::KeyD,
            KeyCode::KeyE,
            KeyCode::KeyF,
            KeyCode::KeyG,
            KeyCode::KeyH,
            KeyCode::KeyI,
            KeyCode::KeyJ,
            KeyCode::KeyK,
            KeyCode::KeyL,
            KeyCode::KeyM,
            KeyCode::KeyN,
            KeyCode::KeyO,
            KeyCode::KeyP,
            KeyCode::KeyQ,
            KeyCode::KeyR,
            KeyCode::KeyS,
            KeyCode::KeyT,
            KeyCode::KeyU,
            KeyCode::KeyV,
            KeyCode::KeyW,
            KeyCode::KeyX,
            KeyCode::KeyY,
            KeyCode::KeyZ,
            KeyCode::Digit0,
            KeyCode::Digit1,
            KeyCode::Digit2,
            KeyCode::Digit3,
            KeyCode::Digit4,
            KeyCode::Digit5,
            KeyCode::Digit6,
            KeyCode::Digit7,
            KeyCode::Digit8,
            KeyCode::Digit9,
            KeyCode::Backquote,
            KeyCode::Minus,
            KeyCode::Equal,
            KeyCode::BracketLeft,
            KeyCode::BracketRight,
            KeyCode::Backslash,
            KeyCode::Semicolon,
            KeyCode::Quote,
            KeyCode::Comma,
            KeyCode::Period,
            KeyCode::Slash,
            KeyCode::Space,
            KeyCode::Enter,
            KeyCode::Backspace,
            KeyCode::Tab,
            KeyCode::Escape,
            KeyCode::CapsLock,
            KeyCode::ShiftLeft,
            KeyCode::ShiftRight,
            KeyCode::ControlLeft,
            KeyCode::ControlRight,
            KeyCode::AltLeft,
            KeyCode::AltRight,
            KeyCode::Insert,
            KeyCode::Delete,
            KeyCode::Home,
            KeyCode::End,
            KeyCode::PageUp,
            KeyCode::PageDown,
            KeyCode::ArrowUp,
            KeyCode::ArrowDown,
            KeyCode::ArrowLeft,
            KeyCode::ArrowRight,
            KeyCode::Numpad0,
            KeyCode::Numpad5,
            KeyCode::NumpadEnter,
            KeyCode::NumpadDivide,
            KeyCode::F1,
            KeyCode::F12,
        ];
        let mut seen = HashMap::new();
        for k in keys {
            let make = scancodes(k, true);
            assert!(!make.is_empty(), "{k:?}");
            if let Some(other) = seen.insert(make.clone(), k) {
                panic!("{k:?} and {other:?} both send {make:x?}");
            }
        }
    }
}
