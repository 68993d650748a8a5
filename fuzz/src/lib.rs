//! The properties the fuzz targets check, one function per reader of untrusted input. They are
//! plain functions so that the same checks run under cargo fuzz (`fuzz_targets/`, nightly, libFuzzer)
//! and, bounded, in the project's test suite on stable (`tests/fuzz_replay.rs`, which replays the
//! corpus in `fuzz/corpus/` with seeded mutations). Each panics when its property fails.
use std::collections::HashSet;
use std::sync::OnceLock;

use multitag_core::binder::{read_type_descriptions, to_json};
use multitag_core::catalog::read_catalog_bytes;
use multitag_core::{
    char_slice, check_tag, gold_tags, read_gold_lines, read_jsonl, read_labeled_bytes, split_words,
};
use multitag_model::{BertConfig, GgufFile, TaskKind, WordTokenizer};

/// The catalog CSV, as bytes (so invalid UTF-8 is exercised too): an error naming the file, or
/// items and skipped rows where every item has an id and a title, no id is read twice, and every
/// line number is inside the text.
pub fn catalog(bytes: &[u8]) {
    let lines = bytes.split(|&b| b == b'\n').count().max(1);
    match read_catalog_bytes("catalog.csv", bytes) {
        Err(e) => assert!(e.to_string().contains("catalog.csv"), "{e}"),
        Ok(read) => {
            let mut ids = HashSet::new();
            for item in &read.items {
                assert!(!item.id.is_empty() && !item.title.is_empty());
                assert!(ids.insert(item.id.as_str()), "id {} read twice", item.id);
                assert!((2..=lines).contains(&item.line), "line {}", item.line);
            }
            for problem in &read.skipped {
                assert!(problem.to_string().contains("catalog.csv"), "{problem}");
            }
        }
    }
}

/// Labeled records as JSONL (what `trainer label` writes): an error naming the file, or records
/// with one tag per word.
/// A BINDER types file: an error naming the file, or distinct, non-empty names without
/// whitespace, each with a non-empty description, which `to_json` writes back to the same types.
pub fn binder_types(text: &str) {
    match read_type_descriptions("types.json", text) {
        Err(e) => assert!(e.to_string().contains("types.json"), "{e}"),
        Ok(types) => {
            assert!(!types.is_empty());
            let mut names = HashSet::new();
            for t in &types {
                assert!(!t.name.trim().is_empty() && !t.description.trim().is_empty());
                assert!(!t.name.chars().any(char::is_whitespace), "{:?}", t.name);
                assert!(names.insert(t.name.clone()), "{:?} twice", t.name);
            }
            let again = read_type_descriptions("again.json", &to_json(&types)).expect("round trip");
            assert_eq!(again, types);
        }
    }
}

pub fn jsonl(text: &str) {
    match read_jsonl("labeled.jsonl", text) {
        Err(e) => assert!(e.to_string().contains("labeled.jsonl"), "{e}"),
        Ok(records) => {
            for r in &records {
                assert_eq!(r.words.len(), r.tags.len());
            }
        }
    }
}

/// A user's labeled titles (`trainer train --data`: JSONL of words and tags or of text and spans,
/// or CoNLL), as bytes: an error naming the file, or records whose words are where their offsets
/// say in their title, with one well-formed IOB2 tag per word and a line inside the input, and
/// problems naming the file and such a line. Nothing is lost without a word: in a JSONL file
/// (first non-blank line starting with `{`), every non-blank line is one record or one problem.
pub fn labeled(bytes: &[u8]) {
    let lines = bytes.split(|&b| b == b'\n').count();
    match read_labeled_bytes("labeled.txt", bytes) {
        Err(e) => assert!(e.to_string().contains("labeled.txt"), "{e}"),
        Ok(read) => {
            for r in &read.records {
                assert_eq!(r.words.len(), r.tags.len());
                assert_eq!(r.words.len(), r.offsets.len());
                assert!((1..=lines).contains(&r.line), "line {}", r.line);
                for (w, &(start, end)) in r.words.iter().zip(&r.offsets) {
                    assert_eq!(char_slice(&r.title, start, end), w);
                }
                for (i, t) in r.tags.iter().enumerate() {
                    assert!(check_tag(t).is_ok(), "{t}");
                    if let Some(ty) = t.strip_prefix("I-") {
                        let before = i.checked_sub(1).and_then(|j| r.tags[j].get(2..));
                        assert_eq!(before, Some(ty), "{:?}", r.tags);
                    }
                }
            }
            for problem in &read.skipped {
                assert!(problem.to_string().contains("labeled.txt"), "{problem}");
                assert!((1..=lines).contains(&problem.line), "{problem}");
            }
            let text = String::from_utf8_lossy(bytes);
            let mut non_blank = text.lines().filter(|l| !l.trim().is_empty());
            if non_blank
                .next()
                .is_some_and(|l| l.trim_start().starts_with('{'))
            {
                assert_eq!(
                    read.records.len() + read.skipped.len(),
                    1 + non_blank.count()
                );
            }
        }
    }
}

