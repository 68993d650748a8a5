//! Sentence vectors as a NumPy `.npy` file: a float32 `(texts, hidden)` matrix, row `i` the `i`-th
//! text read. `trainer embed --out FILE.npy` writes one (`numpy.load` reads it), and
//! `trainer match --candidate-vectors` reads it back instead of embedding the candidates again.
//!
//! Writing is candle's ([`Tensor::write_npy`], npy v1.0) through [`crate::output::write_with`],
//! so the file appears whole or not at all. Reading is ours: candle's `read_npy` allocates
//! whatever shape the header claims before reading any data, so a damaged header could ask for
//! terabytes and abort the process, and it does not tell a wrong shape from a damaged file. Here the
//! header is checked against the shape the caller expects and the data against the file's size
//! before anything is allocated, and each row must be a unit vector, as `embed` writes them.
use std::path::Path;

use anyhow::{bail, Context, Result};
use candle_core::{DType, Device, Tensor};

const MAGIC: &[u8] = b"\x93NUMPY";

/// How far a row's length may be from 1 and still be one of `embed`'s unit vectors (theirs are
/// within about 1e-6; a vector never normalised is off by far more).
const UNIT_TOLERANCE: f32 = 1e-3;

/// Writes `vectors` (`(rows, hidden)`) as float32 to `path`, atomically.
pub fn write(path: &Path, vectors: &Tensor) -> Result<()> {
    let vectors = vectors.to_dtype(DType::F32)?.to_device(&Device::Cpu)?;
    crate::output::write_with(path, |tmp| {
        vectors
            .write_npy(tmp)
            .with_context(|| format!("writing {}", tmp.display()))
    })
}

/// Reads the `(rows, hidden)` float32 unit vectors of `path`; `expected` says what they must be
/// (for the error of a file that is not: "the 1,000 candidates of c.txt").
pub fn read(path: &Path, rows: usize, hidden: usize, expected: &str) -> Result<Tensor> {
    let name = path.display();
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {name}"))?;
    let (header, data) = split_header(&bytes).with_context(|| {
        format!("{name}: not a .npy file (write one with `trainer embed --out FILE.npy`)")
    })?;
    let shape = parse_header(header).with_context(|| format!("{name}: npy header"))?;
    if shape != [rows, hidden] {
        bail!(
            "{name}: holds a {} matrix, but {expected} take {rows} x {hidden} (texts x the \
             model's hidden size); write them again with `trainer embed` from the same file and \
             model",
            shape
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(" x "),
        );
    }
    // The shape matches what the caller holds in memory already, so this cannot overflow for a
    // file that fits; checked anyway, since the file decides nothing here.
    let size = rows
        .checked_mul(hidden)
        .and_then(|n| n.checked_mul(4))
        .with_context(|| format!("{name}: {rows} x {hidden} is too large"))?;
    if data.len() != size {
        bail!(
            "{name}: {rows} x {hidden} float32 take {size} bytes after the header, the file has {}: \
             it is truncated or damaged",
            data.len()
        );
    }
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    for (row, vector) in values.chunks_exact(hidden.max(1)).enumerate() {
        let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        // A NaN or infinity anywhere makes the norm non-finite: refused too.
        if !norm.is_finite() || (norm - 1.0).abs() >= UNIT_TOLERANCE {
            bail!(
                "{name}: row {row} has length {norm}, not 1: these are not the unit vectors \
                 `trainer embed` writes"
            );
        }
    }
    Ok(Tensor::from_vec(values, (rows, hidden), &Device::Cpu)?)
}

/// The header text and the data after it. Versions 1 (2-byte header length) and 2 and 3
/// (4-byte) are read.
fn split_header(bytes: &[u8]) -> Result<(&str, &[u8])> {
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        bail!("no npy magic string");
    };
    let (length, start): (usize, usize) = match rest.first() {
        Some(1) if rest.len() >= 4 => (u16::from_le_bytes([rest[2], rest[3]]) as usize, 10),
        Some(2 | 3) if rest.len() >= 6 => (
            u32::from_le_bytes([rest[2], rest[3], rest[4], rest[5]]) as usize,
            12,
        ),
        Some(version @ (1..=3)) => bail!("version {version}: cut short in the preamble"),
        Some(version) => bail!("version {version}: only versions 1 to 3 exist"),
        None => bail!("cut short after the magic string"),
    };
    let end = start
        .checked_add(length)
        .filter(|&end| end <= bytes.len())
        .context("the header is longer than the file")?;
    let header = std::str::from_utf8(&bytes[start..end]).context("header not UTF-8")?;
    Ok((header, &bytes[end..]))
}

/// The shape of a little-endian float32 array in C order, from a header such as
/// `{'descr': '<f4', 'fortran_order': False, 'shape': (3, 384), }`.
fn parse_header(header: &str) -> Result<Vec<usize>> {
    let descr = field(header, "descr")?;
    if !matches!(descr, "'<f4'" | "\"<f4\"") {
        bail!("dtype {descr}: expected little-endian float32 ('<f4')");
    }
    let order = field(header, "fortran_order")?;
    if order != "False" {
        bail!("fortran_order {order}: expected False (rows stored one after another)");
    }
    let shape = field(header, "shape")?;
    let dims = shape
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .with_context(|| format!("shape {shape}: expected a tuple such as (3, 384)"))?;
    dims.split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(|d| {
            d.parse::<usize>()
                .with_context(|| format!("shape {shape}: `{d}` is not a size"))
        })
        .collect()
}

