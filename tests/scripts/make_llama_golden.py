#!/usr/bin/env python3
"""Golden reference data from llama.cpp (via llama-cpp-python) for the GPU
transformer's agreement tests.

For each model it writes tests/fixtures/llama/<name>.json with

* ``perplexity``: ONE window of 2048 tokens of real prose
  (tests/fixtures/text/alice-20k.txt).  The text is tokenized WITHOUT special
  tokens (``Llama.tokenize(text, add_bos=False, special=False)``); if the model
  adds BOS (gemma3) the window is BOS + the first 2047 ids, otherwise (SmolLM2,
  add_bos_token = false) it is the first 2048 ids.  Evaluated with
  ``logits_all=True``, n_ctx=2048, n_batch=n_ubatch=512, F16 KV cache, flash
  attention off.  Position i (0..2046) predicts ids[i+1] from ids[..=i]; per
  position we store the arg-max id (``top1``) and the log-softmax of the target
  (``target_logprob``, computed in float64 from llama.cpp's float32 logits).
  mean_nll = -mean(target_logprob); ppl = exp(mean_nll).
  Runs: ``shipped`` (the GGUF as shipped) and ``f32`` (an all-F32 copy made by
  tests/scripts/make_f32_reference.py: same weights, dequantized exactly).
  ``referee`` compares the shipped run with the F32 copy and with llama.cpp
  itself under other settings (flash attention on; n_batch=n_ubatch=128): top-1
  agreement and mean/max |delta target_logprob|, i.e. how much llama.cpp
  disagrees with itself ("know the referee").  A summary-only run
  ``f32_kv_f32`` (F32 copy, F32 KV cache, no flash attention: the most precise
  configuration llama.cpp's CPU backend offers) is the yardstick the others are
  also compared against.
* ``greedy``: 3 prompts (tokenized as llama.cpp does: add_bos per model,
  special=True), 32 greedy steps computed here from the raw logits (arg-max,
  first index on ties; the prompt is decoded as one batch, then one token per
  decode).  EOS does not stop generation; ``eos_at``/``eog_at`` record the first
  step that chose the EOS token / any end-of-generation token.  Each step has
  the chosen id, the runner-up id and ``margin`` = top1 logit - top2 logit so a
  test can tell near-ties.  For both the shipped model and the F32 copy.

Floats are rounded to 5 decimals.

How to re-run (2 CPU threads; ~5 minutes on 2 slow cores):

    # once: the F32 copies, outside the repo
    /tmp/llvenv/bin/python tests/scripts/make_f32_reference.py \
        /tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        /tmp/models/f32/SmolLM2-135M-Instruct.F32.gguf
    /tmp/llvenv/bin/python tests/scripts/make_f32_reference.py \
        /tmp/models/gemma-3-270m-q4_k_m.gguf /tmp/models/f32/gemma-3-270m.F32.gguf
    # then
    nice -n 10 /tmp/llvenv/bin/python tests/scripts/make_llama_golden.py [smollm2-135m] [gemma3-270m]

The venv needs llama-cpp-python 0.3.x (CPU build), numpy and jinja2.
Model paths can be overridden with VOYAGER_MODELS_DIR (default /tmp/models,
F32 copies in $VOYAGER_MODELS_DIR/f32).
"""
import datetime
import hashlib
import json
import math
import os
import platform
import sys
import time

import numpy as np
import jinja2
import llama_cpp
from llama_cpp import Llama

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODELS = os.environ.get("VOYAGER_MODELS_DIR", "/tmp/models")
TEXT = os.path.join(REPO, "tests", "fixtures", "text", "alice-20k.txt")
OUT_DIR = os.path.join(REPO, "tests", "fixtures", "llama")

WINDOW = 2048
N_THREADS = 2
N_GREEDY = 32

