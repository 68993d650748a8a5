//! Browser benchmark: serves dist/ with the exported model, opens the page in headless Chromium
//! with a fresh profile (`?bench=1`), and prints JSON with
//! - the cold model load (first visit: page start to model ready, everything downloaded) and the
//!   warm one (reload, model from the Cache API);
//! - the first-visit transfer, by file kind, as counted by the server;
//! - tagging throughput over the first N catalog titles, one title per request and in batches of
//!   32 (`window.multitagBench`, run inside the page's worker).
//!
//! The page tags with a pool of workers (one per core, up to two; `--workers N` sets it), each with
//! its own copy of the model; the helpers start after the first has loaded the model and read it
//! from the Cache API, and the measurements begin once all have loaded.
//!
//! `--backend webgpu` starts Chromium with WebGPU (`--enable-unsafe-webgpu`) and has the page run
//! the encoder there; the report names the backend and the adapter.
//!
//! Usage: browser-bench [--titles N] [--batches 1,32] [--workers N] [--backend cpu|webgpu]
//! [--catalog CSV] [--out FILE] (dist/, the model and chromium as for the e2e tests: MULTITAG_DIST, MULTITAG_E2E_MODEL,
//! MULTITAG_CHROMIUM).
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use multitag_e2e::{
    catalog_titles, chromium_path, dist_dir, dist_sizes, eval_json, launch_with, model_dir,
    repo_root, wait_for_backend, wait_for_model, wait_for_workers, ModelMode, Server,
};
use serde_json::{json, Value};

fn main() -> Result<()> {
    let mut n = 1000;
    let mut catalog = std::env::var_os("MULTITAG_DATA")
        .map(|d| PathBuf::from(d).join("myntra_products/myntra_products_catalog.csv"))
        .unwrap_or_else(|| {
            repo_root().join("../shared/data/myntra_products/myntra_products_catalog.csv")
        });
    let mut out = None;
    let mut batches = vec![1, 32];
    let mut workers: Option<usize> = None;
    let mut backend = "cpu".to_string();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--titles" => n = args.next().context("--titles N")?.parse()?,
            "--catalog" => catalog = args.next().context("--catalog FILE")?.into(),
            "--workers" => workers = Some(args.next().context("--workers N")?.parse()?),
            "--out" => out = Some(PathBuf::from(args.next().context("--out FILE")?)),
            "--backend" => backend = args.next().context("--backend cpu|webgpu")?,
            "--batches" => {
                batches = args
                    .next()
                    .context("--batches 1,32")?
                    .split(',')
                    .map(|b| b.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "-h" | "--help" => {
                println!(
                    "browser-bench [--titles N] [--batches 1,32] [--workers N] [--backend cpu|webgpu] [--catalog CSV] [--out FILE]"
                );
                return Ok(());
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if backend != "cpu" && backend != "webgpu" {
        bail!("--backend is cpu or webgpu, not {backend}");
    }
    let dist = dist_dir();
    let model = model_dir();
    let chromium = chromium_path().context("no chromium (apt-get install chromium)")?;
    if !dist.join("index.html").is_file() {
        bail!("{} is missing: run `trunk build --release`", dist.display());
    }
    if !model.join("manifest.json").is_file() {
        bail!(
            "{} has no manifest.json: run `trainer export`",
            model.display()
        );
    }
    let titles = catalog_titles(&catalog, n)?;

    let server = Server::start(&dist, ModelMode::Dir(model.clone()))?;
    let browser = launch_with(&chromium, (1280, 900), backend == "webgpu")?;
    let tab = browser.new_tab()?;
    tab.set_default_timeout(Duration::from_secs(600));
    eprintln!("cold load …");
    let page = match workers {
        Some(n) => format!("/?bench=1&backend={backend}&workers={n}"),
        None => format!("/?bench=1&backend={backend}"),
    };
    tab.navigate_to(&server.url(&page))?;
    wait_for_model(&tab, Duration::from_secs(300))?;
    let cold = eval_json(
        &tab,
        "({...document.querySelector('#model-status').dataset})",
    )?;
    let loaded_workers = wait_for_workers(&tab, Duration::from_secs(60))?;
    let mut transfer = serde_json::Map::new();
    let mut total = 0;
    for r in server.served() {
        let kind = match r.path.rsplit('.').next().unwrap_or("") {
            "gguf" => "model".to_string(),
            _ if r.path.ends_with("tokenizer.json") => "tokenizer".to_string(),
            ext => ext.to_string(),
        };
        total += r.bytes;
        let slot = transfer.entry(kind).or_insert(json!(0));
        *slot = json!(slot.as_u64().unwrap_or(0) + r.bytes);
    }
    transfer.insert("total".into(), json!(total));

    eprintln!("warm load (reload) …");
    server.clear_log();
    tab.reload(true, None)?;
    wait_for_model(&tab, Duration::from_secs(300))?;
    let warm = eval_json(
        &tab,
        "({...document.querySelector('#model-status').dataset})",
    )?;
    wait_for_workers(&tab, Duration::from_secs(60))?;
    let warm_bytes: u64 = server.served().iter().map(|r| r.bytes).sum();

    let on = wait_for_backend(&tab, &backend, Duration::from_secs(300))?;
    let titles_json = serde_json::to_string(&titles)?;
    let mut runs = serde_json::Map::new();
    for &batch in &batches {
        eprintln!("tagging {} titles, batch {batch} …", titles.len());
        let report = eval_json(
            &tab,
            &format!("window.multitagBench({titles_json}, {batch}).then(JSON.parse)"),
        )?;
        runs.insert(format!("batch_{batch}"), report);
    }
    let number = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    let report = json!({
        "browser": eval_json(&tab, "navigator.userAgent")?,
        "titles": titles.len(),
        "workers": loaded_workers,
        "backend": on,
        "cold_load_ms": number(&cold["loadMs"]),
        "cold_fetch_ms": number(&cold["fetchMs"]),
        "cold_parse_ms": number(&cold["parseMs"]),
        "warm_load_ms": number(&warm["loadMs"]),
        "warm_from_cache": warm["fromCache"] == "true",
        "warm_transfer_bytes": warm_bytes,
        "first_visit_transfer_bytes": transfer,
        "dist_bytes_by_kind": dist_sizes(&dist)?,
        "model_manifest": serde_json::from_str::<Value>(&std::fs::read_to_string(model.join("manifest.json"))?)?
            .get("quant").cloned(),
        "tagging": runs,
    });
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(out) = out {
        std::fs::write(&out, format!("{text}\n"))?;
    }
    Ok(())
}
