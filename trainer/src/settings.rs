//! Where things live by default. Every path here can be overridden by a flag or an environment
//! variable, and README documents the defaults.
use std::path::PathBuf;

/// The shared catalog, read in place (never copied into the repository). `MULTITAG_DATA` points at
/// the folder that holds `myntra_products/`.
pub fn default_catalog() -> PathBuf {
    data_root().join("myntra_products/myntra_products_catalog.csv")
}

pub fn data_root() -> PathBuf {
    std::env::var_os("MULTITAG_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("../shared/data"))
}

/// The git-ignored cache the base model is fetched into.
pub fn default_base_model() -> PathBuf {
    cache_root().join("models/all-MiniLM-L6-v2")
}

pub fn cache_root() -> PathBuf {
    std::env::var_os("MULTITAG_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(".cache"))
}

/// Hand-checked gold labels, committed with the project (ids, offsets and labels only).
pub fn default_gold() -> PathBuf {
    PathBuf::from("data/gold/myntra_gold.jsonl")
}
