//! Browser benchmark: serves dist/ with the exported model, opens the page in headless Chromium
//! with a fresh profile (`?bench=1`), and prints JSON with
//! - the cold model load (first visit: page start to model ready, everything downloaded) and the
//!   warm one (reload, model from the Cache API);
//! - the first-visit transfer, by file kind, as counted by the server;
//! - tagging throughput over the first N catalog titles, from strings to entities
//!   (`window.multitagBench`, run inside the page's workers), for each batch size of `--batches`:
//!   batch 1 with one title in flight ("one at a time": the same work as the reference's), other
//!   sizes with one request open per worker, as the tag view sends them; with several workers also
//!   `batch_1_per_worker`, one title in flight per worker.
//!
//! The page tags with a pool of workers (one per core, up to two; `--workers N` sets it), each with
//! its own copy of the model; the helpers start after the first has loaded the model and read it
//! from the Cache API, and the measurements begin once all have loaded.
//!
//! `--backend webgpu` starts Chromium with WebGPU (`--enable-unsafe-webgpu`) and has the page run
//! the encoder there; the report names the backend and the adapter.
//!
//! `--simd plain` has the page start its SIMD128 worker where it would start the relaxed-SIMD one
//! (`?simd=plain`), to compare the two builds; the report's backend names the build that ran
//! (`simd`).
//!
//! `--reference DIR` measures the transformers.js reference instead, the same way and in the same
//! schema: `bench/browser/reference.html` with transformers.js from `bench/browser/node_modules`
//! (`npm ci` there), the model DIR written by `bench/browser/export_model.py`, onnxruntime-web with
//! `--threads N` wasm threads (the page is cross-origin isolated so that threads work), one request
//! in flight. `bench/browser.sh` runs both sides back to back.
//!
//! Usage: browser-bench [--titles N] [--batches 1,32] [--workers N] [--backend cpu|webgpu]
//! [--simd plain] [--reference DIR [--threads N]] [--catalog CSV] [--out FILE] (dist/, the model and chromium as
//! for the e2e tests: MULTITAG_DIST, MULTITAG_E2E_MODEL, MULTITAG_CHROMIUM).
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use multitag_e2e::{
    catalog_titles, chromium_path, dist_dir, dist_sizes, eval_json, launch_with, model_dir,
    repo_root, wait_for_backend, wait_for_model, wait_for_workers, ModelMode, Server,
};
use serde_json::{json, Value};

/// What is measured: the app, or the transformers.js reference.
enum Side {
    Ours {
        backend: String,
        /// `?simd=plain`: the SIMD128 worker.
        plain: bool,
        workers: Option<usize>,
        dist: PathBuf,
        model: PathBuf,
    },
    Reference {
        model: PathBuf,
        threads: usize,
    },
}

const USAGE: &str = "browser-bench [--titles N] [--batches 1,32] [--workers N] [--backend cpu|webgpu] [--simd plain] [--reference DIR [--threads N]] [--catalog CSV] [--out FILE]";

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
    let mut plain = false;
    let mut reference: Option<PathBuf> = None;
    let mut threads = 1;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--titles" => n = args.next().context("--titles N")?.parse()?,
            "--catalog" => catalog = args.next().context("--catalog FILE")?.into(),
            "--workers" => workers = Some(args.next().context("--workers N")?.parse()?),
            "--out" => out = Some(PathBuf::from(args.next().context("--out FILE")?)),
            "--backend" => backend = args.next().context("--backend cpu|webgpu")?,
            "--simd" => match args.next().as_deref() {
                Some("plain") => plain = true,
                Some("relaxed") => plain = false,
                _ => bail!("--simd is plain or relaxed"),
            },
            "--reference" => reference = Some(args.next().context("--reference DIR")?.into()),
            "--threads" => threads = args.next().context("--threads N")?.parse()?,
            "--batches" => {
                batches = args
                    .next()
                    .context("--batches 1,32")?
                    .split(',')
                    .map(|b| b.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => bail!("unknown argument {other}\nusage: {USAGE}"),
        }
    }
    if backend != "cpu" && backend != "webgpu" {
        bail!("--backend is cpu or webgpu, not {backend}");
    }
    let side = match reference {
        Some(model) => {
            if !model.join("onnx/model_quantized.onnx").is_file() {
                bail!(
                    "{} has no onnx/model_quantized.onnx: run bench/browser/export_model.py",
                    model.display()
                );
            }
            Side::Reference {
                model,
                threads: threads.max(1),
            }
        }
        None => {
            let dist = dist_dir();
            let model = model_dir();
            if !dist.join("index.html").is_file() {
                bail!("{} is missing: run `trunk build --release`", dist.display());
            }
            if !model.join("manifest.json").is_file() {
                bail!(
                    "{} has no manifest.json: run `trainer export`",
                    model.display()
                );
            }
            Side::Ours {
                backend,
                plain,
                workers,
                dist,
                model,
            }
        }
    };
    let chromium = chromium_path().context("no chromium (apt-get install chromium)")?;
    let titles = catalog_titles(&catalog, n)?;
    let report = measure(&side, &chromium, &titles, &batches)?;
    let text = serde_json::to_string_pretty(&report)?;
    println!("{text}");
    if let Some(out) = out {
        std::fs::write(&out, format!("{text}\n"))
            .with_context(|| format!("write {}", out.display()))?;
    }
    Ok(())
}

