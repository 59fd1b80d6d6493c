//! 80-bit extended-precision encodings: classification and constants.

/// +1.0 as an 80-bit image.
pub const ONE: [u8; 10] = [0, 0, 0, 0, 0, 0, 0, 0x80, 0xFF, 0x3F];

/// The control word as the P6 keeps it: bits 13..15 read as 0 and the
/// reserved bit 6 as 1; the infinity-control bit 12 is kept (but ignored).
#[inline]
pub fn normalize_cw(cw: u16) -> u16 {
    (cw & 0x1F3F) | 0x40
}

/// Splits an 80-bit image into (sign, biased exponent, significand).
#[inline]
pub fn split(v: &[u8; 10]) -> (bool, u16, u64) {
    let man = u64::from_le_bytes([v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]]);
    let se = u16::from_le_bytes([v[8], v[9]]);
    (se & 0x8000 != 0, se & 0x7FFF, man)
}

/// Builds an 80-bit image from its fields.
#[inline]
pub fn join(sign: bool, exp: u16, man: u64) -> [u8; 10] {
    let mut r = [0u8; 10];
    r[..8].copy_from_slice(&man.to_le_bytes());
    let se = (u16::from(sign) << 15) | (exp & 0x7FFF);
    r[8..].copy_from_slice(&se.to_le_bytes());
    r
}

/// The two-bit tag of a non-empty register: 0 valid, 1 zero, 2 special
/// (NaN, infinity, denormal, pseudo-denormal, unsupported formats).
pub fn tag_of(v: &[u8; 10]) -> u16 {
    let (_, exp, man) = split(v);
    match exp {
        0 if man == 0 => 1,
        0 | 0x7FFF => 2,
        _ if man >> 63 == 0 => 2, // unnormal
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags() {
        assert_eq!(tag_of(&ONE), 0);
        assert_eq!(tag_of(&join(true, 0, 0)), 1);
        assert_eq!(tag_of(&join(false, 0, 5)), 2);
        assert_eq!(tag_of(&join(false, 0, 1 << 63)), 2);
        assert_eq!(tag_of(&join(false, 0x7FFF, 1 << 63)), 2);
        assert_eq!(tag_of(&join(false, 0x3FFF, 1 << 62)), 2);
        assert_eq!(normalize_cw(0xFFFF), 0x1F7F);
        assert_eq!(normalize_cw(0), 0x40);
    }
}