MODELS_TABLE = {
    "smollm2-135m": {
        "shipped": "SmolLM2-135M-Instruct.Q4_1.gguf",
        "f32": "f32/SmolLM2-135M-Instruct.F32.gguf",
    },
    "gemma3-270m": {
        "shipped": "gemma-3-270m-q4_k_m.gguf",
        "f32": "f32/gemma-3-270m.F32.gguf",
    },
}

CHAT_QUESTION = "What is 2+2?"


def r5(x):
    return round(float(x), 5)


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load(path, n_batch=512, flash_attn=False, kv_f32=False):
    kv = {"type_k": 0, "type_v": 0} if kv_f32 else {}  # GGML_TYPE_F32 = 0
    return Llama(
        **kv,
        model_path=path,
        n_ctx=WINDOW,
        n_batch=n_batch,
        n_ubatch=n_batch,
        n_threads=N_THREADS,
        n_threads_batch=N_THREADS,
        logits_all=True,
        flash_attn=flash_attn,
        n_gpu_layers=0,
        seed=0,
        verbose=False,
    )


def window_ids(llm, text_bytes):
    ids = llm.tokenize(text_bytes, add_bos=False, special=False)
    add_bos = bool(llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm._model.model)))
    if add_bos:
        win = [llm.token_bos()] + ids[: WINDOW - 1]
    else:
        win = ids[:WINDOW]
    assert len(win) == WINDOW, f"text too short: {len(ids)} tokens"
    return win, add_bos, len(ids)


def score_window(llm, ids):
    """Evaluate the window; return (top1 list, target_logprob np.float64 array, seconds)."""
    llm.reset()
    t0 = time.time()
    llm.eval(ids)
    secs = time.time() - t0
    scores = llm.scores  # (n_ctx, n_vocab) float32, rows 0..len(ids)-1 valid
    n = len(ids) - 1
    top1 = np.empty(n, dtype=np.int64)
    lp = np.empty(n, dtype=np.float64)
    for s in range(0, n, 64):
        e = min(n, s + 64)
        rows = np.asarray(scores[s:e], dtype=np.float32)
        top1[s:e] = rows.argmax(axis=1)
        r64 = rows.astype(np.float64)
        m = r64.max(axis=1, keepdims=True)
        lse = (m + np.log(np.exp(r64 - m).sum(axis=1, keepdims=True)))[:, 0]
        tgt = np.asarray(ids[s + 1 : e + 1])
        lp[s:e] = r64[np.arange(e - s), tgt] - lse
    return top1, lp, secs


def summarize(top1, lp, secs):
    mean_nll = float(-lp.mean())
    return {
        "mean_nll": r5(mean_nll),
        "ppl": r5(math.exp(mean_nll)),
        "eval_seconds": round(secs, 2),
    }


def compare(a, b):
    (t1a, lpa), (t1b, lpb) = a, b
    d = np.abs(lpa - lpb)
    return {
        "top1_agreement": r5((t1a == t1b).mean()),
        "top1_disagreements": int((t1a != t1b).sum()),
        "mean_abs_delta_logprob": r5(d.mean()),
        "max_abs_delta_logprob": r5(d.max()),
        "abs_delta_ppl": r5(abs(math.exp(-lpa.mean()) - math.exp(-lpb.mean()))),
    }


def chat_prompt(name, llm):
    if name.startswith("gemma"):
        return f"<start_of_turn>user\n{CHAT_QUESTION}<end_of_turn>\n<start_of_turn>model\n"
    tmpl = llm.metadata["tokenizer.chat_template"]
    env = jinja2.Environment(loader=jinja2.BaseLoader(), trim_blocks=False, lstrip_blocks=False)
    return env.from_string(tmpl).render(
        messages=[{"role": "user", "content": CHAT_QUESTION}],
        add_generation_prompt=True,
        bos_token=llm.detokenize([llm.token_bos()], special=True).decode(),
        eos_token=llm.detokenize([llm.token_eos()], special=True).decode(),
    )


