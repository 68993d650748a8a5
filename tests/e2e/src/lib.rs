//! Harness for the browser app's end-to-end tests and benchmark: a tiny static file server for the
//! trunk output (`dist/`) with the exported model under `/model/`, and Debian's headless Chromium
//! driven over the DevTools protocol (headless_chrome).
//!
//! Where things come from (environment overrides):
//! - `MULTITAG_DIST`: the trunk output, default `<repo>/dist` (`trunk build --release`);
//! - `MULTITAG_E2E_MODEL`: the exported model served as `/model/`, default `<repo>/public/model`
//!   (`trainer export ... --out public/model`); `<dir>-baseline` next to it, when present, is served
//!   as `/model-baseline/`;
//! - `MULTITAG_E2E_RELATIONS`: the exported relation extraction model served as `/relations/`,
//!   default `<repo>/public/relations` (`trainer export --model <relation model> --out
//!   public/relations`), when present;
//! - `MULTITAG_E2E_BINDER`: the exported BINDER model served as `/binder/`, default
//!   `<repo>/public/binder`, when present;
//! - `MULTITAG_CHROMIUM`: the browser, default `/usr/bin/chromium`.
//!
//! When any of these is missing the tests skip with a loud message, unless `MULTITAG_E2E` is set
//! (scripts/test.sh sets it), in which case they fail.
use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Component, Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use headless_chrome::protocol::cdp::Page::CaptureScreenshotFormatOption;
use headless_chrome::{Browser, LaunchOptions, Tab};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

pub fn dist_dir() -> PathBuf {
    env_path("MULTITAG_DIST").unwrap_or_else(|| repo_root().join("dist"))
}

pub fn model_dir() -> PathBuf {
    env_path("MULTITAG_E2E_MODEL").unwrap_or_else(|| repo_root().join("public/model"))
}

pub fn relations_dir() -> PathBuf {
    env_path("MULTITAG_E2E_RELATIONS").unwrap_or_else(|| repo_root().join("public/relations"))
}

pub fn binder_dir() -> PathBuf {
    env_path("MULTITAG_E2E_BINDER").unwrap_or_else(|| repo_root().join("public/binder"))
}

/// The BINDER export to serve as `/binder/`: [`binder_dir`] when it holds one.
fn default_binder() -> Option<PathBuf> {
    let dir = binder_dir();
    dir.join("manifest.json").is_file().then_some(dir)
}

/// The relation export to serve as `/relations/` by default: [`relations_dir`] when it holds one.
fn default_relations() -> Option<PathBuf> {
    let dir = relations_dir();
    dir.join("manifest.json").is_file().then_some(dir)
}

/// The release `trainer` binary (`cargo build --release -p multitag-trainer`, which
/// scripts/test.sh does first), under `CARGO_TARGET_DIR` or `<repo>/target`.
pub fn trainer_path() -> Option<PathBuf> {
    let target = env_path("CARGO_TARGET_DIR").unwrap_or_else(|| PathBuf::from("target"));
    let path = repo_root().join(target).join("release/trainer");
    path.is_file().then_some(path)
}

pub fn chromium_path() -> Option<PathBuf> {
    if let Some(p) = env_path("MULTITAG_CHROMIUM") {
        return Some(p);
    }
    [
        "/usr/bin/chromium",
        "/usr/bin/chromium-browser",
        "/usr/bin/google-chrome",
    ]
    .iter()
    .map(PathBuf::from)
    .find(|p| p.exists())
}

/// Screenshots and other artifacts: `<target>/e2e-artifacts/`.
pub fn artifacts_dir() -> PathBuf {
    let target = env_path("CARGO_TARGET_DIR")
        .map(|t| {
            if t.is_absolute() {
                t
            } else {
                repo_root().join(t)
            }
        })
        .unwrap_or_else(|| repo_root().join("target"));
    let dir = target.join("e2e-artifacts");
    std::fs::create_dir_all(&dir).expect("create the e2e artifacts folder");
    dir
}

