// The cooperative matmul's entry point, adding partial sums through workgroup memory: thread
// l adds l + s for s = 32, 16, ..., 1 (a tree of depth 6, a barrier per level); consecutive
// threads touch consecutive words (no bank conflicts). Works on every device.

var<workgroup> partial: array<f32, WG * OUTS>;

@compute @workgroup_size(64, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
    let acc = accumulate(wg, lid);
    for (var o = 0u; o < OUTS; o++) {
        partial[o * WG + lid] = acc[o];
    }
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s) {
            for (var o = 0u; o < OUTS; o++) {
                partial[o * WG + lid] += partial[o * WG + lid + s];
            }
        }
        workgroupBarrier();
    }
    if (lid < OUTS) {
        store(wg, lid, partial[lid * WG]);
    }
}
