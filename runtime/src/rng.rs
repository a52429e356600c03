//! Deterministic pseudo-random numbers (xorshift64*) for synthetic models, the kernel
//! self-check and the tests: the same seed gives the same data on every machine, without a
//! dependency.

/// xorshift64*.
#[derive(Debug, Clone)]
pub struct XorShift(pub u64);

impl XorShift {
    /// A generator from `seed` (0 is replaced: xorshift never leaves the zero state).
    pub fn new(seed: u64) -> Self {
        Self(if seed == 0 {
            0x9e37_79b9_7f4a_7c15
        } else {
            seed
        })
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1), with a full 24-bit mantissa.
    pub fn next_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
    }

    /// `n` values uniform in [-amplitude, amplitude).
    pub fn vec(&mut self, n: usize, amplitude: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * amplitude).collect()
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_in_range() {
        let (mut a, mut b) = (XorShift::new(5), XorShift::new(5));
        for _ in 0..1000 {
            let x = a.next_f32();
            assert_eq!(x.to_bits(), b.next_f32().to_bits());
            assert!((-1.0..1.0).contains(&x));
        }
        assert_ne!(XorShift::new(0).next_u64(), 0);
        assert!(a.below(7) < 7);
    }
}
