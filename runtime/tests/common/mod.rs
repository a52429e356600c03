//! Helpers shared by the runtime's integration tests.

use std::path::PathBuf;
use std::sync::Mutex;

use std::time::Instant;

use voyager_runtime::gguf::GgufFile;
use voyager_runtime::gpu::GpuContext;

static PULL: Mutex<()> = Mutex::new(());

/// The GGUF of catalog model `name`, from the models directory, pulled on first use. Panics
/// (the test fails) when it cannot be had: these tests never skip.
#[allow(dead_code)]
pub fn model(name: &str) -> GgufFile {
    let path = model_path(name);
    GgufFile::open(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The path of catalog model `name`, pulled on first use.
#[allow(dead_code)]
pub fn model_path(name: &str) -> PathBuf {
    let _guard = PULL.lock().unwrap_or_else(|e| e.into_inner());
    let dir = voyager_models::models_dir();
    voyager_models::resolve(name, &dir, &mut voyager_models::NoProgress)
        .unwrap_or_else(|e| panic!("model {name}: {e} (run `voyager pull {name}`)"))
}

// GPU test scaffolding: a context, deterministic inputs, and error checks.

#[allow(dead_code)]
pub fn context() -> GpuContext {
    let ctx = GpuContext::new().unwrap_or_else(|e| panic!("{e}"));
    eprintln!("adapter: {} ({})", ctx.adapter_name(), ctx.backend());
    ctx
}

/// xorshift64*: deterministic test data without a dependency.
#[allow(dead_code)]
pub struct XorShift(pub u64);

#[allow(dead_code)]
impl XorShift {
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in [-1, 1).
    pub fn next_f32(&mut self) -> f32 {
        ((self.next_u64() >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
    }

    pub fn vec(&mut self, n: usize, amplitude: f32) -> Vec<f32> {
        (0..n).map(|_| self.next_f32() * amplitude).collect()
    }
}

/// max |gpu - cpu| / max |cpu|.
#[allow(dead_code)]
pub fn rel_err(gpu: &[f32], cpu: &[f32]) -> f32 {
    assert_eq!(gpu.len(), cpu.len(), "length");
    let scale = cpu
        .iter()
        .fold(0f32, |m, x| m.max(x.abs()))
        .max(f32::MIN_POSITIVE);
    let diff = gpu
        .iter()
        .zip(cpu)
        .fold(0f32, |m, (g, c)| m.max((g - c).abs()));
    assert!(gpu.iter().all(|x| x.is_finite()), "non-finite GPU output");
    diff / scale
}

#[allow(dead_code)]
pub fn check(what: &str, gpu: &[f32], cpu: &[f32], tol: f32, start: Instant) {
    let err = rel_err(gpu, cpu);
    eprintln!(
        "{what}: rel err {err:.2e} (tol {tol:.0e}) in {:.2?}",
        start.elapsed()
    );
    assert!(err <= tol, "{what}: rel err {err:e} > {tol:e}");
}
