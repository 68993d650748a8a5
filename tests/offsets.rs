//! Property test over the `trainer` binary: for hundreds of random titles made of awkward pieces
//! (surrounding and inner whitespace of every kind, tabs, combining marks, viramas, emoji with ZWJ
//! and skin tones, variation selectors, zero-width and bidi characters, RTL text, Arabic prepended
//! marks, CRLF line ends, a byte-order mark), in each input format `trainer tag` prints every
//! title exactly as given and every entity's character offsets slice its text out of that title.
//! The base model comes from `trainer fetch-model` (scripts/test.sh); set MULTITAG_BASE_MODEL to
//! use another BERT directory.
mod common;

use common::{scratch, stderr, train_on_fixture, trainer};
use multitag_core::SplitMix64;

/// Words of the fixture catalog, half of all pieces drawn, so the model finds entities.
const WORDS: &[&str] = &[
    "Urban Loom",
    "Men",
    "Women",
    "Navy Blue",
    "Shirt",
    "Kurta",
    "Trekko",
    "Black",
    "Bag",
    "T-shirt",
    "Boy's",
    "Gold-Toned",
    "2.5",
    "U.S.",
];

/// The other half. No piece holds `\n` (a title is one line), and `\r` never ends a title (see
/// `title`).
#[rustfmt::skip]
const AWKWARD: &[&str] = &[
    " ", "  ", "\t", "\u{a0}", "\u{2009}", "\u{3000}", "\u{202f}", "\u{1680}", "\u{2028}",
    "\u{85}", "\u{b}", "\u{c}", "\r",
    "\u{200b}", "\u{200c}", "\u{200d}", "\u{2060}", "\u{feff}", "\u{ad}",
    "Cafe\u{301}", "\u{301}", "\u{20dd}", "a\u{308}\u{323}",
    "नमस्ते", "कुर्ता", "क्\u{200d}", "\u{94d}", "ড়", "ক্ষ", "ภาษาไทย",
    "👍🏽", "👨\u{200d}👩\u{200d}👧", "❤\u{fe0f}", "1\u{fe0f}\u{20e3}", "🇮🇳",
    "🏳\u{fe0f}\u{200d}🌈", "👩🏾\u{200d}💻", "🏽", "\u{fe0f}", "\u{e0067}",
    "مرحبا", "שלום", "\u{200f}", "\u{202e}", "\u{2067}", "\u{600}", "\u{6dd}",
    "한국어", "优衣库", "，", "ＡＢＣ", "𝐀𝐁",
    "-", "'", ".", "&", "/", ",", "(", "\"", "\\", "{", "}",
    "\u{0}", "\u{1b}", "\u{fffd}", "\u{10ffff}",
];

/// A random title with something besides whitespace in it (whitespace-only lines are skipped as
/// blank by every format). `\r` never ends a title: in a plain line it would read as the `\r` of
/// a CRLF line end.
fn title(rng: &mut SplitMix64) -> String {
    loop {
        let pick = |rng: &mut SplitMix64| {
            let pool = if rng.below(2) == 0 { WORDS } else { AWKWARD };
            pool[rng.below(pool.len() as u64) as usize]
        };
        let mut t = String::new();
        // Leading and trailing whitespace in a third of the titles each.
        if rng.below(3) == 0 {
            t.push_str([" ", "\t", "  \u{a0}", "\u{3000}"][rng.below(4) as usize]);
        }
        for i in 0..1 + rng.below(10) {
            if i > 0 {
                // Mostly a space between pieces, sometimes nothing or other whitespace.
                t.push_str([" ", " ", "", "\u{a0}", "\t", "\u{2009}  "][rng.below(6) as usize]);
            }
            t.push_str(pick(rng));
        }
        if rng.below(3) == 0 {
            t.push_str([" ", "\t ", "\u{2009}", "  "][rng.below(4) as usize]);
        }
        let t = t.trim_end_matches('\r').to_string();
        if !t.trim().is_empty() {
            return t;
        }
    }
}

/// Ends a line of `text`, with CRLF a third of the time.
fn end_line(text: &mut String, line: &mut u64, rng: &mut SplitMix64) {
    text.push_str(if rng.below(3) == 0 { "\r\n" } else { "\n" });
    *line += 1;
}

