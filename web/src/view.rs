//! The page's pure logic, kept apart from the DOM so it is unit-tested natively: reading pasted
//! titles, cutting a title into plain and entity segments by character offsets, entity colours,
//! best matches in a similarity matrix, the search's ranking, and small formatters.
use multitag_core::Entity;

/// At most this many titles are tagged from one paste.
pub const MAX_TITLES: usize = 5000;
/// The tag view sends titles to the worker in batches of this many. In the browser (one thread,
/// quantized matmul) larger batches are not faster per title, unlike natively (browser-bench: about
/// 28 titles/s one at a time, 17 in batches of 32, 18-25 for 4-8), and small batches stream results
/// sooner.
pub const BATCH_SIZE: usize = 8;
/// Titles are sorted by length within windows of this many before batching (see `batch_order`).
pub const SORT_WINDOW: usize = 256;
/// The similarity view compares at most this many titles and descriptions.
pub const MAX_SIMILARITY_ITEMS: usize = 100;
/// The search shows this many best matches unless asked for more.
pub const SEARCH_TOP_K: usize = 10;

/// Pasted text, one title per line: lines that are empty or only whitespace are skipped, every
/// other line is a title exactly as pasted, surrounding whitespace included (only its `\n` or
/// `\r\n` is cut), as `trainer tag` reads lines, so entity offsets index the line the user gave;
/// lines past `limit` are dropped and counted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PastedTitles {
    pub titles: Vec<String>,
    pub dropped: usize,
}

pub fn parse_lines(text: &str, limit: usize) -> PastedTitles {
    let mut out = PastedTitles::default();
    for line in text.lines() {
        if line.trim().is_empty() {
            continue;
        }
        if out.titles.len() < limit {
            out.titles.push(line.to_string());
        } else {
            out.dropped += 1;
        }
    }
    out
}

/// The order titles go to the worker in: within each window of `window` titles, sorted by length
/// (characters, a proxy for sub-words), then cut into batches of `batch`. A batch is padded to its
/// longest title, so grouping similar lengths saves most of the padding (on the catalog, batches of
/// 32 in input order spend about half their time on padding) while the list still fills from the
/// top, window by window. Returns batches of indices into `lengths`.
pub fn batch_order(lengths: &[usize], batch: usize, window: usize) -> Vec<Vec<usize>> {
    let batch = batch.max(1);
    let window = window.max(batch);
    let mut out = Vec::new();
    let all: Vec<usize> = (0..lengths.len()).collect();
    for win in all.chunks(window) {
        let mut sorted = win.to_vec();
        sorted.sort_by_key(|&i| lengths[i]);
        out.extend(sorted.chunks(batch).map(<[usize]>::to_vec));
    }
    out
}

/// A run of a title's characters: plain text, or the text of `entities[i]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Segment {
    pub text: String,
    pub entity: Option<usize>,
}

/// Cuts `title` at the entities' character offsets (Unicode scalar values, as the predictor reports
/// them). Entities out of range, empty, or overlapping an earlier one are shown as plain text.
pub fn segments(title: &str, entities: &[Entity]) -> Vec<Segment> {
    let chars: Vec<char> = title.chars().collect();
    let mut order: Vec<usize> = (0..entities.len()).collect();
    order.sort_by_key(|&i| (entities[i].start, entities[i].end));
    let mut out = Vec::new();
    let mut at = 0;
    let push = |out: &mut Vec<Segment>, from: usize, to: usize, entity: Option<usize>| {
        if from < to {
            out.push(Segment {
                text: chars[from..to].iter().collect(),
                entity,
            });
        }
    };
    for i in order {
        let e = &entities[i];
        if e.start < at || e.end <= e.start || e.end > chars.len() {
            continue;
        }
        push(&mut out, at, e.start, None);
        push(&mut out, e.start, e.end, Some(i));
        at = e.end;
    }
    push(&mut out, at, chars.len(), None);
    out
}

/// The colour class of an entity type: the four catalog types keep fixed colours, any other type
/// takes the next free one by its position in the model's list.
pub fn label_class(label: &str, types: &[String]) -> String {
    let fixed = ["BRAND", "GENDER", "COLOR", "TYPE"];
    let slot = fixed.iter().position(|f| *f == label).unwrap_or_else(|| {
        let others: Vec<&String> = types
            .iter()
            .filter(|t| !fixed.contains(&t.as_str()))
            .collect();
        fixed.len()
            + others
                .iter()
                .position(|t| *t == label)
                .unwrap_or(others.len())
    });
    format!("c{}", slot % 8)
}

