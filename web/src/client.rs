//! The page's side of the workers: spawns them, queues messages until a worker's wasm is running,
//! matches replies to requests (`tag`, `similarity`, `embed` and `relations` are futures), and
//! hands every other message of the primary worker (ready, progress, loaded, load failed) to one
//! event callback.
//!
//! WASM here has no threads (they need a cross-origin-isolated page), so the page runs a pool of
//! workers, each with its own copy of the model, to use more than one core: tagging requests go to
//! whichever loaded worker has the fewest open, while the primary also serves the similarity view
//! and, with the relation model only it loads, the Relations view.
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::Rc;

use futures_channel::oneshot;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{ErrorEvent, MessageEvent, Worker};

use crate::protocol::{
    decode, encode, Backend, FromWorker, Slot, TaggedTitle, TextKind, TextRelations, ToWorker,
    TypeDescription,
};

type Reply = Result<FromWorker, String>;

pub struct WorkerClient {
    worker: Worker,
    ready: Cell<bool>,
    /// The main model is loaded, so the worker can take tagging requests.
    tags: Cell<bool>,
    queued: RefCell<Vec<String>>,
    next_id: Cell<u64>,
    pending: RefCell<HashMap<u64, oneshot::Sender<Reply>>>,
    crashed: RefCell<Option<String>>,
}

thread_local! {
    static POOL: RefCell<Option<Rc<WorkerPool>>> = const { RefCell::new(None) };
}

/// The page's workers, once `WorkerPool::spawn` has run.
pub fn pool() -> Option<Rc<WorkerPool>> {
    POOL.with(|c| c.borrow().clone())
}

pub struct WorkerPool {
    script_url: String,
    size: usize,
    workers: RefCell<Vec<Rc<WorkerClient>>>,
    /// The backend the page chose, sent to every worker (helpers started later included).
    backend: Cell<Backend>,
}

impl WorkerPool {
    /// Starts the primary worker and installs the pool as the page's; helpers (up to `size`
    /// workers in all) start with [`WorkerPool::start_helpers`]. `on_event` and `on_crash` are the
    /// primary's, as in [`WorkerClient::spawn`].
    pub fn spawn(
        script_url: &str,
        size: usize,
        on_event: impl Fn(FromWorker) + 'static,
        on_crash: impl Fn(String) + 'static,
    ) -> Result<Rc<Self>, String> {
        let primary = WorkerClient::spawn(script_url, on_event, on_crash)?;
        let pool = Rc::new(Self {
            script_url: script_url.to_string(),
            size: size.max(1),
            workers: RefCell::new(vec![primary]),
            backend: Cell::new(Backend::Cpu),
        });
        POOL.with(|c| *c.borrow_mut() = Some(pool.clone()));
        Ok(pool)
    }

    /// Starts the helper workers, each loading the main model. Called once the primary has loaded
    /// it, so the helpers read the files from the Cache API instead of downloading them again;
    /// `on_loaded` runs as each has. A helper that fails to start or to load only leaves the pool
    /// smaller.
    pub fn start_helpers(&self, on_loaded: impl Fn() + Clone + 'static) {
        let mut workers = self.workers.borrow_mut();
        while workers.len() < self.size {
            let on_loaded = on_loaded.clone();
            let on_event = move |message: FromWorker| {
                if let FromWorker::Loaded {
                    slot: Slot::Main, ..
                } = message
                {
                    on_loaded();
                }
            };
            match WorkerClient::spawn(&self.script_url, on_event, |_| {}) {
                Ok(helper) => {
                    if self.backend.get() != Backend::Cpu {
                        helper.send(&ToWorker::SetBackend {
                            backend: self.backend.get(),
                        });
                    }
                    helper.send(&ToWorker::Load {
                        slot: Slot::Main,
                        base_url: Slot::Main.dir().into(),
                    });
                    workers.push(helper);
                }
                Err(_) => break,
            }
        }
    }

    /// Runs every worker's encoder on `backend` (each answers with what it runs on; the
    /// primary's answer reaches the page).
    pub fn set_backend(&self, backend: Backend) {
        self.backend.set(backend);
        for worker in self.workers.borrow().iter() {
            worker.send(&ToWorker::SetBackend { backend });
        }
    }

