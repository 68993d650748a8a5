//! Model files into the worker: streamed fetches that report bytes as they arrive, kept in the
//! browser's Cache API so a reload reads them from disk instead of the network.
//!
//! Cached entries are keyed by `<url>?v=<hash of manifest.json>`: the manifest is always fetched
//! fresh (`cache: no-store`), so re-exporting a model (a new manifest) fetches new files and drops
//! the old entries. Where the Cache API is missing (an insecure origin), files are fetched plainly.
use js_sys::{Reflect, Uint8Array};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    Cache, Headers, ReadableStreamDefaultReader, Request, RequestCache, RequestInit, Response,
    ResponseInit, WorkerGlobalScope,
};

use crate::protocol::{LoadError, LoadErrorKind};

/// The Cache API bucket the model files live in.
pub const CACHE_NAME: &str = "multitag-model-v1";

pub struct Fetched {
    pub bytes: Vec<u8>,
    pub from_cache: bool,
}

fn scope() -> WorkerGlobalScope {
    js_sys::global().unchecked_into()
}

pub fn js_error(e: &JsValue) -> String {
    if let Some(s) = e.as_string() {
        return s;
    }
    if let Some(err) = e.dyn_ref::<js_sys::Error>() {
        return String::from(err.message());
    }
    format!("{e:?}")
}

fn network_error(file: &str, e: &JsValue) -> LoadError {
    LoadError {
        kind: LoadErrorKind::Network,
        file: Some(file.to_string()),
        message: format!("could not fetch {file}: {}", js_error(e)),
    }
}

/// Fetches `url` with the HTTP cache bypassed; `Missing` for a 404 or an HTML page in place of the
/// file (development servers answer unknown paths with index.html).
async fn fetch_response(url: &str, file: &str, no_store: bool) -> Result<Response, LoadError> {
    let init = RequestInit::new();
    if no_store {
        init.set_cache(RequestCache::NoStore);
    }
    let request =
        Request::new_with_str_and_init(url, &init).map_err(|e| network_error(file, &e))?;
    let response: Response = JsFuture::from(scope().fetch_with_request(&request))
        .await
        .map_err(|e| network_error(file, &e))?
        .unchecked_into();
    if response.status() == 404 || (response.ok() && is_html(&response)) {
        return Err(LoadError {
            kind: LoadErrorKind::Missing,
            file: Some(file.to_string()),
            message: format!("{url} is not there (HTTP {})", response.status()),
        });
    }
    if !response.ok() {
        return Err(LoadError {
            kind: LoadErrorKind::Network,
            file: Some(file.to_string()),
            message: format!(
                "{url}: HTTP {} {}",
                response.status(),
                response.status_text()
            ),
        });
    }
    Ok(response)
}

/// A static server answers an unknown path with its HTML page (trunk serve does), so an HTML body
/// where a model file was asked for means the file is missing.
pub fn is_html(response: &Response) -> bool {
    response
        .headers()
        .get("content-type")
        .ok()
        .flatten()
        .is_some_and(|t| t.starts_with("text/html"))
}