/// Per row, the column with the highest similarity (the first on ties).
pub fn best_matches(matrix: &[Vec<f32>]) -> Vec<Option<usize>> {
    matrix
        .iter()
        .map(|row| {
            row.iter()
                .enumerate()
                .fold(None, |best: Option<(usize, f32)>, (j, &v)| match best {
                    Some((_, b)) if b >= v => best,
                    _ => Some((j, v)),
                })
                .map(|(j, _)| j)
        })
        .collect()
}

/// How many rows' best match is their own column (title i with description i).
pub fn diagonal_wins(matrix: &[Vec<f32>]) -> usize {
    best_matches(matrix)
        .iter()
        .enumerate()
        .filter(|(i, b)| **b == Some(*i))
        .count()
}

/// One catalog entry in a search's ranking: its place in the catalog and its score.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ranked {
    pub index: usize,
    pub score: f32,
}

/// The `k` catalog vectors that score highest against `query` by dot product (their cosine, as the
/// model's embeddings are L2-normalised), best first.
///
/// Ties keep catalog order: the sort is stable, so equal scores list in the order the examples
/// were bundled and the same search always shows the same list. A score that is not a number
/// (a vector of another length than the query, which cannot be compared, or a broken one) ranks
/// after every number rather than wherever a float comparison would put it. All entries are
/// scored and sorted before the cut at `k`: a catalog is a few hundred vectors at most, so a
/// partial selection would save nothing visible.
pub fn rank_top_k(query: &[f32], catalog: &[Vec<f32>], k: usize) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = catalog
        .iter()
        .enumerate()
        .map(|(index, v)| Ranked {
            index,
            score: if v.len() == query.len() {
                v.iter().zip(query).map(|(a, b)| a * b).sum()
            } else {
                f32::NAN
            },
        })
        .collect();
    // With NaN mapped below every number the comparison is total (and -0 equals +0, a tie).
    let key = |r: &Ranked| {
        if r.score.is_nan() {
            f32::NEG_INFINITY
        } else {
            r.score
        }
    };
    ranked.sort_by(|a, b| {
        key(b)
            .partial_cmp(&key(a))
            .unwrap_or(std::cmp::Ordering::Equal)
    });
    ranked.truncate(k);
    ranked
}

/// Whether two titles are the same once case and runs of whitespace are set aside: how the search
/// marks the catalog entry whose title was searched for.
pub fn same_title(a: &str, b: &str) -> bool {
    let words = |s: &str| -> Vec<String> { s.split_whitespace().map(str::to_lowercase).collect() };
    let (a, b) = (words(a), words(b));
    !a.is_empty() && a == b
}

/// A cell colour for similarity `v` scaled between the matrix's `lo` and `hi`.
pub fn heat_color(v: f32, lo: f32, hi: f32) -> String {
    let t = if hi > lo {
        ((v - lo) / (hi - lo)).clamp(0.0, 1.0)
    } else {
        0.5
    };
    // White to a deep teal, readable with dark text up to about two thirds.
    let lerp = |a: f32, b: f32| (a + (b - a) * t).round() as u8;
    format!(
        "rgb({}, {}, {})",
        lerp(247.0, 13.0),
        lerp(251.0, 110.0),
        lerp(252.0, 120.0)
    )
}

/// Whether a cell at `v` needs light text.
pub fn heat_is_dark(v: f32, lo: f32, hi: f32) -> bool {
    hi > lo && (v - lo) / (hi - lo) > 0.62
}

pub fn matrix_range(matrix: &[Vec<f32>]) -> (f32, f32) {
    let mut lo = f32::INFINITY;
    let mut hi = f32::NEG_INFINITY;
    for v in matrix.iter().flatten() {
        lo = lo.min(*v);
        hi = hi.max(*v);
    }
    if lo > hi {
        (0.0, 1.0)
    } else {
        (lo, hi)
    }
}

pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[unit])
    }
}

pub fn format_ms(ms: f64) -> String {
    if ms >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms >= 100.0 {
        format!("{ms:.0} ms")
    } else {
        format!("{ms:.1} ms")
    }
}

/// FNV-1a, used to version cached model files by the manifest they were fetched under.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The commands that make the model files, shown whenever they are missing or unreadable.
pub const MAKE_MODEL_COMMANDS: &str = "./scripts/demo.sh\n# or, from a trained model directory:\ntrainer export --model runs/demo --quant q4k --out public/model";

