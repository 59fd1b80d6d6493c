//! The ROM area below 1 MiB (0xC0000-0xFFFFF) and the BIOS ROM below
//! 4 GiB: ROM images, and the i440FX's PAM registers that choose, per
//! segment, whether reads and writes reach the ROM (the PCI side) or the
//! shadow RAM beneath it.
//!
//! PAM0 (host bridge register 0x59) bits 4-5 cover 0xF0000-0xFFFFF; PAM1-6
//! (0x5A-0x5F) cover 0xC0000-0xEFFFF in 16 KiB segments, low nibble first.
//! In each nibble bit 0 (RE) sends reads to RAM and bit 1 (WE) writes; a
//! read that does not go to RAM sees the ROM mapped there (the system
//! BIOS at the top, option ROMs such as the VGA BIOS at 0xC0000) or an
//! open bus, and a write that does not go to RAM is dropped. The system
//! BIOS image also appears, whole, at the top of the 4 GiB space, as the
//! flash does on a real board; its last 128 KiB are what 0xE0000-0xFFFFF
//! shows.

use std::ops::Range;

/// The ROM area below 1 MiB that PAM controls.
pub const ROM_AREA: Range<u32> = 0xC_0000..0x10_0000;

/// Read enable: reads of the segment reach RAM.
pub const PAM_RE: u8 = 1;
/// Write enable: writes to the segment reach RAM.
pub const PAM_WE: u8 = 2;

/// ROMs and the PAM decoding of the upper memory area.
#[derive(Clone, Debug, Default)]
pub struct UpperMemory {
    /// PAM0..PAM6 (host bridge registers 0x59-0x5F).
    pam: [u8; 7],
    /// The system BIOS image (64 KiB to 256 KiB), if one is mapped.
    bios: Option<Box<[u8]>>,
    /// Other ROMs below 1 MiB: (base, bytes).
    roms: Vec<(u32, Box<[u8]>)>,
    /// Bumped whenever what an address shows may have changed.
    generation: u32,
}

impl UpperMemory {
    /// The PAM bits (RE, WE) of the segment holding `addr` (in [`ROM_AREA`]).
    #[inline]
    pub fn pam_bits(&self, addr: u32) -> u8 {
        if addr >= 0xF_0000 {
            return self.pam[0] >> 4 & 3;
        }
        let seg = ((addr - 0xC_0000) >> 14) as usize;
        let reg = self.pam[1 + seg / 2];
        (if seg.is_multiple_of(2) { reg } else { reg >> 4 }) & 3
    }

    /// Reads of `addr` (in [`ROM_AREA`]) reach RAM.
    #[inline]
    pub fn reads_ram(&self, addr: u32) -> bool {
        self.pam_bits(addr) & PAM_RE != 0
    }

    /// Writes to `addr` (in [`ROM_AREA`]) reach RAM.
    #[inline]
    pub fn writes_ram(&self, addr: u32) -> bool {
        self.pam_bits(addr) & PAM_WE != 0
    }

    /// Applies new PAM register values; true when they changed.
    pub fn set_pam(&mut self, pam: [u8; 7]) -> bool {
        if pam == self.pam {
            return false;
        }
        self.pam = pam;
        self.generation = self.generation.wrapping_add(1);
        true
    }

    /// The PAM registers as last applied.
    pub fn pam(&self) -> [u8; 7] {
        self.pam
    }

    /// Maps the system BIOS image (its size already checked).
    pub fn set_bios(&mut self, image: Option<Vec<u8>>) {
        self.bios = image.map(Vec::into_boxed_slice);
        self.generation = self.generation.wrapping_add(1);
    }

    /// The system BIOS image, if one is mapped.
    pub fn bios(&self) -> Option<&[u8]> {
        self.bios.as_deref()
    }

    /// Maps a ROM at `base` below 1 MiB (replacing any ROM at that base).
    pub fn add_rom(&mut self, base: u32, bytes: Vec<u8>) {
        self.roms.retain(|(b, _)| *b != base);
        self.roms.push((base, bytes.into_boxed_slice()));
        self.generation = self.generation.wrapping_add(1);
    }

