//! Small wrappers over the page's `window`: the query string (how the benchmark and the tests pick
//! a mode and a worker count), a millisecond clock, a timer to await, and a small same-origin GET.
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

pub fn window() -> web_sys::Window {
    web_sys::window().expect("a window")
}

/// Milliseconds since the page started (`performance.now()`), for the timings the page shows.
pub fn now() -> f64 {
    window().performance().map(|p| p.now()).unwrap_or_default()
}

/// The value of `key` in the page's query string.
pub fn query_param(key: &str) -> Option<String> {
    let search = window().location().search().ok()?;
    search
        .trim_start_matches('?')
        .split('&')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=').map(String::from))
}

pub async fn sleep(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let _ = window().set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
    });
    let _ = JsFuture::from(promise).await;
}

/// A small same-origin GET from the page; `None` for anything but a 200 that is not HTML (a static
/// server such as `trunk serve` answers a missing file with its HTML page).
pub async fn fetch_text(url: &str) -> Result<Option<String>, String> {
    let init = web_sys::RequestInit::new();
    init.set_cache(web_sys::RequestCache::NoStore);
    let response: web_sys::Response = JsFuture::from(window().fetch_with_str_and_init(url, &init))
        .await
        .map_err(|e| format!("{e:?}"))?
        .unchecked_into();
    if !response.ok() || crate::fetch::is_html(&response) {
        return Ok(None);
    }
    let text = JsFuture::from(response.text().map_err(|e| format!("{e:?}"))?)
        .await
        .map_err(|e| format!("{e:?}"))?;
    Ok(text.as_string())
}

/// An object URL for `text` as an `application/x-ndjson` blob (the views' JSONL downloads).
pub fn jsonl_url(text: &str) -> Option<String> {
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(text));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/x-ndjson");
    let blob = web_sys::Blob::new_with_str_sequence_and_options(&parts, &options).ok()?;
    web_sys::Url::create_object_url_with_blob(&blob).ok()
}
