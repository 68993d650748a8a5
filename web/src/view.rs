//! The page's pure logic, kept apart from the DOM so it is unit-tested natively: reading pasted
//! titles, cutting a title into plain and entity segments by character offsets, entity colours,
//! best matches in a similarity matrix, the search's ranking, a run's summary line, and small
//! formatters.
use multitag_core::{Entity, FoundRelation};

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

/// At most this many sentences go to the relation model from one paste.
pub const MAX_SENTENCES: usize = 1000;
/// Sentences per relation request: the primary worker alone holds the relation model, and a
/// sentence costs every span of up to ten words, so small batches stream results sooner.
pub const RELATION_BATCH: usize = 4;

/// Pasted sentences with their 1-based line numbers in the paste, read as [`parse_lines`] reads
/// titles (blank lines skipped but counted), so a line number is the one `trainer tag` gives
/// the same line of a file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NumberedLines {
    pub lines: Vec<(usize, String)>,
    pub dropped: usize,
}

pub fn numbered_lines(text: &str, limit: usize) -> NumberedLines {
    let mut out = NumberedLines::default();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        if out.lines.len() < limit {
            out.lines.push((i + 1, line.to_string()));
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

/// The chip an entity's arcs attach to: its own when it is shown (`shown[i]`), else the first
/// shown entity whose characters overlap its own ([`segments`] shows an entity overlapping an
/// earlier one as plain text), else none.
pub fn chip_of(entities: &[Entity], shown: &[bool], i: usize) -> Option<usize> {
    if shown.get(i) == Some(&true) {
        return Some(i);
    }
    let e = entities.get(i)?;
    (0..entities.len()).find(|&j| {
        shown.get(j) == Some(&true) && entities[j].start < e.end && e.start < entities[j].end
    })
}

/// Which entities [`segments`] shows as chips of their own.
pub fn shown_entities(text: &str, entities: &[Entity]) -> Vec<bool> {
    let mut shown = vec![false; entities.len()];
    for s in segments(text, entities) {
        if let Some(i) = s.entity {
            shown[i] = true;
        }
    }
    shown
}

/// The height level of each relation's arc, from its arguments' character spans alone (so the
/// room above the text is known before it is laid out): shorter arcs first, each on the lowest
/// level where it overlaps no arc already placed, so an arc that spans another is drawn above it.
pub fn arc_levels(entities: &[Entity], relations: &[FoundRelation]) -> Vec<usize> {
    let span = |r: &FoundRelation| -> Option<(usize, usize)> {
        let (h, t) = (entities.get(r.head)?, entities.get(r.tail)?);
        Some((h.start.min(t.start), h.end.max(t.end)))
    };
    let mut order: Vec<usize> = (0..relations.len()).collect();
    order.sort_by_key(|&i| span(&relations[i]).map_or((usize::MAX, i), |(lo, hi)| (hi - lo, lo)));
    let mut levels = vec![0; relations.len()];
    let mut placed: Vec<(usize, usize, usize)> = Vec::new();
    for i in order {
        let Some((lo, hi)) = span(&relations[i]) else {
            continue;
        };
        let level = (0..)
            .find(|&l| {
                !placed
                    .iter()
                    .any(|&(plo, phi, pl)| pl == l && plo < hi && lo < phi)
            })
            .unwrap_or(0);
        placed.push((lo, hi, level));
        levels[i] = level;
    }
    levels
}

/// Height of a level-0 arc above its chips, and how much higher each level goes, in pixels.
pub const ARC_BASE: f64 = 22.0;
pub const ARC_STEP: f64 = 14.0;

/// The room an arc of `level` needs above its chips: its apex (three quarters of its control
/// height, for a cubic whose control points are level with each other) and its label.
pub fn arc_room(level: usize) -> f64 {
    0.75 * (ARC_BASE + ARC_STEP * level as f64) + 16.0
}

/// A laid-out chip, in pixels relative to the box the arcs are drawn in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChipBox {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

/// `s` escaped for an XML text node or attribute value.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The relations of one sentence as labelled arcs in an SVG of `width` x `height` pixels: one
/// `g.arc` per relation whose arguments have a chip (`chips[i]`: entity `i`'s chip, see
/// [`chip_of`], and `boxes[j]`: chip `j`'s box), from the head's chip to an arrow at the tail's,
/// at the height of its level ([`arc_levels`]), with its type as a label and its type, arguments
/// and score as a tooltip (`<title>`). `id` makes the arrow marker's id unique on the page.
pub fn arc_svg(
    id: &str,
    entities: &[Entity],
    relations: &[FoundRelation],
    chips: &[Option<usize>],
    boxes: &[Option<ChipBox>],
    width: f64,
    height: f64,
) -> String {
    let levels = arc_levels(entities, relations);
    let marker = format!("arrow-{}", xml_escape(id));
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"rel-arcs-svg\" width=\"{width:.0}\" \
         height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\">\
         <defs><marker id=\"{marker}\" viewBox=\"0 0 8 8\" refX=\"7\" refY=\"4\" \
         markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\">\
         <path class=\"arrow-head\" d=\"M0,0 L8,4 L0,8 z\"/></marker></defs>"
    );
    let box_of = |entity: usize| -> Option<ChipBox> {
        let chip = (*chips.get(entity)?)?;
        *boxes.get(chip)?
    };
    for (r, level) in relations.iter().zip(levels) {
        let (Some(h), Some(t)) = (box_of(r.head), box_of(r.tail)) else {
            continue;
        };
        let (hc, tc) = (h.left + h.width / 2.0, t.left + t.width / 2.0);
        // Out of the head and into the tail a little off their centres, towards each other, so
        // that an arc leaving a chip and one arriving at it do not meet.
        let nudge = if tc >= hc { 4.0 } else { -4.0 };
        let (x1, y1, x2, y2) = (hc + nudge, h.top, tc - nudge, t.top);
        let rise = ARC_BASE + ARC_STEP * level as f64;
        let top = y1.min(y2) - rise;
        let d = format!("M{x1:.1},{y1:.1} C{x1:.1},{top:.1} {x2:.1},{top:.1} {x2:.1},{y2:.1}");
        let (head, tail) = (&entities[r.head], &entities[r.tail]);
        let title = format!(
            "{}: {} ({}) → {} ({}) · score {:.3}",
            r.label, head.text, head.label, tail.text, tail.label, r.score
        );
        let (lx, ly) = ((x1 + x2) / 2.0, y1.min(y2) - 0.75 * rise - 3.0);
        svg.push_str(&format!(
            "<g class=\"arc\" data-label=\"{label}\" data-head=\"{}\" data-tail=\"{}\" \
             data-score=\"{:.4}\" data-level=\"{level}\"><title>{title}</title>\
             <path class=\"arc-hit\" d=\"{d}\"/>\
             <path class=\"arc-path\" d=\"{d}\" marker-end=\"url(#{marker})\"/>\
             <text class=\"arc-label\" x=\"{lx:.1}\" y=\"{ly:.1}\" text-anchor=\"middle\">{label}</text></g>",
            r.head,
            r.tail,
            r.score,
            label = xml_escape(&r.label),
            title = xml_escape(&title),
        ));
    }
    svg.push_str("</svg>");
    svg
}

/// The JSON lines of a relation run, as `trainer tag` prints them for the same lines:
/// `(line, result)` pairs in input order.
pub fn relations_jsonl(rows: &[(usize, &multitag_core::TextRelations)]) -> String {
    let mut out = String::new();
    for (line, result) in rows {
        out.push_str(&result.json_line(*line));
        out.push('\n');
    }
    out
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

/// How far a run has got, for the summary line.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Progress {
    pub total: usize,
    pub done: usize,
    /// Lines past the view's limit, not read.
    pub dropped: usize,
    pub worker_ms: f64,
    pub wall_ms: f64,
    pub running: bool,
    pub error: Option<String>,
}

/// A view's words in its summary line.
pub struct Words {
    /// Before any run: what to do.
    pub prompt: &'static str,
    /// "Tagging", "Reading": a run under way.
    pub working: &'static str,
    /// "Tagged", "Read": a run done.
    pub finished: &'static str,
    /// "title", "sentence", and their plural.
    pub item: &'static str,
    pub items: &'static str,
    /// The view's limit on lines.
    pub limit: usize,
}

impl Progress {
    pub fn summary(&self, words: &Words) -> String {
        if self.total == 0 && self.error.is_none() {
            return words.prompt.to_string();
        }
        let Words { item, items, .. } = words;
        let mut s = if self.running {
            format!("{}… {} of {} {items}", words.working, self.done, self.total)
        } else {
            format!("{} {} {items}", words.finished, self.done)
        };
        if self.done > 0 {
            s.push_str(&format!(
                " · total {} ({} in the model, {} per {item})",
                format_ms(self.wall_ms),
                format_ms(self.worker_ms),
                format_ms(self.worker_ms / self.done as f64)
            ));
        }
        if self.dropped > 0 {
            s.push_str(&format!(
                " · {} lines past the first {} were not read",
                self.dropped, words.limit
            ));
        }
        if let Some(e) = &self.error {
            s.push_str(&format!(" · error: {e}"));
        }
        s
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

/// The commands that make the relation model the Relations view reads (`relations/`).
pub const MAKE_RELATION_MODEL_COMMANDS: &str = "trainer train --task relations --data ../shared/data/conll04 --out runs/conll04\ntrainer export --model runs/conll04 --data ../shared/data/conll04 --quant q4k --out public/relations";

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
    fn numbered_lines_keep_the_paste_line_numbers() {
        let n = numbered_lines("a\n\n  \nb c\r\nd\ne", 3);
        assert_eq!(
            n.lines,
            vec![(1, "a".to_string()), (4, "b c".into()), (5, "d".into())]
        );
        assert_eq!(n.dropped, 1);
        // The same lines as the tag view reads.
        let text = "x\n\n y \nz";
        let titles: Vec<String> = numbered_lines(text, 10)
            .lines
            .into_iter()
            .map(|l| l.1)
            .collect();
        assert_eq!(titles, parse_lines(text, 10).titles);
    }

    fn rel(label: &str, head: usize, tail: usize) -> FoundRelation {
        FoundRelation {
            label: label.into(),
            head,
            tail,
            score: 0.5,
        }
    }

    #[test]
    fn arcs_that_span_others_go_higher() {
        // A B C D, one character each, a space apart.
        let e: Vec<Entity> = (0..4).map(|i| ent("X", "a", 2 * i, 2 * i + 1)).collect();
        let r = vec![
            rel("wide", 0, 3),
            rel("ab", 0, 1),
            rel("cd", 3, 2),
            rel("bc", 1, 2),
        ];
        // ab, bc and cd are equally short: ab first, then bc, which shares B with ab (one level
        // up), then cd, which shares nothing with ab (level 0); wide spans them all.
        let levels = arc_levels(&e, &r);
        assert_eq!(levels[1], 0);
        assert_eq!(levels[2], 0);
        assert_eq!(levels[3], 1);
        assert_eq!(levels[0], 2);
        // Out-of-range arguments are left at level 0 and never panic.
        assert_eq!(arc_levels(&e, &[rel("x", 9, 0)]), vec![0]);
        assert!(arc_room(2) > arc_room(0));
    }

    #[test]
    fn hidden_overlapping_entities_borrow_the_chip_they_overlap() {
        let text = "The Pacific Fleet Commander";
        let e = vec![
            ent("Org", "Pacific", 4, 11),
            ent("Org", "Pacific Fleet", 4, 17),
            ent("Peop", "Commander", 18, 27),
        ];
        let shown = shown_entities(text, &e);
        assert_eq!(shown, vec![true, false, true]);
        assert_eq!(chip_of(&e, &shown, 1), Some(0));
        assert_eq!(chip_of(&e, &shown, 2), Some(2));
        assert_eq!(chip_of(&e, &shown, 7), None);
    }

    #[test]
    fn the_arc_svg_draws_each_relation_with_its_label_and_score_escaped() {
        let e = vec![
            ent("Peop", "Sirhan", 0, 6),
            ent("Peop", "<Kennedy>", 18, 27),
        ];
        let r = vec![FoundRelation {
            label: "Kill&Co".into(),
            head: 0,
            tail: 1,
            score: 0.93,
        }];
        let boxes = vec![
            Some(ChipBox {
                left: 0.0,
                top: 40.0,
                width: 60.0,
                height: 20.0,
            }),
            Some(ChipBox {
                left: 200.0,
                top: 40.0,
                width: 80.0,
                height: 20.0,
            }),
        ];
        let svg = arc_svg("row-1", &e, &r, &[Some(0), Some(1)], &boxes, 400.0, 80.0);
        assert!(
            svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""),
            "{svg}"
        );
        assert_eq!(svg.matches("<g class=\"arc\"").count(), 1);
        assert!(svg.contains("data-label=\"Kill&amp;Co\""), "{svg}");
        assert!(svg.contains("data-head=\"0\" data-tail=\"1\" data-score=\"0.9300\""));
        assert!(svg.contains("&lt;Kennedy&gt;") && !svg.contains("<Kennedy>"));
        // From the head's centre (nudged right) up and down into the tail's, arrow at the end.
        assert!(
            svg.contains("d=\"M34.0,40.0 C34.0,18.0 236.0,18.0 236.0,40.0\""),
            "{svg}"
        );
        assert!(svg.contains("marker-end=\"url(#arrow-row-1)\""));
        // A relation to an entity without a chip is not drawn.
        let none = arc_svg("row-2", &e, &r, &[Some(0), None], &boxes, 400.0, 80.0);
        assert!(!none.contains("<g class=\"arc\""));
    }

    #[test]
    fn relation_jsonl_is_the_trainer_line() {
        let found = multitag_core::TextRelations {
            text: "Sirhan killed Kennedy".into(),
            entities: vec![ent("Peop", "Sirhan", 0, 6), ent("Peop", "Kennedy", 14, 21)],
            relations: vec![rel("Kill", 0, 1)],
        };
        let jsonl = relations_jsonl(&[(3, &found)]);
        assert_eq!(
            jsonl,
            "{\"entities\":[{\"end\":6,\"label\":\"Peop\",\"score\":0.8999999761581421,\"start\":0,\"text\":\"Sirhan\"},{\"end\":21,\"label\":\"Peop\",\"score\":0.8999999761581421,\"start\":14,\"text\":\"Kennedy\"}],\"line\":3,\"relations\":[{\"head\":0,\"label\":\"Kill\",\"score\":0.5,\"tail\":1}],\"text\":\"Sirhan killed Kennedy\"}\n"
        );
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

    const WORDS: Words = Words {
        prompt: "Paste titles.",
        working: "Tagging",
        finished: "Tagged",
        item: "title",
        items: "titles",
        limit: 5000,
    };

    #[test]
    fn the_summary_line_says_what_the_run_did() {
        assert_eq!(Progress::default().summary(&WORDS), "Paste titles.");
        let running = Progress {
            total: 10,
            done: 4,
            worker_ms: 40.0,
            wall_ms: 50.0,
            running: true,
            ..Progress::default()
        };
        let line = running.summary(&WORDS);
        assert!(
            line.starts_with("Tagging… 4 of 10 titles · total "),
            "{line}"
        );
        assert!(line.contains(" per title)"), "{line}");
        let failed = Progress {
            total: 10,
            dropped: 3,
            error: Some("the worker crashed".into()),
            ..Progress::default()
        };
        assert_eq!(
            failed.summary(&WORDS),
            "Tagged 0 titles · 3 lines past the first 5000 were not read · error: the worker \
             crashed"
        );
    }
}
