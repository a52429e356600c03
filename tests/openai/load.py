"""Load on `voyager serve`, bounded: N chat requests, C at a time, through the official
openai client. Reports requests lost (any error or an empty reply), latency p50/p95 (whole
request and time to the first token), and throughput in generated tokens per second.

    voyager serve -m smollm2-135m --parallel 4 &
    target/openai-venv/bin/python tests/openai/load.py --base-url http://127.0.0.1:8080/v1 \
        --requests 64 --concurrency 8 --max-tokens 32
"""

import argparse
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

import openai

TOPICS = ["rivers", "bread", "owls", "tides", "glass", "maps", "bees", "comets"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8080/v1")
    ap.add_argument("--api-key", default="none")
    ap.add_argument("--model", default=None, help="default: the first the server lists")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=32)
    args = ap.parse_args()

    client = openai.OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0,
                           timeout=3600)
    model = args.model or client.models.list().data[0].id

    def one(i):
        start = time.perf_counter()
        first = None
        text, usage = "", None
        try:
            stream = client.chat.completions.create(
                model=model, stream=True, stream_options={"include_usage": True},
                max_tokens=args.max_tokens, temperature=0.7, seed=i,
                messages=[{"role": "user",
                           "content": f"Request {i}: write two sentences about "
                                      f"{TOPICS[i % len(TOPICS)]}."}])
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    if first is None:
                        first = time.perf_counter() - start
                    text += chunk.choices[0].delta.content
                if chunk.usage:
                    usage = chunk.usage
        except openai.APIError as e:
            return {"ok": False, "error": str(e)}
        ok = bool(text) and usage is not None
        return {"ok": ok, "latency": time.perf_counter() - start, "ttft": first or 0.0,
                "tokens": usage.completion_tokens if usage else 0}

    start = time.perf_counter()
    with ThreadPoolExecutor(args.concurrency) as pool:
        results = list(pool.map(one, range(args.requests)))
    wall = time.perf_counter() - start

    done = [r for r in results if r["ok"]]
    lost = len(results) - len(done)
    for r in results:
        if not r["ok"]:
            print("lost:", r.get("error", "empty reply"))

    def pct(xs, p):
        xs = sorted(xs)
        return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))] if xs else float("nan")

    lat = [r["latency"] for r in done]
    ttft = [r["ttft"] for r in done]
    tokens = sum(r["tokens"] for r in done)
    print(f"requests {len(results)}, concurrency {args.concurrency}, "
          f"max_tokens {args.max_tokens}: {len(done)} completed, {lost} lost")
    print(f"latency  p50 {pct(lat, 50):.2f} s  p95 {pct(lat, 95):.2f} s  "
          f"mean {statistics.mean(lat) if lat else float('nan'):.2f} s")
    print(f"first token  p50 {pct(ttft, 50):.2f} s  p95 {pct(ttft, 95):.2f} s")
    print(f"throughput {tokens / wall:.2f} generated tokens/s, {len(done) / wall:.3f} "
          f"requests/s ({tokens} tokens in {wall:.1f} s)")
    raise SystemExit(1 if lost else 0)


if __name__ == "__main__":
    main()