    /// Changes whenever an address in the ROM area (or the BIOS alias) may
    /// show different bytes.
    #[inline]
    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The first address of the BIOS image's alias below 4 GiB, if a BIOS
    /// is mapped.
    #[inline]
    pub fn high_alias_start(&self) -> Option<u32> {
        self.bios
            .as_ref()
            .map(|b| (0x1_0000_0000u64 - b.len() as u64) as u32)
    }

    /// The ROM byte at `addr` below 1 MiB (the BIOS's last 128 KiB at the
    /// top, other ROMs where they are mapped), if any ROM covers it.
    #[inline]
    pub fn rom_byte(&self, addr: u32) -> Option<u8> {
        self.rom_slice(addr).map(|(s, i)| s[i])
    }

    /// The ROM holding `addr` below 1 MiB and the offset in it.
    fn rom_slice(&self, addr: u32) -> Option<(&[u8], usize)> {
        if let Some(b) = &self.bios {
            let shown = b.len().min(0x2_0000) as u32;
            if addr >= 0x10_0000 - shown && addr < 0x10_0000 {
                let i = b.len() - (0x10_0000 - addr) as usize;
                return Some((b, i));
            }
        }
        self.roms.iter().find_map(|(base, r)| {
            let off = addr.checked_sub(*base)? as usize;
            (off < r.len()).then_some((&r[..], off))
        })
    }

    /// A read pointer to the 4 KiB page at `addr` when a ROM covers the
    /// whole page and reads reach it (not RAM).
    pub fn rom_page_ptr(&self, addr: u32) -> Option<*const u8> {
        let (s, i) = self.rom_slice(addr)?;
        let page_start = i - (addr & 0xFFF) as usize;
        (page_start + 0x1000 <= s.len()).then(|| s[page_start..].as_ptr())
    }

