// The codebook cache formats (tq4, tq3; runtime/src/kv/quant.rs, which holds the same
// literals): a group of 64 values is s * LEVELS[code], the levels those of the Lloyd-Max
// quantizer of the standard normal, s = 2^(e/8 - 16) from one scale byte e (0: a zero group).

const KV_TQ_GROUP: u32 = 64u;

var<private> tq_levels3: array<f32, 8> = array<f32, 8>(
    -2.152, -1.344, -0.756, -0.2451, 0.2451, 0.756, 1.344, 2.152,
);
var<private> tq_mids3: array<f32, 7> = array<f32, 7>(
    -1.748, -1.05, -0.50055, 0.0, 0.50055, 1.05, 1.748,
);
var<private> tq_levels4: array<f32, 16> = array<f32, 16>(
    -2.7326, -2.069, -1.6181, -1.2562, -0.9424, -0.6568, -0.3881, -0.1284, 0.1284, 0.3881,
    0.6568, 0.9424, 1.2562, 1.6181, 2.069, 2.7326,
);
var<private> tq_mids4: array<f32, 15> = array<f32, 15>(
    -2.4008, -1.84355, -1.43715, -1.0993, -0.7996, -0.52245, -0.25825, 0.0, 0.25825, 0.52245,
    0.7996, 1.0993, 1.43715, 1.84355, 2.4008,
);
// 2^(r/8), r in 0..8.
var<private> tq_eighths: array<f32, 8> = array<f32, 8>(
    1.0, 1.0905077, 1.1892071, 1.2968396, 1.4142135, 1.5422108, 1.6817929, 1.8340081,
);

// The scale byte e codes (exactly).
fn tq_scale(e: u32) -> f32 {
    if (e == 0u) {
        return 0.0;
    }
    return ldexp(tq_eighths[e % 8u], i32(e / 8u) - 16);
}

fn tq_level(bits: u32, c: u32) -> f32 {
    if (bits == 4u) {
        return tq_levels4[c];
    }
    return tq_levels3[c];
}

// Value i's 3-bit code from the three bit planes of its 32 values (tq3).
fn tq3_code(p0: u32, p1: u32, p2: u32, i: u32) -> u32 {
    return ((p0 >> i) & 1u) | (((p1 >> i) & 1u) << 1u) | (((p2 >> i) & 1u) << 2u);
}

// Code words of one group.
fn tq_group_words(bits: u32) -> u32 {
    return 2u * bits;
}
