// y[t][first_row + r] = sum_i W[r][i] * x[t][i] for the rows r of one weight chunk and the
// tokens t < step.n_tokens: the projection of every transformer layer, and the logits.
//
// A template, assembled per weight type by runtime/src/gpu/preprocess.rs: {{QUANT}} names the
// format snippet in shaders/quant/ (dq8/dq1 over the chunk's words `w`), {{TILE}} is the number
// of tokens a workgroup handles (1: the decode mat-vec, `matvec_<type>`; 8: prefill,
// `matmul_<type>`), {{ROWS}} the number of rows, {{REDUCE}} how partial sums meet.
//
// A workgroup of 64 threads owns ROWS consecutive rows and TILE consecutive tokens. Thread l
// walks the 8-value groups l, l + 64, ... of the rows: it dequantizes the group of each of its
// ROWS rows once and multiplies it with the same 8 activations of every token of the tile, so
// each weight is read once per TILE tokens and each activation once per ROWS rows. The 64
// partial sums of every (row, token) then meet in workgroup memory and are added by a tree
// (depth 6). All arithmetic is f32.
//
// The grid: (x, y) enumerate groups of ROWS rows (row group = y * params.grid_x + x, a 2-D
// grid because a 262144-row vocabulary needs more than 65535 workgroups), z the token tiles.
//
// `rowwise` is the same product without cooperation: each of the 64 threads owns one whole row
// (a workgroup covers 64 rows) times the token tile, so no workgroup memory and no barrier is
// needed. On GPUs the cooperative `main` reads memory better; on CPU adapters (software Vulkan)
// barriers are what costs, and `rowwise` is several times faster. The host picks one per device.

struct Step {
    n_tokens: u32,
    pos: u32,
    n_kv: u32,
    _pad: u32,
}

struct Params {
    k: u32,          // values per row (the input dimension)
    n: u32,          // rows of the whole weight: y's row stride
    first_row: u32,  // the chunk's first row
    chunk_rows: u32, // rows in this chunk
    row_bytes: u32,  // bytes per row
    grid_x: u32,     // workgroups along x
    max_tokens: u32, // tokens x and y hold
    _pad: u32,
}

@group(0) @binding(0) var<uniform> step: Step;
@group(0) @binding(1) var<uniform> params: Params;
@group(0) @binding(2) var<storage, read> w: array<u32>;
@group(0) @binding(3) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> y: array<f32>;

//!include "quant/common.wgsl"
//!include "quant/{{QUANT}}.wgsl"

const WG: u32 = 64u;

// Activation i of the flattened x (any index).
fn x1(i: u32) -> f32 {
    return x[i >> 2u][i & 3u];
}

// Activations b..b+8: two vector loads when rows of x are 16-byte aligned (k % 4 == 0, then b,
// a multiple of 8 within a row, is too), eight scalar ones otherwise.
fn x8(b: u32) -> F8 {
    if ((params.k & 3u) == 0u) {
        return F8(x[b >> 2u], x[(b >> 2u) + 1u]);
    }
    return F8(
        vec4<f32>(x1(b), x1(b + 1u), x1(b + 2u), x1(b + 3u)),
        vec4<f32>(x1(b + 4u), x1(b + 5u), x1(b + 6u), x1(b + 7u)),
    );
}
const ROWS: u32 = {{ROWS}}u;
const TILE: u32 = {{TILE}}u;
const OUTS: u32 = ROWS * TILE;

