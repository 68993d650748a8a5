//! [`Codes`]: a quantized matrix as the shaders read it, dequantizing each value where it is
//! used instead of at upload.
//!
//! GGML's block formats differ in block size (32 or 256), byte layout and sign conventions, and
//! some (q5_0's 22-byte blocks) do not even align to the 4-byte words a shader reads. So at upload
//! each is rewritten into one layout: every run of 32 consecutive values (a row's, since rows are
//! whole blocks) has a `(scale, offset)` pair of f32, and each value an unsigned code of
//! [`Codes::bits`] bits, packed little-end first into u32 words; the value is
//! `scale * code - offset`. Every supported format fits it exactly:
//!
//! | GGML type | value | bits | code | scale | offset |
//! |---|---|---|---|---|---|
//! | q8_0 | `d * q`, `q` in -128..=127 | 8 | `q + 128` | `d` | `128 d` |
//! | q5_0 | `d * (q - 16)`, `q` in 0..=31 | 8 | `q` | `d` | `16 d` |
//! | q4_0 | `d * (q - 8)`, `q` in 0..=15 | 4 | `q` | `d` | `8 d` |
//! | q4k | `d * sc * q - dmin * m` per 32 values | 4 | `q` | `d * sc` | `dmin * m` |
//!
//! The value comes out exactly as candle's (and GGML's) dequantization gives it (a zero perhaps
//! of the other sign, where GGML multiplies a zero code by a negative `d`): `d` is an
//! f16, so `scale * code` is exact in f32 (at most 11 + 6 + 8 significant bits), and so is the
//! offset; one rounding of their difference is then GGML's single rounding, fused multiply-add or
//! not. Other types (f16, q6k, ...) are dequantized to f32 at upload instead.
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::Result;
use half::f16;

/// Values per `(scale, offset)` pair.
pub const BLOCK: usize = 32;

/// A quantized matrix in the shaders' layout (module doc).
#[derive(Debug, Clone, PartialEq)]
pub struct Codes {
    /// Bits per code: 4 or 8.
    pub bits: u32,
    /// The codes, `32 / bits` to a word, the first in the lowest bits.
    pub words: Vec<u32>,
    /// `[scale, offset]` of each block of 32 values.
    pub factors: Vec<[f32; 2]>,
}

impl Codes {
    /// `tensor` in this layout, or `None` for a type it does not hold (f32, f16, q6k, ...).
    pub fn of(tensor: &QTensor) -> Result<Option<Codes>> {
        let data = tensor.data()?;
        let codes = match tensor.dtype() {
            GgmlDType::Q8_0 => Self::decode(&data, (34, BLOCK), 8, |block, codes| {
                let d = f16_at(block, 0);
                for (code, &q) in codes.iter_mut().zip(&block[2..]) {
                    *code = (q as i8 as i32 + 128) as u32;
                }
                vec![[d, 128.0 * d]]
            }),
            GgmlDType::Q5_0 => Self::decode(&data, (22, BLOCK), 8, |block, codes| {
                let d = f16_at(block, 0);
                let high = u32::from_le_bytes([block[2], block[3], block[4], block[5]]);
                for (j, &q) in block[6..22].iter().enumerate() {
                    codes[j] = (q & 0xF) as u32 | ((high >> j) & 1) << 4;
                    codes[j + 16] = (q >> 4) as u32 | ((high >> (j + 16)) & 1) << 4;
                }
                vec![[d, 16.0 * d]]
            }),
            GgmlDType::Q4_0 => Self::decode(&data, (18, BLOCK), 4, |block, codes| {
                let d = f16_at(block, 0);
                for (j, &q) in block[2..18].iter().enumerate() {
                    codes[j] = (q & 0xF) as u32;
                    codes[j + 16] = (q >> 4) as u32;
                }
                vec![[d, 8.0 * d]]
            }),
            // 256 values: d, dmin, 12 bytes of 6-bit scales and mins for its 8 runs of 32, then
            // 128 bytes of codes, each 32 bytes holding two runs (low nibbles, then high).
            GgmlDType::Q4K => Self::decode(&data, (144, 256), 4, |block, codes| {
                let (d, dmin) = (f16_at(block, 0), f16_at(block, 2));
                let scales = &block[4..16];
                let quants = &block[16..144];
                (0..8)
                    .map(|run| {
                        let bytes = &quants[run / 2 * 32..][..32];
                        let shift = 4 * (run % 2);
                        for (l, &q) in bytes.iter().enumerate() {
                            codes[run * 32 + l] = ((q >> shift) & 0xF) as u32;
                        }
                        let (sc, m) = scale_and_min(run, scales);
                        [d * sc as f32, dmin * m as f32]
                    })
                    .collect()
            }),
            _ => return Ok(None),
        };
        codes.map(Some)
    }