    /// Destroys every worker's GPU device (the benchmark page's test hook).
    pub fn destroy_gpu_devices(&self) {
        for worker in self.workers.borrow().iter() {
            worker.send(&ToWorker::DestroyGpuDevice);
        }
    }

    /// The first worker: it reports loading to the page and holds the baseline model.
    pub fn primary(&self) -> Rc<WorkerClient> {
        self.workers.borrow()[0].clone()
    }

    /// How many requests are worth keeping open at once: one per worker.
    pub fn size(&self) -> usize {
        self.size
    }

    /// Workers that have the main model loaded and have not crashed.
    pub fn taggers(&self) -> usize {
        self.workers.borrow().iter().filter(|w| w.can_tag()).count()
    }

    /// Tags `titles` on the loaded worker with the fewest open requests (the primary when no
    /// worker reports a loaded model yet, which then answers with its own error).
    pub async fn tag(
        &self,
        titles: Vec<String>,
        batch_size: usize,
    ) -> Result<(Vec<TaggedTitle>, f64), String> {
        let worker = {
            let workers = self.workers.borrow();
            workers
                .iter()
                .filter(|w| w.can_tag())
                .min_by_key(|w| w.open_requests())
                .unwrap_or(&workers[0])
                .clone()
        };
        worker.tag(titles, batch_size).await
    }
}

