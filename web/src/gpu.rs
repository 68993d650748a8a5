//! The worker's WebGPU path: what the browser offers (probed once, before the worker says it is
//! ready), the device when the page chooses WebGPU, and each loaded model's encoder on it.
//!
//! Only the encoder moves to the GPU (`multitag-gpu`); the heads and decoding stay the CPU code,
//! fed through [`StagedStates`] because a worker cannot block on the GPU (see
//! `multitag_gpu::staged`). Every failure lands on the CPU path with a notice: no `navigator.gpu`
//! or no adapter (WebGPU is not offered), a device that will not start (the page stays on the
//! CPU), a batch that fails on the GPU (a lost device, out of memory: that batch runs on the
//! CPU, and the worker stays there until the page chooses WebGPU again).
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::Arc;

use futures_util::lock::Mutex;
use multitag_gpu::{run_staged, Gpu, GpuEncoder, StagedError, StagedStates, Stored};
use multitag_model::{BertEncoder, GgufFile};
use wasm_bindgen::JsCast;
use wasm_bindgen::JsValue;

use crate::protocol::{Backend, BackendInfo, Slot};

/// What the browser offers, found once.
#[derive(Default)]
struct Probe {
    adapter: Option<String>,
    software: bool,
    unavailable: Option<String>,
}

/// A model's encoder on the GPU, and the backend its predictor calls.
struct OnGpu {
    encoder: Rc<GpuEncoder>,
    staged: Arc<StagedStates>,
}

#[derive(Default)]
struct State {
    probe: Probe,
    /// The device, while WebGPU is the backend.
    gpu: Option<Arc<Gpu>>,
    encoders: HashMap<Slot, OnGpu>,
    notice: Option<String>,
}

thread_local! {
    static STATE: RefCell<State> = RefCell::new(State::default());
    /// One GPU pass at a time, and a backend change never in the middle of one.
    static LOCK: Arc<Mutex<()>> = Arc::new(Mutex::new(()));
}

/// A hold of [`lock`].
pub type Held = futures_util::lock::OwnedMutexGuard<()>;

/// The lock of GPU work: held over a GPU pass, a backend change, and a model's move to the GPU
/// together with its store, so a model is never stored between a change and its moves.
pub async fn lock() -> Held {
    LOCK.with(Arc::clone).lock_owned().await
}

/// What the worker runs on now, for the page.
pub fn info() -> BackendInfo {
    STATE.with(|s| {
        let s = s.borrow();
        BackendInfo {
            active: if s.gpu.is_some() {
                Backend::Webgpu
            } else {
                Backend::Cpu
            },
            adapter: s.probe.adapter.clone(),
            software: s.probe.software,
            unavailable: s.probe.unavailable.clone(),
            notice: s.notice.clone(),
            relaxed_simd: cfg!(target_feature = "relaxed-simd"),
        }
    })
}

fn get(target: &JsValue, key: &str) -> Option<JsValue> {
    js_sys::Reflect::get(target, &JsValue::from_str(key))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
}

fn text(target: &JsValue, key: &str) -> String {
    get(target, key)
        .and_then(|v| v.as_string())
        .unwrap_or_default()
}

/// Asks the browser for a WebGPU adapter (no device yet) and names it: WebGPU's adapter info
/// (vendor, architecture, description), which wgpu does not pass on in full.
pub async fn probe() {
    let found = async {
        let navigator = get(&js_sys::global(), "navigator").ok_or("no navigator")?;
        let gpu = get(&navigator, "gpu").ok_or("this browser has no WebGPU (navigator.gpu)")?;
        let request = get(&gpu, "requestAdapter")
            .and_then(|f| f.dyn_into::<js_sys::Function>().ok())
            .ok_or("navigator.gpu.requestAdapter is missing")?;
        let promise = request
            .call0(&gpu)
            .ok()
            .and_then(|p| p.dyn_into::<js_sys::Promise>().ok())
            .ok_or("navigator.gpu.requestAdapter failed")?;
        let adapter = wasm_bindgen_futures::JsFuture::from(promise)
            .await
            .ok()
            .filter(|a| !a.is_null() && !a.is_undefined())
            .ok_or("the browser gives no WebGPU adapter")?;
        let info = get(&adapter, "info").unwrap_or(JsValue::UNDEFINED);
        let (vendor, architecture, description) = (
            text(&info, "vendor"),
            text(&info, "architecture"),
            text(&info, "description"),
        );
        let fallback = [&info, &adapter]
            .iter()
            .any(|t| get(t, "isFallbackAdapter").and_then(|v| v.as_bool()) == Some(true));
        let name = [vendor, architecture, description]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let lower = name.to_lowercase();
        let software = fallback
            || ["swiftshader", "llvmpipe", "lavapipe"]
                .iter()
                .any(|s| lower.contains(s));
        let name = if name.is_empty() {
            "WebGPU adapter".to_string()
        } else {
            name
        };
        Ok::<_, &str>((name, software))
    }
    .await;
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        match found {
            Ok((name, software)) => {
                s.probe.adapter = Some(name);
                s.probe.software = software;
            }
            Err(why) => s.probe.unavailable = Some(why.to_string()),
        }
    });
}