// Thread `lid`'s partial sums of the workgroup's ROWS x TILE outputs (output r * TILE + t):
// the products of the 8-value groups lid, lid + 64, ... of each row with each token.
fn accumulate(wg: vec3<u32>, lid: u32) -> array<f32, OUTS> {
    let n_tokens = min(step.n_tokens, params.max_tokens);
    let r0 = (wg.y * params.grid_x + wg.x) * ROWS;
    let t0 = wg.z * TILE;
    let k = params.k;
    let groups = k / 8u;

    var acc: array<f32, OUTS>;
    var v: array<F8, ROWS>;
    for (var g = lid; g < groups; g += WG) {
        for (var r = 0u; r < ROWS; r++) {
            if (r0 + r < params.chunk_rows) {
                v[r] = dq8((r0 + r) * params.row_bytes, g);
            }
        }
        for (var t = 0u; t < TILE; t++) {
            if (t0 + t < n_tokens) {
                let xv = x8((t0 + t) * k + 8u * g);
                for (var r = 0u; r < ROWS; r++) {
                    acc[r * TILE + t] += dot(v[r].a, xv.a) + dot(v[r].b, xv.b);
                }
            }
        }
    }
    // The last k % 8 values (only F32/F16/BF16 rows may have them).
    for (var i = 8u * groups + lid; i < k; i += WG) {
        for (var r = 0u; r < ROWS; r++) {
            if (r0 + r < params.chunk_rows) {
                let wv = dq1((r0 + r) * params.row_bytes, i);
                for (var t = 0u; t < TILE; t++) {
                    if (t0 + t < n_tokens) {
                        acc[r * TILE + t] += wv * x1((t0 + t) * k + i);
                    }
                }
            }
        }
    }
    return acc;
}

// Stores output `o` (= r * TILE + t) of the workgroup, the sum of its 64 partial sums.
fn store(wg: vec3<u32>, o: u32, value: f32) {
    let n_tokens = min(step.n_tokens, params.max_tokens);
    let r = o / TILE;
    let t = o % TILE;
    let r0 = (wg.y * params.grid_x + wg.x) * ROWS;
    let t0 = wg.z * TILE;
    if (r0 + r < params.chunk_rows && t0 + t < n_tokens) {
        y[(t0 + t) * params.n + params.first_row + r0 + r] = value;
    }
}

// The cooperative entry point `main`: the 64 partial sums of every output meet along a
// binary tree of depth 6, through workgroup memory alone (`tree`) or through subgroup
// shuffles and then workgroup memory (`subgroup`).
//!include "matmul/reduce_{{REDUCE}}.wgsl"

@compute @workgroup_size(64, 1, 1)
fn rowwise(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    // Thread lid owns rows base + lid + 64 j for j < ROWS: every activation it loads serves
    // ROWS rows (software Vulkan issues one load per thread, so loads are what costs there).
    let n_tokens = min(step.n_tokens, params.max_tokens);
    let base = (wg.y * params.grid_x + wg.x) * WG * ROWS + lid;
    let t0 = wg.z * TILE;
    if (base >= params.chunk_rows || t0 >= n_tokens) {
        return;
    }
    let k = params.k;
    let groups = k / 8u;
    var rows: array<u32, ROWS>;
    for (var j = 0u; j < ROWS; j++) {
        // Rows past the end repeat the last row; their sums are never stored.
        rows[j] = min(base + WG * j, params.chunk_rows - 1u) * params.row_bytes;
    }
    var acc: array<f32, OUTS>;
    for (var g = 0u; g < groups; g++) {
        var v: array<F8, ROWS>;
        for (var j = 0u; j < ROWS; j++) {
            v[j] = dq8(rows[j], g);
        }
        for (var t = 0u; t < TILE; t++) {
            if (t0 + t < n_tokens) {
                let xv = x8((t0 + t) * k + 8u * g);
                for (var j = 0u; j < ROWS; j++) {
                    acc[j * TILE + t] += dot(v[j].a, xv.a) + dot(v[j].b, xv.b);
                }
            }
        }
    }
    for (var i = 8u * groups; i < k; i++) {
        for (var t = 0u; t < TILE; t++) {
            if (t0 + t < n_tokens) {
                let xi = x1((t0 + t) * k + i);
                for (var j = 0u; j < ROWS; j++) {
                    acc[j * TILE + t] += dq1(rows[j], i) * xi;
                }
            }
        }
    }
    for (var j = 0u; j < ROWS; j++) {
        let r = base + WG * j;
        if (r < params.chunk_rows) {
            for (var t = 0u; t < TILE; t++) {
                if (t0 + t < n_tokens) {
                    y[(t0 + t) * params.n + params.first_row + r] = acc[j * TILE + t];
                }
            }
        }
    }
}
