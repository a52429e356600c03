#!/usr/bin/env python3
"""Write the tokenizer golden files that `tests/tests/tokenizer_golden.rs` checks Voyager against.

llama.cpp (through llama-cpp-python, vocab only) is the referee: for every test string we record
the token ids llama.cpp produces (`llama_tokenize` with add_special=True, so BOS/EOS follow the
model's add_bos/add_eos flags, and parse_special=True, so special tokens written in the text are
recognised) and llama.cpp's own detokenization of those ids (`llama_detokenize`), both with
specials rendered (remove_special=False, unparse_special=True) and without
(remove_special=True, unparse_special=False). We also record the ids llama.cpp treats as
end-of-generation, and, when the model ships a chat template, that template rendered with jinja2
the way Hugging Face / llama.cpp do (trim_blocks, lstrip_blocks) for a few conversations.

Re-run (from the repository root) after changing the string list or updating llama.cpp:

    /tmp/llvenv/bin/python tests/scripts/make_tokenizer_golden.py \
        /tmp/models/SmolLM2-135M-Instruct.Q4_1.gguf /tmp/models/gemma-3-270m-q4_k_m.gguf

The venv needs `llama-cpp-python`, `jinja2` and `gguf`. Output goes to tests/fixtures/tokenizer/
(`smollm2-135m.json`, `gemma3-270m.json`; the name is chosen from the file name).

For the byte-level BPE model it also writes `smollm2-135m-pre-variants.json`: the same vocabulary
and merges re-saved (into a temporary vocab-only GGUF) with other `tokenizer.ggml.pre` values, so
the pre-tokenizer regexes of those families are checked against llama.cpp too.
"""

import ctypes
import json
import os
import sys

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from llama_cpp import Llama
import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_DIR = os.path.join(HERE, "..", "fixtures", "tokenizer")

COMMON = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "",
    " ",
    "  ",
    "   leading spaces",
    "trailing spaces   ",
    "multiple    spaces   between words",
    "tab\tseparated\tvalues",
    "\t\tindented with tabs",
    "line one\nline two",
    "paragraph one\n\n\nparagraph two",
    "\n",
    "\n\n\n",
    " \n \n ",
    "windows\r\nline endings\r\n",
    "1234567890",
    "3.14159 and 2.71828",
    "The year 2024 had 366 days; 1,000,000 people.",
    "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n    return a + b\n\nif __name__ == '__main__':\n    print(add(1, 2))\n",
    '{"name": "Voyager", "version": [0, 1, 0], "ok": true, "nested": {"k": null}}',
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * 2).collect();\n    println!(\"{:?}\", v);\n}\n",
    "Wait... what?!?! No way!!! (really) [yes] {ok} <tag> --- ### *** ~~~",
    "don't I'LL you're we've they'd it's She'S",
    "café naïve résumé coöperate façade",
    "Straße Größe Fußgängerübergänge",
    "Привет, мир! Как дела?",
    "Γειά σου Κόσμε, αβγδε",
    "مرحبا بالعالم",
    "שלום עולם",
    "नमस्ते दुनिया",
    "你好，世界！今天天气很好。",
    "こんにちは世界、カタカナと漢字",
    "안녕하세요 세계",
    "Emoji: 😀 🚀 🎉 ❤️",
    "Family: 👨\u200d👩\u200d👧\u200d👦 and 👩🏽\u200d💻",
    "Skin tones: 👍🏻 👍🏿 👋🏽",
    "Flags: 🇫🇷 🇯🇵 🇺🇸",
    "€100 costs £85 or ¥15000 ©®™",
    "https://example.com/path?query=1&x=y#frag and mailto:someone@example.org",
    "Mixed: English, Русский, 中文, 日本語, 한국어, العربية 😀",
    "a",
    "A",
    "ALL CAPS SENTENCE HERE",
    "snake_case_identifier camelCaseIdentifier kebab-case-id",
    "x" * 50,
    "   \t\n  mixed whitespace  \n\t ",
    (
        "It was a bright cold day in April, and the clocks were striking thirteen. "
        "Winston Smith, his chin nuzzled into his breast in an effort to escape the vile wind, "
        "slipped quickly through the glass doors of Victory Mansions, though not quickly enough "
        "to prevent a swirl of gritty dust from entering along with him. The hallway smelt of "
        "boiled cabbage and old rag mats. At one end of it a coloured poster, too large for "
        "indoor display, had been tacked to the wall."
    ),
]