/// A CSV field, quoted (doubling quotes) when it must be and at random otherwise.
fn csv_field(value: &str, rng: &mut SplitMix64) -> String {
    let must = value.contains([',', '"', '\r', '\n']);
    if must || rng.below(4) == 0 {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// One input of `format` holding `n` random titles, and the (1-based line, title) pairs that
/// `trainer tag` must print, in order. Blank lines and, in CSV, a quoted column spanning lines
/// move the line numbers about; a byte-order mark may open the input.
fn input(format: &str, n: usize, bom: bool, rng: &mut SplitMix64) -> (String, Vec<(u64, String)>) {
    let mut text = String::new();
    if bom {
        text.push('\u{feff}');
    }
    let mut expected = Vec::new();
    let mut line = 1;
    if format == "csv" {
        text.push_str("id,title,note");
        end_line(&mut text, &mut line, rng);
    }
    for id in 0..n {
        if rng.below(10) == 0 {
            // A blank line (only whitespace in plain lines; empty in JSONL and CSV).
            if format == "lines" {
                text.push_str(["", " ", "\t\u{3000}", "\u{a0}"][rng.below(4) as usize]);
            }
            end_line(&mut text, &mut line, rng);
        }
        let t = title(rng);
        expected.push((line, t.clone()));
        match format {
            "lines" => text.push_str(&t),
            "jsonl" => text.push_str(&serde_json::json!({"id": id, "title": t}).to_string()),
            _ => {
                let note = if rng.below(5) == 0 {
                    "two\nlines"
                } else {
                    "x, y"
                };
                text.push_str(&format!(
                    "{id},{},{}",
                    csv_field(&t, rng),
                    csv_field(note, rng)
                ));
                line += note.matches('\n').count() as u64;
            }
        }
        end_line(&mut text, &mut line, rng);
    }
    (text, expected)
}

/// Trains a tiny model once (one epoch on the fixture catalog), then tags 300 random titles in
/// each format: every output line's `title` is the input title as given (surrounding whitespace
/// kept; only a leading byte-order mark, which belongs to the file, and the line end are not part
/// of it) and every entity's characters `start..end` of that title are its `text`.
#[test]
fn entity_offsets_slice_the_titles_as_given() {
    let dir = scratch("offsets");
    let model = dir.join("model");
    let out = train_on_fixture(&model, &["--epochs", "1"]);
    assert!(out.status.success(), "{}", stderr(&out));

    let mut rng = SplitMix64::new(0x5eed_0005);
    let mut entities = 0;
    // Every mismatch, so one run shows all the ways offsets go wrong, not just the first.
    let mut failures: Vec<String> = Vec::new();
    for (format, bom) in [
        ("lines", true),
        ("jsonl", true),
        ("csv", false),
        ("csv", true),
    ] {
        let (text, expected) = input(format, 300, bom, &mut rng);
        let path = dir.join(format!("titles-{format}-{bom}"));
        std::fs::write(&path, &text).unwrap();
        let out = trainer(
            &[
                "tag",
                "--model",
                model.to_str().unwrap(),
                "--format",
                format,
                path.to_str().unwrap(),
            ],
            None,
        );
        let err = stderr(&out);
        assert!(out.status.success(), "{format}: {err}");
        let run = format!("{format} (bom {bom})");
        for skipped in err.lines().filter(|l| l.starts_with("skipped:")) {
            failures.push(format!("{run}: {skipped}"));
        }
        // Outputs are matched to inputs by line, so one skipped title does not shift the rest.
        let outputs: std::collections::HashMap<u64, serde_json::Value> =
            String::from_utf8(out.stdout)
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
                .map(|v| (v["line"].as_u64().unwrap(), v))
                .collect();
        if outputs.len() != expected.len() {
            failures.push(format!(
                "{run}: {} titles in, {} out",
                expected.len(),
                outputs.len()
            ));
        }
        for (line, given) in &expected {
            let at = format!("{run} line {line}");
            let Some(got) = outputs.get(line) else {
                failures.push(format!("{at}: no output for {given:?}"));
                continue;
            };
            if got["title"] != given.as_str() {
                failures.push(format!("{at}: title {} but given {given:?}", got["title"]));
            }
            let chars: Vec<char> = given.chars().collect();
            let mut last_end = 0;
            for e in got["entities"].as_array().unwrap() {
                entities += 1;
                let (start, end) = (e["start"].as_u64().unwrap(), e["end"].as_u64().unwrap());
                let (start, end) = (start as usize, end as usize);
                if !(last_end <= start && start < end && end <= chars.len()) {
                    failures.push(format!(
                        "{at}: entity {e} out of order or range in {given:?}"
                    ));
                    continue;
                }
                let sliced: String = chars[start..end].iter().collect();
                if sliced != e["text"].as_str().unwrap() {
                    failures.push(format!(
                        "{at}: entity {e} but chars {start}..{end} of {given:?} are {sliced:?}"
                    ));
                }
                last_end = end;
            }
        }
    }
    // A count per run and kind of failure, then the first few in full.
    let mut kinds = std::collections::BTreeMap::new();
    for f in &failures {
        let run = &f[..f.find(')').map_or(0, |i| i + 1)];
        let kind = [
            (": skipped:", "skipped"),
            (" titles in, ", "count"),
            (": no output", "missing"),
            (": title ", "title"),
            (": entity ", "entity"),
        ]
        .into_iter()
        .find(|(marker, _)| f.contains(marker))
        .map_or("other", |(_, kind)| kind);
        *kinds.entry(format!("{run}: {kind}")).or_insert(0) += 1;
    }
    assert!(
        failures.is_empty(),
        "{} failures: {kinds:?}; the first 20:\n{}",
        failures.len(),
        failures[..failures.len().min(20)].join("\n")
    );
    eprintln!("{entities} entities checked");
    // Without entities the offsets above were never checked.
    assert!(entities >= 300, "only {entities} entities found");
}