/// Switches the backend. Going to WebGPU starts the device and says whether the models loaded so
/// far must now move to it (the caller loads them again: [`attach`] needs their files); going to
/// the CPU takes every model off it. A device that will not start leaves the worker on the CPU
/// with a notice.
pub async fn set_backend(backend: Backend) -> bool {
    let _one = lock().await;
    match backend {
        Backend::Cpu => {
            take_models_off(None);
            false
        }
        Backend::Webgpu => {
            if STATE.with(|s| s.borrow().gpu.is_some()) {
                return false;
            }
            if let Some(why) = STATE.with(|s| s.borrow().probe.unavailable.clone()) {
                take_models_off(Some(format!("WebGPU is not available ({why}): on the CPU")));
                return false;
            }
            match Gpu::new().await {
                Ok(gpu) => STATE.with(|s| {
                    let mut s = s.borrow_mut();
                    // GpuEncoder shares its device through an Arc (natively across threads);
                    // wgpu's browser types are not Send, and a worker has one thread.
                    #[allow(clippy::arc_with_non_send_sync)]
                    let gpu = Arc::new(gpu);
                    s.gpu = Some(gpu);
                    s.notice = None;
                }),
                Err(e) => {
                    take_models_off(Some(format!("WebGPU could not start ({e}): on the CPU")));
                    return false;
                }
            }
            true
        }
    }
}

/// Destroys the device while keeping everything that uses it, as a lost GPU leaves them: the
/// next GPU pass fails and [`run`] falls back (the test of that fallback).
pub fn destroy_device() {
    STATE.with(|s| {
        if let Some(gpu) = &s.borrow().gpu {
            gpu.device.destroy();
        }
    });
}

/// Says what stayed behind on the CPU, until the next change.
pub fn set_notice(notice: String) {
    STATE.with(|s| s.borrow_mut().notice = Some(notice));
}

/// Every model's encoder back on the CPU, the device dropped, and why (when it is a fallback).
fn take_models_off(notice: Option<String>) {
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        s.gpu = None;
        s.encoders.clear();
        s.notice = notice;
    });
    crate::worker::detach_all();
}

/// When WebGPU is the backend, puts the encoder of `slot`'s freshly built predictor on the GPU
/// (its weights read from the model's file, quantized matrices as their codes). Failing that,
/// the model stays on the CPU and the notice says why. The caller holds [`lock`] until the model
/// is stored.
pub fn attach(slot: Slot, file: &GgufFile<'_>, encoder: &mut BertEncoder) {
    let Some(gpu) = STATE.with(|s| s.borrow().gpu.clone()) else {
        return;
    };
    let config = encoder.config.clone();
    let loaded = GpuEncoder::load(gpu, &config, |name, shape| {
        file.qtensor(&format!("bert.{name}"), shape, &candle_core::Device::Cpu)
            .map(Stored::Quantized)
    });
    STATE.with(|s| {
        let mut s = s.borrow_mut();
        match loaded {
            Ok(on_gpu) => {
                let staged = Arc::new(StagedStates::new(
                    format!(
                        "WebGPU: {}",
                        s.probe.adapter.as_deref().unwrap_or("adapter")
                    ),
                    config.hidden_size,
                ));
                encoder.set_backend(Some(staged.clone()));
                s.encoders.insert(
                    slot,
                    OnGpu {
                        encoder: Rc::new(on_gpu),
                        staged,
                    },
                );
            }
            Err(e) => {
                encoder.set_backend(None);
                s.encoders.remove(&slot);
                s.notice = Some(format!(
                    "the {} model stays on the CPU: its encoder did not fit the GPU ({e})",
                    slot.title()
                ));
            }
        }
    });
}

/// Runs `predict` (one encoder batch of `slot`'s model) on the GPU when its encoder is there,
/// else on the CPU. A batch the GPU fails runs on the CPU, every model goes back to the CPU, and
/// `fell_back` is called with the notice.
pub async fn run<T>(
    slot: Slot,
    mut predict: impl FnMut() -> Result<T, String>,
    fell_back: impl FnOnce(),
) -> Result<T, String> {
    let on_gpu = || {
        STATE.with(|s| {
            s.borrow()
                .encoders
                .get(&slot)
                .map(|g| (g.encoder.clone(), g.staged.clone()))
        })
    };
    // The CPU path waits for nothing; the GPU path looks again once it holds the lock (a
    // fallback or a backend change may have come first).
    if on_gpu().is_none() {
        return predict();
    }
    let _one = lock().await;
    let Some((encoder, staged)) = on_gpu() else {
        return predict();
    };
    match run_staged(&staged, &*encoder, &mut predict).await {
        Ok(value) => Ok(value),
        Err(StagedError::Predict(e)) => Err(e),
        Err(StagedError::Gpu(e)) => {
            take_models_off(Some(format!(
                "a batch failed on the GPU ({e}): it ran on the CPU, as the next ones will"
            )));
            fell_back();
            predict()
        }
    }
}
