//! Labels a catalog CSV with the distant-supervision rules and prints what they cover.
//!
//! Usage: `cargo run -p multitag-core --example coverage -- path/to/catalog.csv`
//!
//! Besides coverage it prints two agreement checks against the structured columns, because the
//! rules have no gold to be scored on: how often a GENDER entity agrees with the `Gender` column,
//! and how often `PrimaryColor` (when its words occur in the title) lies inside a COLOR entity.

use multitag_core::{coverage, read_catalog, spans_from_iob2, split_words, Labeler};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: coverage CATALOG.csv");
        std::process::exit(2);
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    };
    let read = match read_catalog(&path, &text) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(1);
        }
    };
    println!("items {} skipped {}", read.items.len(), read.skipped.len());
    for e in read.skipped.iter().take(10) {
        println!("  skipped: {e}");
    }
    let labeler = Labeler::fit(&read.items);
    println!(
        "lexicons: {} colours, {} type heads, {} type compounds",
        labeler.colours().count(),
        labeler.type_heads().count(),
        labeler.type_compounds().count()
    );
    let tags: Vec<Vec<String>> = read.items.iter().map(|i| labeler.label(i)).collect();
    println!("| type | titles with | share | entities |\n|---|---|---|---|");
    for c in coverage(&tags) {
        let share = 100.0 * c.titles_with as f64 / c.titles.max(1) as f64;
        println!(
            "| {} | {} / {} | {share:.1}% | {} |",
            c.entity_type, c.titles_with, c.titles, c.entities
        );
    }

    let (mut g_with, mut g_agree, mut c_in_title, mut c_tagged) = (0, 0, 0, 0);
    for (item, t) in read.items.iter().zip(&tags) {
        let words: Vec<String> = split_words(&item.title)
            .into_iter()
            .map(|w| w.text.to_lowercase())
            .collect();
        let spans = spans_from_iob2(t);
        let text_of = |s: &multitag_core::Span| words[s.start..s.end].join(" ");
        if let Some(g) = spans.iter().find(|s| s.label == "GENDER") {
            g_with += 1;
            let column = item.gender.to_lowercase();
            let found = text_of(g).replace('\'', "");
            if column
                .split_whitespace()
                .any(|c| found.contains(c.trim_end_matches('s')))
            {
                g_agree += 1;
            }
        }
        let colour = item.colour.to_lowercase();
        let cw: Vec<&str> = colour.split_whitespace().collect();
        if !cw.is_empty() && cw.iter().all(|c| words.iter().any(|w| w == c)) {
            c_in_title += 1;
            let colour_text: Vec<String> = spans
                .iter()
                .filter(|s| s.label == "COLOR")
                .map(text_of)
                .collect();
            if cw
                .iter()
                .all(|c| colour_text.iter().any(|t| t.split(' ').any(|w| w == *c)))
            {
                c_tagged += 1;
            }
        }
    }
    println!("GENDER agrees with the Gender column: {g_agree} / {g_with}");
    println!(
        "PrimaryColor words inside COLOR entities (when in the title): {c_tagged} / {c_in_title}"
    );
}