#[cfg(test)]
mod tests {
    use super::*;

    fn ent(label: &str, text: &str, start: usize, end: usize) -> Entity {
        Entity {
            label: label.into(),
            text: text.into(),
            start,
            end,
            score: 0.9,
        }
    }

    #[test]
    fn pasted_lines_skip_blanks_and_stop_at_the_limit() {
        let p = parse_lines("  a b \r\n\n  \u{3000} \nc\r\nd\ne", 3);
        assert_eq!(p.titles, vec!["  a b ", "c", "d"]);
        assert_eq!(p.dropped, 1);
        assert_eq!(parse_lines("", 3), PastedTitles::default());
    }

    #[test]
    fn batches_group_similar_lengths_within_windows() {
        let lengths = [5, 1, 4, 2, 9, 7, 8, 3];
        assert_eq!(
            batch_order(&lengths, 2, 4),
            vec![vec![1, 3], vec![2, 0], vec![7, 5], vec![6, 4]]
        );
        // A window smaller than a batch is one batch.
        assert_eq!(
            batch_order(&lengths, 3, 1),
            vec![vec![1, 2, 0], vec![3, 5, 4], vec![7, 6]]
        );
        let mut seen: Vec<usize> = batch_order(&lengths, 3, 5).into_iter().flatten().collect();
        seen.sort();
        assert_eq!(seen, (0..8).collect::<Vec<_>>());
        assert!(batch_order(&[], 32, 256).is_empty());
    }

    #[test]
    fn segments_follow_character_offsets() {
        let title = "Roadster Men Navy Blue Shirt";
        let s = segments(
            title,
            &[ent("GENDER", "Men", 9, 12), ent("BRAND", "Roadster", 0, 8)],
        );
        let texts: Vec<(&str, Option<usize>)> =
            s.iter().map(|s| (s.text.as_str(), s.entity)).collect();
        assert_eq!(
            texts,
            vec![
                ("Roadster", Some(1)),
                (" ", None),
                ("Men", Some(0)),
                (" Navy Blue Shirt", None)
            ]
        );
    }

    #[test]
    fn segments_count_chars_not_bytes_and_ignore_bad_spans() {
        let title = "Ünïcode 👗 Kurta ✨";
        let s = segments(
            title,
            &[
                ent("TYPE", "Kurta", 10, 15),
                ent("X", "", 3, 3),
                ent("Y", "", 12, 40),
                ent("Z", "", 11, 13),
            ],
        );
        let joined: String = s.iter().map(|s| s.text.as_str()).collect();
        assert_eq!(joined, title);
        assert_eq!(s.iter().filter(|s| s.entity.is_some()).count(), 1);
        assert_eq!(s[1].text, "Kurta");
    }

    #[test]
    fn known_types_keep_their_colours() {
        let types: Vec<String> = ["BRAND", "COLOR", "MATERIAL"].map(String::from).to_vec();
        assert_eq!(label_class("BRAND", &types), "c0");
        assert_eq!(label_class("TYPE", &types), "c3");
        assert_eq!(label_class("MATERIAL", &types), "c4");
        assert_eq!(label_class("UNKNOWN", &types), "c5");
    }

    #[test]
    fn jsonl_has_the_tagger_shape() {
        let line = multitag_core::to_jsonl(&[crate::protocol::TaggedTitle {
            title: "Roadster".into(),
            entities: vec![ent("BRAND", "Roadster", 0, 8)],
            truncated: false,
        }]);
        assert_eq!(
            line,
            "{\"title\":\"Roadster\",\"entities\":[{\"label\":\"BRAND\",\"text\":\"Roadster\",\"start\":0,\"end\":8,\"score\":0.9}],\"truncated\":false}\n"
        );
    }

    #[test]
    fn best_match_and_diagonal() {
        let m = vec![
            vec![0.9, 0.1, 0.2],
            vec![0.5, 0.4, 0.1],
            vec![0.0, 0.2, 0.3],
        ];
        assert_eq!(best_matches(&m), vec![Some(0), Some(0), Some(2)]);
        assert_eq!(diagonal_wins(&m), 2);
        assert_eq!(best_matches(&[vec![]]), vec![None]);
        assert_eq!(matrix_range(&m), (0.0, 0.9));
    }

