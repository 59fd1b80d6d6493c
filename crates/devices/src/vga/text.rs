//! The text screen as characters, for scripts: which characters and
//! attributes the CRTC shows, with code page 437 mapped to Unicode.

use super::regs::{crtc, SEQ_CLOCK};
use super::Vga;
use morph86_memory::VideoRam;

/// Code page 437 in Unicode, as the VGA's font draws it: 0x00 and 0xFF
/// are blanks (spaces here), 0x01-0x1F and 0x7F the graphic symbols.
#[rustfmt::skip]
const CP437: [char; 256] = [
    ' ', '☺', '☻', '♥', '♦', '♣', '♠', '•', '◘', '○', '◙', '♂', '♀', '♪', '♫', '☼',
    '►', '◄', '↕', '‼', '¶', '§', '▬', '↨', '↑', '↓', '→', '←', '∟', '↔', '▲', '▼',
    ' ', '!', '"', '#', '$', '%', '&', '\'', '(', ')', '*', '+', ',', '-', '.', '/',
    '0', '1', '2', '3', '4', '5', '6', '7', '8', '9', ':', ';', '<', '=', '>', '?',
    '@', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'J', 'K', 'L', 'M', 'N', 'O',
    'P', 'Q', 'R', 'S', 'T', 'U', 'V', 'W', 'X', 'Y', 'Z', '[', '\\', ']', '^', '_',
    '`', 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o',
    'p', 'q', 'r', 's', 't', 'u', 'v', 'w', 'x', 'y', 'z', '{', '|', '}', '~', '⌂',
    'Ç', 'ü', 'é', 'â', 'ä', 'à', 'å', 'ç', 'ê', 'ë', 'è', 'ï', 'î', 'ì', 'Ä', 'Å',
    'É', 'æ', 'Æ', 'ô', 'ö', 'ò', 'û', 'ù', 'ÿ', 'Ö', 'Ü', '¢', '£', '¥', '₧', 'ƒ',
    'á', 'í', 'ó', 'ú', 'ñ', 'Ñ', 'ª', 'º', '¿', '⌐', '¬', '½', '¼', '¡', '«', '»',
    '░', '▒', '▓', '│', '┤', '╡', '╢', '╖', '╕', '╣', '║', '╗', '╝', '╜', '╛', '┐',
    '└', '┴', '┬', '├', '─', '┼', '╞', '╟', '╚', '╔', '╩', '╦', '╠', '═', '╬', '╧',
    '╨', '╤', '╥', '╙', '╘', '╒', '╓', '╫', '╪', '┘', '┌', '█', '▄', '▌', '▐', '▀',
    'α', 'ß', 'Γ', 'π', 'Σ', 'σ', 'µ', 'τ', 'Φ', 'Θ', 'Ω', 'δ', '∞', 'φ', 'ε', '∩',
    '≡', '±', '≥', '≤', '⌠', '⌡', '÷', '≈', '°', '∙', '·', '√', 'ⁿ', '²', '■', ' ',
];

/// The Unicode character code page 437's `b` shows as.
#[inline]
pub fn cp437_to_char(b: u8) -> char {
    CP437[usize::from(b)]
}

/// The text screen: characters and attributes as the CRTC shows them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextScreen {
    /// Characters per row.
    pub cols: u32,
    /// Rows.
    pub rows: u32,
    /// `(character, attribute)` of each cell, row after row.
    pub cells: Vec<(u8, u8)>,
    /// The cursor's (column, row), when it is on and on the screen.
    pub cursor: Option<(u32, u32)>,
}

impl TextScreen {
    /// Row `r` as Unicode, trailing blanks removed.
    pub fn row(&self, r: u32) -> String {
        let start = (r * self.cols) as usize;
        let end = (start + self.cols as usize).min(self.cells.len());
        let s: String = self
            .cells
            .get(start..end)
            .unwrap_or(&[])
            .iter()
            .map(|&(c, _)| cp437_to_char(c))
            .collect();
        s.trim_end().to_string()
    }
}

impl std::fmt::Display for TextScreen {
    /// The rows, one per line, trailing blanks removed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for r in 0..self.rows {
            writeln!(f, "{}", self.row(r))?;
        }
        Ok(())
    }
}

/// The most cells a text screen may have (QEMU's limit: 160 x 100).
pub const MAX_CELLS: u32 = 160 * 100;

impl Vga {
    /// The text screen's geometry: (columns, rows, character width, height),
    /// if the CRTC describes a text mode that fits [`MAX_CELLS`].
    pub(crate) fn text_geometry(&self) -> Option<(u32, u32, u32, u32)> {
        let r = &self.regs;
        let cheight = u32::from(r.crtc[crtc::MAX_SCAN] & 0x1F) + 1;
        let cwidth = if r.seq[SEQ_CLOCK] & 0x08 != 0 {
            16
        } else if r.seq[SEQ_CLOCK] & 0x01 != 0 {
            8
        } else {
            9
        };
        let cols = u32::from(r.crtc[crtc::H_DISP_END]) + 1;
        let rows = (r.vertical_display_end() + 1) / cheight;
        (cols * rows > 1 && cols * rows <= MAX_CELLS).then_some((cols, rows, cwidth, cheight))
    }

    /// The text screen, if the VGA shows text (not graphics, not a VBE
    /// mode, not blanked by the attribute controller).
    pub fn text_screen(&self, vram: &VideoRam) -> Option<TextScreen> {
        if self.vbe.enabled() || self.regs.graphics() || !self.regs.video_on() {
            return None;
        }
        let (cols, rows, _, _) = self.text_geometry()?;
        let start = self.regs.start_address();
        let line = u32::from(self.regs.crtc[crtc::OFFSET]) * 2;
        let mut cells = Vec::with_capacity((cols * rows) as usize);
        for r in 0..rows {
            for c in 0..cols {
                let at = (start + r * line + c).wrapping_mul(4);
                cells.push((vram.read_u8(at), vram.read_u8(at.wrapping_add(1))));
            }
        }
        let cursor = self.regs.cursor_address().wrapping_sub(start);
        let cursor_on = self.regs.crtc[crtc::CURSOR_START] & 0x20 == 0 && line > 0;
        let cursor = (cursor_on && cursor / line < rows && cursor % line < cols)
            .then(|| (cursor % line, cursor / line));
        Some(TextScreen {
            cols,
            rows,
            cells,
            cursor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_page_437() {
        assert_eq!(cp437_to_char(b'A'), 'A');
        assert_eq!(cp437_to_char(0), ' ');
        assert_eq!(cp437_to_char(0xC9), '╔');
        assert_eq!(cp437_to_char(0xDB), '█');
        assert_eq!(cp437_to_char(0xE1), 'ß');
        assert_eq!(cp437_to_char(0x01), '☺');
        // Every byte maps to one distinct character, blanks aside.
        let mut seen = std::collections::HashSet::new();
        for b in 0..=255u8 {
            if cp437_to_char(b) != ' ' {
                assert!(seen.insert(cp437_to_char(b)), "{b:#x} repeats");
            }
        }
        assert_eq!(seen.len(), 253);
    }
}
