//! The GPU a process uses: one adapter, its device and queue, and the compute pipelines built
//! once for it ([`Kernels`]).
use crate::error::GpuError;
use crate::kernels::Kernels;

pub struct Gpu {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub(crate) kernels: Kernels,
    /// The largest storage binding the device allows, in bytes (a weight must fit one).
    pub(crate) max_binding: u64,
}

impl Gpu {
    /// The first adapter the platform offers (a discrete GPU preferred), with WebGPU's default
    /// limits (the embedding kernel binds up to 7 storage buffers of the 8 allowed; the dense
    /// kernel uses 8 KiB of workgroup memory) and the adapter's own largest storage binding (a
    /// BERT-base word-embedding table is 94 MB in f32, WebGPU's default binding 128 MiB).
    pub async fn new() -> Result<Gpu, GpuError> {
        let instance =
            wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::NoAdapter(e.to_string()))?;
        let info = adapter.get_info();
        let offered = adapter.limits();
        let required_limits = wgpu::Limits {
            max_storage_buffer_binding_size: offered.max_storage_buffer_binding_size,
            max_buffer_size: offered.max_buffer_size,
            ..wgpu::Limits::default()
        };
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("multitag encoder"),
                required_limits,
                ..Default::default()
            })
            .await
            .map_err(|e| GpuError::Device {
                adapter: info.name.clone(),
                reason: e.to_string(),
            })?;
        let shaders = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let kernels = Kernels::new(&device);
        if let Some(e) = shaders.pop().await {
            return Err(GpuError::Device {
                adapter: info.name.clone(),
                reason: e.to_string(),
            });
        }
        Ok(Gpu {
            max_binding: offered.max_storage_buffer_binding_size,
            device,
            queue,
            info,
            kernels,
        })
    }

    /// [`Gpu::new`], waited on (natively).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn blocking() -> Result<Gpu, GpuError> {
        pollster::block_on(Self::new())
    }

    /// The adapter as a person would name it: `name (backend, device type)`.
    pub fn adapter(&self) -> String {
        format!(
            "{} ({:?}, {:?})",
            self.info.name, self.info.backend, self.info.device_type
        )
    }
}
