#!/usr/bin/env python3
"""Write an all-F32 copy of a GGUF model using llama.cpp's own quantizer.

Every quantized tensor is dequantized by llama.cpp (exactly: dequantization is
deterministic) and stored as F32, so the copy is the "same" model with no
quantization arithmetic left in the forward pass.  It serves as a higher
precision reference for agreement tests of the GPU transformer.

Usage (needs llama-cpp-python, e.g. the venv /tmp/llvenv):

    /tmp/llvenv/bin/python tests/scripts/make_f32_reference.py \
        /tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        /tmp/models/f32/SmolLM2-135M-Instruct.F32.gguf

Never put the output inside the repository: F32 copies are hundreds of MB
(.gitignore ignores *.gguf anyway).
"""
import os
import sys
import time

import llama_cpp

LLAMA_FTYPE_ALL_F32 = 0


def make_f32_copy(src: str, dst: str, nthread: int = 2) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = LLAMA_FTYPE_ALL_F32
    params.allow_requantize = True
    params.nthread = nthread
    t0 = time.time()
    rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), params)
    if rc != 0:
        raise SystemExit(f"llama_model_quantize failed with code {rc}")
    print(f"wrote {dst} ({os.path.getsize(dst) / 2**20:.1f} MiB) in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    make_f32_copy(sys.argv[1], sys.argv[2])
