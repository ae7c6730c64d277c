//! Endian-aware conversion between byte payloads and numbers, shared by all formats.

use super::Precision;

/// Decodes `data` (a whole number of values) as floats of `prec` in the given byte order.
pub(crate) fn decode_floats(data: &[u8], prec: Precision, big_endian: bool) -> Vec<f64> {
    match prec {
        Precision::F32 => data
            .chunks_exact(4)
            .map(|c| {
                let b = [c[0], c[1], c[2], c[3]];
                (if big_endian { f32::from_be_bytes(b) } else { f32::from_le_bytes(b) }) as f64
            })
            .collect(),
        Precision::F64 => data
            .chunks_exact(8)
            .map(|c| {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                if big_endian { f64::from_be_bytes(b) } else { f64::from_le_bytes(b) }
            })
            .collect(),
    }
}

/// Appends `x` as a float of `prec` in the given byte order.
pub(crate) fn push_float(out: &mut Vec<u8>, x: f64, prec: Precision, big_endian: bool) {
    match prec {
        Precision::F32 => {
            let v = x as f32;
            out.extend_from_slice(&if big_endian { v.to_be_bytes() } else { v.to_le_bytes() });
        }
        Precision::F64 => {
            out.extend_from_slice(&if big_endian { x.to_be_bytes() } else { x.to_le_bytes() });
        }
    }
}

/// The 32-bit word at `off` (caller guarantees `off + 4 <= data.len()`).
pub(crate) fn u32_at(data: &[u8], off: usize, big_endian: bool) -> u32 {
    let b = [data[off], data[off + 1], data[off + 2], data[off + 3]];
    if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) }
}

/// Appends a 32-bit word.
pub(crate) fn push_u32(out: &mut Vec<u8>, x: u32, big_endian: bool) {
    out.extend_from_slice(&if big_endian { x.to_be_bytes() } else { x.to_le_bytes() });
}

/// Host-order 32-bit words of a payload stored in `big_endian` order with values of `prec`:
/// the words checksums (NERSC sum, MILC sum29/sum31) run over. A double contributes its two
/// halves, low half first, as a little-endian host sees them.
pub(crate) fn host_words(data: &[u8], prec: Precision, big_endian: bool) -> Vec<u32> {
    match prec {
        Precision::F32 => data.chunks_exact(4).map(|c| u32_at(c, 0, big_endian)).collect(),
        Precision::F64 => {
            let mut w = Vec::with_capacity(data.len() / 4);
            for c in data.chunks_exact(8) {
                let mut b = [0u8; 8];
                b.copy_from_slice(c);
                let v = if big_endian { u64::from_be_bytes(b) } else { u64::from_le_bytes(b) };
                w.push(v as u32);
                w.push((v >> 32) as u32);
            }
            w
        }
    }
}
