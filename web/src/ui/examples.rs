//! The examples `trainer export` bundles with the model (`model/examples.json`: held-out test-split
//! catalog items), which both views' "Load examples" buttons fill their inputs from. The file is
//! fetched once per page and the outcome kept, an error included, so the second view (or a second
//! click) neither fetches again nor reports differently. The memo is not rendered, so it is a plain
//! page-wide value rather than a signal.
use std::cell::RefCell;

pub use multitag_core::BundledExample;

use super::browser::fetch_text;
use crate::protocol::Slot;

thread_local! {
    static LOADED: RefCell<Option<Result<Vec<BundledExample>, String>>> = const { RefCell::new(None) };
}

/// The bundled examples, fetched on the first call.
pub async fn bundled_examples() -> Result<Vec<BundledExample>, String> {
    if let Some(done) = LOADED.with(|l| l.borrow().clone()) {
        return done;
    }
    let url = format!("{}/examples.json", Slot::Main.dir());
    let result = match fetch_text(&url).await {
        Ok(Some(text)) => serde_json::from_str::<Vec<BundledExample>>(&text)
            .map_err(|e| format!("{url} is not a list of {{title, description}}: {e}")),
        Ok(None) => Err(format!("{url} is not there; `trainer export` writes it")),
        Err(e) => Err(format!("could not fetch {url}: {e}")),
    };
    LOADED.with(|l| *l.borrow_mut() = Some(result.clone()));
    result
}

/// `s` on one line (an input holds one item per line), its runs of whitespace made single spaces.
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
