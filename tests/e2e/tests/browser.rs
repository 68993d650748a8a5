//! The browser app end to end, in headless Chromium: the page built by trunk (`dist/`), the model
//! exported by `trainer export` (`public/model`), a real browser. Screenshots go to
//! `target/e2e-artifacts/`. Skips loudly when dist/, the model or chromium is missing, unless
//! MULTITAG_E2E is set (scripts/test.sh sets it and builds all three first).
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Result};
use headless_chrome::Tab;
use multitag_e2e::{
    click, eval_json, launch, launch_with, repo_root, screenshot, set_value, setup, setup_binder,
    setup_relations, trainer_path, wait_for_backend, wait_for_model, wait_for_workers, wait_until,
    Chromium, ModelMode, Server, Setup,
};
use serde_json::Value;

/// One browser at a time: the machine has two cores and each page runs a model.
static SERIAL: Mutex<()> = Mutex::new(());
const MODEL_TIMEOUT: Duration = Duration::from_secs(180);
const DESKTOP: (u32, u32) = (1280, 900);
const PHONE: (u32, u32) = (390, 844);

const TITLES: [&str; 3] = [
    "Roadster Men Navy Blue Slim Fit Checked Casual Shirt",
    "DKNY Unisex Black & Grey Printed Medium Trolley Bag",
    "EthnoVogue Women Beige & Grey Made to Measure Kurta Set with Jacket",
];
/// Non-Latin scripts and emoji: offsets must be in characters, not bytes or UTF-16 units.
const UNICODE_TITLE: &str = "👗 Roadster Women Black ✨ कुर्ता Kurta";

fn long_title() -> String {
    let mut t = String::from("Roadster Men");
    for _ in 0..40 {
        t.push_str(" Blue Cotton Shirt");
    }
    t
}

/// A server for `mode`, a desktop-sized headless Chromium, and a tab on `page`. The browser is
/// returned so it lives as long as the tab.
fn open(s: &Setup, mode: ModelMode, page: &str) -> Result<(Server, Chromium, Arc<Tab>)> {
    open_with(s, mode, page, false)
}

/// [`open`], in a Chromium with WebGPU when `webgpu` (SwiftShader's adapter here).
fn open_with(
    s: &Setup,
    mode: ModelMode,
    page: &str,
    webgpu: bool,
) -> Result<(Server, Chromium, Arc<Tab>)> {
    let server = Server::start(&s.dist, mode)?;
    let browser = launch_with(&s.chromium, DESKTOP, webgpu)?;
    let tab = browser.new_tab()?;
    tab.navigate_to(&server.url(page))?;
    Ok((server, browser, tab))
}

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every entity chip of result row `i`: `[{label, start, end, text}]`.
fn chips(tab: &headless_chrome::Tab, i: usize) -> Result<Vec<Value>> {
    Ok(scored_chips(tab, i)?
        .into_iter()
        .map(|(chip, _)| chip)
        .collect())
}

/// [`chips`] of row `i`, each with its `data-score`.
fn scored_chips(tab: &headless_chrome::Tab, i: usize) -> Result<Vec<(Value, f64)>> {
    let v = eval_json(
        tab,
        &format!(
            "Array.from(document.querySelectorAll('#results li.result[data-index=\"{i}\"] mark.ent')).map(m => ({{label: m.dataset.label, start: +m.dataset.start, end: +m.dataset.end, text: m.querySelector('.ent-text').textContent, score: +m.dataset.score}}))"
        ),
    )?;
    v.as_array()
        .into_iter()
        .flatten()
        .map(|chip| {
            let mut chip = chip.clone();
            let score = chip
                .as_object_mut()
                .and_then(|c| c.remove("score"))
                .and_then(|s| s.as_f64())
                .ok_or_else(|| anyhow::anyhow!("row {i}: a chip without a numeric data-score"))?;
            Ok((chip, score))
        })
        .collect()
}

fn has(chips: &[Value], label: &str, start: u64, end: u64, text: &str) -> bool {
    chips
        .iter()
        .any(|c| c["label"] == label && c["start"] == start && c["end"] == end && c["text"] == text)
}

#[test]
fn tag_view_tags_pasted_titles_with_character_offsets() -> Result<()> {
    let Some(s) = setup(true) else { return Ok(()) };
    let _one = serial();
    let (server, _browser, tab) = open(&s, ModelMode::Dir(s.model.clone()), "/?workers=2")?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    // The helper worker loads the model from the Cache API: one download of model.gguf.
    let workers = wait_for_workers(&tab, MODEL_TIMEOUT)?;
    ensure!(workers == 2, "{workers} of 2 workers loaded the model");
    let downloads = server.requests("/model/model.gguf");
    ensure!(
        downloads == 1,
        "model.gguf was downloaded {downloads} times"
    );

    // Blank lines are skipped; five titles remain.
    let long = long_title();
    let input = format!(
        "{}\n\n   \n{}\n{}\n{UNICODE_TITLE}\n{long}\n",
        TITLES[0], TITLES[1], TITLES[2]
    );
    set_value(&tab, "#titles-input", &input)?;
    click(&tab, "#tag-button")?;
    wait_until(
        &tab,
        "document.querySelector('#tag-summary').dataset.running === 'false' && document.querySelectorAll('#results li.result').length === 5",
        Duration::from_secs(120),
    )?;
    let shot = screenshot(&tab, "tag-view")?;
    eprintln!("screenshot: {}", shot.display());

    let count = eval_json(
        &tab,
        "document.querySelectorAll('#results li.result').length",
    )?;
    ensure!(
        count == 5,
        "expected 5 result rows (blank lines skipped), got {count}"
    );

    // What even a briefly trained tagger gets right: the brand prefix and the gender word.
    let first = chips(&tab, 0)?;
    ensure!(
        has(&first, "BRAND", 0, 8, "Roadster"),
        "no BRAND chip `Roadster` at [0,8) in row 0: {first:?}"
    );
    ensure!(
        has(&first, "GENDER", 9, 12, "Men"),
        "no GENDER chip `Men` at [9,12) in row 0: {first:?}"
    );
    let third = chips(&tab, 2)?;
    ensure!(
        has(&third, "GENDER", 11, 16, "Women"),
        "no GENDER chip `Women` at [11,16) in row 2: {third:?}"
    );
    let brands_at_start = (0..3)
        .map(|i| chips(&tab, i))
        .collect::<Result<Vec<_>>>()?
        .iter()
        .filter(|c| c.iter().any(|c| c["label"] == "BRAND" && c["start"] == 0))
        .count();
    ensure!(
        brands_at_start >= 2,
        "a BRAND at offset 0 in only {brands_at_start} of 3 titles"
    );

    // Offsets index characters of the title: check every entity of the download against it.
    let bad_offsets = eval_json(
        &tab,
        r#"(async () => {
            const href = document.querySelector('#download-jsonl').getAttribute('href');
            const lines = (await (await fetch(href)).text()).trim().split('\n').map(l => JSON.parse(l));
            const bad = [];
            for (const r of lines) for (const e of r.entities) {
                if (Array.from(r.title).slice(e.start, e.end).join('') !== e.text) bad.push([r.title, e]);
            }
            return {n: lines.length, bad, first: lines[0], unicode: lines[3], long: lines[4]};
        })()"#,
    )?;
    ensure!(
        bad_offsets["n"] == 5,
        "JSONL download has {} lines, expected 5",
        bad_offsets["n"]
    );
    ensure!(
        bad_offsets["bad"].as_array().is_some_and(Vec::is_empty),
        "entities whose character offsets do not match their text: {}",
        bad_offsets["bad"]
    );
    let first_line = &bad_offsets["first"];
    ensure!(first_line["title"] == TITLES[0] && first_line["truncated"] == false);
    ensure!(
        first_line["entities"]
            .as_array()
            .is_some_and(|es| es.iter().any(|e| e["label"] == "BRAND"
                && e["start"] == 0
                && e["end"] == 8
                && e["score"].as_f64().is_some_and(|s| s > 0.0 && s <= 1.0))),
        "JSONL row 0 lacks BRAND [0,8) with a score: {first_line}"
    );
    ensure!(bad_offsets["unicode"]["title"] == UNICODE_TITLE);
    // The same chips on the page as in the download, for the Unicode title too.
    let unicode_chips = chips(&tab, 3)?;
    let unicode_entities = bad_offsets["unicode"]["entities"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    ensure!(
        unicode_chips.len() == unicode_entities.len()
            && unicode_chips
                .iter()
                .zip(&unicode_entities)
                .all(|(c, e)| c["start"] == e["start"]
                    && c["end"] == e["end"]
                    && c["text"] == e["text"]),
        "page chips {unicode_chips:?} differ from the download {unicode_entities:?}"
    );
    // `Roadster` ends at character 10 after the emoji (byte 12, UTF-16 unit 11), whether the
    // model's BRAND takes the emoji in or not.
    ensure!(
        unicode_chips.iter().any(|c| c["label"] == "BRAND"
            && c["end"] == 10
            && c["text"].as_str().is_some_and(|t| t.ends_with("Roadster"))),
        "no BRAND ending with `Roadster` at character offset 10: {unicode_chips:?}"
    );

    // The overlong title is cut, and says so; the others are not.
    ensure!(
        bad_offsets["long"]["truncated"] == true,
        "the long title is not marked truncated"
    );
    let notices = eval_json(
        &tab,
        "Array.from(document.querySelectorAll('#results li.result')).map(li => !!li.querySelector('.truncated-notice'))",
    )?;
    ensure!(
        notices == serde_json::json!([false, false, false, false, true]),
        "truncation notices {notices}"
    );

    // Legend and timings.
    let legend = eval_json(
        &tab,
        "Array.from(document.querySelectorAll('#legend [data-label]')).map(e => e.dataset.label)",
    )?;
    for label in ["BRAND", "GENDER", "COLOR", "TYPE"] {
        ensure!(
            legend
                .as_array()
                .is_some_and(|l| l.iter().any(|v| v == label)),
            "legend lacks {label}: {legend}"
        );
    }
    let per_title = eval_json(
        &tab,
        "Array.from(document.querySelectorAll('#results .ms')).every(e => /\\d/.test(e.textContent))",
    )?;
    ensure!(per_title == true, "a row lacks its time");
    let summary = eval_json(&tab, "document.querySelector('#tag-summary').textContent")?;
    ensure!(
        summary
            .as_str()
            .is_some_and(|s| s.contains("Tagged 5 titles") && s.contains("total")),
        "summary: {summary}"
    );

    // Phone width: same page, one column.
    let phone = launch(&s.chromium, PHONE)?;
    let small = phone.new_tab()?;
    small.navigate_to(&server.url("/"))?;
    wait_for_model(&small, MODEL_TIMEOUT)?;
    set_value(&small, "#titles-input", &TITLES.join("\n"))?;
    click(&small, "#tag-button")?;
    wait_until(
        &small,
        "document.querySelectorAll('#results li.result').length === 3",
        Duration::from_secs(60),
    )?;
    let overflow = eval_json(
        &small,
        "document.documentElement.scrollWidth <= window.innerWidth + 1",
    )?;
    eprintln!(
        "screenshot: {}",
        screenshot(&small, "tag-view-phone")?.display()
    );
    ensure!(overflow == true, "the page scrolls sideways at phone width");
    Ok(())
}

