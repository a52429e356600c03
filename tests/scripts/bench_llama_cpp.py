"""Prefill and decode speed of llama.cpp (through llama-cpp-python) on this machine, for
docs/BENCHMARKS.md, measured the way `voyager bench` measures: a P-token prompt evaluated from
an empty cache, then N greedy tokens one at a time; median of R runs.

    python tests/scripts/bench_llama_cpp.py MODEL.gguf [-p 512] [-n 128] [-r 3] [--threads 2]
"""
import argparse
import json
import statistics
import time

import llama_cpp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("-p", type=int, default=512)
    ap.add_argument("-n", type=int, default=128)
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=512)
    args = ap.parse_args()

    llm = llama_cpp.Llama(
        model_path=args.model,
        n_ctx=args.p + args.n + 8,
        n_batch=args.batch,
        n_threads=args.threads,
        n_threads_batch=args.threads,
        verbose=False,
    )
    vocab = llm.n_vocab()
    prompt = [(i * 2654435761 >> 7) % vocab for i in range(args.p)]
    pp, tg = [], []
    for _ in range(args.r):
        llm.reset()
        start = time.perf_counter()
        llm.eval(prompt)
        pp.append(args.p / (time.perf_counter() - start))
        start = time.perf_counter()
        for _ in range(args.n):
            logits = llm.scores[llm.n_tokens - 1]
            llm.eval([int(logits.argmax())])
        tg.append(args.n / (time.perf_counter() - start))
    print(json.dumps({
        "model": args.model,
        "llama_cpp_python": llama_cpp.__version__,
        "threads": args.threads,
        "n_prompt": args.p,
        "n_gen": args.n,
        "prefill_tokens_per_second": statistics.median(pp),
        "decode_tokens_per_second": statistics.median(tg),
    }))


if __name__ == "__main__":
    main()