/// Gold labels and their join with a title (the input is the gold text, a NUL, then the title):
/// an error naming the file, or one IOB2 tag per word of the title.
pub fn gold(input: &str) {
    let (text, title) = input
        .split_once('\0')
        .unwrap_or((input, "Roadster Men Navy Shirt"));
    match read_gold_lines("gold.jsonl", text) {
        Err(e) => assert!(e.to_string().contains("gold.jsonl"), "{e}"),
        Ok(lines) => {
            for (line, gold) in &lines {
                match gold_tags("gold.jsonl", *line, gold, title) {
                    Ok(tags) => assert_eq!(tags.len(), split_words(title).len()),
                    Err(e) => assert!(e.to_string().contains("gold.jsonl"), "{e}"),
                }
            }
        }
    }
}

/// A model's `config.json`: an error naming the file, or a config every layer can be built from.
pub fn config(text: &str) {
    match BertConfig::from_json("config.json", text) {
        Err(e) => assert!(e.to_string().contains("config.json"), "{e}"),
        Ok(c) => {
            assert!(c.hidden_size > 0 && c.num_attention_heads > 0);
            assert_eq!(c.hidden_size % c.num_attention_heads, 0);
            assert!(c.layer_norm_eps.is_finite() && c.layer_norm_eps > 0.0);
        }
    }
}

/// A tiny exported model, the `gguf` target's seed: written here rather than committed, so the
/// repository holds no model file. Header, our metadata keys and one f32 tensor.
pub fn gguf_seed() -> Vec<u8> {
    use candle_core::quantized::{gguf_file, GgmlDType, QTensor};
    use candle_core::{Device, Tensor};
    let config = r#"{"vocab_size": 8, "hidden_size": 4, "num_hidden_layers": 1,
        "num_attention_heads": 1, "intermediate_size": 8, "max_position_embeddings": 8,
        "hidden_act": "gelu", "type_vocab_size": 2, "layer_norm_eps": 1e-12,
        "model_type": "bert"}"#;
    let s = |v: &str| gguf_file::Value::String(v.to_string());
    let meta = [
        ("general.architecture", s("bert")),
        ("multitag.config", s(config)),
        ("multitag.labels", s(r#"["O", "B-BRAND", "I-BRAND"]"#)),
        ("multitag.quant", s("f32")),
        ("multitag.task", s("tagging")),
    ];
    let bias = Tensor::new(&[0.1f32, 0.2, 0.3], &Device::Cpu).unwrap();
    let q = QTensor::quantize(&bias, GgmlDType::F32).unwrap();
    let meta: Vec<(&str, &gguf_file::Value)> = meta.iter().map(|(k, v)| (*k, v)).collect();
    let mut out = std::io::Cursor::new(Vec::new());
    gguf_file::write(&mut out, &meta, &[("classifier.bias", &q)]).unwrap();
    out.into_inner()
}

/// An exported model's header and metadata: an error naming the file in at most a couple of
/// lines, or a file whose config, labels, task and tensor list read without a panic.
pub fn gguf(bytes: &[u8]) {
    let check = |message: String| {
        assert!(message.contains("model.gguf"), "file not named: {message}");
        assert!(message.len() < 2000, "{} bytes of message", message.len());
    };
    match GgufFile::read("model.gguf", bytes) {
        Err(e) => check(e.to_string()),
        Ok(file) => {
            if let Err(e) = file.config() {
                check(e.to_string());
            }
            if let Err(e) = file.labels() {
                check(e.to_string());
            }
            let _ = TaskKind::of_gguf(&file);
            let _ = file.tensors();
        }
    }
}

const TOKENIZER: &str = r###"{"version": "1.0", "truncation": null, "padding": null,
    "added_tokens": [], "normalizer": {"type": "BertNormalizer", "clean_text": true,
        "handle_chinese_chars": true, "strip_accents": null, "lowercase": true},
    "pre_tokenizer": {"type": "BertPreTokenizer"},
    "post_processor": {"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]},
    "decoder": null,
    "model": {"type": "WordPiece", "unk_token": "[UNK]", "continuing_subword_prefix": "##",
        "max_input_chars_per_word": 100,
        "vocab": {"[PAD]": 0, "[CLS]": 1, "[SEP]": 2, "[UNK]": 3, "navy": 4, "blue": 5,
            "shirt": 6, "men": 7, "##s": 8, "t": 9, "-": 10, "##irt": 11, "sh": 12}}}"###;

fn fixed_tokenizer() -> &'static WordTokenizer {
    static T: OnceLock<WordTokenizer> = OnceLock::new();
    T.get_or_init(|| WordTokenizer::from_bytes("fixed", TOKENIZER.as_bytes()).unwrap())
}