/// The value of `key` in the header's Python dict literal: a quoted string, a tuple or a word.
fn field<'a>(header: &'a str, key: &str) -> Result<&'a str> {
    let at = [format!("'{key}'"), format!("\"{key}\"")]
        .iter()
        .find_map(|quoted| header.find(quoted.as_str()).map(|i| i + quoted.len()))
        .with_context(|| format!("no `{key}` in the header"))?;
    let rest = header[at..].trim_start();
    let rest = rest
        .strip_prefix(':')
        .with_context(|| format!("`{key}` has no value"))?
        .trim_start();
    let end = match rest.chars().next() {
        Some('(') => rest.find(')').map(|i| i + 1),
        Some(quote @ ('\'' | '"')) => rest[1..].find(quote).map(|i| i + 2),
        Some(_) => Some(rest.find([',', '}']).unwrap_or(rest.len())),
        None => None,
    }
    .with_context(|| format!("`{key}`: value not closed"))?;
    Ok(rest[..end].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A scratch file path for one test of this process.
    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("multitag-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join(name)
    }

    fn unit_rows() -> Tensor {
        Tensor::new(&[[0.6f32, 0.8, 0.0], [0.0, 0.0, -1.0]], &Device::Cpu).unwrap()
    }

    /// A version 1.0 file with `header` (padded as numpy pads it, to 64 bytes) and `values`.
    fn npy_bytes(header: &str, values: &[f32]) -> Vec<u8> {
        let padded = format!("{header:<117}\n");
        let mut bytes = MAGIC.to_vec();
        bytes.extend([1, 0]);
        bytes.extend((padded.len() as u16).to_le_bytes());
        bytes.extend(padded.as_bytes());
        for v in values {
            bytes.extend(v.to_le_bytes());
        }
        bytes
    }

    #[test]
    fn what_candle_writes_reads_back_as_does_numpys_layout() {
        let path = scratch("round-trip.npy");
        let vectors = unit_rows();
        write(&path, &vectors).unwrap();
        let back = read(&path, 2, 3, "two texts").unwrap();
        assert_eq!(
            back.to_vec2::<f32>().unwrap(),
            vectors.to_vec2::<f32>().unwrap()
        );
        let values = vectors.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        std::fs::write(&path, npy_bytes(header, &values)).unwrap();
        let back = read(&path, 2, 3, "two texts").unwrap();
        assert_eq!(
            back.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            values
        );
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn another_shape_or_a_damaged_file_is_an_error_naming_it() {
        let path = scratch("shape.npy");
        write(&path, &unit_rows()).unwrap();
        let err = read(&path, 3, 3, "the 3 candidates of c.txt").unwrap_err();
        let message = format!("{err:#}");
        assert!(
            message.contains("shape.npy: holds a 2 x 3 matrix"),
            "{message}"
        );
        assert!(
            message.contains("the 3 candidates of c.txt take 3 x 3"),
            "{message}"
        );
        let err = read(&path, 2, 384, "two texts").unwrap_err();
        assert!(format!("{err:#}").contains("2 x 384"), "{err:#}");

        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 1]).unwrap();
        let err = read(&path, 2, 3, "two texts").unwrap_err();
        assert!(
            format!("{err:#}").contains("truncated or damaged"),
            "{err:#}"
        );
        std::fs::write(&path, &bytes[..9]).unwrap();
        assert!(read(&path, 2, 3, "two texts").is_err());
        std::fs::write(&path, b"{\"line\": 1}").unwrap();
        let err = read(&path, 2, 3, "two texts").unwrap_err();
        assert!(format!("{err:#}").contains("not a .npy file"), "{err:#}");

        // A header claiming an absurd shape is refused before anything is allocated.
        let huge =
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999, 99999999999), }";
        std::fs::write(&path, npy_bytes(huge, &[1.0])).unwrap();
        assert!(read(&path, 2, 3, "two texts").is_err());
        for header in [
            "{'descr': '<f8', 'fortran_order': False, 'shape': (2, 3), }",
            "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }",
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }",
            "{'descr': '<f4', 'fortran_order': False, }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3",
        ] {
            assert!(parse_header(header).is_err(), "{header}");
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn vectors_that_are_not_unit_length_are_refused() {
        let path = scratch("norm.npy");
        let vectors = Tensor::new(&[[3f32, 4.0, 0.0]], &Device::Cpu).unwrap();
        write(&path, &vectors).unwrap();
        let err = read(&path, 1, 3, "one text").unwrap_err();
        assert!(format!("{err:#}").contains("row 0 has length 5"), "{err:#}");
        let nan = Tensor::new(&[[f32::NAN, 0.0, 0.0]], &Device::Cpu).unwrap();
        write(&path, &nan).unwrap();
        assert!(read(&path, 1, 3, "one text").is_err());
        let _ = std::fs::remove_file(&path);
    }
}