fn content_length(response: &Response) -> Option<u64> {
    response
        .headers()
        .get("content-length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse().ok())
}

/// Reads a response body chunk by chunk, calling `progress(loaded, total)` as bytes arrive.
async fn read_body(
    response: &Response,
    file: &str,
    mut progress: impl FnMut(u64, Option<u64>),
) -> Result<Vec<u8>, LoadError> {
    let total = content_length(response);
    let Some(body) = response.body() else {
        return Ok(Vec::new());
    };
    let reader = ReadableStreamDefaultReader::new(&body).map_err(|e| network_error(file, &e))?;
    let mut bytes = Vec::with_capacity(total.unwrap_or(0).min(1 << 30) as usize);
    progress(0, total);
    loop {
        let chunk = JsFuture::from(reader.read())
            .await
            .map_err(|e| network_error(file, &e))?;
        let done = Reflect::get(&chunk, &JsValue::from_str("done"))
            .ok()
            .and_then(|d| d.as_bool())
            .unwrap_or(true);
        if done {
            break;
        }
        let value = Reflect::get(&chunk, &JsValue::from_str("value"))
            .map_err(|e| network_error(file, &e))?;
        let array: Uint8Array = value.unchecked_into();
        let start = bytes.len();
        bytes.resize(start + array.length() as usize, 0);
        array.copy_to(&mut bytes[start..]);
        progress(bytes.len() as u64, total);
    }
    Ok(bytes)
}

/// `manifest.json` (or any small file), always from the network.
pub async fn fetch_fresh(url: &str, file: &str) -> Result<Vec<u8>, LoadError> {
    let response = fetch_response(url, file, true).await?;
    read_body(&response, file, |_, _| {}).await
}

async fn open_cache() -> Option<Cache> {
    let caches = scope().caches().ok()?;
    let cache = JsFuture::from(caches.open(CACHE_NAME)).await.ok()?;
    cache.dyn_into::<Cache>().ok()
}

/// `url` at `version`: from the Cache API when there, else from the network (then stored).
/// `progress(loaded, total, from_cache)` is called as bytes arrive.
pub async fn fetch_cached(
    url: &str,
    file: &str,
    version: &str,
    mut progress: impl FnMut(u64, Option<u64>, bool),
) -> Result<Fetched, LoadError> {
    let key = format!("{url}?v={version}");
    let cache = open_cache().await;
    if let Some(cache) = &cache {
        if let Ok(hit) = JsFuture::from(cache.match_with_str(&key)).await {
            if let Ok(response) = hit.dyn_into::<Response>() {
                if let Ok(bytes) = read_body(&response, file, |l, t| progress(l, t, true)).await {
                    return Ok(Fetched {
                        bytes,
                        from_cache: true,
                    });
                }
            }
        }
    }
    // The HTTP cache is bypassed too: the version key above decides what is current.
    let response = fetch_response(url, file, true).await?;
    let mut bytes = read_body(&response, file, |l, t| progress(l, t, false)).await?;
    if let Some(cache) = &cache {
        store(cache, url, &key, &mut bytes).await;
    }
    Ok(Fetched {
        bytes,
        from_cache: false,
    })
}

/// Puts `bytes` under `key` and deletes other versions of the same file. Failures (quota, private
/// mode) only mean the next visit downloads again.
async fn store(cache: &Cache, url: &str, key: &str, bytes: &mut [u8]) {
    let headers = Headers::new().ok();
    let init = ResponseInit::new();
    if let Some(h) = &headers {
        let _ = h.set("content-length", &bytes.len().to_string());
        let _ = h.set("content-type", "application/octet-stream");
        init.set_headers(h);
    }
    let Ok(response) = Response::new_with_opt_u8_array_and_init(Some(bytes), &init) else {
        return;
    };
    if JsFuture::from(cache.put_with_str(key, &response))
        .await
        .is_err()
    {
        return;
    }
    let Ok(keys) = JsFuture::from(cache.keys()).await else {
        return;
    };
    let prefix = format!("{url}?v=");
    let resolved_key = absolute(key);
    let resolved_prefix = absolute(&prefix);
    for request in js_sys::Array::from(&keys).iter() {
        let Ok(request) = request.dyn_into::<Request>() else {
            continue;
        };
        let stored = request.url();
        if stored.starts_with(&resolved_prefix) && stored != resolved_key {
            let _ = JsFuture::from(cache.delete_with_request(&request)).await;
        }
    }
}

/// Removes every cached version of `url` (after its bytes turned out unreadable).
pub async fn forget(url: &str) {
    let Some(cache) = open_cache().await else {
        return;
    };
    let Ok(keys) = JsFuture::from(cache.keys()).await else {
        return;
    };
    let prefix = absolute(&format!("{url}?v="));
    for request in js_sys::Array::from(&keys).iter() {
        if let Ok(request) = request.dyn_into::<Request>() {
            if request.url().starts_with(&prefix) {
                let _ = JsFuture::from(cache.delete_with_request(&request)).await;
            }
        }
    }
}

/// `url` resolved against the worker's location, as the Cache API reports keys.
fn absolute(url: &str) -> String {
    let base = scope().location().href();
    web_sys::Url::new_with_base(url, &base)
        .map(|u| u.href())
        .unwrap_or_else(|_| url.to_string())
}