/// Tokenization as the model sees it. Input starting with `{`: a `tokenizer.json`, an error naming
/// the file or a tokenizer. Other input: a length byte, then text split into words by whitespace
/// and encoded by a small fixed tokenizer, which must give one first-sub-word position per word,
/// each inside the sequence, and no more ids than asked.
pub fn tokenizer(data: &[u8]) {
    if data.first() == Some(&b'{') {
        if let Err(e) = WordTokenizer::from_bytes("tokenizer.json", data) {
            assert!(e.to_string().contains("tokenizer.json"), "{e}");
        }
        return;
    }
    let Some((&len, rest)) = data.split_first() else {
        return;
    };
    let max_len = 3 + (len % 64) as usize;
    let text = String::from_utf8_lossy(rest);
    let words: Vec<&str> = text.split_whitespace().collect();
    if let Ok(enc) = fixed_tokenizer().encode_words(&words, max_len) {
        assert!(
            enc.ids.len() <= max_len,
            "{} ids > {max_len}",
            enc.ids.len()
        );
        assert_eq!(enc.first_subword.len(), words.len());
        for p in enc.first_subword.iter().flatten() {
            assert!(*p < enc.ids.len());
        }
    }
}

/// Titles for `trainer tag`; the first byte picks the format (lines, JSONL or CSV, the column
/// being `title`) and the rest is the input: an error naming the input, or titles whose line
/// numbers are inside the input and problems naming it. A plain-line title is its own input line
/// exactly, less the line end (`\n` or `\r\n`) and, on line 1, an opening byte-order mark.
pub fn titles(data: &[u8]) {
    use multitag_core::{read_titles, TitleFormat};
    let Some((&pick, bytes)) = data.split_first() else {
        return;
    };
    let format = match pick % 3 {
        0 => TitleFormat::Lines,
        1 => TitleFormat::Jsonl,
        _ => TitleFormat::Csv,
    };
    let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').collect();
    match read_titles("input", bytes, format, "title") {
        Err(e) => assert!(e.to_string().contains("input"), "{e}"),
        Ok(read) => {
            for (line, title) in &read.titles {
                assert!(
                    (1..=lines.len()).contains(line),
                    "line {line} of {}",
                    lines.len()
                );
                if format == TitleFormat::Lines {
                    let mut expected = lines[line - 1];
                    if *line == 1 {
                        expected = expected
                            .strip_prefix("\u{feff}".as_bytes())
                            .unwrap_or(expected);
                    }
                    // Only a line that ends in `\n` has a line end to drop.
                    if *line < lines.len() {
                        expected = expected.strip_suffix(b"\r").unwrap_or(expected);
                    }
                    assert_eq!(title.as_bytes(), expected, "line {line}: {title:?}");
                }
            }
            for problem in &read.problems {
                assert!(problem.contains("input"), "{problem}");
            }
        }
    }
}
