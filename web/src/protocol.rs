//! Messages between the page and the Web Worker that owns the model. Both sides post JSON strings
//! (one `serde_json` encoding of these enums), so the protocol is plain data that the native unit
//! tests can check, and a message from an older or newer build fails loudly instead of silently.
use serde::{Deserialize, Serialize};

/// Which exported model a message is about: the triplet-trained tagger under `model/`, the
/// optional plain fine-tuned baseline under `model-baseline/` (only the similarity view uses it),
/// or the optional relation extraction model under `relations/` (only the Relations view uses it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Slot {
    Main,
    Baseline,
    Relations,
    /// The optional BINDER model under `binder/`: entity types described in words, in the Tag
    /// view.
    Binder,
}

impl Slot {
    /// The folder the page fetches the model from, relative to the page.
    pub fn dir(self) -> &'static str {
        match self {
            Slot::Main => "model",
            Slot::Baseline => "model-baseline",
            Slot::Relations => "relations",
            Slot::Binder => "binder",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Slot::Main => "triplet-trained",
            Slot::Baseline => "baseline",
            Slot::Relations => "relation extraction",
            Slot::Binder => "described types (BINDER)",
        }
    }

    /// The task the slot's model must be for (the exported file's `multitag.task`).
    pub fn task(self) -> &'static str {
        match self {
            Slot::Main | Slot::Baseline => "tagging",
            Slot::Relations => "relations",
            Slot::Binder => "binder",
        }
    }
}

/// What an embedded text is, which sets where it is cut: a title at the model's own limit (as the
/// tagger reads it), a free text such as a description at `DEFAULT_TEXT_TOKENS` sub-words. The
/// similarity view's heat map and its search cut the same way, so one pair scores the same in both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextKind {
    Title,
    Description,
}

/// Where the worker runs the encoder: WebAssembly on the CPU, or the browser's WebGPU adapter
/// (`multitag-gpu`). The heads and decoding run on the CPU either way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    #[default]
    Cpu,
    Webgpu,
}

/// What a worker found for WebGPU and what it runs on now.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct BackendInfo {
    pub active: Backend,
    /// The browser's WebGPU adapter as a person would name it; none when there is none.
    pub adapter: Option<String>,
    /// The adapter is a software renderer (a fallback adapter, SwiftShader, llvmpipe): offered,
    /// but slower than the CPU path, so not chosen by default.
    pub software: bool,
    /// Why WebGPU is not offered, when it is not (no `navigator.gpu`, no adapter).
    pub unavailable: Option<String>,
    /// What the worker last fell back from: WebGPU that could not start, or a batch that failed
    /// on the GPU and ran on the CPU.
    pub notice: Option<String>,
    /// The worker's CPU path was built with WebAssembly relaxed SIMD (its int8 products twice as
    /// fast or more), which the page loads where the browser compiles it.
    pub relaxed_simd: bool,
}

impl BackendInfo {
    /// The backend a page starts with: `?backend=cpu|webgpu` when given, else WebGPU on a
    /// hardware adapter and the CPU otherwise.
    pub fn default_choice(&self, asked: Option<&str>) -> Backend {
        match asked {
            Some("cpu") => Backend::Cpu,
            Some("webgpu") => Backend::Webgpu,
            _ if self.adapter.is_some() && !self.software => Backend::Webgpu,
            _ => Backend::Cpu,
        }
    }
}

