// dst[i] = src[i] over 16-byte elements: the device's copy bandwidth, measured by
// `voyager bench` in the same run as decode so that "fraction of bandwidth" compares two
// figures from one device, driver and clock state.
//
// One thread per 16-byte element (the widest load WGSL has), 256 threads per workgroup, the
// workgroups in a 2-D grid (x * y) so that the count may exceed 65535 * 256; `row_stride` is
// the number of threads in one row of the grid. Threads past the end do nothing.

struct Params {
    n: u32,          // 16-byte elements to copy
    row_stride: u32, // threads in one row of the grid
    _pad0: u32,
    _pad1: u32,
}

@group(0) @binding(0) var<uniform> params: Params;
@group(0) @binding(1) var<storage, read> src: array<vec4<u32>>;
@group(0) @binding(2) var<storage, read_write> dst: array<vec4<u32>>;

@compute @workgroup_size(256, 1, 1)
fn copy_vec4(@builtin(global_invocation_id) gid: vec3<u32>) {
    let i = gid.y * params.row_stride + gid.x;
    if (i < params.n) {
        dst[i] = src[i];
    }
}
