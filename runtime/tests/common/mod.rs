//! Helpers shared by the runtime's integration tests: the catalog models, the GPU context, and
//! running tables of kernel cases (`voyager_runtime::selfcheck::cases`) on both strategies.

use std::path::PathBuf;
use std::sync::Mutex;

use voyager_runtime::gguf::GgufFile;
use voyager_runtime::gpu::kernels::{Kernels, Strategy};
use voyager_runtime::gpu::GpuContext;
use voyager_runtime::selfcheck::{Case, Harness};

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

/// The GPU context (lavapipe in CI). These tests need an adapter and FAIL without one.
#[allow(dead_code)]
pub fn context() -> GpuContext {
    let ctx = GpuContext::new().unwrap_or_else(|e| panic!("{e}"));
    let (sg_min, sg_max) = ctx.subgroup_sizes();
    eprintln!(
        "adapter: {} ({}), f16 {}, subgroups {} ({sg_min}..={sg_max})",
        ctx.adapter_name(),
        ctx.backend(),
        ctx.has_f16(),
        ctx.has_subgroups(),
    );
    ctx
}

/// Runs every case on `kernels` and fails the test on the first one that does not pass.
#[allow(dead_code)]
pub fn check_all(ctx: &GpuContext, kernels: &Kernels, cases: &[Case]) {
    let h = Harness::new(ctx, kernels);
    for case in cases {
        let o = case
            .run(&h)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name));
        eprintln!(
            "{:?} {}: {:.2e} of the allowed error in {:.2} s",
            kernels.strategy(),
            o.name,
            o.score,
            o.seconds
        );
        assert!(o.passed, "{}: {}", o.name, o.worst);
    }
}

/// For each strategy, builds its kernels and checks the cases `make` gives for it.
#[allow(dead_code)]
pub fn check_both_strategies(ctx: &GpuContext, make: impl Fn(Strategy) -> Vec<Case>) {
    for strategy in Strategy::ALL {
        let kernels = Kernels::with_strategy(ctx, strategy).unwrap();
        check_all(ctx, &kernels, &make(strategy));
    }
}

/// Fails the test unless `got` (produced by the test itself) passes `case`'s comparison.
#[allow(dead_code)]
pub fn judged(case: &Case, got: &[f32]) {
    let o = case.judge(got);
    eprintln!("{}: {:.2e} of the allowed error", o.name, o.score);
    assert!(o.passed, "{}: {}", o.name, o.worst);
}
