#!/usr/bin/env python3
"""The window and importance cache policies at equal memory (docs/KV_CACHE.md, "Which tokens
to keep").

For each window W the plain sliding window gets W, and the importance policy the largest
window whose KV cache (ring, sinks, recent f16 copies and its slot table, as `voyager info`
plans it) takes no more bytes. Then:

- passkey retrieval: a random five-digit key stated at a chosen depth of ~400 tokens of filler,
  asked for at the end, greedy answer; `--keys` keys per (depth, window, policy);
- streaming perplexity: `voyager perplexity --stream` over the first `--ppl-chars` characters
  of a text, through the same windows.

Writes results as JSON (--out), prints a Markdown table, and with --plot draws retrieval
accuracy against cache bytes for both policies (needs matplotlib).

    python3 tests/scripts/kv_policy_compare.py --voyager target/debug/voyager \
        --model ~/.cache/voyager/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        --windows 64,128,256 --depths 0.1,0.5,0.8 --keys 3 \
        --ppl-text tests/fixtures/text/alice-in-wonderland.txt --ppl-window 256 \
        --out target/kv_policy.json --plot docs/kv_policy_passkey.png
"""

import argparse
import json
import random
import subprocess
import sys
import time

FILLER = ("The grass is green. The sky is blue. The sun is yellow. Here we go. There and "
          "back again. ")


def prompt(key, depth, repeats=14):
    """The passkey prompt with the key after `depth` of the filler (0: first, 1: last)."""
    before = round(depth * repeats)
    return ("There is important info hidden inside a lot of irrelevant text. Find it and "
            "memorize it. " + FILLER * before +
            f"The pass key is {key}. Remember it. {key} is the pass key. " +
            FILLER * (repeats - before) + "What is the pass key? The pass key is")


def run(cmd):
    out = subprocess.run(cmd, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return out.stdout


def kv_bytes(args, window, policy):
    info = json.loads(run([args.voyager, "info", "-m", args.model, "--window", str(window),
                           "--kv-policy", policy, "--json"]))
    plan = info.get("plan", info)
    return sum(l["bytes"] for l in plan["lines"] if l["name"] == "KV cache")


def equal_memory_window(args, window):
    """The largest importance window whose cache fits the window policy's bytes at `window`."""
    target = kv_bytes(args, window, "window")
    lo, hi = 1, window
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if kv_bytes(args, mid, "importance") <= target:
            lo = mid
        else:
            hi = mid - 1
    return lo, target, kv_bytes(args, lo, "importance")


def common(args, window, policy):
    return ["-m", args.model, "--window", str(window), "--kv-policy", policy,
            "--no-self-check"]


def passkey(args, window, policy, key, depth):
    text = run([args.voyager, "run", *common(args, window, policy), "--temp", "0", "-n", "8",
                prompt(key, depth)])
    return str(key) in text, text.strip()


def perplexity(args, window, policy, path):
    out = run([args.voyager, "perplexity", *common(args, window, policy), "-f", path,
               "--stream", "--json"])
    return json.loads(out.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--voyager", required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--windows", default="64,128,256")
    ap.add_argument("--depths", default="0.1,0.5,0.8")
    ap.add_argument("--keys", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--ppl-text")
    ap.add_argument("--ppl-chars", type=int, default=40000)
    ap.add_argument("--ppl-window", type=int, default=256)
    ap.add_argument("--out", required=True)
    ap.add_argument("--plot")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    windows = [int(w) for w in args.windows.split(",")]
    depths = [float(d) for d in args.depths.split(",")]
    keys = [rng.randrange(10000, 100000) for _ in range(args.keys)]
    results = {"model": args.model, "keys": keys, "depths": depths, "passkey": [],
               "perplexity": []}

    def save():
        with open(args.out, "w") as f:
            json.dump(results, f, indent=1)

    for window in windows:
        imp, bytes_w, bytes_i = equal_memory_window(args, window)
        for policy, w, b in [("window", window, bytes_w), ("importance", imp, bytes_i)]:
            for depth in depths:
                found = 0
                answers = []
                for key in keys:
                    t = time.time()
                    ok, text = passkey(args, w, policy, key, depth)
                    found += ok
                    answers.append(text[-60:])
                    print(f"W {window}: {policy} window {w} ({b} B) depth {depth} key {key}: "
                          f"{'found' if ok else 'lost'} ({time.time() - t:.0f}s)",
                          file=sys.stderr)
                results["passkey"].append({
                    "budget_window": window, "policy": policy, "window": w, "kv_bytes": b,
                    "depth": depth, "found": found, "trials": len(keys), "answers": answers})
                save()
    if args.ppl_text:
        with open(args.ppl_text, encoding="utf-8") as f:
            text = f.read()[:args.ppl_chars]
        path = args.out + ".text"
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        imp, bytes_w, bytes_i = equal_memory_window(args, args.ppl_window)
        for policy, w, b in [("window", args.ppl_window, bytes_w), ("importance", imp, bytes_i)]:
            t = time.time()
            r = perplexity(args, w, policy, path)
            r.update({"policy": policy, "window": w, "kv_bytes": b,
                      "seconds": round(time.time() - t)})
            print(f"perplexity {policy} window {w}: {r['ppl']:.4f} over {r['n_scored']} "
                  f"tokens ({r['seconds']}s)", file=sys.stderr)
            results["perplexity"].append(r)
            save()

    print("| window policy W | policy | window | KV bytes | " +
          " | ".join(f"depth {d}" for d in depths) + " | all |")
    print("|---" * (5 + len(depths)) + "|")
    for window in windows:
        for policy in ["window", "importance"]:
            rows = [r for r in results["passkey"]
                    if r["budget_window"] == window and r["policy"] == policy]
            cells = [f"{r['found']}/{r['trials']}" for r in rows]
            total = sum(r["found"] for r in rows)
            trials = sum(r["trials"] for r in rows)
            print(f"| {window} | {policy} | {rows[0]['window']} | {rows[0]['kv_bytes']} | " +
                  " | ".join(cells) + f" | {total}/{trials} |")
    for r in results["perplexity"]:
        print(f"perplexity {r['policy']} window {r['window']} ({r['kv_bytes']} B): "
              f"{r['ppl']:.4f} over {r['n_scored']} tokens")
    if args.plot:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(figsize=(6, 4))
        for policy, mark in [("window", "o-"), ("importance", "s-")]:
            xs, ys = [], []
            for window in windows:
                rows = [r for r in results["passkey"]
                        if r["budget_window"] == window and r["policy"] == policy]
                xs.append(rows[0]["kv_bytes"] / 2**20)
                ys.append(sum(r["found"] for r in rows) / sum(r["trials"] for r in rows))
            ax.plot(xs, ys, mark, label=policy)
        ax.set_xlabel("KV cache (MiB, same for both policies at each point)")
        ax.set_ylabel("pass keys retrieved")
        ax.set_ylim(-0.05, 1.05)
        ax.set_title("Passkey retrieval at equal memory (SmolLM2-135M, tq4/tq3)")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
    save()


if __name__ == "__main__":
    main()
