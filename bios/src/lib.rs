//! morph86's own firmware: a PC BIOS and a VGA BIOS, x86 code built from
//! the C and GNU assembler sources beside this crate (`system/`, `vga/`,
//! `include/`) by its build script.
//!
//! * The system BIOS ([`BIOS`]) is a 64 KiB image for 0xF0000-0xFFFFF (and
//!   0xFFFF0000-0xFFFFFFFF): POST from the reset vector, the IBM fixed
//!   entry points, and the services (INT 11h-1Ah, 13h for disks, the
//!   hardware interrupts) as guest code doing ordinary port I/O. It reads
//!   the machine's description (RAM size, e820 map, ACPI, MP and SMBIOS
//!   tables) from QEMU's fw_cfg interface and the boot order from CMOS
//!   0x3D/0x38 as QEMU sets them.
//! * The VGA BIOS ([`VGA_ROM`]) is an option ROM for 0xC0000 that owns
//!   INT 10h: the standard VGA modes and VBE on the Bochs "DISPI"
//!   interface.
//!
//! Both images are built without fonts; [`system_bios`] and [`vga_bios`]
//! return them with the glyphs of an 8x16 font filled in (the 8x14 and
//! 8x8 fonts are derived from it) and the VGA BIOS's checksum made good.

/// The system BIOS image as built (its 8x8 font at F000:FA6E blank).
pub static BIOS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/bios.bin"));

/// The VGA BIOS image as built (fonts blank, checksum valid).
pub static VGA_ROM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vgabios.bin"));

/// The built-in demo disk's first four sectors (`roms/demo/demo.S`): a
/// boot sector that loads the other three and shows text and a mode 13h
/// picture through the BIOS. [`demo_disk`] makes a whole disk of it.
pub static DEMO_PROGRAM: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/demo-disk.bin"));

/// The demo as a raw hard-disk image of `sectors` 512-byte sectors (at
/// least 4; the rest are zero).
pub fn demo_disk(sectors: usize) -> Vec<u8> {
    let mut d = DEMO_PROGRAM.to_vec();
    d.resize(sectors.max(4) * 512, 0);
    d
}

/// Where the system BIOS keeps the 8x8 font of characters 0-127 (F000:FA6E).
pub const BIOS_FONT8X8_OFFSET: usize = 0xFA6E;
/// Where the VGA BIOS keeps its 8x16, 8x14 and 8x8 fonts (see `vga/link.ld`).
pub const VGA_FONT8X16_OFFSET: usize = 0x40;
/// The VGA BIOS's 8x14 font.
pub const VGA_FONT8X14_OFFSET: usize = VGA_FONT8X16_OFFSET + 256 * 16;
/// The VGA BIOS's 8x8 font.
pub const VGA_FONT8X8_OFFSET: usize = VGA_FONT8X14_OFFSET + 256 * 14;

/// An 8x14 font from an 8x16 one: each glyph without its first and last
/// rows (blank in VGA-style fonts).
pub fn font8x14(font8x16: &[u8; 4096]) -> Vec<u8> {
    font8x16
        .chunks_exact(16)
        .flat_map(|g| g[1..15].iter().copied())
        .collect()
}

/// An 8x8 font from an 8x16 one: each pair of rows ORed into one, which
/// keeps one-pixel strokes visible.
pub fn font8x8(font8x16: &[u8; 4096]) -> Vec<u8> {
    font8x16
        .chunks_exact(2)
        .map(|pair| pair[0] | pair[1])
        .collect()
}

/// The system BIOS with the first 128 glyphs of `font8x16`, in 8x8 form,
/// at F000:FA6E.
pub fn system_bios(font8x16: &[u8; 4096]) -> Vec<u8> {
    let mut b = BIOS.to_vec();
    let f8 = font8x8(font8x16);
    b[BIOS_FONT8X8_OFFSET..BIOS_FONT8X8_OFFSET + 1024].copy_from_slice(&f8[..1024]);
    b
}

/// The VGA BIOS with its fonts made from `font8x16`, checksum corrected.
pub fn vga_bios(font8x16: &[u8; 4096]) -> Vec<u8> {
    let mut v = VGA_ROM.to_vec();
    v[VGA_FONT8X16_OFFSET..VGA_FONT8X16_OFFSET + 4096].copy_from_slice(font8x16);
    v[VGA_FONT8X14_OFFSET..VGA_FONT8X14_OFFSET + 3584].copy_from_slice(&font8x14(font8x16));
    v[VGA_FONT8X8_OFFSET..VGA_FONT8X8_OFFSET + 2048].copy_from_slice(&font8x8(font8x16));
    let last = v.len() - 1;
    v[last] = 0;
    let sum = v.iter().fold(0u8, |s, &b| s.wrapping_add(b));
    v[last] = sum.wrapping_neg();
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn images_have_their_fixed_points() {
        assert_eq!(BIOS.len(), 0x10000);
        // The reset vector: JMP F000:E05B.
        assert_eq!(&BIOS[0xFFF0..0xFFF5], &[0xEA, 0x5B, 0xE0, 0x00, 0xF0]);
        assert_eq!(&BIOS[0xFFF5..0xFFFD], b"01/01/24");
        assert_eq!(BIOS[0xFFFE], 0xFC);
        // The table area POST fills is blank in the image.
        assert!(BIOS[..0x1000].iter().all(|&b| b == 0));
        assert_eq!(&VGA_ROM[..2], &[0x55, 0xAA]);
        assert_eq!(usize::from(VGA_ROM[2]) * 512, VGA_ROM.len());
        assert_eq!(VGA_ROM.iter().fold(0u8, |s, &b| s.wrapping_add(b)), 0);
    }

    #[test]
    fn fonts_are_filled_in_and_the_checksum_holds() {
        let mut font = [0u8; 4096];
        for (i, b) in font.iter_mut().enumerate() {
            *b = (i * 7 + 3) as u8;
        }
        let v = vga_bios(&font);
        assert_eq!(v.len(), VGA_ROM.len());
        assert_eq!(v.iter().fold(0u8, |s, &b| s.wrapping_add(b)), 0);
        assert_eq!(
            &v[VGA_FONT8X16_OFFSET..VGA_FONT8X16_OFFSET + 4096],
            &font[..]
        );
        let g = 65 * 16;
        assert_eq!(v[VGA_FONT8X14_OFFSET + 65 * 14], font[g + 1]);
        assert_eq!(
            v[VGA_FONT8X8_OFFSET + 65 * 8 + 3],
            font[g + 6] | font[g + 7]
        );
        let b = system_bios(&font);
        assert_eq!(b[BIOS_FONT8X8_OFFSET + 65 * 8], font[g] | font[g + 1]);
        assert_eq!(&b[..BIOS_FONT8X8_OFFSET], &BIOS[..BIOS_FONT8X8_OFFSET]);
    }
}
