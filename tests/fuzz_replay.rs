//! The fuzz targets' properties (`fuzz/src/lib.rs`) on stable, bounded, in every test run: each
//! target's committed corpus (`fuzz/corpus/<target>/`) and a fixed number of seeded mutations of
//! it (byte flips, insertions of the bytes readers treat specially, deletions, duplications,
//! truncations, splices of two seeds). The long runs are cargo fuzz's (fuzz/README.md); this keeps
//! what they established from regressing, with no nightly toolchain.
#[path = "../fuzz/src/lib.rs"]
mod checks;

use std::path::PathBuf;

use multitag_core::SplitMix64;

/// Mutations per target: enough to reach the readers' error paths, a few seconds in all.
const MUTATIONS: usize = 20_000;

/// Bytes that mean something to one of the readers.
const SPECIAL: &[u8] = b"\"\n\r,{}[]:\0\\\xff\xc3\xa9 -#";

fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{}: no seeds", dir.display());
    files.iter().map(|f| std::fs::read(f).unwrap()).collect()
}

fn mutate(rng: &mut SplitMix64, seeds: &[Vec<u8>]) -> Vec<u8> {
    let mut data = seeds[rng.below(seeds.len() as u64) as usize].clone();
    for _ in 0..1 + rng.below(4) {
        let len = data.len() as u64;
        let at = |rng: &mut SplitMix64| rng.below(len + 1) as usize;
        match rng.below(6) {
            0 if len > 0 => {
                let i = rng.below(len) as usize;
                data[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = at(rng);
                let b = SPECIAL[rng.below(SPECIAL.len() as u64) as usize];
                data.insert(i, b);
            }
            2 if len > 0 => {
                let i = rng.below(len) as usize;
                let n = (1 + rng.below(16) as usize).min(data.len() - i);
                data.drain(i..i + n);
            }
            3 if len > 0 => {
                let i = rng.below(len) as usize;
                let n = (1 + rng.below(64) as usize).min(data.len() - i);
                let piece: Vec<u8> = data[i..i + n].to_vec();
                let j = at(rng);
                data.splice(j..j, piece);
            }
            4 => {
                let i = at(rng);
                data.truncate(i);
            }
            _ => {
                let other = &seeds[rng.below(seeds.len() as u64) as usize];
                let i = at(rng);
                let j = rng.below(other.len() as u64 + 1) as usize;
                data.truncate(i);
                data.extend_from_slice(&other[j..]);
            }
        }
    }
    data
}

fn run(target: &str, check: impl Fn(&[u8])) {
    run_with(target, corpus(target), check);
}

fn run_with(target: &str, seeds: Vec<Vec<u8>>, check: impl Fn(&[u8])) {
    for seed in &seeds {
        check(seed);
    }
    let mut rng = SplitMix64::new(multitag_core::fnv1a64(target.as_bytes()));
    for _ in 0..MUTATIONS {
        check(&mutate(&mut rng, &seeds));
    }
}

/// The text targets see only valid UTF-8, as libFuzzer's `&str` inputs do.
fn text(check: fn(&str)) -> impl Fn(&[u8]) {
    move |bytes| {
        if let Ok(t) = std::str::from_utf8(bytes) {
            check(t)
        }
    }
}

#[test]
fn catalog() {
    run("catalog", checks::catalog);
}

#[test]
fn titles() {
    run("titles", checks::titles);
}

#[test]
fn binder_types() {
    run("binder_types", text(checks::binder_types));
}

#[test]
fn jsonl() {
    run("jsonl", text(checks::jsonl));
}

#[test]
fn labeled() {
    run("labeled", checks::labeled);
}

#[test]
fn gold() {
    run("gold", text(checks::gold));
}

#[test]
fn config() {
    run("config", text(checks::config));
}

#[test]
fn gguf() {
    let seed = checks::gguf_seed();
    // The seed must reach the metadata, not stop at the header.
    let file = multitag_model::GgufFile::read("seed.gguf", seed.as_slice()).unwrap();
    assert_eq!(file.labels().unwrap().labels.len(), 3);
    run_with("gguf", vec![seed], checks::gguf);
}

#[test]
fn tokenizer() {
    run("tokenizer", checks::tokenizer);
}
