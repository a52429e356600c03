"""The size of llama.cpp's saved state for a prompt, to compare with a Voyager session file.

Usage (in a throwaway venv with llama-cpp-python):
    python tests/scripts/llama_state_size.py MODEL.gguf PROMPT.txt

Evaluates the prompt with llama.cpp's defaults (f16 KV cache), saves the state with
`Llama.save_state()` and prints the prompt's token count, the state's size in bytes, bytes
per token, and the times taken to evaluate the prompt and to load the state back.
"""

import sys
import time

from llama_cpp import Llama


def main() -> None:
    model, prompt_file = sys.argv[1], sys.argv[2]
    prompt = open(prompt_file, encoding="utf-8").read()
    llm = Llama(model_path=model, n_ctx=4096, n_threads=2, verbose=False)
    tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True)
    start = time.perf_counter()
    llm.eval(tokens)
    evaluated = time.perf_counter() - start
    state = llm.save_state()
    size = state.llama_state_size
    start = time.perf_counter()
    llm.load_state(state)
    loaded = time.perf_counter() - start
    print(
        f"tokens {len(tokens)} state_bytes {size} bytes_per_token {size / len(tokens):.0f} "
        f"eval_s {evaluated:.2f} load_s {loaded:.3f}"
    )


if __name__ == "__main__":
    main()