/// A model trained on a user's own label set (tests/fixtures/labeled_small.conll: BRAND, COLOUR,
/// ITEM, where the catalog has BRAND, COLOR, GENDER, TYPE) and exported by `trainer export`: the
/// page's legend and its chips carry that label set.
#[test]
fn tag_view_uses_the_label_set_of_a_model_trained_on_own_data() -> Result<()> {
    let Some(s) = setup(false) else { return Ok(()) };
    let Some(trainer) = trainer_path() else {
        ensure!(
            std::env::var_os("MULTITAG_E2E").is_none(),
            "no release trainer binary (cargo build --release -p multitag-trainer)"
        );
        eprintln!("SKIPPED: no release trainer binary");
        return Ok(());
    };
    let _one = serial();
    let dir = std::env::temp_dir().join(format!("multitag-e2e-own-labels-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let data = repo_root().join("tests/fixtures/labeled_small.conll");
    let (model, export) = (dir.join("model"), dir.join("export"));
    let run = |args: &[&std::ffi::OsStr]| -> Result<()> {
        let out = std::process::Command::new(&trainer)
            .args(args)
            .current_dir(repo_root())
            .output()?;
        ensure!(
            out.status.success(),
            "trainer {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    let os = |s: &'static str| std::ffi::OsStr::new(s);
    run(&[
        os("train"),
        os("--data"),
        data.as_os_str(),
        os("--out"),
        model.as_os_str(),
        os("--epochs"),
        os("2"),
        os("--batch-size"),
        os("4"),
        os("--lr"),
        os("1e-3"),
    ])?;
    run(&[
        os("export"),
        os("--model"),
        model.as_os_str(),
        os("--data"),
        data.as_os_str(),
        os("--quant"),
        os("q4k"),
        os("--out"),
        export.as_os_str(),
    ])?;
    let (_server, _browser, tab) = open(&s, ModelMode::Dir(export), "/")?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    let legend = eval_json(
        &tab,
        "Array.from(document.querySelectorAll('#legend [data-label]')).map(e => e.dataset.label)",
    )?;
    ensure!(
        legend == serde_json::json!(["BRAND", "COLOUR", "ITEM"]),
        "legend {legend}"
    );
    set_value(
        &tab,
        "#titles-input",
        "Nike Slim Fit Blue Jacket\nZara Red Cap\n",
    )?;
    click(&tab, "#tag-button")?;
    wait_until(
        &tab,
        "document.querySelector('#tag-summary').dataset.running === 'false' && document.querySelectorAll('#results li.result').length === 2",
        Duration::from_secs(120),
    )?;
    let shot = screenshot(&tab, "tag-view-own-labels")?;
    eprintln!("screenshot: {}", shot.display());
    let found: Vec<Value> = [chips(&tab, 0)?, chips(&tab, 1)?].concat();
    let labels: Vec<&str> = found.iter().filter_map(|c| c["label"].as_str()).collect();
    ensure!(!labels.is_empty(), "no entity chips: {found:?}");
    ensure!(
        labels
            .iter()
            .all(|l| ["BRAND", "COLOUR", "ITEM"].contains(l)),
        "a label outside the model's set: {labels:?}"
    );
    ensure!(
        labels.iter().any(|l| ["COLOUR", "ITEM"].contains(l)),
        "none of the labels only this model has: {labels:?}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

#[test]
fn similarity_view_renders_the_heat_map_and_the_diagonal_wins() -> Result<()> {
    let Some(s) = setup(true) else { return Ok(()) };
    let _one = serial();
    let examples: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(s.model.join("examples.json"))?)?;
    ensure!(
        examples.len() >= 4,
        "examples.json has only {} items",
        examples.len()
    );
    let n = examples.len().min(12);

    let (_server, _browser, tab) = open(&s, ModelMode::Dir(s.model.clone()), "/")?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    click(&tab, "#tab-similarity")?;
    click(&tab, "#sim-examples")?;
    wait_until(
        &tab,
        "document.querySelector('table.heatmap[data-slot=main]') && document.querySelector('#sim-status').dataset.running === 'false'",
        Duration::from_secs(120),
    )?;
    eprintln!(
        "screenshot: {}",
        screenshot(&tab, "similarity-view")?.display()
    );

    let m = eval_json(
        &tab,
        r#"(() => {
            const t = document.querySelector('table.heatmap[data-slot=main]');
            const rows = Array.from(t.querySelectorAll('tbody tr')).map(tr =>
                Array.from(tr.querySelectorAll('td.cell')).map(td => ({
                    sim: parseFloat(td.dataset.sim), best: td.classList.contains('best'),
                    row: +td.dataset.row, col: +td.dataset.col, hover: td.title })));
            return {rows, wins: +t.dataset.diagonalWins,
                    titles: document.querySelector('#sim-titles').value.split('\n').length};
        })()"#,
    )?;
    let rows = m["rows"].as_array().cloned().unwrap_or_default();
    ensure!(
        rows.len() == n,
        "{} heat-map rows for {n} examples",
        rows.len()
    );
    ensure!(
        m["titles"] == n,
        "the examples filled {} titles, expected {n}",
        m["titles"]
    );
    let mut wins = 0;
    for (i, row) in rows.iter().enumerate() {
        let cells = row.as_array().cloned().unwrap_or_default();
        ensure!(
            cells.len() == n,
            "row {i} has {} cells, expected {n}",
            cells.len()
        );
        let sims: Vec<f64> = cells
            .iter()
            .map(|c| c["sim"].as_f64().unwrap_or(f64::NAN))
            .collect();
        ensure!(
            sims.iter().all(|v| (-1.0001..=1.0001).contains(v)),
            "row {i}: similarities outside [-1, 1]: {sims:?}"
        );
        ensure!(
            cells
                .iter()
                .all(|c| c["hover"].as_str().is_some_and(|h| h.contains("cosine"))),
            "row {i}: a cell without its number on hover"
        );
        let best: Vec<usize> = cells
            .iter()
            .enumerate()
            .filter(|(_, c)| c["best"] == true)
            .map(|(j, _)| j)
            .collect();
        ensure!(best.len() == 1, "row {i}: {} cells marked best", best.len());
        let max = sims.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        ensure!(
            (sims[best[0]] - max).abs() < 1e-3,
            "row {i}: the best cell {} is not the row maximum {max}",
            sims[best[0]]
        );
        if best[0] == i {
            wins += 1;
        }
    }
    ensure!(
        m["wins"] == wins,
        "data-diagonal-wins {} but {wins} counted",
        m["wins"]
    );
    // A triplet-trained encoder puts most titles closest to their own description.
    ensure!(
        2 * wins > n,
        "the diagonal wins for only {wins} of {n} examples"
    );
    eprintln!("similarity: diagonal wins {wins} of {n}");
    Ok(())
}

/// The search of the similarity view: one bundled example's title against every bundled
/// description. The list must be the catalog ranked by descending cosine, as many as the page
/// shows by default, with the example's own description among them; which one comes first is the
/// model's business, so only the order and the top score are checked, not the winner.
#[test]
fn similarity_search_ranks_the_bundled_descriptions() -> Result<()> {
    let Some(s) = setup(true) else { return Ok(()) };
    let _one = serial();
    let examples: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(s.model.join("examples.json"))?)?;
    ensure!(!examples.is_empty(), "examples.json has no examples");
    // The middle one rather than the first, so that a page that lists the catalog in bundled
    // order without ranking it would not pass by luck.
    let pick = examples.len() / 2;
    let title = examples[pick]["title"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let expected = examples.len().min(10);

    let (_server, _browser, tab) = open(&s, ModelMode::Dir(s.model.clone()), "/")?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    click(&tab, "#tab-similarity")?;

    // An empty search shows no results and says what to do.
    click(&tab, "#search-run")?;
    wait_until(
        &tab,
        "document.querySelector('#search-status').textContent !== ''",
        Duration::from_secs(10),
    )?;
    let empty = eval_json(
        &tab,
        "({hits: document.querySelectorAll('#search-results li').length, status: document.querySelector('#search-status').textContent})",
    )?;
    ensure!(empty["hits"] == 0, "an empty search gave results: {empty}");
    ensure!(
        empty["status"]
            .as_str()
            .is_some_and(|t| t.contains("title")),
        "an empty search gives no hint: {empty}"
    );

    set_value(&tab, "#search-input", &title)?;
    click(&tab, "#search-run")?;
    wait_until(
        &tab,
        "document.querySelector('#search-status').dataset.running === 'false' && (document.querySelector('#search-results') || !/Type or paste/.test(document.querySelector('#search-status').textContent))",
        Duration::from_secs(120),
    )?;
    eprintln!(
        "screenshot: {}",
        screenshot(&tab, "similarity-search")?.display()
    );
    let page = eval_json(
        &tab,
        r#"(() => {
            const list = document.querySelector('#search-results');
            return {
                status: document.querySelector('#search-status').textContent,
                count: list ? +list.dataset.count : null,
                catalog: list ? +list.dataset.catalog : null,
                hits: list ? Array.from(list.querySelectorAll('li.search-hit')).map(li => ({
                    rank: +li.dataset.rank, index: +li.dataset.index, id: li.dataset.id,
                    score: parseFloat(li.dataset.score), own: li.dataset.own === 'true',
                    title: li.querySelector('.hit-title-text').textContent,
                    shown: li.querySelector('.score').textContent })) : [],
            };
        })()"#,
    )?;
    let hits = page["hits"].as_array().cloned().unwrap_or_default();
    ensure!(
        hits.len() == expected && page["count"] == expected,
        "{} results (data-count {}) for {} bundled examples, expected {expected}; status: {}",
        hits.len(),
        page["count"],
        examples.len(),
        page["status"]
    );
    ensure!(
        page["catalog"] == examples.len(),
        "the page searched {} descriptions, examples.json has {}",
        page["catalog"],
        examples.len()
    );
    let mut seen = std::collections::HashSet::new();
    for (rank, hit) in hits.iter().enumerate() {
        ensure!(
            hit["rank"] == rank,
            "result {rank} says rank {}",
            hit["rank"]
        );
        let index = hit["index"].as_u64().unwrap_or(u64::MAX) as usize;
        ensure!(
            index < examples.len() && seen.insert(index),
            "result {rank}: bundled index {index} is not a new one: {hits:?}"
        );
        // Each result is its bundled example: description's id and title together.
        ensure!(
            hit["id"] == examples[index]["id"] && hit["title"] == examples[index]["title"],
            "result {rank} shows {} / {} for bundled example {index}",
            hit["id"],
            hit["title"]
        );
        let score = hit["score"].as_f64().unwrap_or(f64::NAN);
        ensure!(
            (-1.0001..=1.0001).contains(&score),
            "result {rank}: score {score} outside [-1, 1]"
        );
        ensure!(
            hit["shown"]
                .as_str()
                .and_then(|t| t.parse::<f64>().ok())
                .is_some_and(|shown| (shown - score).abs() < 1e-3),
            "result {rank}: shows {} for score {score}",
            hit["shown"]
        );
    }
    let scores: Vec<f64> = hits
        .iter()
        .map(|h| h["score"].as_f64().unwrap_or(f64::NAN))
        .collect();
    ensure!(
        scores.windows(2).all(|w| w[0] >= w[1]),
        "results not in descending score order: {scores:?}"
    );
    let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    ensure!(
        scores[0] == max,
        "the top score {} is not the maximum {max}",
        scores[0]
    );
    // The searched title's own product is listed and marked as such.
    let own: Vec<&Value> = hits.iter().filter(|h| h["index"] == pick).collect();
    ensure!(
        own.len() == 1,
        "example {pick}'s own description is not among the results: {scores:?}"
    );
    ensure!(
        own[0]["own"] == true,
        "example {pick}'s result is not marked as the searched title's"
    );
    eprintln!(
        "search: own description ranked {} of {} (score {}, top {})",
        own[0]["rank"].as_u64().unwrap_or(0) + 1,
        examples.len(),
        own[0]["score"],
        scores[0]
    );

    // "all" shows the whole catalog from the kept vectors, the first results unchanged.
    eval_json(
        &tab,
        "(() => { const s = document.querySelector('#search-shown'); s.value = 'all'; s.dispatchEvent(new Event('change', { bubbles: true })); return true; })()",
    )?;
    wait_until(
        &tab,
        &format!(
            "document.querySelectorAll('#search-results li.search-hit').length === {}",
            examples.len()
        ),
        Duration::from_secs(10),
    )?;
    let all = eval_json(
        &tab,
        "Array.from(document.querySelectorAll('#search-results li.search-hit')).map(li => +li.dataset.index)",
    )?;
    let first: Vec<Value> = hits.iter().map(|h| h["index"].clone()).collect();
    ensure!(
        all.as_array()
            .is_some_and(|a| a.len() == examples.len() && a[..expected] == first[..]),
        "showing all reordered the top results: {all} after {first:?}"
    );
    Ok(())
}

/// A model exported without examples.json: the search says there is nothing to search, and
/// shows no results, rather than failing silently.
#[test]
fn similarity_search_without_examples_says_so() -> Result<()> {
    let Some(s) = setup(true) else { return Ok(()) };
    let _one = serial();
    let dir = multitag_e2e::artifacts_dir().join("no-examples/model");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    for entry in std::fs::read_dir(&s.model)? {
        let from = entry?.path();
        let name = from.file_name().expect("a file name");
        if name == "examples.json" {
            continue;
        }
        if std::fs::hard_link(&from, dir.join(name)).is_err() {
            std::fs::copy(&from, dir.join(name))?;
        }
    }
    let (_server, _browser, tab) = open(&s, ModelMode::Dir(dir), "/")?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    click(&tab, "#tab-similarity")?;
    set_value(&tab, "#search-input", TITLES[0])?;
    click(&tab, "#search-run")?;
    wait_until(
        &tab,
        "document.querySelector('#search-status').dataset.running === 'false' && document.querySelector('#search-status').textContent !== ''",
        Duration::from_secs(60),
    )?;
    let page = eval_json(
        &tab,
        "({hits: document.querySelectorAll('#search-results li').length, status: document.querySelector('#search-status').textContent, enabled: !document.querySelector('#search-run').disabled})",
    )?;
    ensure!(page["hits"] == 0, "results without examples: {page}");
    ensure!(
        page["status"]
            .as_str()
            .is_some_and(|t| t.contains("no bundled descriptions") && t.contains("examples.json")),
        "the status does not say why there is nothing to search: {page}"
    );
    ensure!(page["enabled"] == true, "the search stays disabled: {page}");
    Ok(())
}

/// `model/` and `model-baseline/` both served: two heat maps side by side. The baseline here is a
/// copy of the same export (this tests the page, not the training), so both must agree.
#[test]
fn similarity_view_shows_the_baseline_side_by_side() -> Result<()> {
    let Some(s) = setup(true) else { return Ok(()) };
    let _one = serial();
    let root = multitag_e2e::artifacts_dir().join("two-models");
    let _ = std::fs::remove_dir_all(&root);
    for name in ["model", "model-baseline"] {
        let dir = root.join(name);
        std::fs::create_dir_all(&dir)?;
        for entry in std::fs::read_dir(&s.model)? {
            let from = entry?.path();
            let to = dir.join(from.file_name().expect("a file name"));
            if std::fs::hard_link(&from, &to).is_err() {
                std::fs::copy(&from, &to)?;
            }
        }
    }
    let (_server, _browser, tab) = open(&s, ModelMode::Dir(root.join("model")), "/")?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    wait_until(
        &tab,
        "/available/.test(document.querySelector('#baseline-note').textContent)",
        Duration::from_secs(30),
    )?;
    click(&tab, "#tab-similarity")?;
    click(&tab, "#sim-examples")?;
    wait_until(
        &tab,
        "document.querySelector('table.heatmap[data-slot=baseline]') && document.querySelector('#sim-status').dataset.running === 'false'",
        MODEL_TIMEOUT,
    )?;
    eprintln!(
        "screenshot: {}",
        screenshot(&tab, "similarity-side-by-side")?.display()
    );
    let tables = eval_json(
        &tab,
        "Array.from(document.querySelectorAll('table.heatmap')).map(t => ({slot: t.dataset.slot, cells: t.querySelectorAll('td.cell').length, rows: +t.dataset.rows, sims: Array.from(t.querySelectorAll('td.cell')).map(c => +c.dataset.sim)}))",
    )?;
    let tables = tables.as_array().cloned().unwrap_or_default();
    ensure!(tables.len() == 2, "{} heat maps, expected 2", tables.len());
    ensure!(tables[0]["slot"] == "main" && tables[1]["slot"] == "baseline");
    let n = tables[0]["rows"].as_u64().unwrap_or(0);
    ensure!(
        n > 0 && tables.iter().all(|t| t["cells"] == n * n),
        "{tables:?}"
    );
    ensure!(
        tables[0]["sims"] == tables[1]["sims"],
        "the same model gave different similarities"
    );
    Ok(())
}

#[test]
fn reload_takes_the_model_from_the_cache() -> Result<()> {
    let Some(s) = setup(true) else { return Ok(()) };
    let _one = serial();
    let (server, _browser, tab) = open(&s, ModelMode::Dir(s.model.clone()), "/")?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    let first = eval_json(
        &tab,
        "({...document.querySelector('#model-status').dataset})",
    )?;
    ensure!(first["fromCache"] == "false", "first visit: {first}");
    let fetches = server.requests("/model/model.gguf");
    ensure!(fetches == 1, "model.gguf fetched {fetches} times");
    server.clear_log();
    tab.reload(true, None)?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    let second = eval_json(
        &tab,
        "({...document.querySelector('#model-status').dataset})",
    )?;
    ensure!(second["fromCache"] == "true", "after a reload: {second}");
    ensure!(
        server.requests("/model/model.gguf") == 0,
        "model.gguf was downloaded again after a reload"
    );
    eprintln!(
        "load: first visit {} ms, reload {} ms",
        first["loadMs"], second["loadMs"]
    );
    Ok(())
}

#[test]
fn missing_model_explains_how_to_make_one() -> Result<()> {
    let Some(s) = setup(false) else { return Ok(()) };
    let _one = serial();
    let (_server, _browser, tab) = open(&s, ModelMode::Missing, "/")?;
    wait_until(
        &tab,
        "document.querySelector('#model-error')",
        Duration::from_secs(60),
    )?;
    eprintln!(
        "screenshot: {}",
        screenshot(&tab, "missing-model")?.display()
    );
    let panel = eval_json(
        &tab,
        "({kind: document.querySelector('#model-error').dataset.kind, text: document.querySelector('#model-error').innerText, state: document.querySelector('#model-status').dataset.state, disabled: document.querySelector('#tag-button').disabled})",
    )?;
    ensure!(panel["kind"] == "missing", "{panel}");
    ensure!(panel["state"] == "failed", "{panel}");
    ensure!(
        panel["disabled"] == true,
        "the tag button is enabled without a model"
    );
    let text = panel["text"].as_str().unwrap_or_default();
    for needle in [
        "missing",
        "./scripts/demo.sh",
        "trainer export --model runs/demo --quant q4k --out public/model",
    ] {
        ensure!(
            text.contains(needle),
            "the error panel lacks `{needle}`: {text}"
        );
    }
    Ok(())
}

/// Waits for the page's model error panel and returns its `kind` and `text`.
fn error_panel(tab: &Tab) -> Result<Value> {
    wait_until(
        tab,
        "document.querySelector('#model-error')",
        Duration::from_secs(120),
    )?;
    eval_json(
        tab,
        "({kind: document.querySelector('#model-error').dataset.kind, text: document.querySelector('#model-error').innerText})",
    )
}

/// A model file damaged where it still parses (one flipped byte of a weight) is refused by its
/// checksum with the error panel, never used to show wrong tags.
#[test]
fn a_damaged_model_is_refused_by_its_checksum() -> Result<()> {
    let Some(s) = setup(true) else { return Ok(()) };
    let _one = serial();
    let (_server, _browser, tab) = open(&s, ModelMode::Flipped(s.model.clone()), "/")?;
    let panel = error_panel(&tab)?;
    ensure!(panel["kind"] == "corrupt", "{panel}");
    let text = panel["text"].as_str().unwrap_or_default();
    ensure!(
        text.contains("model.gguf") && text.contains("checksum"),
        "the error panel does not say the file fails its checksum: {text}"
    );
    Ok(())
}

#[test]
fn corrupt_model_is_reported_not_blank() -> Result<()> {
    let Some(s) = setup(true) else { return Ok(()) };
    let _one = serial();
    let (_server, _browser, tab) = open(&s, ModelMode::Corrupt(s.model.clone()), "/")?;
    let panel = error_panel(&tab)?;
    ensure!(panel["kind"] == "corrupt", "{panel}");
    let text = panel["text"].as_str().unwrap_or_default();
    ensure!(
        text.contains("model.gguf") && text.contains("./scripts/demo.sh"),
        "the error panel does not name the file and the fix: {text}"
    );
    Ok(())
}

/// A CoNLL04 test sentence (conll04_test.json, document 246) with one relation, Kill(Sirhan,
/// Kennedy), which the small SpERT scripts/test.sh trains finds (score 0.94 from its q4k export,
/// natively and with the int8 kernel), among other entities (Israel twice, Markman).
const CONLL04_SENTENCE: &str = "\" Sirhan had killed Kennedy for his warm feelings toward Israel , and I had come from Israel , \" Markman said .";
/// Another (document 59): Work_For(Francisco Rojas, Pemex).
const CONLL04_SECOND: &str = "Pemex Director Francisco Rojas told a news conference Wednesday that the production of crude oil , gasoline and petrochemicals had returned to normal .";

/// Clicks the Relations tab and waits for the relation model's note to settle; returns its state.
fn open_relations(tab: &Tab) -> Result<String> {
    click(tab, "#tab-relations")?;
    wait_until(
        tab,
        "['ready', 'missing', 'wrong-task', 'corrupt', 'network'].includes(document.querySelector('#relations-model')?.dataset.state)",
        MODEL_TIMEOUT,
    )?;
    let state = eval_json(
        tab,
        "document.querySelector('#relations-model').dataset.state",
    )?;
    Ok(state.as_str().unwrap_or_default().to_string())
}

/// The Relations view with the relation export (public/relations) served beside the tagger: a
/// known CoNLL04 test sentence shows its entities as chips over its own characters and at least
/// one relation as an arc from its head's chip to its tail's, with scores on hover; the page says
/// which model each view uses; the JSONL download is `trainer tag`'s lines, line numbers of the
/// paste included, and holds what the page drew.
#[test]
fn relations_view_shows_entities_and_relation_arcs() -> Result<()> {
    let Some(s) = setup_relations() else {
        return Ok(());
    };
    let _one = serial();
    let (server, _browser, tab) = open(&s, ModelMode::Dir(s.model.clone()), "/")?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    // Nothing of the relation model is fetched before its view is opened.
    ensure!(
        server.requests("/relations/model.gguf") == 0,
        "the relation model was fetched before the Relations view was opened"
    );
    let state = open_relations(&tab)?;
    let note = eval_json(&tab, "document.querySelector('#relations-model').innerText")?;
    ensure!(
        state == "ready",
        "the relation model did not load ({state}): {note}"
    );
    let note = note.as_str().unwrap_or_default().to_string();
    for needle in [
        "Relation model",
        "relations/",
        "Kill",
        "Peop",
        "model/",
        "tagger",
    ] {
        ensure!(
            note.contains(needle),
            "the model note lacks `{needle}`: {note}"
        );
    }
    // Blank lines are skipped but counted: the download's line numbers are the paste's.
    set_value(
        &tab,
        "#relations-input",
        &format!("{CONLL04_SENTENCE}\n\n{CONLL04_SECOND}\n"),
    )?;
    click(&tab, "#relations-run")?;
    wait_until(
        &tab,
        "document.querySelector('#relations-summary').dataset.running === 'false' && document.querySelectorAll('#relations-results li.rel-result').length === 2",
        Duration::from_secs(120),
    )?;
    // The arcs are drawn once the chips are laid out.
    wait_until(
        &tab,
        "document.querySelectorAll('#relations-results li.rel-result[data-index=\"0\"] .rel-arcs g.arc').length >= 1",
        Duration::from_secs(10),
    )?;
    let shot = screenshot(&tab, "relations-view")?;
    eprintln!("screenshot: {}", shot.display());

    let page = eval_json(
        &tab,
        r#"(() => {
            const rows = Array.from(document.querySelectorAll('#relations-results li.rel-result'));
            return rows.map(li => {
                const text = li.querySelector('.rel-text');
                return {
                    line: +li.dataset.line,
                    entities: +li.dataset.entities,
                    relations: +li.dataset.relations,
                    chips: Array.from(li.querySelectorAll('mark.ent')).map(m => ({
                        entity: +m.dataset.entity, label: m.dataset.label, start: +m.dataset.start,
                        end: +m.dataset.end, text: m.querySelector('.ent-text').textContent,
                        title: m.title, left: m.offsetLeft, width: m.offsetWidth, top: m.offsetTop,
                        color: getComputedStyle(m).borderColor })),
                    arcs: Array.from(li.querySelectorAll('.rel-arcs g.arc')).map(g => ({
                        label: g.dataset.label, head: +g.dataset.head, tail: +g.dataset.tail,
                        score: parseFloat(g.dataset.score),
                        title: g.querySelector('title').textContent,
                        d: g.querySelector('path.arc-path').getAttribute('d'),
                        ns: g.namespaceURI })),
                    listed: Array.from(li.querySelectorAll('li.rel')).map(r => ({
                        label: r.dataset.label, head: +r.dataset.head, tail: +r.dataset.tail })),
                    width: text.offsetWidth,
                };
            });
        })()"#,
    )?;
    let rows = page.as_array().cloned().unwrap_or_default();
    ensure!(rows.len() == 2, "{} result rows: {page}", rows.len());
    let first = &rows[0];
    ensure!(
        first["line"] == 1 && rows[1]["line"] == 3,
        "line numbers: {page}"
    );
    let chars: Vec<char> = CONLL04_SENTENCE.chars().collect();
    let chips = first["chips"].as_array().cloned().unwrap_or_default();
    for c in &chips {
        let (start, end) = (
            c["start"].as_u64().unwrap_or(0) as usize,
            c["end"].as_u64().unwrap_or(0) as usize,
        );
        let text: String = chars[start.min(chars.len())..end.min(chars.len())]
            .iter()
            .collect();
        ensure!(
            c["text"] == text.as_str(),
            "chip {c} is not the sentence's characters {start}..{end}"
        );
        ensure!(
            c["title"].as_str().is_some_and(|t| t.contains("score")),
            "chip {c} shows no score on hover"
        );
    }
    for name in ["Sirhan", "Kennedy"] {
        ensure!(
            chips
                .iter()
                .any(|c| c["text"] == name && c["label"] == "Peop"),
            "no Peop chip `{name}`: {chips:?}"
        );
    }
    // Type-coloured: the Peop chips share a colour, the Loc chip has another.
    let color = |label: &str| -> Vec<Value> {
        chips
            .iter()
            .filter(|c| c["label"] == label)
            .map(|c| c["color"].clone())
            .collect()
    };
    let (peop, loc) = (color("Peop"), color("Loc"));
    ensure!(
        peop.windows(2).all(|w| w[0] == w[1]) && loc.first().is_none_or(|l| *l != peop[0]),
        "chip colours do not follow the types: Peop {peop:?}, Loc {loc:?}"
    );
    let arcs = first["arcs"].as_array().cloned().unwrap_or_default();
    ensure!(!arcs.is_empty(), "no relation arc: {first}");
    let entity_count = first["entities"].as_u64().unwrap_or(0);
    for a in &arcs {
        ensure!(
            a["head"].as_u64().unwrap_or(u64::MAX) < entity_count
                && a["tail"].as_u64().unwrap_or(u64::MAX) < entity_count,
            "arc {a} points outside the sentence's {entity_count} entities"
        );
        ensure!(
            a["ns"] == "http://www.w3.org/2000/svg",
            "arc {a} is not SVG"
        );
        ensure!(
            a["title"].as_str().is_some_and(
                |t| t.contains("score") && t.contains(a["label"].as_str().unwrap_or("?"))
            ),
            "arc {a} shows no type and score on hover"
        );
        // It starts above its head's chip (or the chip it is drawn on) and ends above its tail's.
        let d = a["d"].as_str().unwrap_or_default();
        let numbers: Vec<f64> = d
            .split(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-'))
            .filter_map(|n| n.parse().ok())
            .collect();
        ensure!(numbers.len() == 8, "arc path `{d}`");
        // Over the chip of the entity, when it has one of its own (an entity overlapping an
        // earlier one is drawn on that one's chip).
        let over = |x: f64, entity: &Value| -> bool {
            chips
                .iter()
                .find(|c| c["entity"] == *entity)
                .is_none_or(|c| {
                    let left = c["left"].as_f64().unwrap_or(0.0);
                    x >= left && x <= left + c["width"].as_f64().unwrap_or(0.0)
                })
        };
        ensure!(
            over(numbers[0], &a["head"]) && over(numbers[6], &a["tail"]),
            "arc {a} does not run from its head's chip to its tail's: {chips:?}"
        );
    }
    let drawn: Vec<(Value, Value, Value)> = arcs
        .iter()
        .map(|a| (a["label"].clone(), a["head"].clone(), a["tail"].clone()))
        .collect();
    let listed: Vec<(Value, Value, Value)> = first["listed"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|a| (a["label"].clone(), a["head"].clone(), a["tail"].clone()))
        .collect();
    ensure!(drawn == listed, "arcs {drawn:?} but listed {listed:?}");

    // The download: trainer tag's lines for the two sentences, with what the page shows.
    let download = eval_json(
        &tab,
        r#"(async () => {
            const href = document.querySelector('#relations-download').getAttribute('href');
            const text = await (await fetch(href)).text();
            return {text, lines: text.trim().split('\n').map(l => JSON.parse(l))};
        })()"#,
    )?;
    let lines = download["lines"].as_array().cloned().unwrap_or_default();
    ensure!(lines.len() == 2, "{} JSONL lines: {download}", lines.len());
    ensure!(
        lines[0]["text"] == CONLL04_SENTENCE && lines[0]["line"] == 1 && lines[1]["line"] == 3,
        "JSONL texts and lines: {download}"
    );
    let keys: Vec<&str> = lines[0]
        .as_object()
        .map(|o| o.keys().map(String::as_str).collect())
        .unwrap_or_default();
    ensure!(
        keys == ["entities", "line", "relations", "text"],
        "the JSONL line is not trainer tag's: keys {keys:?}"
    );
    let entities = lines[0]["entities"].as_array().cloned().unwrap_or_default();
    ensure!(
        entities.len() as u64 == entity_count,
        "{} entities in the download, {entity_count} on the page",
        entities.len()
    );
    let downloaded: Vec<(Value, Value, Value)> = lines[0]["relations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|r| (r["label"].clone(), r["head"].clone(), r["tail"].clone()))
        .collect();
    ensure!(
        downloaded == drawn,
        "the download's relations {downloaded:?} are not the arcs {drawn:?}"
    );
    let kill = lines[0]["relations"].as_array().is_some_and(|rs| {
        rs.iter().any(|r| {
            r["label"] == "Kill"
                && entities[r["head"].as_u64().unwrap_or(0) as usize]["text"] == "Sirhan"
                && entities[r["tail"].as_u64().unwrap_or(0) as usize]["text"] == "Kennedy"
        })
    });
    eprintln!(
        "relations: sentence 1 has {} entities and {} relations (Kill(Sirhan, Kennedy) found: \
         {kill}); sentence 2 has {} entities and {} relations",
        entity_count,
        arcs.len(),
        rows[1]["entities"],
        rows[1]["relations"]
    );
    // "Load examples" fills the input with the test sentences the export bundled.
    let bundled: Vec<Value> =
        serde_json::from_str(&std::fs::read_to_string(s.relations.join("examples.json"))?)?;
    click(&tab, "#relations-examples")?;
    wait_until(
        &tab,
        &format!(
            "document.querySelector('#relations-input').value.split('\\n').length === {}",
            bundled.len()
        ),
        Duration::from_secs(30),
    )?;
    let filled = eval_json(&tab, "document.querySelector('#relations-input').value")?;
    let expected: Vec<&str> = bundled.iter().filter_map(|e| e["text"].as_str()).collect();
    ensure!(
        filled.as_str() == Some(expected.join("\n").as_str()),
        "the examples filled {filled}, examples.json has {expected:?}"
    );
    ensure!(
        server.requests("/relations/model.gguf") == 1,
        "relations/model.gguf was downloaded {} times",
        server.requests("/relations/model.gguf")
    );
    Ok(())
}

