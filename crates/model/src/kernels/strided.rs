//! Bounds-checked strided matrix views over slices, multiplied with `gemm` (the GEMM under candle's
//! CPU matmul) on the calling thread. Attention works on many small matrices that sit inside wider
//! rows (one head's columns of a sequence's rows); gemm reads and writes them in place through
//! strides, where candle would need a transposing copy of each and a batched matmul.

/// A read-only `rows x cols` matrix: element `(i, j)` is `data[i * row_stride + j * col_stride]`.
#[derive(Clone, Copy)]
pub(crate) struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> MatRef<'a> {
    /// Rows of `cols` consecutive elements, `row_stride` apart. Panics when the view does not fit
    /// in `data`: the callers build views from lengths they have already validated.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(
            fits(data.len(), rows, cols, row_stride, 1),
            "matrix view out of bounds"
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
            col_stride: 1,
        }
    }

    /// The transpose, as a view of the same elements.
    pub fn t(self) -> Self {
        Self {
            rows: self.cols,
            cols: self.rows,
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }
}

/// A writable `rows x cols` matrix of rows `row_stride` apart.
pub(crate) struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

impl<'a> MatMut<'a> {
    /// Panics when the view does not fit in `data` (see [`MatRef::rows`]).
    pub fn rows(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(
            fits(data.len(), rows, cols, row_stride, 1),
            "matrix view out of bounds"
        );
        Self {
            data,
            rows,
            cols,
            row_stride,
        }
    }
}

/// Whether every element of the view indexes into `len` elements.
fn fits(len: usize, rows: usize, cols: usize, row_stride: usize, col_stride: usize) -> bool {
    rows == 0 || cols == 0 || (rows - 1) * row_stride + (cols - 1) * col_stride < len
}

/// `dst = scale * lhs rhs`, or `dst += scale * lhs rhs` when `accumulate`, on the calling thread.
pub(crate) fn matmul(dst: &mut MatMut, lhs: MatRef, rhs: MatRef, scale: f32, accumulate: bool) {
    matmul_with(dst, lhs, rhs, scale, accumulate, parallelism(false))
}

/// [`matmul`] on all of rayon's threads, for one large product.
pub(crate) fn matmul_parallel(
    dst: &mut MatMut,
    lhs: MatRef,
    rhs: MatRef,
    scale: f32,
    accumulate: bool,
) {
    matmul_with(dst, lhs, rhs, scale, accumulate, parallelism(true))
}

/// gemm's threading: all of rayon's threads when `parallel` and there are several, else the
/// calling thread.
fn parallelism(parallel: bool) -> gemm::Parallelism {
    match rayon::current_num_threads() {
        n if parallel && n > 1 => gemm::Parallelism::Rayon(n),
        _ => gemm::Parallelism::None,
    }
}

fn matmul_with(
    dst: &mut MatMut,
    lhs: MatRef,
    rhs: MatRef,
    scale: f32,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    assert!(
        lhs.rows == dst.rows && rhs.cols == dst.cols && lhs.cols == rhs.rows,
        "matmul: ({}x{}) ({}x{}) into ({}x{})",
        lhs.rows,
        lhs.cols,
        rhs.rows,
        rhs.cols,
        dst.rows,
        dst.cols
    );
    // SAFETY: the view was checked to lie within its slice (`fits`), the dimensions agree
    // (asserted above), and `dst` is borrowed mutably, so it aliases neither input.
    unsafe {
        gemm_into(
            dst.data.as_mut_ptr(),
            dst.row_stride,
            lhs,
            rhs,
            scale,
            accumulate,
            parallelism,
        )
    }
}

