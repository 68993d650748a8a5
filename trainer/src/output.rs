//! What the trainer writes: model directories, exports, checkpoints, reports. The rules:
//!
//! - **Whole files.** Every file is written beside its target (`.<name>.tmp-<pid>`) and renamed
//!   over it, so a reader or a kill sees the old file or the new one, never part of one.
//! - **Only our files.** An output directory is written file by file; files we did not write are
//!   never touched. A non-empty directory that none of our commands wrote ([`prepare_out`]:
//!   it holds none of the command's marker files) is refused unless `--force` is given, so a typo
//!   in `--out` cannot overwrite someone's model, and the current directory (or one containing
//!   it) is never an output directory.
//! - **Checked before work.** The directory is created and a probe file written before any
//!   training or exporting starts, so an unwritable `--out` fails in the first second, not after
//!   an epoch.
//! - **Checkpoints swap whole** ([`swap_dir`]): a checkpoint's files must agree with each other
//!   (weights, optimizer moments, loop state), so it is staged in a hidden directory and swapped
//!   with the old one in one step (Linux `renameat2(RENAME_EXCHANGE)`), so the last complete
//!   checkpoint survives a kill at any moment. Where that call does not exist it takes two
//!   renames, and the next run puts back a checkpoint a kill left between them.
//! - **Leftovers of dead processes** (staging directories and temporary files whose pid no longer
//!   runs) are removed when the directory is next prepared.
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use candle_nn::VarMap;
use multitag_core::LabelMap;
use multitag_model::BertConfig;

use crate::model_dir::ModelDir;

/// Which command writes a directory, and the files that show it wrote it before.
#[derive(Debug, Clone, Copy)]
pub struct OutKind {
    /// For messages: "a trained model", "an export".
    pub what: &'static str,
    /// A directory holding any of these was written by this command.
    pub markers: &'static [&'static str],
}

pub const TRAINED_MODEL: OutKind = OutKind {
    what: "a trained model",
    markers: ["training.json", "metrics.jsonl", "checkpoint"].as_slice(),
};

pub const EXPORT: OutKind = OutKind {
    what: "an export",
    markers: ["manifest.json"].as_slice(),
};

