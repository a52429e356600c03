// The device's f32 multiply-add rate, measured by `voyager bench` so that prefill can be
// reported as a fraction of it: each thread runs `iters` rounds of 32 independent fused
// multiply-adds (8 vec4 chains, enough to hide the FMA latency), then writes one sum so that
// nothing is optimized away. `b` and `c` come from the uniform, so no compiler can fold the
// chains. 2 * 32 * iters flops per thread.

struct Params {
    n: u32,          // threads that write a result
    row_stride: u32, // threads in one row of the grid
    iters: u32,
    _pad: u32,
    b: f32,
    c: f32,
    _pad1: u32,
    _pad2: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(256, 1, 1)
fn fma_chains(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * params.row_stride + gid.x;
    if (i >= params.n) {
        return;
    }
    let b = vec4<f32>(params.b);
    let c = vec4<f32>(params.c);
    let s = f32(i & 1023u) * 0.0009765625;
    var a0 = vec4<f32>(s, s + 0.01, s + 0.02, s + 0.03);
    var a1 = a0 + 0.1;
    var a2 = a0 + 0.2;
    var a3 = a0 + 0.3;
    var a4 = a0 + 0.4;
    var a5 = a0 + 0.5;
    var a6 = a0 + 0.6;
    var a7 = a0 + 0.7;
    for (var k = 0u; k < params.iters; k++) {
        a0 = fma(a0, b, c);
        a1 = fma(a1, b, c);
        a2 = fma(a2, b, c);
        a3 = fma(a3, b, c);
        a4 = fma(a4, b, c);
        a5 = fma(a5, b, c);
        a6 = fma(a6, b, c);
        a7 = fma(a7, b, c);
    }
    let t = (a0 + a1) + (a2 + a3) + ((a4 + a5) + (a6 + a7));
    out[i] = (t.x + t.y) + (t.z + t.w);
}
