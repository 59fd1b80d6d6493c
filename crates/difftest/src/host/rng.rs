//! A small seeded PRNG (SplitMix64): reproducible cases from `--seed`.

/// SplitMix64 generator.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Next 32 random bits.
    pub fn u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u32) -> u32 {
        ((u64::from(self.u32()) * u64::from(n)) >> 32) as u32
    }

    /// A random byte.
    pub fn u8(&mut self) -> u8 {
        self.u32() as u8
    }

    /// True with probability 1/2.
    pub fn coin(&mut self) -> bool {
        self.next_u64() & 1 != 0
    }

    /// Picks one element.
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u32) as usize]
    }

    /// A value biased towards the edges of arithmetic: 0, ±1, the sign bits
    /// of every width, and plain random values.
    pub fn interesting(&mut self) -> u32 {
        const EDGES: [u32; 16] = [
            0,
            1,
            2,
            0xFFFF_FFFF,
            0x7F,
            0x80,
            0xFF,
            0x7FFF,
            0x8000,
            0xFFFF,
            0x7FFF_FFFF,
            0x8000_0000,
            0x10,
            0x0F,
            0x99,
            0x100,
        ];
        match self.below(4) {
            0 => self.pick(&EDGES),
            1 => self.pick(&EDGES) ^ (self.u32() & 0xFFFF_FF00),
            _ => self.u32(),
        }
    }
}
