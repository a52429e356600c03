#!/usr/bin/env python3
"""Perplexity per segment of a `voyager perplexity --dump-logprobs` file.

    python3 tests/scripts/segment_ppl.py DUMP.json [SEGMENT=512]

Prints, for each run of SEGMENT scored positions (of all windows in order), the perplexity of
that run: how a streamed evaluation behaves before and after the sliding window starts
evicting (docs/KV_CACHE.md).
"""
import json
import math
import sys


def main():
    path = sys.argv[1]
    seg = int(sys.argv[2]) if len(sys.argv) > 2 else 512
    with open(path) as f:
        windows = json.load(f)
    lps = [x for w in windows for x in w["target_logprob"]]
    for start in range(0, len(lps), seg):
        part = lps[start:start + seg]
        print(f"{start:6d}..{start + len(part):6d}  ppl {math.exp(-sum(part) / len(part)):8.3f}")
    print(f"all {len(lps)} positions  ppl {math.exp(-sum(lps) / len(lps)):.4f}")


if __name__ == "__main__":
    main()