/// A page that serves only a tagger: the Relations view says no relation model is served, that
/// the served model is a tagger (and which), what model is needed and how to make one, and its
/// button stays disabled. The other views are unaffected.
#[test]
fn relations_view_without_a_relation_model_says_which_is_needed() -> Result<()> {
    let Some(s) = setup(true) else { return Ok(()) };
    let _one = serial();
    let server = Server::start_with(&s.dist, ModelMode::Dir(s.model.clone()), None)?;
    let browser = launch(&s.chromium, DESKTOP)?;
    let tab = browser.new_tab()?;
    tab.navigate_to(&server.url("/"))?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    let state = open_relations(&tab)?;
    eprintln!(
        "screenshot: {}",
        screenshot(&tab, "relations-view-tagger-only")?.display()
    );
    let page = eval_json(
        &tab,
        "({text: document.querySelector('#relations-model').innerText, disabled: document.querySelector('#relations-run').disabled, tagReady: !document.querySelector('#tag-button').disabled})",
    )?;
    ensure!(state == "missing", "state {state}: {page}");
    let text = page["text"].as_str().unwrap_or_default();
    for needle in [
        "No relation extraction model",
        "tagger in model/",
        "BRAND",
        "--task relations",
        "public/relations",
        "trainer export",
    ] {
        ensure!(text.contains(needle), "the note lacks `{needle}`: {text}");
    }
    ensure!(
        page["disabled"] == true,
        "Find relations is enabled without a model"
    );
    ensure!(
        page["tagReady"] == true,
        "the tag view lost its model: {page}"
    );
    Ok(())
}