/// Page -> worker.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    /// Run the encoder on `backend` from now on (models loaded and to come); answered by one
    /// `Backend`, which says what the worker runs on (the CPU, with a notice, when WebGPU could
    /// not start).
    SetBackend { backend: Backend },
    /// Fetch (or take from the Cache API) `<base_url>/manifest.json`, `model.gguf` and
    /// `tokenizer.json`, build the model's predictor, and answer `Loaded` or `LoadFailed`.
    Load { slot: Slot, base_url: String },
    /// Tag `titles` in batches of `batch_size`; answered by one `Tagged`.
    Tag {
        id: u64,
        titles: Vec<String>,
        batch_size: usize,
    },
    /// Cosine similarities of every title with every description; answered by one `Similarity`.
    Similarity {
        id: u64,
        slot: Slot,
        titles: Vec<String>,
        descriptions: Vec<String>,
    },
    /// The sentence embeddings of `texts` (L2-normalised, so a dot product is their cosine);
    /// answered by one `Embedded`. The page keeps them, so texts it compares again and again (the
    /// search's catalog) are embedded once.
    Embed {
        id: u64,
        slot: Slot,
        texts: Vec<String>,
        kind: TextKind,
    },
    /// Entities of `titles` under the BINDER model (`Slot::Binder`), of its trained types and
    /// the `described` ones after them, in batches of `batch_size`; answered by one `Tagged`.
    TagDescribed {
        id: u64,
        titles: Vec<String>,
        batch_size: usize,
        described: Vec<TypeDescription>,
    },
    /// Entities and relations of `texts` under the relation model (`Slot::Relations`), in
    /// batches of `batch_size`; answered by one `Relations`.
    Relations {
        id: u64,
        texts: Vec<String>,
        batch_size: usize,
    },
    /// Destroys the worker's GPU device, as a GPU reset or a driver crash would take it away:
    /// the next batch on the GPU fails and runs on the CPU. The benchmark page's test hook
    /// (`window.multitagLoseGpu`); no answer.
    DestroyGpuDevice,
}

/// Worker -> page.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FromWorker {
    /// The worker's wasm is running and listens for messages.
    Ready,
    /// What the worker runs the encoder on: sent before `Ready` (what it found), after each
    /// `SetBackend`, and when a batch fell back to the CPU.
    Backend {
        info: BackendInfo,
    },
    /// Bytes of one model file received so far (`total` from Content-Length when known).
    Progress {
        slot: Slot,
        file: String,
        loaded: u64,
        total: Option<u64>,
        from_cache: bool,
    },
    Loaded {
        slot: Slot,
        info: ModelInfo,
    },
    LoadFailed {
        slot: Slot,
        error: LoadError,
    },
    Tagged {
        id: u64,
        results: Vec<TaggedTitle>,
        /// Time spent in the model for this request, in milliseconds.
        ms: f64,
    },
    Similarity {
        id: u64,
        slot: Slot,
        /// `matrix[i][j]` = cosine(title i, description j).
        matrix: Vec<Vec<f32>>,
        ms: f64,
    },
    Embedded {
        id: u64,
        /// One vector per text, in the request's order.
        vectors: Vec<Vec<f32>>,
        ms: f64,
    },
    Relations {
        id: u64,
        /// One per text, in the request's order.
        results: Vec<TextRelations>,
        ms: f64,
    },
    /// A `Tag`, `Similarity`, `Embed` or `Relations` request that could not be served.
    Failed {
        id: u64,
        message: String,
    },
}

/// An entity type described in words (BINDER), as `trainer tag --types` reads them.
pub use multitag_core::binder::TypeDescription;
/// The tagger's own result type (from `multitag-core`), so the page's JSONL download is exactly
/// `trainer tag`'s output and the worker sends results without copying them field by field.
pub use multitag_core::TaggedTitle;
/// The relation extractor's result type, likewise `trainer tag`'s for a relation model.
pub use multitag_core::{FoundRelation, TextRelations};

/// One fetched model file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileInfo {
    pub name: String,
    pub bytes: u64,
    pub from_cache: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// The method the model is for (`tagging` or `relations`).
    #[serde(default)]
    pub task: String,
    /// Entity types the model predicts (e.g. BRAND, COLOR, GENDER, TYPE).
    pub entity_types: Vec<String>,
    /// Relation types, for a relation model.
    #[serde(default)]
    pub relation_types: Vec<String>,
    pub files: Vec<FileInfo>,
    /// Titles are cut at this many sub-words.
    pub max_tokens: usize,
    /// Fetch (network or cache) and parse times, milliseconds.
    pub fetch_ms: f64,
    pub parse_ms: f64,
    /// The exported `manifest.json`, as written by `trainer export`.
    pub manifest: serde_json::Value,
}

