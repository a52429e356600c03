// Gated feed-forward activation: dst[i] = act(gate[i]) * up[i] over [n_tokens, width] f32,
// with act = silu (params.act == 0) or gelu with the tanh approximation (params.act == 1).
//
// One thread per element; 2-D grid, flat index gid.y * (num_workgroups.x * 256) + gid.x,
// bound-checked against step.n_tokens * width. tanh's argument is clamped to [-10, 10]
// (tanh(10) is 1 in f32) so that no backend's exp-based tanh overflows to inf / inf.

struct Params {
    width: u32,
    act: u32,
    _pad0: u32,
    _pad1: u32,
}

struct Step {
    n_tokens: u32,
    pos: u32,
    n_kv: u32,
    _pad: u32,
}

const SQRT_2_OVER_PI: f32 = 0.7978845608028654;
const GELU_COEF_A: f32 = 0.044715;

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read> gate: array<f32>;
@group(0) @binding(3) var<storage, read> up: array<f32>;
@group(0) @binding(4) var<storage, read_write> dst: array<f32>;

fn silu(x: f32) -> f32 {
    return x / (1.0 + exp(-x));
}

fn gelu_tanh(x: f32) -> f32 {
    let u = SQRT_2_OVER_PI * x * (1.0 + GELU_COEF_A * x * x);
    return 0.5 * x * (1.0 + tanh(clamp(u, -10.0, 10.0)));
}

@compute @workgroup_size(256, 1, 1)
fn ffn_act(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.y * (nwg.x * 256u) + gid.x;
    if (i >= step.n_tokens * params.width) {
        return;
    }
    let g = gate[i];
    var a: f32;
    if (params.act == 0u) {
        a = silu(g);
    } else {
        a = gelu_tanh(g);
    }
    dst[i] = a * up[i];
}
