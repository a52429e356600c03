#!/usr/bin/env python3
"""Writes the CPU dequantization fixtures in tests/fixtures/dequant/.

The referee is gguf-py (`gguf.quants.dequantize`), independent of our Rust code.
One JSON file per ggml type, each holding a list of cases:

    {"type": "Q4_K",
     "source": "gemma-3-270m-q4_k_m.gguf:blk.3.attn_output.weight@block 1234",
     "bytes_hex": "...",          # raw block bytes, a whole number of blocks
     "values": [...],             # gguf-py's output as JSON numbers (repr of the f32; inf -> null)
     "values_bits": ["3f800000", ...]}  # the same values as f32 bit patterns (authoritative)

Sources:
  * real tensors of the two test models, for every type they contain, taking blocks
    from the middle, a random place and the end of two different tensors;
  * gguf-py's quantizer on seeded random normal data (BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0; F16 by
    numpy's cast), for types it can produce;
  * seeded random bytes with sane f16 scale fields (finite, moderate magnitude, one subnormal) for
    the k-quants, which gguf-py cannot quantize to; Q4_K and Q6_K get these too, so that every
    bit of the scale packing is exercised, not just the patterns the real quantizer emitted.

Usage: python tests/scripts/make_dequant_fixtures.py [--models DIR] [--out DIR]
(needs the `gguf` and `numpy` packages).
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from importlib.metadata import version

import numpy as np
import gguf
from gguf import GGMLQuantizationType as T
from gguf.constants import GGML_QUANT_SIZES

SEED = 20250117
MODELS = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]
SUPPORTED = ["F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0",
             "Q2_K", "Q3_K", "Q4_K", "Q5_K", "Q6_K"]
# Byte offsets of the f16 scale fields inside one block, for the random-byte k-quant blocks.
K_SCALE_OFFSETS = {
    "Q2_K": [80, 82],  # d, dmin after scales[16] and qs[64]
    "Q3_K": [108],     # d after hmask[32], qs[64], scales[12]
    "Q4_K": [0, 2],    # d, dmin first
    "Q5_K": [0, 2],
    "Q6_K": [208],     # d after ql[128], qh[64], scales[16]
}


def reference(qtype: T, raw: bytes) -> np.ndarray:
    out = gguf.quants.dequantize(np.frombuffer(raw, dtype=np.uint8).copy(), qtype)
    out = np.asarray(out, dtype=np.float32).reshape(-1)
    assert not np.isnan(out).any(), f"{qtype.name}: NaN in reference output"
    return out


def case(name: str, source: str, raw: bytes) -> dict:
    qtype = T[name]
    block_len, block_bytes = GGML_QUANT_SIZES[qtype]
    assert len(raw) % block_bytes == 0
    values = reference(qtype, raw)
    assert values.size == len(raw) // block_bytes * block_len
    return {
        "type": name,
        "source": source,
        "bytes_hex": raw.hex(),
        # float(np.float32) is exact and its repr round-trips; JSON has no inf, so those are null.
        "values": [float(v) if np.isfinite(v) else None for v in values],
        "values_bits": [f"{b:08x}" for b in values.view(np.uint32)],
    }


def real_cases(models_dir: str, rng: np.random.Generator) -> dict[str, list[dict]]:
    by_type: dict[str, list[tuple[str, object]]] = defaultdict(list)
    for model in MODELS:
        reader = gguf.GGUFReader(os.path.join(models_dir, model))
        for t in reader.tensors:
            by_type[t.tensor_type.name].append((model, t))

    cases: dict[str, list[dict]] = defaultdict(list)
    for name, tensors in sorted(by_type.items()):
        if name not in SUPPORTED:
            continue
        # Two different tensors: the largest one and one from the middle of the list, preferring
        # the other model for the second when the type occurs in both.
        first = max(range(len(tensors)), key=lambda i: tensors[i][1].n_bytes)
        others = [i for i in range(len(tensors)) if i != first]
        other_model = [i for i in others if tensors[i][0] != tensors[first][0]]
        pool = other_model or others
        picks = [first] + ([pool[len(pool) // 2]] if pool else [])
        qtype = T[name]
        block_len, block_bytes = GGML_QUANT_SIZES[qtype]
        # Floats are "blocks" of one value; take runs of 32 values instead.
        run = 32 if block_len == 1 else 2
        for i in picks:
            model, t = tensors[i]
            raw = np.asarray(t.data).view(np.uint8).reshape(-1).tobytes()
            n_blocks = len(raw) // block_bytes
            starts = sorted({n_blocks // 2, int(rng.integers(0, n_blocks - run)), n_blocks - run})
            for s in starts:
                chunk = raw[s * block_bytes:(s + run) * block_bytes]
                cases[name].append(case(name, f"{model}:{t.name}@block {s}", chunk))
    return cases


def quantizer_cases(rng: np.random.Generator) -> dict[str, list[dict]]:
    cases: dict[str, list[dict]] = defaultdict(list)
    # F16: normal data at two scales, plus the edge values an f16 converter must get right.
    for scale in (1.0, 0.02):
        x = (rng.standard_normal(64) * scale).astype(np.float16)
        cases["F16"].append(case("F16", f"seed {SEED}: numpy float16 of N(0, {scale})", x.tobytes()))
    edges = np.array([0.0, -0.0, 1.0, -2.0, 65504.0, -65504.0, 6.1035156e-05, 5.9604645e-08,
                      -5.9604645e-08, 3.0517578e-05, np.inf, -np.inf, 0.33325195, 1e-3, 1e4, -7.5],
                     dtype=np.float16)
    cases["F16"].append(case("F16", "hand-picked edge values (zeros, subnormals, max, inf)",
                             edges.tobytes()))
    for name in ["BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0"]:
        qtype = T[name]
        block_len, _ = GGML_QUANT_SIZES[qtype]
        n = 64 if block_len == 1 else 4 * block_len
        for scale in (1.0, 0.02):
            x = (rng.standard_normal(n) * scale).astype(np.float32)
            # Shift one block so that Q4_1/Q5_1 mins are not all negative.
            x[:block_len] += np.float32(3 * scale)
            q = gguf.quants.quantize(x, qtype)
            cases[name].append(case(name, f"seed {SEED}: gguf-py quantize of N(0, {scale})",
                                    np.asarray(q, dtype=np.uint8).tobytes()))
    return cases


def random_kquant_cases(rng: np.random.Generator) -> dict[str, list[dict]]:
    cases: dict[str, list[dict]] = defaultdict(list)
    for name, offsets in K_SCALE_OFFSETS.items():
        _, block_bytes = GGML_QUANT_SIZES[T[name]]
        for variant in range(2):
            n_blocks = 3
            raw = bytearray(rng.integers(0, 256, size=n_blocks * block_bytes, dtype=np.uint8).tobytes())
            for b in range(n_blocks):
                for off in offsets:
                    if variant == 1 and b == 2:
                        mag = 2.0 ** -20  # an f16 subnormal
                    else:
                        mag = 10.0 ** rng.uniform(-4.0, -1.0)
                    sign = -1.0 if rng.random() < 0.25 else 1.0
                    raw[b * block_bytes + off:b * block_bytes + off + 2] = \
                        np.float16(sign * mag).tobytes()
            cases[name].append(case(name, f"seed {SEED}: random bytes, random f16 scales "
                                          f"(variant {variant})", bytes(raw)))
    return cases


def main() -> None:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="/tmp/models")
    ap.add_argument("--out", default=os.path.join(root, "tests", "fixtures", "dequant"))
    args = ap.parse_args()

    rng = np.random.default_rng(SEED)
    all_cases: dict[str, list[dict]] = defaultdict(list)
    for part in (real_cases(args.models, rng), quantizer_cases(rng), random_kquant_cases(rng)):
        for name, cs in part.items():
            all_cases[name].extend(cs)

    missing = [n for n in SUPPORTED if n not in all_cases]
    assert not missing, f"no fixtures for {missing}"

    os.makedirs(args.out, exist_ok=True)
    total = 0
    for name in SUPPORTED:
        path = os.path.join(args.out, f"{name.lower()}.json")
        doc = {"type": name, "seed": SEED, "generator": "tests/scripts/make_dequant_fixtures.py",
               "reference": f"gguf-py {version('gguf')} gguf.quants.dequantize",
               "cases": all_cases[name]}
        with open(path, "w") as f:
            json.dump(doc, f, separators=(",", ":"), allow_nan=False)
            f.write("\n")
        size = os.path.getsize(path)
        total += size
        n_vals = sum(len(c["values"]) for c in all_cases[name])
        print(f"{name:5} {len(all_cases[name]):3} cases {n_vals:6} values {size:8} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