impl ModelInfo {
    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum()
    }

    pub fn from_cache(&self) -> bool {
        !self.files.is_empty() && self.files.iter().all(|f| f.from_cache)
    }

    /// A short description from the manifest, e.g. "q8_0", when the export recorded one.
    pub fn quantization(&self) -> Option<String> {
        ["quant", "quantization", "dtype"]
            .iter()
            .find_map(|k| self.manifest.get(*k))
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    /// A relation model's span method as the manifest records it (`spert`, `spert-mt`, ...).
    pub fn span_method(&self) -> Option<String> {
        self.manifest
            .get("span_method")
            .and_then(|v| v.as_str())
            .map(str::to_string)
    }

    /// A relation model's relation threshold, from the manifest.
    pub fn rel_threshold(&self) -> Option<f64> {
        self.manifest
            .get("span_model")?
            .get("decode")?
            .get("rel_threshold")?
            .as_f64()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LoadErrorKind {
    /// A model file answered 404 (or the folder is not there at all).
    Missing,
    /// The files are there but cannot be read as a model.
    Corrupt,
    /// The request itself failed (server down, offline).
    Network,
    /// The files are a model for another task than the one asked for (a relation model where a
    /// tagger is needed, or the other way round).
    WrongTask,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadError {
    pub kind: LoadErrorKind,
    /// The file that failed, when one did.
    pub file: Option<String>,
    pub message: String,
}

pub fn encode<T: Serialize>(message: &T) -> String {
    serde_json::to_string(message).expect("protocol messages always serialise")
}

pub fn decode<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| format!("bad worker message: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use multitag_core::Entity;

    #[test]
    fn messages_round_trip_as_tagged_json() {
        let m = ToWorker::Tag {
            id: 7,
            titles: vec!["Roadster Men".into()],
            batch_size: 32,
        };
        let text = encode(&m);
        assert!(text.contains(r#""type":"tag""#), "{text}");
        assert_eq!(decode::<ToWorker>(&text).unwrap(), m);

        let r = FromWorker::Tagged {
            id: 7,
            results: vec![TaggedTitle {
                title: "Roadster Men".into(),
                entities: vec![Entity {
                    label: "BRAND".into(),
                    text: "Roadster".into(),
                    start: 0,
                    end: 8,
                    score: 0.9,
                }],
                truncated: false,
            }],
            ms: 1.5,
        };
        assert_eq!(decode::<FromWorker>(&encode(&r)).unwrap(), r);
        assert!(decode::<FromWorker>(r#"{"type":"nope"}"#).is_err());

        let e = ToWorker::Embed {
            id: 8,
            slot: Slot::Main,
            texts: vec!["Roadster Men".into()],
            kind: TextKind::Description,
        };
        let text = encode(&e);
        assert!(
            text.contains(r#""type":"embed""#) && text.contains(r#""kind":"description""#),
            "{text}"
        );
        assert_eq!(decode::<ToWorker>(&text).unwrap(), e);
        // Vectors come back bit for bit, so the page ranks what the worker computed.
        let v = FromWorker::Embedded {
            id: 8,
            vectors: vec![vec![0.1, -0.333_333_34, 1.0e-7]],
            ms: 2.0,
        };
        assert_eq!(decode::<FromWorker>(&encode(&v)).unwrap(), v);
    }

    #[test]
    fn backend_messages_round_trip_and_the_default_is_a_hardware_adapter() {
        let m = ToWorker::SetBackend {
            backend: Backend::Webgpu,
        };
        let text = encode(&m);
        assert_eq!(text, r#"{"type":"set_backend","backend":"webgpu"}"#);
        assert_eq!(decode::<ToWorker>(&text).unwrap(), m);
        let hardware = BackendInfo {
            active: Backend::Cpu,
            adapter: Some("NVIDIA GeForce".into()),
            ..BackendInfo::default()
        };
        let r = FromWorker::Backend {
            info: hardware.clone(),
        };
        assert_eq!(decode::<FromWorker>(&encode(&r)).unwrap(), r);
        assert_eq!(hardware.default_choice(None), Backend::Webgpu);
        assert_eq!(hardware.default_choice(Some("cpu")), Backend::Cpu);
        let software = BackendInfo {
            software: true,
            ..hardware
        };
        assert_eq!(software.default_choice(None), Backend::Cpu);
        assert_eq!(software.default_choice(Some("webgpu")), Backend::Webgpu);
        let none = BackendInfo {
            unavailable: Some("no navigator.gpu".into()),
            ..BackendInfo::default()
        };
        assert_eq!(none.default_choice(None), Backend::Cpu);
        // Asked for, WebGPU is tried even without an adapter: the worker says why it fell back.
        assert_eq!(none.default_choice(Some("webgpu")), Backend::Webgpu);
    }

    #[test]
    fn described_types_round_trip() {
        let m = ToWorker::TagDescribed {
            id: 10,
            titles: vec!["Hidesign Women Brown Leather Sling Bag".into()],
            batch_size: 8,
            described: vec![TypeDescription {
                name: "MATERIAL".into(),
                description: "a material entity is what the product is made of.".into(),
            }],
        };
        let text = encode(&m);
        assert!(
            text.contains(r#""type":"tag_described""#) && text.contains(r#""name":"MATERIAL""#),
            "{text}"
        );
        assert_eq!(decode::<ToWorker>(&text).unwrap(), m);
        assert_eq!(
            (Slot::Binder.dir(), Slot::Binder.task()),
            ("binder", "binder")
        );
    }

    #[test]
    fn relation_messages_round_trip() {
        let m = ToWorker::Relations {
            id: 9,
            texts: vec!["Sirhan had killed Kennedy .".into()],
            batch_size: 4,
        };
        let text = encode(&m);
        assert!(text.contains(r#""type":"relations""#), "{text}");
        assert_eq!(decode::<ToWorker>(&text).unwrap(), m);
        let entity = |text: &str, start: usize| Entity {
            label: "Peop".into(),
            text: text.into(),
            start,
            end: start + text.chars().count(),
            score: 0.75,
        };
        let r = FromWorker::Relations {
            id: 9,
            results: vec![TextRelations {
                text: "Sirhan had killed Kennedy .".into(),
                entities: vec![entity("Sirhan", 0), entity("Kennedy", 18)],
                relations: vec![FoundRelation {
                    label: "Kill".into(),
                    head: 0,
                    tail: 1,
                    score: 0.93,
                }],
            }],
            ms: 3.0,
        };
        assert_eq!(decode::<FromWorker>(&encode(&r)).unwrap(), r);
        let load = ToWorker::Load {
            slot: Slot::Relations,
            base_url: Slot::Relations.dir().into(),
        };
        assert!(encode(&load).contains(r#""slot":"relations""#));
        assert_eq!(Slot::Relations.task(), "relations");
        assert_eq!(Slot::Baseline.task(), "tagging");
    }

    #[test]
    fn relation_model_info_names_its_method_and_threshold() {
        let info: ModelInfo = serde_json::from_str(
            r#"{"task": "relations", "entity_types": ["Peop"], "relation_types": ["Kill"],
                "files": [], "max_tokens": 512, "fetch_ms": 1, "parse_ms": 1,
                "manifest": {"span_method": "spert", "span_model": {"decode": {"rel_threshold": 0.4}}}}"#,
        )
        .unwrap();
        assert_eq!(info.span_method().as_deref(), Some("spert"));
        assert!((info.rel_threshold().unwrap() - 0.4).abs() < 1e-9);
        // A tagger's manifest has neither; an older page's info (no task) still reads.
        let old: ModelInfo = serde_json::from_str(
            r#"{"entity_types": [], "files": [], "max_tokens": 48, "fetch_ms": 1,
                "parse_ms": 1, "manifest": {}}"#,
        )
        .unwrap();
        assert_eq!((old.task.as_str(), old.span_method()), ("", None));
        assert_eq!(old.rel_threshold(), None);
    }

    #[test]
    fn model_info_reads_the_manifest_loosely() {
        let info = ModelInfo {
            task: "tagging".into(),
            relation_types: vec![],
            entity_types: vec![],
            files: vec![
                FileInfo {
                    name: "model.gguf".into(),
                    bytes: 10,
                    from_cache: true,
                },
                FileInfo {
                    name: "tokenizer.json".into(),
                    bytes: 5,
                    from_cache: true,
                },
            ],
            max_tokens: 48,
            fetch_ms: 1.0,
            parse_ms: 1.0,
            manifest: serde_json::json!({"quant": "q8_0"}),
        };
        assert_eq!(info.total_bytes(), 15);
        assert!(info.from_cache());
        assert_eq!(info.quantization().as_deref(), Some("q8_0"));
    }
}