/// A relation export served where the tagger belongs (model/): the page says it is not a
/// tagger, naming the task, rather than a damaged file.
#[test]
fn a_relation_model_served_as_the_tagger_is_named_as_such() -> Result<()> {
    let Some(s) = setup_relations() else {
        return Ok(());
    };
    let _one = serial();
    let (_server, _browser, tab) = open(&s, ModelMode::Dir(s.relations.clone()), "/")?;
    let panel = error_panel(&tab)?;
    ensure!(panel["kind"] == "wrong-task", "{panel}");
    let text = panel["text"].as_str().unwrap_or_default();
    ensure!(
        text.contains("not a tagger") && text.contains("relation extraction model"),
        "the error panel does not say the model is a relation model: {text}"
    );
    Ok(())
}

/// A sentence describing a type the BINDER model of scripts/test.sh was not trained with: the
/// catalog's brand, in other words and under another name.
const MAKER: &str =
    "a maker entity is the name of the company or label that makes the product, at the start of the title.";

/// Types described in words (BINDER, the export public/binder served as binder/): the Tag view
/// switches to BINDER on request (nothing of it is fetched before), lists its trained types with
/// their descriptions, refuses an incomplete type, takes a type a person describes, and tags the
/// titles with it beside the trained types, which stay; the legend shows every type.
#[test]
fn tag_view_tags_a_type_described_in_words() -> Result<()> {
    let Some(s) = setup_binder() else {
        return Ok(());
    };
    let _one = serial();
    let (server, _browser, tab) = open(&s, ModelMode::Dir(s.model.clone()), "/")?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    ensure!(
        server.requests("/binder/model.gguf") == 0,
        "the BINDER model was fetched before it was asked for"
    );
    use_binder(&tab)?;
    let trained = eval_json(
        &tab,
        "({ready: document.querySelector('#binder-status').dataset.ready, status: document.querySelector('#binder-status').innerText, names: Array.from(document.querySelectorAll('#trained-types li')).map(li => li.dataset.name), text: document.querySelector('#trained-types').innerText})",
    )?;
    ensure!(trained["ready"] == "true", "BINDER did not load: {trained}");
    ensure!(
        trained["names"] == serde_json::json!(["BRAND", "COLOR", "GENDER", "TYPE"]),
        "trained types: {trained}"
    );
    ensure!(
        trained["text"]
            .as_str()
            .unwrap_or_default()
            .contains("a brand entity is"),
        "the trained types come without their descriptions: {trained}"
    );
    // A name alone is refused with a message; with its sentence the type is listed.
    set_value(&tab, "#type-name", "MAKER")?;
    click(&tab, "#add-type")?;
    wait_until(
        &tab,
        "!!document.querySelector('#type-problem')",
        Duration::from_secs(5),
    )?;
    set_value(&tab, "#type-description", MAKER)?;
    click(&tab, "#add-type")?;
    wait_until(
        &tab,
        "!!document.querySelector('#described-types li[data-name=\"MAKER\"]')",
        Duration::from_secs(5),
    )?;
    click(&tab, "#tag-examples")?;
    wait_until(
        &tab,
        "document.querySelector('#titles-input').value.split('\\n').length >= 8",
        Duration::from_secs(20),
    )?;
    click(&tab, "#tag-button")?;
    wait_until(
        &tab,
        "document.querySelector('#tag-summary').dataset.running === 'false' && +document.querySelector('#tag-summary').dataset.done > 0",
        Duration::from_secs(120),
    )?;
    let page = eval_json(
        &tab,
        "({summary: document.querySelector('#tag-summary').innerText, labels: Array.from(document.querySelectorAll('#results mark.ent')).map(m => m.dataset.label), legend: Array.from(document.querySelectorAll('#legend [data-label]')).map(e => e.dataset.label)})",
    )?;
    eprintln!(
        "screenshot: {}",
        screenshot(&tab, "tag-view-described-type")?.display()
    );
    let labels: Vec<&str> = (page["labels"].as_array().into_iter().flatten())
        .filter_map(Value::as_str)
        .collect();
    ensure!(
        labels.contains(&"MAKER"),
        "no title was tagged with the described type: {page}"
    );
    for trained in ["BRAND", "COLOR", "TYPE"] {
        ensure!(
            labels.contains(&trained),
            "the trained type {trained} is gone: {page}"
        );
    }
    ensure!(
        page["legend"] == serde_json::json!(["BRAND", "COLOR", "GENDER", "TYPE", "MAKER"]),
        "legend: {page}"
    );
    Ok(())
}