/// Checks that `path` can be the output directory of `kind`: puts back or removes what killed
/// runs left in it, refuses a foreign one without `force`, and checks that it (or, when it does
/// not exist yet, the directory it will be created in) can be written (see the module doc). Call
/// before any work; a command that fails early leaves no directory behind.
pub fn prepare_out(path: &Path, kind: OutKind, force: bool) -> Result<()> {
    refuse_current_dir(path)?;
    if !path.exists() {
        let parent = nearest_existing(path);
        return probe_writable(&parent, path);
    }
    if !path.is_dir() {
        bail!("{}: not a directory", path.display());
    }
    clean_stale(path)?;
    let foreign: Vec<String> = std::fs::read_dir(path)
        .with_context(|| format!("reading {}", path.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|name| !name.starts_with('.'))
        .collect();
    let ours = kind.markers.iter().any(|m| path.join(m).exists());
    if !foreign.is_empty() && !ours && !force {
        let mut shown: Vec<&str> = foreign.iter().map(String::as_str).collect();
        shown.sort_unstable();
        let more = shown.len().saturating_sub(5);
        shown.truncate(5);
        bail!(
            "{}: holds files that are not {} ({}{}); refusing to write into it. Use a new or \
             empty directory, or --force to write beside them (they are kept)",
            path.display(),
            kind.what,
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        );
    }
    probe_writable(path, path)
}

/// The closest directory at or above `path` that exists.
fn nearest_existing(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    absolute
        .ancestors()
        .find(|a| a.is_dir())
        .unwrap_or(Path::new("/"))
        .to_path_buf()
}

/// Writes and removes a probe file in `dir`; the error names `out`, the directory asked for.
fn probe_writable(dir: &Path, out: &Path) -> Result<()> {
    let probe = temp_path(dir, ".probe");
    std::fs::write(&probe, b"")
        .with_context(|| format!("{}: cannot write in {}", out.display(), dir.display()))?;
    std::fs::remove_file(&probe).with_context(|| format!("removing {}", probe.display()))?;
    Ok(())
}

/// The current directory, or one that contains it, would be written over in place: refused.
fn refuse_current_dir(path: &Path) -> Result<()> {
    let cwd = std::env::current_dir().context("reading the current directory")?;
    let cwd = cwd.canonicalize().unwrap_or(cwd);
    let target = match path.canonicalize() {
        Ok(p) => p,
        // Not there yet: it cannot be the current directory, which exists.
        Err(_) => return Ok(()),
    };
    if cwd.starts_with(&target) {
        bail!(
            "--out {}: that is the current directory{}; name a directory of its own, e.g. \
             runs/my-model",
            path.display(),
            if cwd == target {
                ""
            } else {
                " or one containing it"
            }
        );
    }
    Ok(())
}

/// `.<stem>.<tag>-<pid>` beside `dir/<stem>`: our name for staging files and directories.
fn temp_path(dir: &Path, stem: &str) -> PathBuf {
    dir.join(format!(
        ".{}.tmp-{}",
        stem.trim_start_matches('.'),
        std::process::id()
    ))
}

/// A staging or old-copy name of ours (`.<name>.tmp-<pid>`, `.<name>.old-<pid>`): the name and
/// the pid.
fn parse_leftover(file_name: &str) -> Option<(&str, &str, u32)> {
    let rest = file_name.strip_prefix('.')?;
    let (head, pid) = rest.rsplit_once('-')?;
    let pid: u32 = pid.parse().ok()?;
    let (name, tag) = head.rsplit_once('.')?;
    matches!(tag, "tmp" | "old").then_some((name, tag, pid))
}

/// Whether process `pid` still runs. Where that cannot be known, it is taken to run, so nothing
/// another process may be writing is removed.
fn pid_alive(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

/// Puts back a directory a kill left renamed away between the two renames of [`swap_dir`]'s
/// fallback, then removes what dead processes left: staging directories, old copies, temporary
/// files.
fn clean_stale(dir: &Path) -> Result<()> {
    let entries: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| (e.path(), e.file_name().to_string_lossy().into_owned()))
        .collect();
    for (path, file_name) in &entries {
        let Some((name, tag, pid)) = parse_leftover(file_name) else {
            continue;
        };
        if pid_alive(pid) {
            continue;
        }
        let target = dir.join(name);
        if tag == "old" && !target.exists() {
            std::fs::rename(path, &target)
                .with_context(|| format!("restoring {}", target.display()))?;
            eprintln!(
                "restored {} (an earlier run was stopped while replacing it)",
                target.display()
            );
        } else if path.is_dir() {
            std::fs::remove_dir_all(path)
                .with_context(|| format!("removing {}", path.display()))?;
        } else {
            std::fs::remove_file(path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    Ok(())
}

/// Writes a file atomically (temp file in the same directory, then rename).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    write_with(path, |tmp| {
        std::fs::write(tmp, contents).with_context(|| format!("writing {}", tmp.display()))
    })
}

/// Checks, before any work, that the file `path` can be written by [`write_with`]: it is not a
/// directory, and the directory it goes in exists and takes a file.
pub fn check_out_file(path: &Path) -> Result<()> {
    if path.is_dir() {
        bail!("{}: a directory; name a file", path.display());
    }
    let dir = parent_dir(path);
    if !dir.is_dir() {
        bail!(
            "{}: the directory {} does not exist",
            path.display(),
            dir.display()
        );
    }
    probe_writable(dir, path)
}

/// The directory a file is written in: its parent, or the current one for a bare name.
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Writes `path` atomically through `write`, which fills the temporary path it is given.
pub fn write_with(path: &Path, write: impl FnOnce(&Path) -> Result<()>) -> Result<()> {
    let dir = parent_dir(path);
    let name = path
        .file_name()
        .with_context(|| format!("{}: not a file name", path.display()))?
        .to_string_lossy();
    let tmp = temp_path(dir, &name);
    let result = write(&tmp).and_then(|()| {
        std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Writes `value` as the pretty-printed JSON file `path`, atomically ([`write_atomic`]).
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<()> {
    write_atomic(path, serde_json::to_string_pretty(value)?.as_bytes())
}

/// A trained model's variables as `out/model.safetensors`, written whole.
pub fn write_weights(out: &Path, varmap: &VarMap) -> Result<()> {
    write_with(&out.join("model.safetensors"), |tmp| {
        varmap
            .save(tmp)
            .with_context(|| format!("writing {}", tmp.display()))
    })
}

/// Writes a trained model into `out`, file by file, each atomically; `training.json` last, so a
/// reader that finds it finds the weights it describes. Other files in `out` (metrics.jsonl,
/// checkpoint/, a user's notes) are left as they are.
pub fn save_model(
    out: &Path,
    varmap: &VarMap,
    base: &ModelDir,
    config: &BertConfig,
    labels: &LabelMap,
    training: &serde_json::Value,
) -> Result<()> {
    write_json(
        &out.join("config.json"),
        &token_classifier_config(&base.config_text, config, labels)?,
    )?;
    write_atomic(&out.join("tokenizer.json"), &base.tokenizer_bytes)?;
    write_json(&out.join("labels.json"), labels)?;
    write_weights(out, varmap)?;
    // The label list's hash: a labels.json edited or swapped later is refused on load
    // (`ModelDir::read`), since a reordering fits the head's shape and would tag wrongly.
    let mut training = training.clone();
    if let Some(fields) = training.as_object_mut() {
        fields.insert(
            "labels_sha256".into(),
            multitag_model::gguf::labels_sha256(labels).into(),
        );
    }
    write_json(&out.join("training.json"), &training)
}

/// The base model's config as a Hugging Face `BertForTokenClassification` config: its
/// `architectures` and the tags by classifier row (`id2label`, `label2id`), so that transformers
/// loads a trained directory as a tagger with our labels (`bench/reference/hf_check.py`), and
/// the layers of the trained `model` (a tagger's own layers make it deeper than its base).
fn token_classifier_config(
    base_config: &str,
    model: &BertConfig,
    labels: &LabelMap,
) -> Result<serde_json::Value> {
    let mut config: serde_json::Value =
        serde_json::from_str(base_config).context("the base model's config.json is not JSON")?;
    let Some(fields) = config.as_object_mut() else {
        bail!("the base model's config.json is not a JSON object");
    };
    fields.insert("num_hidden_layers".into(), model.num_hidden_layers.into());
    if let Some(depth) = model.embedding_layers {
        fields.insert("multitag_embedding_layers".into(), depth.into());
    }
    let id2label: serde_json::Map<String, serde_json::Value> = (labels.labels.iter().enumerate())
        .map(|(i, tag)| (i.to_string(), tag.clone().into()))
        .collect();
    let label2id: serde_json::Map<String, serde_json::Value> = (labels.labels.iter().enumerate())
        .map(|(i, tag)| (tag.clone(), i.into()))
        .collect();
    fields.insert(
        "architectures".into(),
        serde_json::json!(["BertForTokenClassification"]),
    );
    fields.insert("id2label".into(), id2label.into());
    fields.insert("label2id".into(), label2id.into());
    Ok(config)
}

/// A staging directory for `target` (`.<name>.tmp-<pid>` beside it), created empty.
pub fn staging_dir(target: &Path) -> Result<PathBuf> {
    let parent = target
        .parent()
        .with_context(|| format!("{}: no parent directory", target.display()))?;
    let name = target
        .file_name()
        .with_context(|| format!("{}: not a directory name", target.display()))?
        .to_string_lossy();
    let staged = temp_path(parent, &name);
    if staged.exists() {
        std::fs::remove_dir_all(&staged)?;
    }
    std::fs::create_dir_all(&staged).with_context(|| format!("creating {}", staged.display()))?;
    Ok(staged)
}

/// Replaces directory `target` by `staged` in one step where the system allows it (see the
/// module doc), then removes the old contents.
pub fn swap_dir(staged: &Path, target: &Path) -> Result<()> {
    if !target.exists() {
        return std::fs::rename(staged, target)
            .with_context(|| format!("moving {} to {}", staged.display(), target.display()));
    }
    if exchange(staged, target).is_ok() {
        // `staged` now holds the old contents.
        return std::fs::remove_dir_all(staged)
            .with_context(|| format!("removing {}", staged.display()));
    }
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let old = target.with_file_name(format!(".{name}.old-{}", std::process::id()));
    if old.exists() {
        std::fs::remove_dir_all(&old)?;
    }
    std::fs::rename(target, &old).with_context(|| format!("moving {} aside", target.display()))?;
    std::fs::rename(staged, target)
        .with_context(|| format!("moving {} to {}", staged.display(), target.display()))?;
    std::fs::remove_dir_all(&old).with_context(|| format!("removing {}", old.display()))
}

/// Swaps two paths atomically (Linux 3.15+; not every file system).
#[cfg(target_os = "linux")]
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE).map_err(std::io::Error::from)
}

#[cfg(not(target_os = "linux"))]
fn exchange(_: &Path, _: &Path) -> std::io::Result<()> {
    Err(std::io::ErrorKind::Unsupported.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("multitag-output-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn leftover_names_are_ours_only() {
        assert_eq!(
            parse_leftover(".checkpoint.tmp-42"),
            Some(("checkpoint", "tmp", 42))
        );
        assert_eq!(
            parse_leftover(".model.safetensors.old-7"),
            Some(("model.safetensors", "old", 7))
        );
        assert_eq!(parse_leftover(".bashrc"), None);
        assert_eq!(parse_leftover(".notes.tmp-x"), None);
        assert_eq!(parse_leftover("checkpoint.tmp-1"), None);
    }

    #[test]
    fn a_foreign_directory_is_refused_and_kept() {
        let dir = scratch("foreign");
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let err = prepare_out(&dir, TRAINED_MODEL, false)
            .expect_err("a foreign directory was accepted")
            .to_string();
        assert!(
            err.contains("notes.txt") && err.contains("--force"),
            "{err}"
        );
        prepare_out(&dir, TRAINED_MODEL, true).unwrap();
        write_atomic(&dir.join("training.json"), b"{}").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
            "mine"
        );
        // Now it is ours: no --force needed.
        prepare_out(&dir, TRAINED_MODEL, false).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_current_directory_is_refused() {
        let err = prepare_out(Path::new("."), EXPORT, true)
            .expect_err("the current directory was accepted")
            .to_string();
        assert!(err.contains("current directory"), "{err}");
    }

    #[test]
    fn swapping_keeps_one_whole_directory_and_leftovers_are_cleaned() {
        let dir = scratch("swap");
        let target = dir.join("checkpoint");
        for generation in ["one", "two", "three"] {
            let staged = staging_dir(&target).unwrap();
            std::fs::write(staged.join("state.json"), generation).unwrap();
            swap_dir(&staged, &target).unwrap();
            assert_eq!(
                std::fs::read_to_string(target.join("state.json")).unwrap(),
                generation
            );
        }
        let names = |d: &Path| -> Vec<String> {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(names(&dir), vec!["checkpoint"]);

        // What a process killed mid-swap leaves (pid 0 never runs a user process): the
        // checkpoint moved aside and a half-written staging directory. The next preparation
        // puts the checkpoint back and removes the rest.
        std::fs::rename(&target, dir.join(".checkpoint.old-0")).unwrap();
        std::fs::create_dir(dir.join(".checkpoint.tmp-0")).unwrap();
        std::fs::write(dir.join(".model.safetensors.tmp-0"), b"half").unwrap();
        std::fs::write(dir.join("metrics.jsonl"), b"").unwrap();
        prepare_out(&dir, TRAINED_MODEL, false).unwrap();
        assert_eq!(names(&dir), vec!["checkpoint", "metrics.jsonl"]);
        assert_eq!(
            std::fs::read_to_string(target.join("state.json")).unwrap(),
            "three"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