    #[test]
    fn ranking_is_best_first_with_ties_in_catalog_order() {
        let catalog = vec![
            vec![0.0, 1.0],  // 0: 0.0
            vec![0.6, 0.8],  // 1: 0.6
            vec![1.0, 0.0],  // 2: 1.0
            vec![0.6, -0.8], // 3: 0.6, ties with 1
            vec![-1.0, 0.0], // 4: -1.0
            vec![0.6, 0.0],  // 5: 0.6, ties with 1 and 3
        ];
        let q = [1.0, 0.0];
        let order = |k| -> Vec<usize> {
            rank_top_k(&q, &catalog, k)
                .iter()
                .map(|r| r.index)
                .collect()
        };
        assert_eq!(order(10), vec![2, 1, 3, 5, 0, 4]);
        // The cut falls inside the tie: the earlier catalog entries are kept.
        assert_eq!(order(3), vec![2, 1, 3]);
        assert_eq!(order(0), Vec::<usize>::new());
        let top = rank_top_k(&q, &catalog, 2);
        assert_eq!(
            top[0],
            Ranked {
                index: 2,
                score: 1.0
            }
        );
        assert!((top[1].score - 0.6).abs() < 1e-6);
        assert!(rank_top_k(&q, &[], 10).is_empty());
    }

    #[test]
    fn ranking_puts_what_cannot_be_scored_last_and_never_panics() {
        let catalog = vec![
            vec![f32::NAN, 0.0],
            vec![1.0],        // another length than the query
            vec![-0.0, -1.0], // -1.0
            vec![-0.0, 0.0],  // a zero, maybe signed: a tie with the next
            vec![0.0, 0.0],   // +0
        ];
        let ranked = rank_top_k(&[1.0, 1.0], &catalog, 10);
        let order: Vec<usize> = ranked.iter().map(|r| r.index).collect();
        assert_eq!(order, vec![3, 4, 2, 0, 1]);
        assert!(ranked[3].score.is_nan() && ranked[4].score.is_nan());
        assert_eq!(rank_top_k(&[], &[vec![], vec![]], 10).len(), 2);
    }

    /// Property: for random catalogs, the ranking is the stable descending sort of the scores cut
    /// at `k`: scores never increase, equal scores keep catalog order, and nothing left out
    /// outscores what is shown.
    #[test]
    fn random_rankings_are_sorted_stable_and_complete() {
        let mut rng = multitag_core::SplitMix64::new(0x5eed_0005);
        for case in 0..2_000 {
            let dim = 1 + rng.below(4) as usize;
            // Few distinct values, so ties are common.
            let value = |rng: &mut multitag_core::SplitMix64| rng.below(5) as f32 * 0.25 - 0.5;
            let query: Vec<f32> = (0..dim).map(|_| value(&mut rng)).collect();
            let catalog: Vec<Vec<f32>> = (0..rng.below(12))
                .map(|_| (0..dim).map(|_| value(&mut rng)).collect())
                .collect();
            let k = rng.below(14) as usize;
            let ranked = rank_top_k(&query, &catalog, k);
            assert_eq!(ranked.len(), k.min(catalog.len()), "case {case}");
            for w in ranked.windows(2) {
                assert!(
                    w[0].score > w[1].score
                        || (w[0].score == w[1].score && w[0].index < w[1].index),
                    "case {case}: {ranked:?}"
                );
            }
            let floor = ranked.last().map_or(f32::INFINITY, |r| r.score);
            for (i, v) in catalog.iter().enumerate() {
                let score: f32 = v.iter().zip(&query).map(|(a, b)| a * b).sum();
                if let Some(r) = ranked.iter().find(|r| r.index == i) {
                    assert_eq!(r.score, score, "case {case}");
                } else {
                    assert!(score <= floor, "case {case}: {i} left out with {score}");
                }
            }
        }
    }

    #[test]
    fn same_title_ignores_case_and_spacing_only() {
        assert!(same_title("Roadster  Men\tShirt ", "roadster men shirt"));
        assert!(!same_title("Roadster Men Shirt", "Roadster Men Shirts"));
        assert!(!same_title("  ", ""));
    }

    #[test]
    fn formatters() {
        assert_eq!(format_bytes(512), "512 B");
        assert_eq!(format_bytes(23 * 1024 * 1024 + 512 * 1024), "23.5 MB");
        assert_eq!(format_ms(3.04), "3.0 ms");
        assert_eq!(format_ms(1234.0), "1234 ms");
        assert_eq!(format_ms(12345.0), "12.3 s");
        assert_ne!(fnv1a(b"a"), fnv1a(b"b"));
        assert_eq!(heat_color(1.0, 0.0, 1.0), "rgb(13, 110, 120)");
    }