/// Chromium compiles relaxed SIMD, so the page starts the worker built with it (7-bit inputs times
/// int8 weights in `i32x4.relaxed_dot_i8x16_i7x16_add_s`); `?simd=plain` starts the SIMD128 build
/// (14-bit inputs, `i32x4.dot_i16x8_s`). The two round activations differently, so they are not
/// bit-identical: they must give every entity either of them is sure of ([`SURE`]), with the same
/// label, offsets and a score within [`SCORE_TOLERANCE`], and may differ only on entities the model
/// itself is unsure of (natively, `MULTITAG_INT8_KERNEL=relaxed` and `portable` give gold-set F1
/// within 0.1 of each other).
#[test]
fn the_relaxed_simd_and_the_simd128_workers_tag_alike() -> Result<()> {
    let Some(s) = setup(true) else { return Ok(()) };
    let _one = serial();
    let mut titles = TITLES.to_vec();
    titles.push(UNICODE_TITLE);
    let mut tagged = Vec::new();
    for (page, build) in [
        ("/?workers=1&backend=cpu", "relaxed"),
        ("/?workers=1&backend=cpu&simd=plain", "simd128"),
    ] {
        let (_server, _browser, tab) = open(&s, ModelMode::Dir(s.model.clone()), page)?;
        wait_for_model(&tab, MODEL_TIMEOUT)?;
        let state = backend_state(&tab)?;
        ensure!(
            state["active"] == "cpu" && state["simd"] == build,
            "{page}: expected the {build} worker on the CPU: {state}"
        );
        let found = tag_scored(&tab, &titles)?;
        ensure!(
            has(&found.rows[0], "BRAND", 0, 8, "Roadster"),
            "{build}: no BRAND chip `Roadster` at [0,8): {:?}",
            found.rows[0]
        );
        tagged.push(found);
    }
    agree_where_sure(&titles, (&tagged[0], "relaxed"), (&tagged[1], "simd128"))
}

