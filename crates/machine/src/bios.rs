//! Booting through firmware: morph86's own BIOS (the `morph86-bios`
//! crate) or an external image (`--bios`), mapped at the top of the first
//! MiB and of the 4 GiB space, with the VGA BIOS at 0xC0000 and the boot
//! order in CMOS as QEMU keeps it.

use thiserror::Error;

/// Smallest BIOS image accepted.
pub const BIOS_MIN: usize = 64 * 1024;
/// Largest BIOS image accepted (the e820 map reserves 0xFFFC0000 up).
pub const BIOS_MAX: usize = 256 * 1024;

/// Where option ROMs may be mapped (the BIOS scans 0xC8000-0xDFFFF; the
/// VGA BIOS is at 0xC0000).
pub const OPTION_ROM_AREA: std::ops::Range<u32> = 0xC_8000..0xE_0000;

/// Why firmware could not be mapped.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum BiosError {
    /// The image's size is not 64 KiB to 256 KiB in 64 KiB steps.
    #[error("a BIOS image must be 64 KiB to 256 KiB, a multiple of 64 KiB; this one is {0} bytes")]
    ImageSize(usize),
    /// An option ROM does not fit where it was asked to go.
    #[error("an option ROM at {base:#x} ({len} bytes) must start on a 2 KiB boundary in 0xc8000..0xe0000 and fit there")]
    OptionRom {
        /// Its address.
        base: u32,
        /// Its size.
        len: usize,
    },
    /// A boot order names an unknown device.
    #[error("boot order {0:?}: expected devices a (floppy), c (hard disk) and d (CD-ROM), each at most once")]
    BootOrder(String),
}

/// A device class to boot from, as `--boot` names them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BootDevice {
    /// The first floppy drive (`a`).
    Floppy,
    /// The first hard disk (`c`).
    HardDisk,
    /// The first CD-ROM drive (`d`).
    CdRom,
}

impl BootDevice {
    /// QEMU's CMOS code: 1 floppy, 2 hard disk, 3 CD-ROM.
    fn cmos_code(self) -> u8 {
        match self {
            BootDevice::Floppy => 1,
            BootDevice::HardDisk => 2,
            BootDevice::CdRom => 3,
        }
    }
}

/// Parses a boot order such as `c`, `cd` or `adc` (QEMU's letters).
pub fn parse_boot_order(s: &str) -> Result<Vec<BootDevice>, BiosError> {
    let mut order = Vec::new();
    for c in s.chars() {
        let d = match c.to_ascii_lowercase() {
            'a' => BootDevice::Floppy,
            'c' => BootDevice::HardDisk,
            'd' => BootDevice::CdRom,
            _ => return Err(BiosError::BootOrder(s.to_string())),
        };
        if order.contains(&d) {
            return Err(BiosError::BootOrder(s.to_string()));
        }
        order.push(d);
    }
    if order.is_empty() {
        return Err(BiosError::BootOrder(s.to_string()));
    }
    Ok(order)
}

/// The boot order as QEMU stores it in CMOS: register 0x3D holds the first
/// device (low nibble) and the second (high nibble), 0x38's high nibble
/// the third. Returns (0x3D, the high nibble of 0x38).
pub fn cmos_boot_order(order: &[BootDevice]) -> (u8, u8) {
    let code = |i: usize| order.get(i).map_or(0, |d| d.cmos_code());
    (code(0) | code(1) << 4, code(2) << 4)
}

/// QEMU's default boot order for a PC: hard disk, floppy, CD-ROM.
pub const DEFAULT_BOOT_ORDER: [BootDevice; 3] =
    [BootDevice::HardDisk, BootDevice::Floppy, BootDevice::CdRom];

/// Checks an external BIOS image's size.
pub fn check_bios_image(image: &[u8]) -> Result<(), BiosError> {
    let n = image.len();
    if !(BIOS_MIN..=BIOS_MAX).contains(&n) || !n.is_multiple_of(BIOS_MIN) {
        return Err(BiosError::ImageSize(n));
    }
    Ok(())
}

/// Checks where an option ROM is to be mapped.
pub fn check_option_rom(base: u32, len: usize) -> Result<(), BiosError> {
    let end = u64::from(base) + len as u64;
    if !base.is_multiple_of(2048)
        || !OPTION_ROM_AREA.contains(&base)
        || len == 0
        || end > u64::from(OPTION_ROM_AREA.end)
    {
        return Err(BiosError::OptionRom { base, len });
    }
    Ok(())
}

/// The 8x16 font the BIOS images carry (the VGA BIOS loads it at mode
/// sets; the 8x14 and 8x8 fonts are derived from it): the VGA's own.
pub static FONT_8X16: &[u8; 4096] = &morph86_devices::vga::font::FONT_8X16;

/// morph86's system BIOS, with its font.
pub fn morph86_bios() -> Vec<u8> {
    morph86_bios::system_bios(FONT_8X16)
}

/// morph86's VGA BIOS, with its fonts.
pub fn morph86_vga_bios() -> Vec<u8> {
    morph86_bios::vga_bios(FONT_8X16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn boot_orders() {
        use BootDevice::*;
        assert_eq!(parse_boot_order("c"), Ok(vec![HardDisk]));
        assert_eq!(parse_boot_order("cd"), Ok(vec![HardDisk, CdRom]));
        assert_eq!(parse_boot_order("DAC"), Ok(vec![CdRom, Floppy, HardDisk]));
        assert!(parse_boot_order("").is_err());
        assert!(parse_boot_order("cc").is_err());
        assert!(parse_boot_order("n").is_err());
        assert_eq!(cmos_boot_order(&[HardDisk]), (0x02, 0x00));
        assert_eq!(cmos_boot_order(&[CdRom, HardDisk]), (0x23, 0x00));
        assert_eq!(cmos_boot_order(&DEFAULT_BOOT_ORDER), (0x12, 0x30));
    }

    #[test]
    fn image_sizes() {
        for ok in [64, 128, 192, 256] {
            assert_eq!(check_bios_image(&vec![0; ok * 1024]), Ok(()));
        }
        for bad in [0, 1, 32 * 1024, 65 * 1024, 320 * 1024] {
            let e = check_bios_image(&vec![0; bad]).unwrap_err();
            assert_eq!(e, BiosError::ImageSize(bad));
            assert!(e.to_string().contains("64 KiB to 256 KiB"));
        }
        assert!(check_option_rom(0xC_8000, 2048).is_ok());
        assert!(check_option_rom(0xD_F800, 2048).is_ok());
        assert!(check_option_rom(0xD_F800, 2049).is_err());
        assert!(check_option_rom(0xC_0000, 512).is_err());
        assert!(check_option_rom(0xC_8200, 512).is_err());
    }
}