SPECIFIC = {
    "smollm2-135m": [
        "<|im_start|>user\nhi<|im_end|>",
        "<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
        "text<|endoftext|>more text",
        "<|im_start|><|im_end|>",
        "<reponame>repo<file_sep>file",
    ],
    "gemma3-270m": [
        "<start_of_turn>user\nhi<end_of_turn>",
        "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n<start_of_turn>model\n",
        "<bos>text<eos>",
        "<table><tr><td>cell</td></tr></table>",
        "spaces:     five and\n\n\n\n\nfive newlines",
    ],
}

# Deterministic random mixes of tricky fragments, to catch what the curated list misses
# (tie-breaks in merges, specials glued to text, runs longer than the longest special, ...).
FRAGMENTS = [
    "the", " the", "The", "THE", "ing", " a", "word", "Hello", "naïve", "Ωμέγα", "данные",
    "東京", "日本語", "한글", "ไทย", "עברית", "عربى", "हिन्दी", "😀", "👩🏽‍💻", "🇩🇪", "❤️",
    " ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", "\u00a0", "\u200b", "\u2581", "e\u0301",
    "0", "7", "42", "314159", "1,024", "-3.5e10", "0x1F", "!", "?!", "...", "—", "«»", "’", "'s", "'LL",
    "<", ">", "</", "<0x41>", "<|", "|>", "<|im_start|>", "<|im_end|>", "<|endoftext|>",
    "<start_of_turn>", "<end_of_turn>", "<bos>", "<eos>", "<unused0>", "<b>", "</b>", "<start_of_turn",
    "def", "():", "{}", "[]", "=>", "::", "//", "/*", "*/", "#", "@", "$", "%", "^", "&&", "||",
    "aaaa", "zzzzzzzz", "ーー", "ab" * 7, "!" * 9, " " * 40, "\n" * 40,
]


def random_strings(n, seed=20261122):
    import random

    rng = random.Random(seed)
    out = []
    for _ in range(n):
        k = rng.randint(1, 10)
        out.append("".join(rng.choice(FRAGMENTS) for _ in range(k)))
    return out


CONVERSATIONS = [
    ([{"role": "user", "content": "hi"}], True),
    ([{"role": "user", "content": "hi"}], False),
    (
        [
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "Hello!"},
            {"role": "assistant", "content": "Arr, hello there."},
            {"role": "user", "content": "  Tell me a joke.  "},
        ],
        True,
    ),
]


PRE_VARIANTS = [
    "default", "gpt-2", "llama3", "llama-bpe", "qwen2", "deepseek-r1-qwen", "starcoder",
    "falcon", "command-r", "dbrx", "stablelm2", "mpt", "olmo", "refact",
]