/// The files under `/transformers/` and `/ort/` (transformers.js's bundle, onnxruntime-web's wasm)
/// and `bench/browser`'s page, as the reference's server mounts them.
fn reference_mounts(model: &Path) -> Result<Vec<(String, PathBuf)>> {
    let page = repo_root().join("bench/browser");
    let modules = page.join("node_modules");
    let transformers = modules.join("@huggingface/transformers/dist");
    if !transformers.join("transformers.min.js").is_file() {
        bail!(
            "{} is missing: run `npm ci --ignore-scripts` in bench/browser",
            transformers.display()
        );
    }
    Ok(vec![
        ("transformers/".into(), transformers),
        ("ort/".into(), modules.join("onnxruntime-web/dist")),
        ("models/reference/".into(), model.to_path_buf()),
        (String::new(), page),
    ])
}

fn measure(side: &Side, chromium: &Path, titles: &[String], batches: &[usize]) -> Result<Value> {
    let (server, page, webgpu) = match side {
        Side::Ours {
            backend,
            plain,
            workers,
            dist,
            model,
        } => {
            let mut page = format!("/?bench=1&backend={backend}");
            if let Some(n) = workers {
                page += &format!("&workers={n}");
            }
            if *plain {
                page += "&simd=plain";
            }
            let server = Server::start(dist, ModelMode::Dir(model.clone()))?;
            (server, page, backend == "webgpu")
        }
        Side::Reference { model, threads } => {
            let server = Server::start_static(reference_mounts(model)?)?;
            (server, format!("/reference.html?threads={threads}"), false)
        }
    };
    let browser = launch_with(chromium, (1280, 900), webgpu)?;
    let tab = browser.new_tab()?;
    tab.set_default_timeout(Duration::from_secs(600));
    let status = "({...document.querySelector('#model-status').dataset})";
    eprintln!("cold load …");
    tab.navigate_to(&server.url(&page))?;
    wait_for_model(&tab, Duration::from_secs(300))?;
    let cold = eval_json(&tab, status)?;
    let ours = matches!(side, Side::Ours { .. });
    let loaded_workers = if ours {
        wait_for_workers(&tab, Duration::from_secs(60))?
    } else {
        1
    };
    let mut transfer = serde_json::Map::new();
    let mut total = 0;
    for r in server.served() {
        let kind = match r.path.rsplit('.').next().unwrap_or("") {
            "gguf" | "onnx" => "model".to_string(),
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
    let warm = eval_json(&tab, status)?;
    if ours {
        wait_for_workers(&tab, Duration::from_secs(60))?;
    }
    let warm_bytes: u64 = server.served().iter().map(|r| r.bytes).sum();

    let backend = match side {
        Side::Ours { backend, .. } => wait_for_backend(&tab, backend, Duration::from_secs(300))?,
        Side::Reference { .. } => json!({"active": "cpu", "adapter": "onnxruntime-web wasm"}),
    };
    let titles_json = serde_json::to_string(titles)?;
    let hook = if ours {
        "window.multitagBench"
    } else {
        "window.referenceBench"
    };
    let mut runs = serde_json::Map::new();
    let mut tag = |name: String, batch: usize, in_flight: u64| -> Result<()> {
        eprintln!(
            "tagging {} titles, batch {batch}, {in_flight} in flight …",
            titles.len()
        );
        let report = eval_json(
            &tab,
            &format!("{hook}({titles_json}, {batch}, {in_flight}).then(JSON.parse)"),
        )?;
        runs.insert(name, report);
        Ok(())
    };
    for &batch in batches {
        let in_flight = if batch == 1 { 1 } else { loaded_workers };
        tag(format!("batch_{batch}"), batch, in_flight)?;
    }
    if ours && loaded_workers > 1 && batches.contains(&1) {
        tag("batch_1_per_worker".into(), 1, loaded_workers)?;
    }
    let number = |v: &Value| v.as_str().and_then(|s| s.parse::<f64>().ok());
    let (implementation, threads, quant) = match side {
        Side::Ours { model, .. } => (
            "multitag".to_string(),
            None,
            serde_json::from_str::<Value>(&std::fs::read_to_string(model.join("manifest.json"))?)?
                .get("quant")
                .cloned(),
        ),
        Side::Reference { threads, .. } => (
            format!("transformers.js {}", transformers_version()?),
            Some(*threads),
            Some(json!("q8 (onnxruntime dynamic int8, per channel)")),
        ),
    };
    let dist_bytes = match side {
        Side::Ours { dist, .. } => Some(dist_sizes(dist)?),
        Side::Reference { .. } => None,
    };
    Ok(json!({
        "implementation": implementation,
        "browser": eval_json(&tab, "navigator.userAgent")?,
        "titles": titles.len(),
        "workers": loaded_workers,
        "threads": threads,
        "backend": backend,
        "cold_load_ms": number(&cold["loadMs"]),
        "cold_fetch_ms": number(&cold["fetchMs"]),
        "cold_parse_ms": number(&cold["parseMs"]),
        "warm_load_ms": number(&warm["loadMs"]),
        "warm_from_cache": warm["fromCache"] == "true",
        "warm_transfer_bytes": warm_bytes,
        "first_visit_transfer_bytes": transfer,
        "dist_bytes_by_kind": dist_bytes,
        "model_manifest": quant,
        "tagging": runs,
    }))
}

/// The installed transformers.js version (bench/browser/node_modules).
fn transformers_version() -> Result<String> {
    let path =
        repo_root().join("bench/browser/node_modules/@huggingface/transformers/package.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let manifest: Value =
        serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))?;
    Ok(manifest["version"].as_str().unwrap_or("?").to_string())
}
