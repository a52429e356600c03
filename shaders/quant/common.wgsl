// Byte-addressed reads from the weight words `w: array<u32>` (declared by the including kernel).
//
// Weights stay in their GGUF block bytes, uploaded unchanged into buffers of u32 words (padded
// with zeros to a multiple of 4 bytes). Blocks are not word aligned (Q4_0 is 18 bytes, Q6_K
// 210), so every field is read from the words that hold it at any byte offset `b`:
// - bytes with `w_u8`; 4 consecutive bytes at any offset with `w_u32` (one or two words);
// - f16 scales with `w_f16`: every block size is even, so f16 fields sit at even offsets and
//   never straddle two words; `unpack2x16float` widens them (no `enable f16;` needed).
// Each format snippet (quant/<type>.wgsl) defines, over the byte address `row` of a weight row:
// - `dq8(row, g) -> F8`: values 8g..8g+8 of the row (the matmul and embedding inner step);
// - `dq1(row, i) -> f32`: value i (for rows whose length is not a multiple of 8: F32/F16/BF16).
// Every function performs the same f32 operations in the same order as the CPU reference in
// runtime/src/quant (a GPU compiler may still contract `a * b + c` into one fma).

struct F8 {
    a: vec4<f32>,
    b: vec4<f32>,
}

fn w_u8(b: u32) -> u32 {
    return (w[b >> 2u] >> ((b & 3u) * 8u)) & 0xffu;
}

// The little-endian u16 at the even byte address `b`.
fn w_u16(b: u32) -> u32 {
    return (w[b >> 2u] >> ((b & 2u) * 8u)) & 0xffffu;
}

// The f16 at the even byte address `b`, widened to f32.
fn w_f16(b: u32) -> f32 {
    return unpack2x16float(w_u16(b)).x;
}

// The little-endian u32 at any byte address `b` (bytes b..b+4 lie inside the buffer).
fn w_u32(b: u32) -> u32 {
    let i = b >> 2u;
    let s = (b & 3u) * 8u;
    if (s == 0u) {
        return w[i];
    }
    return (w[i] >> s) | (w[i + 1u] << (32u - s));
}

// The four nibbles at bit `shift` of each byte of `q`, in byte order.
fn nib4(q: u32, shift: u32) -> vec4<u32> {
    return (vec4<u32>(q, q >> 8u, q >> 16u, q >> 24u) >> vec4<u32>(shift)) & vec4<u32>(0xfu);
}

// The four bytes of `q` as signed 8-bit integers, in byte order.
fn i8x4(q: u32) -> vec4<f32> {
    let v = bitcast<vec4<i32>>(vec4<u32>(q << 24u, q << 16u, q << 8u, q)) >> vec4<u32>(24u);
    return vec4<f32>(v);
}

// Component j (0..8) of an F8.
fn f8_at(v: F8, j: u32) -> f32 {
    if (j < 4u) {
        return v.a[j];
    }
    return v.b[j - 4u];
}
