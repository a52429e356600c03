// Where one layer's KV cache keeps each position (see runtime/src/kv/mod.rs). One storage
// buffer holds K then V; each side has three regions:
//   sinks  positions 0 .. sinks, f16, never evicted;
//   recent a copy of the newest `recent` positions (j + recent >= n_kv) in f16, slot j % recent
//          (recent = 0 when the side is f16 anyway), read only when the slot's tag (one word
//          per slot at tag_off: 1 + the position written there) says it holds j: after a
//          rollback (an edited chat turn) a slot may hold a later position;
//   ring   every position j >= sinks in the side's type, slot (j - sinks) % ring_slots.
// A slot holds n_kv_heads heads; an f16 head is head_dim / 2 words, a ring head
// ring_head_words words (blocks of 32 values, see runtime/src/kv/quant.rs). A ring slot is
// ring_slot_words: its heads, then for the codebook types (kv/codebook.wgsl) the scale bytes of
// its groups of 64 values, four to a word (group g of head h is byte h * head_dim / 64 + g).
// A centered side (mean_off != KV_NONE) stores ring values minus a per-channel mean: f32 words
// [n_kv_heads, head_dim] at mean_off, set from the first batch a session writes.
// Under the importance policy (table_off != KV_NONE) ring slots are not tied to positions: a
// slot table after V (runtime/src/kv/evict.rs) gives per ring slot s, at table_off + 2 s,
// `1 + position` (0: free) and the first position whose query no longer sees it; then per token
// t of the step its ring slot at table_off + 2 ring_slots + t; per ring slot its attention
// score (f32) at score_off + s. A query walks its sinks and every ring slot, skipping those it
// does not see.

const KV_F16: u32 = 0u;
const KV_Q8: u32 = 1u;
const KV_Q4: u32 = 2u;
const KV_TQ4: u32 = 3u;
const KV_TQ3: u32 = 4u;
// No region.
const KV_NONE: u32 = 0xffffffffu;

struct KvSide {
    ty: u32,
    head_dim: u32,
    recent: u32,
    sink_off: u32,
    recent_off: u32,
    ring_off: u32,
    ring_head_words: u32,
    mean_off: u32,
    tag_off: u32,
    ring_slot_words: u32,
    _pad1: u32,
    _pad2: u32,
}

struct KvLayout {
    n_kv_heads: u32,
    sinks: u32,
    window: u32,
    ring_slots: u32,
    k: KvSide,
    v: KvSide,
    table_off: u32,
    score_off: u32,
    _pad1: u32,
    _pad2: u32,
}

//!include "kv/codebook.wgsl"

// Words of one block of 32 values of a block type (f16, q8, q4; the codebook types are
// written by groups, kv_write.wgsl).
fn kv_block_words(ty: u32) -> u32 {
    if (ty == KV_Q8) {
        return 9u;
    }
    if (ty == KV_Q4) {
        return 5u;
    }
    return 16u;
}

// Where head kvh of position j, held in ring slot `slot` (ignored for a sink), is when n_kv
// positions have been written: (first word, type, the slot's first scale word, the byte of
// the head's first group among the slot's scales). The last two only mean something for a
// codebook type.
fn kv_locate(s: KvSide, j: u32, slot: u32, kvh: u32, n_kv: u32, lay: KvLayout) -> vec4<u32> {
    let f16_head = s.head_dim / 2u;
    if (j < lay.sinks) {
        return vec4<u32>(s.sink_off + (j * lay.n_kv_heads + kvh) * f16_head, KV_F16, 0u, 0u);
    }
    if (j + s.recent >= n_kv) {
        let r = j % s.recent;
        if (cache[s.tag_off + r] == j + 1u) {
            let base = s.recent_off + (r * lay.n_kv_heads + kvh) * f16_head;
            return vec4<u32>(base, KV_F16, 0u, 0u);
        }
    }
    let slot_base = s.ring_off + slot * s.ring_slot_words;
    return vec4<u32>(
        slot_base + kvh * s.ring_head_words,
        s.ty,
        slot_base + lay.n_kv_heads * s.ring_head_words,
        kvh * (s.head_dim / KV_TQ_GROUP),
    );
}

// The ring slot position j >= sinks is written to by token t of the step.
fn kv_write_slot(j: u32, t: u32, lay: KvLayout) -> u32 {
    if (lay.table_off != KV_NONE) {
        return cache[lay.table_off + 2u * lay.ring_slots + t];
    }
    return (j - lay.sinks) % lay.ring_slots;
}

// The first position a query at p sees in its window (the sinks aside): the window's start,
// but never inside the sinks.
fn kv_window_lo(p: u32, lay: KvLayout) -> u32 {
    var lo = 0u;
    if (p + 1u > lay.window) {
        lo = p + 1u - lay.window;
    }
    return max(lo, min(lay.sinks, p + 1u));
}

// Sink positions a query at p sees: 0 .. kv_sink_count(p).
fn kv_sink_count(p: u32, lay: KvLayout) -> u32 {
    return min(lay.sinks, kv_window_lo(p, lay));
}

// Key indices a query at p walks: its sinks and its window, or under the importance policy
// its sinks and every ring slot.
fn kv_span(p: u32, lay: KvLayout) -> u32 {
    if (lay.table_off != KV_NONE) {
        return min(lay.sinks, p + 1u) + lay.ring_slots;
    }
    return kv_sink_count(p, lay) + (p + 1u - kv_window_lo(p, lay));
}

// The i-th key index of a query at p: (position, ring slot), sinks first. The position is
// KV_NONE for a ring slot the query does not see (importance policy: free, written later, or
// dropped).
fn kv_key(i: u32, p: u32, lay: KvLayout) -> vec2<u32> {
    if (lay.table_off == KV_NONE) {
        let ns = kv_sink_count(p, lay);
        if (i < ns) {
            return vec2<u32>(i, 0u);
        }
        let j = kv_window_lo(p, lay) + (i - ns);
        return vec2<u32>(j, (j - lay.sinks) % lay.ring_slots);
    }
    let ns = min(lay.sinks, p + 1u);
    if (i < ns) {
        return vec2<u32>(i, 0u);
    }
    let slot = i - ns;
    let tag = cache[lay.table_off + 2u * slot];
    if (tag == 0u || tag - 1u > p || p >= cache[lay.table_off + 2u * slot + 1u]) {
        return vec2<u32>(KV_NONE, slot);
    }
    return vec2<u32>(tag - 1u, slot);
}