    /// A random title of awkward pieces: whitespace of several kinds, zero-width and bidi
    /// controls, combining marks, viramas, emoji sequences, RTL and CJK text, controls.
    fn awkward_title(rng: &mut multitag_core::SplitMix64) -> String {
        #[rustfmt::skip]
        const PIECES: &[&str] = &[
            "Navy", "T-shirt", "Boy's", " ", "  ", "\t", "\u{a0}", "\u{3000}", "\u{2009}", "\r",
            "\u{200b}", "\u{200d}", "\u{feff}", "\u{200f}", "\u{202e}", "e\u{301}", "\u{301}",
            "नमस्ते", "क्\u{200d}", "\u{94d}", "👍🏽", "👨\u{200d}👩\u{200d}👧", "❤\u{fe0f}", "\u{fe0f}",
            "🇮🇳", "مرحبا", "שלום", "\u{6dd}", "优衣库", "，", "&", "-", "\u{0}", "\u{10ffff}",
        ];
        let n = rng.below(12);
        (0..n)
            .map(|_| PIECES[rng.below(PIECES.len() as u64) as usize])
            .collect()
    }

    /// Property: for random titles and random entities (out of range, overlapping, empty,
    /// reversed, unsorted, duplicated), the segments are non-empty, join back to the title exactly,
    /// and each entity segment is its entity's characters, shown at most once.
    #[test]
    fn random_entities_never_lose_or_repeat_title_text() {
        let mut rng = multitag_core::SplitMix64::new(0x5eed_0003);
        let mut shown = 0;
        for case in 0..20_000 {
            let title = awkward_title(&mut rng);
            let chars: Vec<char> = title.chars().collect();
            let n = chars.len() as u64;
            let entities: Vec<Entity> = (0..rng.below(6))
                .map(|_| {
                    let start = rng.below(n + 3) as usize;
                    let end = match rng.below(4) {
                        0 => rng.below(n + 3) as usize,
                        1 => start,
                        _ => start + 1 + rng.below(4) as usize,
                    };
                    ent("X", "", start, end)
                })
                .collect();
            let segs = segments(&title, &entities);
            let joined: String = segs.iter().map(|s| s.text.as_str()).collect();
            assert_eq!(joined, title, "case {case}: {entities:?}");
            let mut used = Vec::new();
            for s in &segs {
                assert!(!s.text.is_empty(), "case {case}: empty segment in {segs:?}");
                if let Some(i) = s.entity {
                    let e = &entities[i];
                    assert!(
                        e.start < e.end && e.end <= chars.len(),
                        "case {case}: {e:?}"
                    );
                    let text: String = chars[e.start..e.end].iter().collect();
                    assert_eq!(s.text, text, "case {case}: {e:?} in {title:?}");
                    assert!(!used.contains(&i), "case {case}: entity {i} shown twice");
                    used.push(i);
                    shown += 1;
                }
            }
        }
        assert!(shown > 5_000, "only {shown} entity segments");
    }

    /// Property: every title read from a random paste is one of its lines exactly as given, and
    /// every line with anything but whitespace is a title.
    #[test]
    fn random_pastes_keep_lines_as_given() {
        let mut rng = multitag_core::SplitMix64::new(0x5eed_0004);
        for case in 0..5_000 {
            let lines: Vec<String> = (0..rng.below(6)).map(|_| awkward_title(&mut rng)).collect();
            // `\r` at a line's end would be read as part of a CRLF line end.
            let lines: Vec<String> = lines
                .into_iter()
                .map(|l| l.trim_end_matches('\r').to_string())
                .collect();
            let ends: Vec<&str> = lines
                .iter()
                .map(|_| if rng.below(2) == 0 { "\n" } else { "\r\n" })
                .collect();
            let paste: String = lines
                .iter()
                .zip(&ends)
                .map(|(l, e)| format!("{l}{e}"))
                .collect();
            let expected: Vec<String> = lines
                .iter()
                .filter(|l| !l.trim().is_empty())
                .cloned()
                .collect();
            assert_eq!(
                parse_lines(&paste, MAX_TITLES).titles,
                expected,
                "case {case}: {paste:?}"
            );
        }
    }
}