def greedy(llm, prompt_ids):
    vocab = llama_cpp.llama_model_get_vocab(llm._model.model)
    llm.reset()
    llm.eval(prompt_ids)
    steps = []
    eos_at = eog_at = None
    t0 = time.time()
    for k in range(N_GREEDY):
        row = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float32)
        tok = int(row.argmax())  # first index on ties
        masked = row.copy()
        masked[tok] = -np.inf
        second = int(masked.argmax())
        steps.append({"id": tok, "second": second, "margin": r5(float(row[tok]) - float(row[second]))})
        if eos_at is None and tok == llm.token_eos():
            eos_at = k
        if eog_at is None and llama_cpp.llama_vocab_is_eog(vocab, tok):
            eog_at = k
        if k + 1 < N_GREEDY:
            llm.eval([tok])
    secs = time.time() - t0
    ids = [s["id"] for s in steps]
    return {
        "ids": ids,
        "text": llm.detokenize(ids, special=True).decode("utf-8", errors="replace"),
        "steps": steps,
        "eos_at": eos_at,
        "eog_at": eog_at,
        "seconds": round(secs, 2),
    }


def run_model(name):
    paths = {k: os.path.join(MODELS, v) for k, v in MODELS_TABLE[name].items()}
    for p in paths.values():
        if not os.path.exists(p):
            raise SystemExit(f"missing {p} (see the docstring: make_f32_reference.py)")
    text_bytes = open(TEXT, "rb").read()
    out = {
        "model": name,
        "meta": {
            "generator": "tests/scripts/make_llama_golden.py",
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "llama_cpp_python_version": llama_cpp.__version__,
            "llama_cpp_system_info": llama_cpp.llama_print_system_info().decode().strip(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "files": {
                k: {"name": os.path.basename(p), "sha256": sha256(p), "bytes": os.path.getsize(p)}
                for k, p in paths.items()
            },
            "f32_copy": "llama_model_quantize(ftype=ALL_F32 (0), allow_requantize=True) of the shipped file",
            "text": {
                "path": os.path.relpath(TEXT, REPO),
                "sha256": hashlib.sha256(text_bytes).hexdigest(),
                "bytes": len(text_bytes),
            },
            "settings": {
                "n_ctx": WINDOW,
                "n_batch": 512,
                "n_ubatch": 512,
                "kv_cache_type": "f16 (default)",
                "flash_attn": False,
                "n_threads": N_THREADS,
                "backend": "CPU",
                "logits_all": True,
                "logprob": "log_softmax in float64 of the float32 logits",
                "rounding": "floats rounded to 5 decimals",
                "greedy": "argmax of raw logits, first index on ties, 32 steps, prompt decoded as one batch then one token per decode, EOS does not stop",
            },
        },
    }
    print(f"[{name}] tokenizing + shipped run", flush=True)
    llm = load(paths["shipped"])
    ids, add_bos, n_text_tokens = window_ids(llm, text_bytes)
    out["meta"]["add_bos"] = add_bos
    out["meta"]["bos_id"] = llm.token_bos()
    out["meta"]["eos_id"] = llm.token_eos()
    out["meta"]["n_vocab"] = llm.n_vocab()
    out["meta"]["text"]["n_tokens_no_special"] = n_text_tokens

    runs = {}
    runs["shipped"] = score_window(llm, ids)
    print(f"  shipped ppl {math.exp(-runs['shipped'][1].mean()):.4f} ({runs['shipped'][2]:.1f}s)", flush=True)

    # greedy, shipped
    prompts = [
        {"name": "capital", "text": "The capital of France is"},
        {"name": "once", "text": "Once upon a time"},
        {"name": "chat", "text": chat_prompt(name, llm)},
    ]
    for p in prompts:
        p["ids"] = llm.tokenize(p["text"].encode(), add_bos=add_bos, special=True)
    greedy_out = {"prompts": prompts, "shipped": {}, "f32": {}}
    for p in prompts:
        greedy_out["shipped"][p["name"]] = greedy(llm, p["ids"])
        print(f"  greedy shipped {p['name']}: {greedy_out['shipped'][p['name']]['text']!r}", flush=True)
    del llm

    print(f"[{name}] flash_attn run", flush=True)
    llm = load(paths["shipped"], flash_attn=True)
    runs["shipped_flash_attn"] = score_window(llm, ids)
    del llm
    print(f"[{name}] n_batch=128 run", flush=True)
    llm = load(paths["shipped"], n_batch=128)
    runs["shipped_n_batch_128"] = score_window(llm, ids)
    del llm

    print(f"[{name}] F32 copy run", flush=True)
    llm = load(paths["f32"])
    runs["f32"] = score_window(llm, ids)
    print(f"  f32 ppl {math.exp(-runs['f32'][1].mean()):.4f} ({runs['f32'][2]:.1f}s)", flush=True)
    llm2 = load(paths["f32"], kv_f32=True)
    print(f"[{name}] F32 copy + F32 KV cache run", flush=True)
    runs["f32_kv_f32"] = score_window(llm2, ids)
    del llm2
    for p in prompts:
        assert llm.tokenize(p["text"].encode(), add_bos=add_bos, special=True) == p["ids"]
        greedy_out["f32"][p["name"]] = greedy(llm, p["ids"])
        print(f"  greedy f32 {p['name']}: {greedy_out['f32'][p['name']]['text']!r}", flush=True)
    del llm

    ppl = {
        "window_ids": [int(t) for t in ids],
        "scored_positions": WINDOW - 1,
        "runs": {},
    }
    for k in ("shipped", "f32"):
        top1, lp, secs = runs[k]
        ppl["runs"][k] = summarize(top1, lp, secs)
        ppl["runs"][k]["top1"] = [int(t) for t in top1]
        ppl["runs"][k]["target_logprob"] = [r5(x) for x in lp]
    for k in ("shipped_flash_attn", "shipped_n_batch_128", "f32_kv_f32"):
        ppl["runs"][k] = summarize(*runs[k])
    ppl["referee"] = {
        "shipped_vs_f32": compare(runs["shipped"][:2], runs["f32"][:2]),
        "shipped_vs_flash_attn": compare(runs["shipped"][:2], runs["shipped_flash_attn"][:2]),
        "shipped_vs_n_batch_128": compare(runs["shipped"][:2], runs["shipped_n_batch_128"][:2]),
        # against the most precise thing llama.cpp offers here: F32 weights, F32 KV cache, no flash attention
        "shipped_vs_f32_kv_f32": compare(runs["shipped"][:2], runs["f32_kv_f32"][:2]),
        "shipped_flash_attn_vs_f32_kv_f32": compare(runs["shipped_flash_attn"][:2], runs["f32_kv_f32"][:2]),
        "f32_vs_f32_kv_f32": compare(runs["f32"][:2], runs["f32_kv_f32"][:2]),
    }
    # greedy agreement shipped vs f32
    for p in prompts:
        a = greedy_out["shipped"][p["name"]]["ids"]
        b = greedy_out["f32"][p["name"]]["ids"]
        first = next((i for i in range(len(a)) if a[i] != b[i]), None)
        greedy_out.setdefault("shipped_vs_f32_first_divergence", {})[p["name"]] = first
    out["perplexity"] = ppl
    out["greedy"] = greedy_out

    dst = os.path.join(OUT_DIR, f"{name}.json")
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(dst, "w") as f:
        json.dump(out, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {dst} ({os.path.getsize(dst)} bytes)")
    for k, v in ppl["runs"].items():
        print(f"  {k}: ppl {v['ppl']} nll {v['mean_nll']} eval {v['eval_seconds']}s")
    for k, v in ppl["referee"].items():
        print(f"  {k}: {v}")
    print(f"  greedy first divergence shipped vs f32: {greedy_out['shipped_vs_f32_first_divergence']}")


if __name__ == "__main__":
    names = sys.argv[1:] or list(MODELS_TABLE)
    for n in names:
        if n not in MODELS_TABLE:
            raise SystemExit(f"unknown model {n}; choose from {list(MODELS_TABLE)}")
        run_model(n)