/// What the tests need, or `None` (after a loud message) when something is missing and
/// `MULTITAG_E2E` is unset. With `MULTITAG_E2E` set, a missing piece is a failure.
pub struct Setup {
    pub dist: PathBuf,
    pub model: PathBuf,
    /// The relation export ([`relations_dir`]; only [`setup_relations`] checks it is there).
    pub relations: PathBuf,
    /// The BINDER export ([`binder_dir`]; only [`setup_binder`] checks it is there).
    pub binder: PathBuf,
    pub chromium: PathBuf,
}

pub fn setup(needs_model: bool) -> Option<Setup> {
    setup_needing(needs_model, false, false)
}

/// [`setup`] for the Relations view: the tagger and the relation export are both needed.
pub fn setup_relations() -> Option<Setup> {
    setup_needing(true, true, false)
}

/// [`setup`] for types described in words: the tagger and the BINDER export are both needed.
pub fn setup_binder() -> Option<Setup> {
    setup_needing(true, false, true)
}

fn setup_needing(needs_model: bool, needs_relations: bool, needs_binder: bool) -> Option<Setup> {
    let dist = dist_dir();
    let model = model_dir();
    let relations = relations_dir();
    let binder = binder_dir();
    let chromium = chromium_path();
    let mut missing = Vec::new();
    if !dist.join("index.html").is_file() {
        missing.push(format!(
            "{} (run `trunk build --release` from the repository root)",
            dist.join("index.html").display()
        ));
    }
    if needs_model && !model.join("manifest.json").is_file() {
        missing.push(format!(
            "{} (run `trainer export --model runs/demo --quant q4k --out public/model`)",
            model.join("manifest.json").display()
        ));
    }
    if needs_relations && !relations.join("manifest.json").is_file() {
        missing.push(format!(
            "{} (train a relation model with `trainer train --task relations`, then `trainer \
             export --model <it> --out public/relations`; scripts/test.sh does)",
            relations.join("manifest.json").display()
        ));
    }
    if needs_binder && !binder.join("manifest.json").is_file() {
        missing.push(format!(
            "{} (train a BINDER model with `trainer train --task binder --types FILE`, then \
             `trainer export --model <it> --out public/binder`; scripts/test.sh does)",
            binder.join("manifest.json").display()
        ));
    }
    if chromium.is_none() {
        missing.push("chromium (apt-get install chromium chromium-driver)".into());
    }
    if missing.is_empty() {
        return Some(Setup {
            dist,
            model,
            relations,
            binder,
            chromium: chromium.expect("checked"),
        });
    }
    let message = format!("browser end-to-end test needs: {}", missing.join("; "));
    if std::env::var_os("MULTITAG_E2E").is_some_and(|v| !v.is_empty()) {
        panic!("{message} (MULTITAG_E2E is set, so this is a failure)");
    }
    // Straight to the process's stderr: the test harness captures eprintln! of passing tests.
    let _ = writeln!(
        std::io::stderr(),
        "\n{bar}\nSKIPPED: {message}\nSet MULTITAG_E2E=1 to make this a failure; scripts/test.sh builds everything and does.\n{bar}\n",
        bar = "!".repeat(78)
    );
    None
}

/// What the server answers under `/model/`.
#[derive(Debug, Clone)]
pub enum ModelMode {
    /// Files from this folder.
    Dir(PathBuf),
    /// 404 for everything under `/model/` (no model exported).
    Missing,
    /// The folder's files, but `model.gguf` replaced with bytes that are not a model.
    Corrupt(PathBuf),
    /// The folder's files, but one byte of `model.gguf`'s weights flipped: a file that parses,
    /// which only its checksum tells from the real one.
    Flipped(PathBuf),
}

/// One served response, for transfer-size accounting.
#[derive(Debug, Clone)]
pub struct Served {
    pub path: String,
    pub status: u16,
    pub bytes: u64,
}