/// Each title's chips (as [`chips`]) and their scores.
struct Tagged {
    rows: Vec<Vec<Value>>,
    scores: Vec<Vec<f64>>,
}

/// [`tag_rows`] with each chip's score.
fn tag_scored(tab: &Tab, titles: &[&str]) -> Result<Tagged> {
    run_tagging(tab, titles)?;
    let (rows, scores) = (0..titles.len())
        .map(|i| Ok(scored_chips(tab, i)?.into_iter().unzip()))
        .collect::<Result<Vec<(Vec<Value>, Vec<f64>)>>>()?
        .into_iter()
        .unzip();
    Ok(Tagged { rows, scores })
}

/// Two token taggers of one model whose arithmetic differs (roundings, kernels) agree: every chip
/// either gives with a score of at least [`SURE`] the other gives too, with the same label and
/// offsets; a chip both give scores within [`SCORE_TOLERANCE`] in each.
fn agree_where_sure(titles: &[&str], a: (&Tagged, &str), b: (&Tagged, &str)) -> Result<()> {
    for (i, title) in titles.iter().enumerate() {
        for ((one, name), (other, _)) in [(a, b), (b, a)] {
            for (chip, score) in one.rows[i].iter().zip(&one.scores[i]) {
                match other.rows[i].iter().position(|c| c == chip) {
                    Some(j) => ensure!(
                        (score - other.scores[i][j]).abs() <= SCORE_TOLERANCE,
                        "{title:?}: {chip} scores {score} on {name}, {} on the other",
                        other.scores[i][j]
                    ),
                    None => ensure!(
                        *score < SURE,
                        "{title:?}: only {name} tags {chip} (score {score}):\n {} {:?}\n {} {:?}",
                        a.1,
                        a.0.rows[i],
                        b.1,
                        b.0.rows[i]
                    ),
                }
            }
        }
    }
    Ok(())
}

