// In-place orthonormal Walsh-Hadamard rotation of heads (runtime/src/kv/quant.rs `hadamard`
// is the reference): x holds [n_tokens, rows_per_token, width] f32; each run of `size`
// values (a power of two dividing width, at most 512) is replaced by H x / sqrt(size).
// The transform is its own inverse: the KV cache stores rotated keys and values, attention
// rotates the query the same way (q . k is unchanged) and rotates its output back.
//
// Two entry points, one per kernel strategy (runtime/src/gpu/kernels/strategy.rs):
// - `hadamard` (row per thread, CPU adapters): one thread per run, the run in private memory;
//   flat index gid.y * (num_workgroups.x * 64) + gid.x;
// - `hadamard_wg` (cooperative, GPUs): one workgroup of 64 threads per run, the run in
//   workgroup memory, a barrier after each butterfly level. A run's 32 threads of a decode
//   step would leave a GPU idle and its private array would spill; this spreads each level
//   over the workgroup. Both add the same pairs in the same order, so they give the same bits.

struct Params {
    width: u32,
    rows_per_token: u32,
    size: u32,
    _pad: u32,
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

var<private> run: array<f32, 512>;

@compute @workgroup_size(64, 1, 1)
fn hadamard(
    @builtin(global_invocation_id) gid: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
) {
    let n = params.size;
    let runs = step.n_tokens * params.rows_per_token * (params.width / n);
    let idx = gid.y * (nwg.x * 64u) + gid.x;
    if (idx >= runs) {
        return;
    }
    let base = idx * n;
    for (var i = 0u; i < n; i++) {
        run[i] = x[base + i];
    }
    for (var h = 1u; h < n; h *= 2u) {
        for (var i = 0u; i < n; i += 2u * h) {
            for (var j = i; j < i + h; j++) {
                let a = run[j];
                let b = run[j + h];
                run[j] = a + b;
                run[j + h] = a - b;
            }
        }
    }
    let norm = inverseSqrt(f32(n));
    for (var i = 0u; i < n; i++) {
        x[base + i] = run[i] * norm;
    }
}

var<workgroup> shared_run: array<f32, 512>;

@compute @workgroup_size(64, 1, 1)
fn hadamard_wg(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) nwg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
) {
    let n = params.size;
    let runs = step.n_tokens * params.rows_per_token * (params.width / n);
    // Run index from the (x, y) grid of workgroups; the whole workgroup leaves together.
    let idx = wg.y * nwg.x + wg.x;
    if (idx >= runs) {
        return;
    }
    let base = idx * n;
    for (var i = lid; i < n; i += 64u) {
        shared_run[i] = x[base + i];
    }
    workgroupBarrier();
    // Level h adds the n / 2 pairs (j, j + h), j in blocks of h at a stride of 2h: pair p is
    // j = (p / h) * 2h + p % h.
    for (var h = 1u; h < n; h *= 2u) {
        for (var p = lid; p < n / 2u; p += 64u) {
            let j = (p / h) * 2u * h + p % h;
            let a = shared_run[j];
            let b = shared_run[j + h];
            shared_run[j] = a + b;
            shared_run[j + h] = a - b;
        }
        workgroupBarrier();
    }
    let norm = inverseSqrt(f32(n));
    for (var i = lid; i < n; i += 64u) {
        x[base + i] = shared_run[i] * norm;
    }
}