    /// Blocks of `bytes` bytes holding `values` values each, each read by `read` into its codes
    /// and its runs' factors.
    fn decode(
        data: &[u8],
        (bytes, values): (usize, usize),
        bits: u32,
        read: impl Fn(&[u8], &mut [u32]) -> Vec<[f32; 2]>,
    ) -> Result<Codes> {
        if !data.len().is_multiple_of(bytes) {
            candle_core::bail!(
                "quantized data of {} bytes is not whole blocks of {bytes}",
                data.len()
            )
        }
        let mut codes = Vec::new();
        let mut factors = Vec::new();
        let mut block_codes = vec![0; values];
        for block in data.chunks_exact(bytes) {
            factors.extend(read(block, &mut block_codes));
            codes.extend_from_slice(&block_codes);
        }
        let per_word = (32 / bits) as usize;
        let words = codes
            .chunks(per_word)
            .map(|chunk| {
                chunk
                    .iter()
                    .enumerate()
                    .fold(0u32, |word, (i, &code)| word | code << (i as u32 * bits))
            })
            .collect();
        Ok(Codes {
            bits,
            words,
            factors,
        })
    }

    /// Every value, as the shaders compute it (for tests and for a matrix that must be f32).
    pub fn values(&self) -> Vec<f32> {
        let per_word = (32 / self.bits) as usize;
        let mask = (1u32 << self.bits) - 1;
        (0..self.factors.len() * BLOCK)
            .map(|i| {
                let code = (self.words[i / per_word] >> ((i % per_word) as u32 * self.bits)) & mask;
                let [scale, offset] = self.factors[i / BLOCK];
                scale * code as f32 - offset
            })
            .collect()
    }

    /// `self`'s rows followed by `other`'s (both must have the same bits), as stacking two
    /// weight matrices of one layer.
    pub fn append(&mut self, other: Codes) -> Result<()> {
        if self.bits != other.bits {
            candle_core::bail!("codes of {} and {} bits", self.bits, other.bits)
        }
        self.words.extend(other.words);
        self.factors.extend(other.factors);
        Ok(())
    }
}

fn f16_at(block: &[u8], at: usize) -> f32 {
    f16::from_le_bytes([block[at], block[at + 1]]).to_f32()
}

/// Run `j`'s 6-bit scale and min in q4k's 12 packed bytes (GGML's `get_scale_min_k4`): runs 0-3
/// in the low 6 bits of bytes 0-3 and 4-7; runs 4-7 in the nibbles of bytes 8-11, with their top
/// two bits in the spare bits of bytes 0-7.
fn scale_and_min(j: usize, q: &[u8]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        (
            (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4),
            (q[j + 4] >> 4) | ((q[j] >> 6) << 4),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Deterministic values of every sign and a few magnitudes, some runs all zero, some with
    /// one large outlier (what stretches a block's scale).
    fn matrix(rows: usize, cols: usize) -> Tensor {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let unit = (state >> 40) as f32 / (1u64 << 24) as f32 - 0.5;
                match (i / 32) % 5 {
                    0 => 0.0,
                    1 if i % 32 == 3 => 40.0,
                    2 => unit * 1e-3,
                    _ => unit,
                }
            })
            .collect();
        Tensor::from_vec(values, (rows, cols), &Device::Cpu).unwrap()
    }

    /// Each type's codes give exactly candle's dequantized values (`==`: a zero's sign aside),
    /// over whole blocks and several rows.
    #[test]
    fn codes_give_candles_values_exactly() -> Result<()> {
        for (dtype, bits) in [
            (GgmlDType::Q8_0, 8),
            (GgmlDType::Q5_0, 8),
            (GgmlDType::Q4_0, 4),
            (GgmlDType::Q4K, 4),
        ] {
            let q = QTensor::quantize(&matrix(6, 512), dtype)?;
            let expected = q
                .dequantize(&Device::Cpu)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let codes = Codes::of(&q)?.expect("a supported type");
            assert_eq!(codes.bits, bits, "{dtype:?}");
            assert_eq!(codes.factors.len() * BLOCK, 6 * 512, "{dtype:?}");
            let got = codes.values();
            for (i, (g, e)) in got.iter().zip(&expected).enumerate() {
                assert!(g == e, "{dtype:?}: value {i}: {g} vs {e}");
            }
        }
        Ok(())
    }

    #[test]
    fn other_types_are_left_to_f32() -> Result<()> {
        for dtype in [GgmlDType::F32, GgmlDType::F16, GgmlDType::Q6K] {
            let q = QTensor::quantize(&matrix(2, 256), dtype)?;
            assert!(Codes::of(&q)?.is_none(), "{dtype:?}");
        }
        Ok(())
    }

    #[test]
    fn appended_codes_are_the_stacked_rows() -> Result<()> {
        let (a, b) = (matrix(2, 64), (matrix(3, 64) * 2.0)?);
        let mut codes = Codes::of(&QTensor::quantize(&a, GgmlDType::Q8_0)?)?.unwrap();
        codes.append(Codes::of(&QTensor::quantize(&b, GgmlDType::Q8_0)?)?.unwrap())?;
        let stacked = Tensor::cat(&[&a, &b], 0)?;
        let expected = Codes::of(&QTensor::quantize(&stacked, GgmlDType::Q8_0)?)?.unwrap();
        assert_eq!(codes, expected);
        let four = Codes::of(&QTensor::quantize(&matrix(1, 256), GgmlDType::Q4K)?)?.unwrap();
        assert!(codes.append(four).is_err());
        Ok(())
    }
}