/// An entity score (its words' mean probability of the label) from which two taggers of one model
/// must both give the entity.
const SURE: f64 = 0.5;
/// How far an entity's score may move between two taggers of one model (the int8 kernels' roundings
/// of activations move it by about 0.01).
const SCORE_TOLERANCE: f64 = 0.05;

/// Switches the page's encoder to WebGPU and waits until it runs there.
fn choose_webgpu(tab: &Tab) -> Result<()> {
    eval_json(
        tab,
        "(() => { const s = document.querySelector('#backend-select'); s.value = 'webgpu'; s.dispatchEvent(new Event('change')); })()",
    )?;
    wait_for_backend(tab, "webgpu", MODEL_TIMEOUT)?;
    Ok(())
}

/// Ticks the Tag view's BINDER box and waits until its model has loaded or the page says why not.
fn use_binder(tab: &Tab) -> Result<()> {
    click(tab, "#use-binder")?;
    wait_until(
        tab,
        "document.querySelector('#binder-status').dataset.ready === 'true' || document.querySelector('#binder-status').innerText.startsWith('No BINDER')",
        MODEL_TIMEOUT,
    )?;
    Ok(())
}

/// Tags `titles` in the tag view and returns every row's chips, once all `titles.len()` rows are
/// there (a run of another length before does not count).
fn tag_rows(tab: &Tab, titles: &[&str]) -> Result<Vec<Vec<Value>>> {
    run_tagging(tab, titles)?;
    (0..titles.len()).map(|i| chips(tab, i)).collect()
}

/// Tags `titles` in the tag view and waits for all `titles.len()` rows.
fn run_tagging(tab: &Tab, titles: &[&str]) -> Result<()> {
    set_value(tab, "#titles-input", &titles.join("\n"))?;
    click(tab, "#tag-button")?;
    wait_until(
        tab,
        &format!(
            "document.querySelector('#tag-summary').dataset.running === 'false' && document.querySelectorAll('#results li.result').length === {}",
            titles.len()
        ),
        Duration::from_secs(300),
    )?;
    Ok(())
}

fn backend_state(tab: &Tab) -> Result<Value> {
    eval_json(
        tab,
        "(() => { const b = document.querySelector('#backend'); return {active: b.dataset.active, simd: b.dataset.simd, adapter: b.dataset.adapter, software: b.dataset.software, notice: document.querySelector('#backend-notice').textContent, webgpu_disabled: document.querySelector('#backend-select option[value=\"webgpu\"]').disabled}; })()",
    )
}

/// The encoder on WebGPU (here Chromium's SwiftShader adapter): offered by name, not chosen by
/// default for a software adapter, chosen with the switch, it tags the titles with the entities
/// the CPU path gives them where either is sure (f32 on the GPU, int8 on the CPU).
#[test]
fn webgpu_tags_titles_with_the_entities_of_the_cpu_path() -> Result<()> {
    let Some(s) = setup(true) else { return Ok(()) };
    let _one = serial();
    let (_server, _browser, tab) =
        open_with(&s, ModelMode::Dir(s.model.clone()), "/?workers=1", true)?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    let found = backend_state(&tab)?;
    ensure!(
        !found["adapter"].as_str().unwrap_or_default().is_empty(),
        "Chromium with --enable-unsafe-webgpu offered no WebGPU adapter: {found}"
    );
    let software = found["software"] == "true";
    ensure!(
        found["active"] == if software { "cpu" } else { "webgpu" },
        "the default backend is not the one for this adapter: {found}"
    );
    eprintln!("adapter: {found}");
    let on_cpu = if software {
        Some(tag_scored(&tab, &TITLES)?)
    } else {
        None
    };

    choose_webgpu(&tab)?;
    // One more title than before, so the rows counted are this run's.
    let mut titles = TITLES.to_vec();
    titles.push(UNICODE_TITLE);
    let on_gpu = tag_scored(&tab, &titles)?;
    eprintln!(
        "screenshot: {}",
        screenshot(&tab, "tag-view-webgpu")?.display()
    );
    let after = backend_state(&tab)?;
    ensure!(
        after["active"] == "webgpu" && after["notice"] == "",
        "the GPU path fell back: {after}"
    );
    ensure!(
        has(&on_gpu.rows[0], "BRAND", 0, 8, "Roadster"),
        "no BRAND chip `Roadster` at [0,8) on WebGPU: {:?}",
        on_gpu.rows[0]
    );
    if let Some(on_cpu) = on_cpu {
        agree_where_sure(&TITLES, (&on_gpu, "WebGPU"), (&on_cpu, "the CPU"))?;
    }
    Ok(())
}

