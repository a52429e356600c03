// The cooperative matmul's entry point, adding partial sums through subgroups: each subgroup
// of S lanes (a power of two, at most 64: the host checks) adds its lanes' sums by xor
// shuffles (a butterfly of depth log2 S, no barrier), lane 0 writes the subgroup's sum, and
// after one barrier thread o adds the 64 / S subgroup sums of output o pairwise (depth
// log2(64 / S)). Each output is a binary tree of depth 6, as in `reduce_tree`, with one
// barrier instead of seven. Subgroups are full (64 is a multiple of S), so every shuffle
// reads a live lane.

var<workgroup> partial: array<f32, WG * OUTS>;

@compute @workgroup_size(64, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_index) lid: u32,
    @builtin(subgroup_size) sg_size: u32,
    @builtin(subgroup_invocation_id) lane: u32,
    @builtin(subgroup_id) sg: u32,
    @builtin(num_subgroups) n_sg: u32,
) {
    let acc = accumulate(wg, lid);
    for (var o = 0u; o < OUTS; o++) {
        var v = acc[o];
        for (var m = 1u; m < sg_size; m <<= 1u) {
            v += subgroupShuffleXor(v, m);
        }
        if (lane == 0u) {
            partial[o * WG + sg] = v;
        }
    }
    workgroupBarrier();
    if (lid < OUTS) {
        let base = lid * WG;
        for (var s = n_sg / 2u; s > 0u; s >>= 1u) {
            for (var j = 0u; j < s; j++) {
                partial[base + j] += partial[base + j + s];
            }
        }
        store(wg, lid, partial[base]);
    }
}
