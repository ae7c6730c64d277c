//! Counter-based random numbers (Philox4x32-10, Salmon et al., SC'11 "Parallel random numbers:
//! as easy as 1, 2, 3") for the heatbath and hot starts.
//!
//! A counter-based generator turns (key, counter) into random bits with no hidden state, so the
//! number a link update draws depends only on (seed, sweep, site, direction, draw index) and
//! never on which thread ran it or in which order: a run is bit-identical on 1 or 2 threads.

use rand::RngCore;

const M0: u32 = 0xD251_1F53;
const M1: u32 = 0xCD9E_8D57;
const W0: u32 = 0x9E37_79B9;
const W1: u32 = 0xBB67_AE85;

#[inline]
fn mulhilo(a: u32, b: u32) -> (u32, u32) {
    let p = a as u64 * b as u64;
    ((p >> 32) as u32, p as u32)
}

/// One Philox4x32-10 block: 128 random bits for counter `ctr` under `key`.
#[inline]
pub fn philox4x32_10(mut ctr: [u32; 4], mut key: [u32; 2]) -> [u32; 4] {
    for round in 0..10 {
        if round > 0 {
            key[0] = key[0].wrapping_add(W0);
            key[1] = key[1].wrapping_add(W1);
        }
        let (hi0, lo0) = mulhilo(M0, ctr[0]);
        let (hi1, lo1) = mulhilo(M1, ctr[2]);
        ctr = [hi1 ^ ctr[1] ^ key[0], lo1, hi0 ^ ctr[3] ^ key[1], lo0];
    }
    ctr
}

/// A stream of random numbers identified by a seed and three 32-bit coordinates (for the
/// heatbath: site, direction/purpose, sweep). The fourth counter word numbers the blocks
/// within the stream, so a stream holds 2^34 words.
#[derive(Clone, Debug)]
pub struct Stream {
    key: [u32; 2],
    ctr: [u32; 4],
    buf: [u32; 4],
    pos: usize,
}

impl Stream {
    /// The stream for `seed` at coordinates `(a, b, c)`.
    pub fn new(seed: u64, a: u32, b: u32, c: u32) -> Self {
        Stream { key: [seed as u32, (seed >> 32) as u32], ctr: [a, b, c, 0], buf: [0; 4], pos: 4 }
    }

    /// The next 32 random bits.
    #[inline]
    pub fn next_word(&mut self) -> u32 {
        if self.pos == 4 {
            self.buf = philox4x32_10(self.ctr, self.key);
            self.ctr[3] = self.ctr[3].wrapping_add(1);
            self.pos = 0;
        }
        let w = self.buf[self.pos];
        self.pos += 1;
        w
    }

    /// Uniform in the open interval (0, 1) with 53 random bits (never 0, so `ln` is safe).
    #[inline]
    pub fn uniform(&mut self) -> f64 {
        let hi = (self.next_word() >> 5) as u64; // 27 bits
        let lo = (self.next_word() >> 6) as u64; // 26 bits
        (((hi << 26) | lo) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
    }
}

impl RngCore for Stream {
    fn next_u32(&mut self) -> u32 {
        self.next_word()
    }
    fn next_u64(&mut self) -> u64 {
        let lo = self.next_word() as u64;
        let hi = self.next_word() as u64;
        (hi << 32) | lo
    }
    fn fill_bytes(&mut self, dst: &mut [u8]) {
        for chunk in dst.chunks_mut(4) {
            let w = self.next_word().to_le_bytes();
            chunk.copy_from_slice(&w[..chunk.len()]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Known-answer vectors from Random123 (`kat_vectors`, philox4x32_10).
    #[test]
    fn philox_known_answers() {
        assert_eq!(philox4x32_10([0; 4], [0; 2]), [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]);
        assert_eq!(
            philox4x32_10([u32::MAX; 4], [u32::MAX; 2]),
            [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd]
        );
        assert_eq!(
            philox4x32_10(
                [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
                [0xa4093822, 0x299f31d0]
            ),
            [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1]
        );
    }

    #[test]
    fn uniform_moments_and_range() {
        let mut s = Stream::new(42, 1, 2, 3);
        let n = 200_000;
        let (mut m1, mut m2) = (0.0, 0.0);
        for _ in 0..n {
            let u = s.uniform();
            assert!(u > 0.0 && u < 1.0);
            m1 += u;
            m2 += u * u;
        }
        m1 /= n as f64;
        m2 /= n as f64;
        // Mean 1/2 and variance 1/12, each to ~5 sigma.
        assert!((m1 - 0.5).abs() < 5.0 * (1.0 / 12.0 / n as f64).sqrt(), "mean {m1}");
        assert!((m2 - m1 * m1 - 1.0 / 12.0).abs() < 2e-3, "var {}", m2 - m1 * m1);
    }

    #[test]
    fn streams_differ_by_coordinate_and_seed() {
        let first = |seed, a, b, c| Stream::new(seed, a, b, c).next_word();
        let base = first(1, 0, 0, 0);
        assert_ne!(base, first(2, 0, 0, 0));
        assert_ne!(base, first(1, 1, 0, 0));
        assert_ne!(base, first(1, 0, 1, 0));
        assert_ne!(base, first(1, 0, 0, 1));
    }
}
