// In-place scale of f32 activations: x[i] *= params.s for i < step.n_tokens * params.width
// (Gemma scales its embeddings by sqrt(n_embd)).
//
// One thread per element; 2-D grid, flat index gid.y * (num_workgroups.x * 256) + gid.x.

struct Params {
    width: u32,
    s: f32,
    _pad0: u32,
    _pad1: u32,
}

struct Step {
    n_tokens: u32,
    pos: u32,
    n_kv: u32,
    _pad: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<uniform> step: Step;
@group(0) @binding(2) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn scale(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let i = gid.y * (nwg.x * 256u) + gid.x;
    if (i < step.n_tokens * params.width) {
        x[i] *= params.s;
    }
}