/// A static file server on 127.0.0.1 (a free port), one thread per connection.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Served>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves `dist`, the model as `mode` says under `/model/`, the relation export of
    /// [`relations_dir`] under `/relations/` and the BINDER export of [`binder_dir`] under
    /// `/binder/` when there are.
    pub fn start(dist: &Path, model: ModelMode) -> Result<Server> {
        Self::start_with(dist, model, default_relations().as_deref())
    }

    /// [`Server::start`] with `relations` (or nothing: 404) under `/relations/`.
    pub fn start_with(dist: &Path, model: ModelMode, relations: Option<&Path>) -> Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind a local port")?;
        let routes = Arc::new(Routes {
            dist: dist.to_path_buf(),
            model,
            relations: relations.map(Path::to_path_buf),
            binder: default_binder(),
            mounts: Vec::new(),
        });
        Self::listen(listener, routes)
    }

    /// A plain static server: each URL prefix (`"transformers/"`, or `""` for the rest) served
    /// from its folder, the longest prefix first; the pages cross-origin isolated (COOP/COEP), as
    /// WebAssembly threads need. The browser benchmark's reference page runs on it.
    pub fn start_static(mounts: Vec<(String, PathBuf)>) -> Result<Server> {
        let listener = TcpListener::bind("127.0.0.1:0").context("bind a local port")?;
        let mut mounts = mounts;
        mounts.sort_by_key(|(prefix, _)| std::cmp::Reverse(prefix.len()));
        let routes = Arc::new(Routes {
            dist: PathBuf::new(),
            model: ModelMode::Missing,
            relations: None,
            binder: None,
            mounts,
        });
        Self::listen(listener, routes)
    }

    fn listen(listener: TcpListener, routes: Arc<Routes>) -> Result<Server> {
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let stop = stop.clone();
            let log = log.clone();
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let routes = routes.clone();
                    let log = log.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, &routes, &log);
                    });
                }
            })
        };
        Ok(Server {
            addr,
            stop,
            log,
            thread: Some(thread),
        })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    pub fn served(&self) -> Vec<Served> {
        self.log.lock().expect("log").clone()
    }

    /// How many requests for `path` (e.g. `/model/model.gguf`) the log holds.
    pub fn requests(&self, path: &str) -> usize {
        self.log
            .lock()
            .expect("log")
            .iter()
            .filter(|r| r.path == path)
            .count()
    }

    pub fn clear_log(&self) {
        self.log.lock().expect("log").clear();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

struct Routes {
    dist: PathBuf,
    model: ModelMode,
    relations: Option<PathBuf>,
    binder: Option<PathBuf>,
    /// For [`Server::start_static`]: (URL prefix, folder), longest prefix first; when there are
    /// any, they are the only routes and every response is cross-origin isolated.
    mounts: Vec<(String, PathBuf)>,
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(OsStr::to_str).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "wasm" => "application/wasm",
        "css" => "text/css; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

/// `rel` below `root`, refusing `..` and absolute parts.
fn under(root: &Path, rel: &str) -> Option<PathBuf> {
    let rel = Path::new(rel);
    if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
        return None;
    }
    Some(root.join(rel))
}

impl Routes {
    /// The body for a URL path, or `None` for 404.
    fn resolve(&self, path: &str) -> Option<(Vec<u8>, &'static str)> {
        let path = path.trim_start_matches('/');
        let read = |p: PathBuf| -> Option<(Vec<u8>, &'static str)> {
            let bytes = std::fs::read(&p).ok()?;
            Some((bytes, content_type(&p)))
        };
        if !self.mounts.is_empty() {
            let (rest, dir) = self
                .mounts
                .iter()
                .find_map(|(prefix, dir)| Some((path.strip_prefix(prefix.as_str())?, dir)))?;
            return read(under(dir, rest)?);
        }
        if let Some(rest) = path.strip_prefix("relations/") {
            return read(under(self.relations.as_ref()?, rest)?);
        }
        if let Some(rest) = path.strip_prefix("binder/") {
            return read(under(self.binder.as_ref()?, rest)?);
        }
        for (prefix, baseline) in [("model/", false), ("model-baseline/", true)] {
            let Some(rest) = path.strip_prefix(prefix) else {
                continue;
            };
            return match &self.model {
                ModelMode::Missing => None,
                ModelMode::Dir(dir) | ModelMode::Corrupt(dir) | ModelMode::Flipped(dir) => {
                    let dir = if baseline {
                        let mut name = dir.file_name()?.to_os_string();
                        name.push("-baseline");
                        dir.with_file_name(name)
                    } else {
                        dir.clone()
                    };
                    if !baseline
                        && matches!(self.model, ModelMode::Corrupt(_))
                        && rest == "model.gguf"
                    {
                        // Plausible size, right magic, garbage after it.
                        let mut bytes = b"GGUF".to_vec();
                        bytes.extend((0..4096u32).map(|i| (i * 7919 % 251) as u8));
                        return Some((bytes, "application/octet-stream"));
                    }
                    if !baseline
                        && matches!(self.model, ModelMode::Flipped(_))
                        && rest == "model.gguf"
                    {
                        // Tensor data fills the end of the file.
                        let (mut bytes, kind) = read(under(&dir, rest)?)?;
                        let at = bytes.len() - 1000;
                        bytes[at] ^= 0x40;
                        return Some((bytes, kind));
                    }
                    read(under(&dir, rest)?)
                }
            };
        }
        let file = if path.is_empty() {
            self.dist.join("index.html")
        } else {
            under(&self.dist, path)?
        };
        read(file)
    }
}

fn etag_of(body: &[u8]) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

fn serve(mut stream: TcpStream, routes: &Routes, log: &Mutex<Vec<Served>>) -> Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line)? == 0 {
            return Ok(());
        }
        let mut parts = request_line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("/").to_string();
        let mut keep_alive = true;
        let mut content_length = 0usize;
        let mut if_none_match = None;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            let lower = header.to_ascii_lowercase();
            if lower == "connection: close" {
                keep_alive = false;
            }
            if let Some(v) = lower.strip_prefix("content-length:") {
                content_length = v.trim().parse().unwrap_or(0);
            }
            if let Some(v) = lower.strip_prefix("if-none-match:") {
                if_none_match = Some(v.trim().to_string());
            }
        }
        if content_length > 0 {
            let mut body = vec![0; content_length];
            reader.read_exact(&mut body)?;
        }
        let path = target.split(['?', '#']).next().unwrap_or("/");
        // An ETag, as any static file server sends, so a browser revalidates a file it holds (the
        // wasm a second worker loads, a reload) with a 304 instead of downloading it again.
        let (status, body, kind, etag) = match (method.as_str(), routes.resolve(path)) {
            ("GET" | "HEAD", Some((body, kind))) => {
                let etag = etag_of(&body);
                if if_none_match.as_deref() == Some(etag.as_str()) {
                    (304, Vec::new(), kind, Some(etag))
                } else {
                    (200, body, kind, Some(etag))
                }
            }
            ("GET" | "HEAD", None) => (404, b"not found\n".to_vec(), "text/plain", None),
            _ => (405, b"method not allowed\n".to_vec(), "text/plain", None),
        };
        let reason = match status {
            200 => "OK",
            304 => "Not Modified",
            404 => "Not Found",
            _ => "Method Not Allowed",
        };
        let mut extra = etag.map(|e| format!("ETag: {e}\r\n")).unwrap_or_default();
        if !routes.mounts.is_empty() {
            extra.push_str(
                "Cross-Origin-Opener-Policy: same-origin\r\nCross-Origin-Embedder-Policy: require-corp\r\n",
            );
        }
        let head = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nCache-Control: no-cache\r\n{extra}Connection: {}\r\n\r\n",
            body.len(),
            if keep_alive { "keep-alive" } else { "close" }
        );
        stream.write_all(head.as_bytes())?;
        if method != "HEAD" {
            stream.write_all(&body)?;
        }
        stream.flush()?;
        log.lock().expect("log").push(Served {
            path: path.to_string(),
            status,
            bytes: if method == "HEAD" {
                0
            } else {
                body.len() as u64
            },
        });
        if !keep_alive {
            let _ = stream.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

static PROFILE: AtomicUsize = AtomicUsize::new(0);

/// A headless Chromium whose profile directory is removed once the browser has closed (each
/// holds the downloaded model in its cache).
pub struct Chromium {
    browser: Option<Browser>,
    profile: PathBuf,
}

impl std::ops::Deref for Chromium {
    type Target = Browser;

    fn deref(&self) -> &Browser {
        self.browser.as_ref().expect("the browser lives until drop")
    }
}

impl Drop for Chromium {
    fn drop(&mut self) {
        drop(self.browser.take());
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Headless Chromium with a fresh profile and no background networking, and no WebGPU adapter
/// (the GPU process is off).
pub fn launch(chromium: &Path, window: (u32, u32)) -> Result<Chromium> {
    launch_with(chromium, window, false)
}

/// [`launch`], with WebGPU when `webgpu` (`--enable-unsafe-webgpu` and the GPU process on: a
/// SwiftShader adapter where the machine has no GPU).
pub fn launch_with(chromium: &Path, window: (u32, u32), webgpu: bool) -> Result<Chromium> {
    let profile = std::env::temp_dir().join(format!(
        "multitag-e2e-{}-{}",
        std::process::id(),
        PROFILE.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&profile);
    std::fs::create_dir_all(&profile)?;
    let webgpu_args: &[&str] = if webgpu {
        &["--enable-unsafe-webgpu"]
    } else {
        &[]
    };
    let args: Vec<&OsStr> = [
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-quic",
        "--disable-default-apps",
        "--no-default-browser-check",
    ]
    .iter()
    .chain(webgpu_args)
    .map(OsStr::new)
    .collect();
    let options = LaunchOptions::default_builder()
        .path(Some(chromium.to_path_buf()))
        .headless(true)
        .sandbox(false)
        .enable_gpu(webgpu)
        .window_size(Some(window))
        .user_data_dir(Some(profile.clone()))
        .idle_browser_timeout(Duration::from_secs(600))
        .args(args)
        .build()
        .map_err(|e| anyhow!("chromium launch options: {e}"))?;
    let browser = Browser::new(options).context("start headless chromium")?;
    Ok(Chromium {
        browser: Some(browser),
        profile,
    })
}

/// Evaluates a JS expression (awaited when it is a promise) and parses its JSON serialisation.
pub fn eval_json(tab: &Tab, expression: &str) -> Result<serde_json::Value> {
    let wrapped = format!(
        "(async () => {{ const v = await ({expression}); return JSON.stringify(v === undefined ? null : v); }})()"
    );
    let result = tab.evaluate(&wrapped, true)?;
    if let Some(exception) = result
        .description
        .as_deref()
        .filter(|_| result.value.is_none())
    {
        bail!("`{expression}` threw: {exception}");
    }
    let text = result
        .value
        .as_ref()
        .and_then(|v| v.as_str())
        .ok_or_else(|| anyhow!("`{expression}` gave no JSON ({result:?})"))?;
    Ok(serde_json::from_str(text)?)
}

/// Polls `condition` (a JS expression) until it is truthy.
pub fn wait_until(tab: &Tab, condition: &str, timeout: Duration) -> Result<()> {
    let start = Instant::now();
    loop {
        if let Ok(v) = eval_json(tab, &format!("!!({condition})")) {
            if v == serde_json::Value::Bool(true) {
                return Ok(());
            }
        }
        if start.elapsed() > timeout {
            let status = eval_json(
                tab,
                "(document.querySelector('#model-status')||{}).textContent || document.body.innerText.slice(0, 500)",
            )
            .unwrap_or_default();
            bail!("timed out after {timeout:?} waiting for `{condition}`; page says: {status}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits for the model to be ready (or fails early with the page's error).
pub fn wait_for_model(tab: &Tab, timeout: Duration) -> Result<()> {
    wait_until(
        tab,
        "['ready','failed'].includes(document.querySelector('#model-status')?.dataset.state)",
        timeout,
    )?;
    let state = eval_json(tab, "document.querySelector('#model-status').dataset.state")?;
    if state != "ready" {
        let error = eval_json(tab, "document.querySelector('#model-error')?.innerText")?;
        bail!("the model did not load: {error}");
    }
    Ok(())
}

/// Waits until every worker of the page's pool has the model loaded (helpers start after the
/// primary, reading the model from the Cache API); returns how many did.
pub fn wait_for_workers(tab: &Tab, timeout: Duration) -> Result<u64> {
    let all_loaded = "(() => { const d = document.querySelector('#model-status')?.dataset; \
        return !!d && d.workers !== '' && d.workers === d.poolSize; })()";
    // A helper that fails to load leaves the pool smaller: then time out and report what loaded.
    let _ = wait_until(tab, all_loaded, timeout);
    let workers = eval_json(
        tab,
        "document.querySelector('#model-status').dataset.workers",
    )?;
    Ok(workers.as_str().and_then(|w| w.parse().ok()).unwrap_or(0))
}

/// Sets a textarea's value as typing would (the page listens to `input`).
/// Waits until the page's encoder runs on `backend` (`cpu` or `webgpu`), or the page says why it
/// fell back; returns `#backend`'s state (active, adapter, notice).
pub fn wait_for_backend(tab: &Tab, backend: &str, timeout: Duration) -> Result<serde_json::Value> {
    wait_until(
        tab,
        &format!(
            "document.querySelector('#backend').dataset.active === '{backend}' || document.querySelector('#backend-notice').textContent !== ''"
        ),
        timeout,
    )?;
    let state = eval_json(
        tab,
        "({...document.querySelector('#backend').dataset, notice: document.querySelector('#backend-notice').textContent})",
    )?;
    if state["active"] != backend {
        bail!(
            "the page runs on {}, not {backend}: {state}",
            state["active"]
        );
    }
    Ok(state)
}

pub fn set_value(tab: &Tab, selector: &str, text: &str) -> Result<()> {
    let script = format!(
        "(() => {{ const el = document.querySelector({sel}); el.value = {text}; el.dispatchEvent(new Event('input', {{ bubbles: true }})); return true; }})()",
        sel = serde_json::to_string(selector)?,
        text = serde_json::to_string(text)?,
    );
    eval_json(tab, &script)?;
    Ok(())
}

pub fn click(tab: &Tab, selector: &str) -> Result<()> {
    let script = format!(
        "(() => {{ const el = document.querySelector({sel}); if (!el) throw new Error('no ' + {sel}); if (el.disabled) throw new Error({sel} + ' is disabled'); el.click(); return true; }})()",
        sel = serde_json::to_string(selector)?
    );
    eval_json(tab, &script)?;
    Ok(())
}

/// Saves a PNG of the page under the artifacts folder and returns its path.
pub fn screenshot(tab: &Tab, name: &str) -> Result<PathBuf> {
    let png = tab.capture_screenshot(CaptureScreenshotFormatOption::Png, None, None, true)?;
    let path = artifacts_dir().join(format!("{name}.png"));
    std::fs::write(&path, png)?;
    Ok(path)
}

/// Sizes of the page's own files in `dist/` by kind (wasm, js, css, html, other), for the
/// first-visit transfer figure.
pub fn dist_sizes(dist: &Path) -> Result<HashMap<String, u64>> {
    let mut sizes = HashMap::new();
    for entry in std::fs::read_dir(dist)? {
        let entry = entry?;
        if !entry.file_type()?.is_file() {
            continue;
        }
        let path = entry.path();
        let kind = path
            .extension()
            .and_then(OsStr::to_str)
            .unwrap_or("other")
            .to_string();
        *sizes.entry(kind).or_default() += entry.metadata()?.len();
    }
    Ok(sizes)
}

/// The first `n` product names of the catalog CSV (for the benchmark; never committed).
pub fn catalog_titles(path: &Path, n: usize) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("read the catalog {}", path.display()))?;
    let read = multitag_core::read_catalog(&path.display().to_string(), &text)?;
    Ok(read.items.into_iter().take(n).map(|i| i.title).collect())
}
