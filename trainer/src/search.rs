//! Nearest candidates by cosine similarity, for `trainer match`. The vectors are unit length
//! ([`multitag_model::Embedder::embed`]), so cosine similarity is a dot product and a chunk of
//! queries against every candidate is one matmul. Chunks bound the memory: a chunk's scores are
//! [`QUERY_CHUNK`] x candidates floats (26 MB against 100,000 candidates), where all 1,000 queries
//! of a run at once would take 400 MB. Each query keeps its `k` best by partial selection.
use anyhow::Result;
use candle_core::Tensor;
use rayon::prelude::*;

/// Queries scored per matmul: large enough for the matmul to run at full speed, small enough that
/// its scores stay in the tens of megabytes.
pub const QUERY_CHUNK: usize = 64;

/// One candidate for a query: its index among the candidates and its cosine similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Match {
    pub candidate: usize,
    pub score: f32,
}

/// The `k` highest of `scores` (one per candidate, by index), best first. Equal scores go to the
/// lower index, i.e. the earlier candidate line, so the result does not depend on the selection
/// algorithm, the thread count or the run. A partial selection finds the `k` and only they are
/// sorted: O(n + k log k) per query, not a full sort of the candidates.
pub fn top_k(scores: &[f32], k: usize) -> Vec<Match> {
    let k = k.min(scores.len());
    if k == 0 {
        return Vec::new();
    }
    // A total order (`total_cmp`), so selection and sorting agree even on a NaN.
    let better = |a: &usize, b: &usize| scores[*b].total_cmp(&scores[*a]).then_with(|| a.cmp(b));
    let mut order: Vec<usize> = (0..scores.len()).collect();
    if k < order.len() {
        order.select_nth_unstable_by(k - 1, better);
        order.truncate(k);
    }
    order.sort_unstable_by(better);
    order
        .into_iter()
        .map(|candidate| Match {
            candidate,
            score: scores[candidate],
        })
        .collect()
}

/// For each row of `queries` `(q, hidden)`, its `k` best rows of `candidates` `(n, hidden)` by dot
/// product ([`top_k`]); `each(query, matches)` is called in query order, so results can be written
/// as they come.
pub fn search(
    queries: &Tensor,
    candidates: &Tensor,
    k: usize,
    mut each: impl FnMut(usize, Vec<Match>) -> Result<()>,
) -> Result<()> {
    let (count, _) = queries.dims2()?;
    let (n, _) = candidates.dims2()?;
    // Transposed as a view: the matmul reads it with strides, nothing is copied.
    let candidates = candidates.t()?;
    for start in (0..count).step_by(QUERY_CHUNK) {
        let len = QUERY_CHUNK.min(count - start);
        let scores = queries
            .narrow(0, start, len)?
            .matmul(&candidates)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        // The selections are independent per query: one per core.
        let best: Vec<Vec<Match>> = scores
            .par_chunks(n.max(1))
            .map(|row| top_k(row, k))
            .collect();
        for (offset, matches) in best.into_iter().enumerate() {
            each(start + offset, matches)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn indices(matches: &[Match]) -> Vec<usize> {
        matches.iter().map(|m| m.candidate).collect()
    }

    #[test]
    fn top_k_is_the_best_first_with_ties_to_the_earlier_candidate() {
        let scores = [0.1, 0.9, 0.5, 0.9, -0.3, 0.5, 0.9];
        assert_eq!(indices(&top_k(&scores, 1)), [1]);
        assert_eq!(indices(&top_k(&scores, 2)), [1, 3]);
        assert_eq!(indices(&top_k(&scores, 4)), [1, 3, 6, 2]);
        assert_eq!(indices(&top_k(&scores, 5)), [1, 3, 6, 2, 5]);
        assert_eq!(indices(&top_k(&scores, 100)), [1, 3, 6, 2, 5, 0, 4]);
        assert!(top_k(&scores, 0).is_empty());
        assert!(top_k(&[], 3).is_empty());
        assert_eq!(top_k(&scores, 1)[0].score, 0.9);
    }

    /// Against a full sort, on many ties: the partial selection keeps exactly the same k.
    #[test]
    fn top_k_agrees_with_a_full_sort() {
        let scores: Vec<f32> = (0..1000).map(|i| ((i * 37) % 11) as f32 / 10.0).collect();
        let mut sorted: Vec<usize> = (0..scores.len()).collect();
        sorted.sort_by(|a, b| scores[*b].total_cmp(&scores[*a]).then(a.cmp(b)));
        for k in [1, 7, 90, 91, 999, 1000] {
            assert_eq!(indices(&top_k(&scores, k)), sorted[..k], "k = {k}");
        }
    }

    /// More queries than one chunk, against candidates equal to the queries: each query finds
    /// itself first, in query order.
    #[test]
    fn every_query_finds_itself_across_chunks() -> Result<()> {
        let count = QUERY_CHUNK + 9;
        let rows: Vec<f32> = (0..count)
            .flat_map(|i| {
                let angle = i as f32 * 0.02;
                [angle.cos(), angle.sin()]
            })
            .collect();
        let vectors = Tensor::from_vec(rows, (count, 2), &Device::Cpu)?;
        let mut seen = Vec::new();
        search(&vectors, &vectors, 2, |query, matches| {
            assert_eq!(matches[0].candidate, query);
            assert!((matches[0].score - 1.0).abs() < 1e-5);
            assert_eq!(matches.len(), 2);
            seen.push(query);
            Ok(())
        })?;
        assert_eq!(seen, (0..count).collect::<Vec<_>>());
        Ok(())
    }
}