/// The Relations view on WebGPU (its encoder on the GPU, the span and pair heads on the CPU)
/// finds the entities and relations it finds on the CPU.
#[test]
fn webgpu_relations_match_the_cpu_path() -> Result<()> {
    let Some(s) = setup_relations() else {
        return Ok(());
    };
    let _one = serial();
    let (_server, _browser, tab) = open_with(
        &s,
        ModelMode::Dir(s.model.clone()),
        "/?workers=1&backend=cpu",
        true,
    )?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    let state = open_relations(&tab)?;
    ensure!(state == "ready", "the relation model did not load: {state}");
    let run = |expected_rows: usize| -> Result<Value> {
        set_value(
            &tab,
            "#relations-input",
            &[CONLL04_SENTENCE, CONLL04_SECOND][..expected_rows].join("\n"),
        )?;
        click(&tab, "#relations-run")?;
        wait_until(
            &tab,
            &format!(
                "document.querySelector('#relations-summary').dataset.running === 'false' && document.querySelectorAll('#relations-results li.rel-result').length === {expected_rows}"
            ),
            Duration::from_secs(300),
        )?;
        eval_json(
            &tab,
            r#"Array.from(document.querySelectorAll('#relations-results li.rel-result')).map(li => ({
                chips: Array.from(li.querySelectorAll('mark.ent')).map(m => [m.dataset.label, +m.dataset.start, +m.dataset.end]),
                relations: Array.from(li.querySelectorAll('li.rel')).map(r => [r.dataset.label, +r.dataset.head, +r.dataset.tail]) }))"#,
        )
    };
    let on_cpu = run(1)?;
    choose_webgpu(&tab)?;
    // Two sentences now, so the rows counted are this run's.
    let on_gpu = run(2)?;
    eprintln!(
        "screenshot: {}",
        screenshot(&tab, "relations-view-webgpu")?.display()
    );
    let after = backend_state(&tab)?;
    ensure!(
        after["active"] == "webgpu" && after["notice"] == "",
        "the relation model did not run on the GPU: {after}"
    );
    ensure!(
        on_gpu[0] == on_cpu[0],
        "WebGPU and the CPU extract differently:\n gpu {on_gpu}\n cpu {on_cpu}"
    );
    ensure!(
        on_gpu[0]["relations"]
            .as_array()
            .is_some_and(|r| !r.is_empty()),
        "no relation found on either path: {on_gpu}"
    );
    Ok(())
}

/// BINDER on WebGPU (its text encoder on the GPU; the type descriptions' encoder and the span
/// scores on the CPU): the titles get the trained and the described types the CPU path gives them.
#[test]
fn webgpu_binder_tags_as_the_cpu_path() -> Result<()> {
    let Some(s) = setup_binder() else {
        return Ok(());
    };
    let _one = serial();
    let (_server, _browser, tab) = open_with(
        &s,
        ModelMode::Dir(s.model.clone()),
        "/?workers=1&backend=cpu",
        true,
    )?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    use_binder(&tab)?;
    set_value(&tab, "#type-name", "MAKER")?;
    set_value(&tab, "#type-description", MAKER)?;
    click(&tab, "#add-type")?;
    wait_until(
        &tab,
        "!!document.querySelector('#described-types li[data-name=\"MAKER\"]')",
        Duration::from_secs(5),
    )?;
    let on_cpu = tag_rows(&tab, &TITLES)?;
    choose_webgpu(&tab)?;
    // One more title than before, so the rows counted are this run's.
    let mut titles = TITLES.to_vec();
    titles.push(UNICODE_TITLE);
    let on_gpu = tag_rows(&tab, &titles)?;
    eprintln!(
        "screenshot: {}",
        screenshot(&tab, "binder-webgpu")?.display()
    );
    let after = backend_state(&tab)?;
    ensure!(
        after["active"] == "webgpu" && after["notice"] == "",
        "BINDER did not run on the GPU: {after}"
    );
    let labels: Vec<&str> = (on_cpu.iter().flatten())
        .filter_map(|c| c["label"].as_str())
        .collect();
    ensure!(
        labels.contains(&"BRAND") && labels.contains(&"MAKER"),
        "BINDER on the CPU found neither a trained nor the described type: {on_cpu:?}"
    );
    ensure!(
        on_gpu[..TITLES.len()] == on_cpu[..],
        "WebGPU and the CPU tag differently:\n gpu {on_gpu:?}\n cpu {on_cpu:?}"
    );
    Ok(())
}

/// A GPU device lost while the page tags on WebGPU (destroyed through the benchmark page's hook,
/// as a GPU reset would take it): the next batch runs on the CPU with the same sure chips, the page
/// says why, and it stays on the CPU.
#[test]
fn a_lost_gpu_device_falls_back_to_the_cpu_with_a_notice() -> Result<()> {
    let Some(s) = setup(true) else { return Ok(()) };
    let _one = serial();
    let (_server, _browser, tab) = open_with(
        &s,
        ModelMode::Dir(s.model.clone()),
        "/?workers=1&bench=1&backend=webgpu",
        true,
    )?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    wait_for_backend(&tab, "webgpu", MODEL_TIMEOUT)?;
    let on_gpu = tag_scored(&tab, &TITLES)?;
    ensure!(
        backend_state(&tab)?["notice"] == "",
        "the GPU path fell back before the device was lost"
    );

    eval_json(&tab, "(window.multitagLoseGpu(), true)")?;
    // One more title than before, so the rows counted are this run's.
    let mut titles = TITLES.to_vec();
    titles.push(UNICODE_TITLE);
    let after_loss = tag_scored(&tab, &titles)?;
    wait_until(
        &tab,
        "document.querySelector('#backend-notice').textContent !== ''",
        Duration::from_secs(30),
    )?;
    let state = backend_state(&tab)?;
    eprintln!(
        "after the loss: {state}; screenshot: {}",
        screenshot(&tab, "tag-view-gpu-lost")?.display()
    );
    ensure!(
        state["active"] == "cpu"
            && state["notice"]
                .as_str()
                .unwrap_or_default()
                .starts_with("a batch failed on the GPU"),
        "no CPU fallback with its notice after the device was lost: {state}"
    );
    // The rerun is int8 on the CPU where the GPU ran f32: the same tags where the model is sure.
    agree_where_sure(&TITLES, (&on_gpu, "WebGPU"), (&after_loss, "the CPU rerun"))?;
    // And the page keeps tagging, on the CPU.
    let again = tag_rows(&tab, &TITLES[..1])?;
    ensure!(
        again[0] == after_loss.rows[0],
        "tagging after the fallback changed"
    );
    Ok(())
}

/// Asked for WebGPU where the browser has no adapter, the page says so and tags on the CPU.
#[test]
fn without_a_webgpu_adapter_the_page_tags_on_the_cpu_and_says_why() -> Result<()> {
    let Some(s) = setup(true) else { return Ok(()) };
    let _one = serial();
    let (_server, _browser, tab) = open(
        &s,
        ModelMode::Dir(s.model.clone()),
        "/?workers=1&backend=webgpu",
    )?;
    wait_for_model(&tab, MODEL_TIMEOUT)?;
    wait_until(
        &tab,
        "document.querySelector('#backend-notice').textContent !== ''",
        Duration::from_secs(30),
    )?;
    let state = backend_state(&tab)?;
    ensure!(
        state["active"] == "cpu"
            && state["webgpu_disabled"] == true
            && state["notice"]
                .as_str()
                .unwrap_or_default()
                .starts_with("WebGPU is not available"),
        "no fallback notice: {state}"
    );
    eprintln!(
        "screenshot: {}",
        screenshot(&tab, "webgpu-fallback")?.display()
    );
    let rows = tag_rows(&tab, &TITLES[..1])?;
    ensure!(
        has(&rows[0], "BRAND", 0, 8, "Roadster"),
        "no BRAND chip on the CPU fallback: {:?}",
        rows[0]
    );
    Ok(())
}