impl WorkerClient {
    /// Starts the worker script. `on_event` receives every message that is not a reply;
    /// `on_crash` an uncaught error in the worker (a panic), after which every pending and later
    /// request fails.
    pub fn spawn(
        script_url: &str,
        on_event: impl Fn(FromWorker) + 'static,
        on_crash: impl Fn(String) + 'static,
    ) -> Result<Rc<Self>, String> {
        let worker = Worker::new(script_url)
            .map_err(|e| format!("cannot start the model worker ({script_url}): {e:?}"))?;
        let client = Rc::new(Self {
            worker,
            ready: Cell::new(false),
            tags: Cell::new(false),
            queued: RefCell::new(Vec::new()),
            next_id: Cell::new(1),
            pending: RefCell::new(HashMap::new()),
            crashed: RefCell::new(None),
        });

        let me = Rc::downgrade(&client);
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let Some(me) = me.upgrade() else { return };
            let Some(text) = event.data().as_string() else {
                return;
            };
            let message = match decode::<FromWorker>(&text) {
                Ok(m) => m,
                Err(e) => {
                    web_sys::console::error_1(&JsValue::from_str(&e));
                    return;
                }
            };
            let reply_id = match &message {
                FromWorker::Tagged { id, .. }
                | FromWorker::Similarity { id, .. }
                | FromWorker::Embedded { id, .. }
                | FromWorker::Relations { id, .. }
                | FromWorker::Failed { id, .. } => Some(*id),
                _ => None,
            };
            if let Some(id) = reply_id {
                let sender = me.pending.borrow_mut().remove(&id);
                if let Some(sender) = sender {
                    let _ = sender.send(Ok(message));
                }
                return;
            }
            if matches!(
                message,
                FromWorker::Loaded {
                    slot: Slot::Main,
                    ..
                }
            ) {
                me.tags.set(true);
            }
            if matches!(message, FromWorker::Ready) {
                me.ready.set(true);
                let queued = std::mem::take(&mut *me.queued.borrow_mut());
                for text in queued {
                    let _ = me.worker.post_message(&JsValue::from_str(&text));
                }
            }
            on_event(message);
        });
        client
            .worker
            .set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        on_message.forget();

        let me = Rc::downgrade(&client);
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |event: ErrorEvent| {
            let message = if event.message().is_empty() {
                "the model worker stopped (failed to start or ran out of memory)".to_string()
            } else {
                format!(
                    "{} ({}:{})",
                    event.message(),
                    event.filename(),
                    event.lineno()
                )
            };
            if let Some(me) = me.upgrade() {
                *me.crashed.borrow_mut() = Some(message.clone());
                let pending: Vec<_> = me.pending.borrow_mut().drain().collect();
                for (_, sender) in pending {
                    let _ = sender.send(Err(message.clone()));
                }
            }
            on_crash(message);
        });
        client
            .worker
            .set_onerror(Some(on_error.as_ref().unchecked_ref()));
        on_error.forget();

        Ok(client)
    }

    /// Requests sent and not yet answered, whether or not their caller still waits.
    fn open_requests(&self) -> usize {
        self.pending.borrow().len()
    }

    fn can_tag(&self) -> bool {
        self.tags.get() && self.crashed.borrow().is_none()
    }

    /// Posts a message now, or when the worker reports `Ready`.
    pub fn send(&self, message: &ToWorker) {
        let text = encode(message);
        if self.ready.get() {
            let _ = self.worker.post_message(&JsValue::from_str(&text));
        } else {
            self.queued.borrow_mut().push(text);
        }
    }

    async fn request(&self, make: impl FnOnce(u64) -> ToWorker) -> Reply {
        if let Some(message) = self.crashed.borrow().clone() {
            return Err(message);
        }
        let id = self.next_id.get();
        self.next_id.set(id + 1);
        let (sender, receiver) = oneshot::channel();
        self.pending.borrow_mut().insert(id, sender);
        self.send(&make(id));
        match receiver.await {
            Ok(Ok(FromWorker::Failed { message, .. })) => Err(message),
            Ok(reply) => reply,
            Err(_) => Err("the model worker went away".into()),
        }
    }

    /// Tags `titles` in the worker; the results and the worker's time in milliseconds.
    pub async fn tag(
        &self,
        titles: Vec<String>,
        batch_size: usize,
    ) -> Result<(Vec<TaggedTitle>, f64), String> {
        match self
            .request(|id| ToWorker::Tag {
                id,
                titles,
                batch_size,
            })
            .await?
        {
            FromWorker::Tagged { results, ms, .. } => Ok((results, ms)),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    /// Title x description cosine similarities under one model, and the worker's time.
    pub async fn similarity(
        &self,
        slot: Slot,
        titles: Vec<String>,
        descriptions: Vec<String>,
    ) -> Result<(Vec<Vec<f32>>, f64), String> {
        match self
            .request(|id| ToWorker::Similarity {
                id,
                slot,
                titles,
                descriptions,
            })
            .await?
        {
            FromWorker::Similarity { matrix, ms, .. } => Ok((matrix, ms)),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    /// Entities of `titles` under the BINDER model (which only the primary worker loads), of its
    /// trained types and the `described` ones, and the worker's time.
    pub async fn tag_described(
        &self,
        titles: Vec<String>,
        batch_size: usize,
        described: Vec<TypeDescription>,
    ) -> Result<(Vec<TaggedTitle>, f64), String> {
        match self
            .request(|id| ToWorker::TagDescribed {
                id,
                titles,
                batch_size,
                described,
            })
            .await?
        {
            FromWorker::Tagged { results, ms, .. } => Ok((results, ms)),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    /// Entities and relations of `texts` under the relation model (which only the primary
    /// worker loads), and the worker's time.
    pub async fn relations(
        &self,
        texts: Vec<String>,
        batch_size: usize,
    ) -> Result<(Vec<TextRelations>, f64), String> {
        match self
            .request(|id| ToWorker::Relations {
                id,
                texts,
                batch_size,
            })
            .await?
        {
            FromWorker::Relations { results, ms, .. } => Ok((results, ms)),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }

    /// The sentence embeddings of `texts` under one model (L2-normalised: a dot product is a
    /// cosine), one vector per text, and the worker's time.
    pub async fn embed(
        &self,
        slot: Slot,
        texts: Vec<String>,
        kind: TextKind,
    ) -> Result<(Vec<Vec<f32>>, f64), String> {
        match self
            .request(|id| ToWorker::Embed {
                id,
                slot,
                texts,
                kind,
            })
            .await?
        {
            FromWorker::Embedded { vectors, ms, .. } => Ok((vectors, ms)),
            other => Err(format!("unexpected reply {other:?}")),
        }
    }
}