    /// The byte at `addr` in the BIOS alias below 4 GiB.
    #[inline]
    pub fn high_byte(&self, addr: u32) -> u8 {
        match (&self.bios, self.high_alias_start()) {
            (Some(b), Some(start)) if addr >= start => b[(addr - start) as usize],
            _ => 0xFF,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pam_nibbles_cover_their_segments() {
        let mut u = UpperMemory::default();
        assert!(u.set_pam([0x30, 0x01, 0x02, 0, 0, 0x13, 0x00]));
        assert!(!u.set_pam([0x30, 0x01, 0x02, 0, 0, 0x13, 0x00]));
        assert_eq!(u.pam_bits(0xF_0000), 3);
        assert_eq!(u.pam_bits(0xF_FFFF), 3);
        assert_eq!(u.pam_bits(0xC_0000), PAM_RE);
        assert_eq!(u.pam_bits(0xC_4000), 0);
        assert_eq!(u.pam_bits(0xC_8000), PAM_WE);
        assert_eq!(u.pam_bits(0xC_C000), 0);
        assert_eq!(u.pam_bits(0xE_0000), 3);
        assert_eq!(u.pam_bits(0xE_7FFF), 1);
        assert_eq!(u.pam_bits(0xE_8000), 0);
    }

    #[test]
    fn roms_below_1m_and_at_4g() {
        let mut u = UpperMemory::default();
        let mut bios = vec![0u8; 0x4_0000];
        bios[0] = 0x11; // 0xFFFC0000, not visible below 1 MiB
        bios[0x2_0000] = 0x22; // 0xE0000 and 0xFFFE0000
        bios[0x3_FFF0] = 0xEA; // the reset vector
        u.set_bios(Some(bios));
        u.add_rom(0xC_0000, vec![0x55, 0xAA, 1]);
        assert_eq!(u.high_alias_start(), Some(0xFFFC_0000));
        assert_eq!(u.high_byte(0xFFFC_0000), 0x11);
        assert_eq!(u.high_byte(0xFFFF_FFF0), 0xEA);
        assert_eq!(u.rom_byte(0xF_FFF0), Some(0xEA));
        assert_eq!(u.rom_byte(0xE_0000), Some(0x22));
        assert_eq!(u.rom_byte(0xD_FFFF), None);
        assert_eq!(u.rom_byte(0xC_0001), Some(0xAA));
        assert_eq!(u.rom_byte(0xC_0003), None);
        assert!(u.rom_page_ptr(0xF_F000).is_some());
        assert!(
            u.rom_page_ptr(0xC_0000).is_none(),
            "a short ROM has no whole page"
        );
    }

    /// The board follows the PAM bits: reads from ROM or RAM, writes to
    /// RAM or nowhere, TLB pointers and DMA only where RAM is reached, and
    /// cached code of the area invalidated when the decoding changes.
    #[test]
    fn the_board_follows_pam() {
        use crate::board::{Board, RamDma};
        use crate::clock::ClockMode;
        use morph86_cpu::Bus;
        use morph86_devices::DmaMemory;
        let mut b = Board::new(4 << 20, ClockMode::Virtual);
        let mut bios = vec![0xB1u8; 0x1_0000];
        bios[0xFFF0] = 0xEA;
        b.upper.set_bios(Some(bios));
        Bus::write_u8(&mut b.ram, 0xF_0000, 0x5A); // shadow RAM, behind the ROM
                                                   // PAM 0: ROM reads, writes dropped.
        assert_eq!(b.read_u8(0xF_0000), 0xB1);
        assert_eq!(b.read_u8(0xF_FFF0), 0xEA);
        assert_eq!(b.read_u8(0xFFFF_FFF0), 0xEA, "the alias below 4 GiB");
        b.write_u8(0xF_0000, 0x11);
        assert_eq!(Bus::read_u8(&mut b.ram, 0xF_0000), 0x5A);
        assert!(b.page_ptr(0xF0, false).is_some(), "a ROM page to read");
        assert!(b.page_ptr(0xF0, true).is_none());
        assert_eq!(b.read_u8(0xD_0000), 0xFF, "no ROM at 0xD0000: open bus");
        let epoch = b.map_epoch();
        let gen = b.code_generation(0xF0);
        // Write enable only: reads still see the ROM, writes reach RAM.
        b.upper.set_pam([0x20, 0, 0, 0, 0, 0, 0]);
        assert_ne!(b.map_epoch(), epoch);
        assert_ne!(b.code_generation(0xF0), gen);
        assert_eq!(b.code_generation(0x10), Bus::code_generation(&b.ram, 0x10));
        b.write_u32(0xF_0000, 0x1234_5678);
        assert_eq!(b.read_u8(0xF_0000), 0xB1);
        assert_eq!(Bus::read_u32(&mut b.ram, 0xF_0000), 0x1234_5678);
        assert!(b.page_ptr(0xF0, true).is_none());
        // Read and write RAM.
        b.upper.set_pam([0x30, 0, 0, 0, 0, 0, 0]);
        assert_eq!(b.read_u32(0xF_0000), 0x1234_5678);
        assert!(b.page_ptr(0xF0, true).is_some());
        // Read only (locked): RAM reads, dropped writes, DMA reads only.
        b.upper.set_pam([0x10, 0, 0, 0, 0, 0, 0]);
        b.write_u8(0xF_0000, 0);
        assert_eq!(b.read_u8(0xF_0000), 0x78);
        assert!(b.page_ptr(0xF0, false).is_some() && b.page_ptr(0xF0, true).is_none());
        let upper = b.upper.clone();
        let mut dma = RamDma {
            ram: &mut b.ram,
            upper: &upper,
        };
        let mut buf = [0u8; 4];
        assert!(dma.dma_read(0xF_0000, &mut buf));
        assert_eq!(u32::from_le_bytes(buf), 0x1234_5678);
        assert!(!dma.dma_write(0xF_0000, &[1]));
        assert!(
            !dma.dma_write(0xE_FFFF, &[1, 2]),
            "into 0xE0000's ROM decoding"
        );
        assert!(!dma.dma_read(0xA_0000, &mut buf), "the VGA window");
        assert!(dma.dma_write(0x9_0000, &[1, 2]));
    }
}