def write_pre_variants(path, name):
    """Re-saves the GGUF's metadata (no tensors) with each pre value and records llama.cpp's ids."""
    import tempfile
    from gguf import GGUFReader, GGUFWriter, GGUFValueType

    reader = GGUFReader(path)
    strings = COMMON + random_strings(60, seed=7)
    variants = []
    with tempfile.TemporaryDirectory() as tmp:
        for pre in PRE_VARIANTS:
            out = os.path.join(tmp, f"{pre}.gguf")
            arch = reader.fields["general.architecture"].contents()
            w = GGUFWriter(out, arch=arch)
            for k, f in reader.fields.items():
                if k.startswith("GGUF.") or k == "general.architecture":
                    continue
                value = pre if k == "tokenizer.ggml.pre" else f.contents()
                if f.types[0] == GGUFValueType.ARRAY:
                    w.add_key_value(k, value, f.types[0], sub_type=f.types[-1])
                else:
                    w.add_key_value(k, value, f.types[0])
            w.write_header_to_file()
            w.write_kv_data_to_file()
            w.write_tensors_to_file()
            w.close()
            llm = Llama(model_path=out, vocab_only=True, verbose=False)
            vocab = llama_cpp.llama_model_get_vocab(llm.model)
            ids = [tokenize(vocab, text) for text in strings]
            decoded = [
                detokenize(vocab, x, True, False).decode("utf-8", errors="replace") for x in ids
            ]
            variants.append({"pre": pre, "ids": ids, "decoded_skip_special": decoded})
            del llm
    out = os.path.join(OUT_DIR, f"{name}-pre-variants.json")
    with open(out, "w", encoding="utf-8") as f:
        doc = {"model": name, "strings": strings, "variants": variants}
        json.dump(doc, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {out}: {len(variants)} pre-tokenizers x {len(strings)} strings")


def model_name(path):
    base = os.path.basename(path).lower()
    if "smollm2" in base:
        return "smollm2-135m"
    if "gemma-3" in base or "gemma3" in base:
        return "gemma3-270m"
    raise SystemExit(f"don't know which catalog name {path} has")


def tokenize(vocab, text, add_special=True, parse_special=True):
    data = text.encode("utf-8")
    n_max = len(data) + 16
    buf = (llama_cpp.llama_token * n_max)()
    n = llama_cpp.llama_tokenize(vocab, data, len(data), buf, n_max, add_special, parse_special)
    assert n >= 0, n
    return [int(buf[i]) for i in range(n)]


def detokenize(vocab, ids, remove_special, unparse_special):
    arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
    size = 64 + 64 * len(ids)
    out = ctypes.create_string_buffer(size)
    n = llama_cpp.llama_detokenize(vocab, arr, len(ids), out, size, remove_special, unparse_special)
    assert n >= 0, n
    return out.raw[:n]


def render_chat(template, messages, add_generation_prompt, bos, eos):
    def raise_exception(msg):
        raise jinja2.exceptions.TemplateError(msg)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    env.globals["raise_exception"] = raise_exception
    return env.from_string(template).render(
        messages=messages,
        add_generation_prompt=add_generation_prompt,
        bos_token=bos,
        eos_token=eos,
    )


def main(paths):
    os.makedirs(OUT_DIR, exist_ok=True)
    for path in paths:
        name = model_name(path)
        llm = Llama(model_path=path, vocab_only=True, verbose=False)
        vocab = llama_cpp.llama_model_get_vocab(llm.model)
        n_vocab = llama_cpp.llama_vocab_n_tokens(vocab)
        bos = llama_cpp.llama_vocab_bos(vocab)
        eos = llama_cpp.llama_vocab_eos(vocab)
        cases = []
        for text in COMMON + SPECIFIC[name] + random_strings(200):
            ids = tokenize(vocab, text)
            with_special = detokenize(vocab, ids, False, True)
            without_special = detokenize(vocab, ids, True, False)
            cases.append(
                {
                    "text": text,
                    "ids": ids,
                    # bytes may not be valid UTF-8 in general; record it and the lossy text
                    "decoded": with_special.decode("utf-8", errors="replace"),
                    "decoded_utf8_ok": _is_utf8(with_special),
                    "decoded_skip_special": without_special.decode("utf-8", errors="replace"),
                }
            )

        eog = [i for i in range(n_vocab) if llama_cpp.llama_vocab_is_eog(vocab, i)]

        chats = []
        tmpl = llm.metadata.get("tokenizer.chat_template")
        if tmpl:
            bos_text = llama_cpp.llama_vocab_get_text(vocab, bos).decode() if bos >= 0 else ""
            eos_text = llama_cpp.llama_vocab_get_text(vocab, eos).decode() if eos >= 0 else ""
            for messages, agp in CONVERSATIONS:
                rendered = render_chat(tmpl, messages, agp, bos_text, eos_text)
                chats.append(
                    {
                        "messages": messages,
                        "add_generation_prompt": agp,
                        "rendered": rendered,
                        "ids": tokenize(vocab, rendered),
                    }
                )

        doc = {
            "model": name,
            "source": "llama.cpp via llama-cpp-python " + llama_cpp.__version__,
            "n_vocab": n_vocab,
            "bos": bos,
            "eos": eos,
            "add_bos": bool(llama_cpp.llama_vocab_get_add_bos(vocab)),
            "eog_ids": eog,
            "has_chat_template": bool(tmpl),
            "chats": chats,
            "cases": cases,
        }
        out = os.path.join(OUT_DIR, f"{name}.json")
        with open(out, "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"wrote {out}: {len(cases)} strings, {len(chats)} chats, eog={eog}")
        if llm.metadata.get("tokenizer.ggml.model") == "gpt2":
            write_pre_variants(path, name)


def _is_utf8(b):
    try:
        b.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    main(sys.argv[1:])