/// `scale * lhs rhs` as a new row-major `(lhs.rows, rhs.cols)` matrix, on all of rayon's threads
/// when `parallel`. The buffer is not zeroed first: gemm writes every element of a destination it
/// is told not to read, so a fill would be a wasted pass over the output (about 2% of a CPU
/// training step, in the dense layers' backward pass).
pub(crate) fn matmul_new(lhs: MatRef, rhs: MatRef, scale: f32, parallel: bool) -> Vec<f32> {
    assert!(
        lhs.cols == rhs.rows,
        "matmul: ({}x{}) ({}x{})",
        lhs.rows,
        lhs.cols,
        rhs.rows,
        rhs.cols
    );
    let (rows, cols) = (lhs.rows, rhs.cols);
    let len = rows
        .checked_mul(cols)
        .expect("matmul: output size overflows");
    let mut out = Vec::with_capacity(len);
    // SAFETY: the buffer holds `rows * cols` elements, laid out as dense rows of `cols`; the
    // inputs' views were checked against their slices when built. With `accumulate` false, gemm
    // writes each of those elements (zeros when the inner dimension is 0) and reads none, so
    // every element is initialized before `set_len`.
    unsafe {
        gemm_into(
            out.as_mut_ptr(),
            cols,
            lhs,
            rhs,
            scale,
            false,
            parallelism(parallel),
        );
        out.set_len(len);
    }
    out
}

/// `dst = scale * lhs rhs` (or `+=` when `accumulate`) into `rows x cols` elements at `dst`,
/// rows `row_stride` apart.
///
/// # Safety
/// `dst` must be valid for writes of that view (and reads, when `accumulate`) and alias neither
/// input; `lhs.cols == rhs.rows`.
unsafe fn gemm_into(
    dst: *mut f32,
    row_stride: usize,
    lhs: MatRef,
    rhs: MatRef,
    scale: f32,
    accumulate: bool,
    parallelism: gemm::Parallelism,
) {
    gemm::gemm(
        lhs.rows,
        rhs.cols,
        lhs.cols,
        dst,
        1,
        row_stride as isize,
        accumulate,
        lhs.data.as_ptr(),
        lhs.col_stride as isize,
        lhs.row_stride as isize,
        rhs.data.as_ptr(),
        rhs.col_stride as isize,
        rhs.row_stride as isize,
        1.0,
        scale,
        false,
        false,
        false,
        parallelism,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        out
    }

    #[test]
    fn strided_views_multiply_like_dense_matrices() {
        let (m, k, n) = (5, 3, 4);
        let a: Vec<f32> = (0..m * k).map(|i| i as f32 * 0.5 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|i| (i as f32).sin()).collect();
        let expected = naive(&a, &b, m, k, n);

        // `b` stored transposed, and the result written into columns 2..6 of 7-wide rows.
        let mut bt = vec![0f32; n * k];
        for p in 0..k {
            for j in 0..n {
                bt[j * k + p] = b[p * n + j];
            }
        }
        let mut wide = vec![9f32; m * 7];
        let mut dst = MatMut::rows(&mut wide[2..], m, n, 7);
        let rhs = MatRef::rows(&bt, n, k, k).t();
        matmul(&mut dst, MatRef::rows(&a, m, k, k), rhs, 2.0, false);
        for i in 0..m {
            for j in 0..n {
                let got = wide[i * 7 + 2 + j];
                assert!((got - 2.0 * expected[i * n + j]).abs() < 1e-4);
            }
            // Columns outside the view are untouched.
            assert_eq!(wide[i * 7], 9.0);
            assert_eq!(wide[i * 7 + 1], 9.0);
        }

        // Accumulating adds to what is there.
        let mut dst = MatMut::rows(&mut wide[2..], m, n, 7);
        matmul(&mut dst, MatRef::rows(&a, m, k, k), rhs, -1.0, true);
        for i in 0..m {
            for j in 0..n {
                assert!((wide[i * 7 + 2 + j] - expected[i * n + j]).abs() < 1e-4);
            }
        }
    }

    #[test]
    #[should_panic(expected = "out of bounds")]
    fn views_past_the_slice_are_refused() {
        let data = [0f32; 10];
        MatRef::rows(&data, 3, 4, 4);
    }
}
