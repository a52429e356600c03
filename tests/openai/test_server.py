"""The official `openai` client against a running `voyager serve` (started by
apps/cli/tests/serve.rs, which passes its address and flags in the environment).

Greedy replies are compared with `voyager run --temp 0` on the same prompt; streamed replies
with whole ones; 8 concurrent streams with their sequential runs. Bad requests must get
OpenAI-style 4xx errors and leave the server serving.
"""

import json
import os
import subprocess
import threading
import time
import unittest
from concurrent.futures import ThreadPoolExecutor

import urllib.error
import urllib.request

import openai

BASE = os.environ["VOYAGER_BASE_URL"]  # http://127.0.0.1:PORT
KEY = os.environ["VOYAGER_API_KEY"]
BIN = os.environ["VOYAGER_BIN"]
MODEL = os.environ["VOYAGER_MODEL"]
ALIAS = os.environ["VOYAGER_ALIAS"]
CTX = os.environ["VOYAGER_CTX"]
PARALLEL = int(os.environ["VOYAGER_PARALLEL"])
QUEUE = int(os.environ["VOYAGER_QUEUE"])
MAX_BODY = int(os.environ["VOYAGER_MAX_BODY"])
MAX_TOKENS = int(os.environ["VOYAGER_MAX_TOKENS"])

N = 8  # tokens per reply: enough to tell replies apart, cheap on a software GPU

client = openai.OpenAI(base_url=BASE + "/v1", api_key=KEY, max_retries=0, timeout=600)


class Response:
    def __init__(self, status, body):
        self.status_code = status
        self.text = body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.text)


class Raw:
    """Plain HTTP from the standard library, for requests no client library would send."""

    def __init__(self, key):
        self.key = key

    def request(self, method, path, json=None, content=None, key=None):
        if json is not None:
            content = globals()["json"].dumps(json).encode()
        req = urllib.request.Request(BASE + path, data=content, method=method)
        req.add_header("Content-Type", "application/json")
        key = self.key if key is None else key
        if key:
            req.add_header("Authorization", f"Bearer {key}")
        try:
            with urllib.request.urlopen(req, timeout=600) as r:
                return Response(r.status, r.read())
        except urllib.error.HTTPError as e:
            return Response(e.code, e.read())

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)


raw = Raw(KEY)


def cli_run(prompt, chat):
    """`voyager run --temp 0` on the same prompt, with the server's cache flags."""
    args = [BIN, "run", "-m", MODEL, "-c", CTX, "--temp", "0", "-n", str(N), "--json"]
    if chat:
        args.append("--chat")
    out = subprocess.run(args + ["--", prompt], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)["text"]


def chat(content, **kw):
    kw.setdefault("temperature", 0)
    return client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=N, **kw)


def stream_text(content):
    s = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": content}], max_tokens=N,
        temperature=0, stream=True)
    return "".join(c.choices[0].delta.content or "" for c in s if c.choices)


def health():
    return Raw("").get("/health").json()


def wait_for(cond, seconds, what):
    end = time.time() + seconds
    while time.time() < end:
        h = health()
        if cond(h):
            return h
        time.sleep(0.05)
    raise AssertionError(f"{what}: not within {seconds} s (health: {health()})")


class Server(unittest.TestCase):
    chat_prompt = "Name three colors of the rainbow."
    completion_prompt = "The three primary colors are"

    def assert_api_error(self, response, status, param=None):
        self.assertEqual(response.status_code, status, response.text)
        err = response.json()["error"]
        self.assertEqual(set(err), {"message", "type", "param", "code"})
        self.assertTrue(err["message"])
        if param is not None:
            self.assertEqual(err["param"], param, err)
        return err

    def test_01_models_and_health(self):
        ids = [m.id for m in client.models.list().data]
        self.assertEqual(ids, [MODEL, ALIAS])
        self.assertEqual(client.models.retrieve(ALIAS).id, ALIAS)
        h = health()
        self.assertEqual(h["status"], "ok")
        self.assertEqual(h["slots"]["total"], PARALLEL)

    def test_02_chat_greedy_equals_cli(self):
        r = chat(self.chat_prompt)
        self.assertEqual(r.object, "chat.completion")
        self.assertEqual(r.model, MODEL)
        self.assertEqual(r.choices[0].message.role, "assistant")
        self.assertEqual(r.choices[0].message.content, cli_run(self.chat_prompt, chat=True))
        self.assertEqual(r.choices[0].finish_reason, "length")
        self.assertEqual(r.usage.completion_tokens, N)
        self.assertEqual(r.usage.total_tokens, r.usage.prompt_tokens + N)
        timings = r.model_extra["timings"]
        self.assertEqual(timings["predicted_n"], N)
        self.assertEqual(timings["prompt_n"] + timings["cache_n"], r.usage.prompt_tokens)
        # The alias answers too, with the same reply.
        again = client.chat.completions.create(
            model=ALIAS, messages=[{"role": "user", "content": self.chat_prompt}],
            max_completion_tokens=N, temperature=0)
        self.assertEqual(again.model, ALIAS)
        self.assertEqual(again.choices[0].message.content, r.choices[0].message.content)

    def test_03_completion_greedy_equals_cli_streamed_or_not(self):
        whole = client.completions.create(
            model=MODEL, prompt=self.completion_prompt, max_tokens=N, temperature=0)
        self.assertEqual(whole.object, "text_completion")
        expected = cli_run(self.completion_prompt, chat=False)
        self.assertEqual(whole.choices[0].text, expected)
        chunks = list(client.completions.create(
            model=MODEL, prompt=self.completion_prompt, max_tokens=N, temperature=0,
            stream=True, stream_options={"include_usage": True}, logprobs=2))
        self.assertEqual("".join(c.choices[0].text for c in chunks if c.choices), expected)
        self.assertEqual(chunks[-1].choices, [])
        self.assertEqual(chunks[-1].usage.completion_tokens, N)
        finish = [c.choices[0].finish_reason for c in chunks if c.choices]
        self.assertEqual(finish[-1], "length")
        tokens = [t for c in chunks if c.choices and c.choices[0].logprobs
                  for t in c.choices[0].logprobs.tokens]
        self.assertEqual("".join(tokens), expected)
        for c in chunks:
            lp = c.choices[0].logprobs if c.choices else None
            if lp:
                for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
                    self.assertLessEqual(logprob, 0.0)
                    self.assertEqual(len(top), 2)
                    # Greedy: the chosen token is the most likely one.
                    self.assertAlmostEqual(max(top.values()), logprob, places=5)

    def test_04_streaming_chat_equals_whole(self):
        whole = chat(self.chat_prompt, logprobs=True, top_logprobs=3)
        content = whole.choices[0].logprobs.content
        self.assertEqual(len(content), N)
        self.assertEqual("".join(t.token for t in content), whole.choices[0].message.content)
        for t in content:
            self.assertEqual(len(t.top_logprobs), 3)
            self.assertEqual(t.top_logprobs[0].token, t.token)
        chunks = list(client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": self.chat_prompt}],
            max_tokens=N, temperature=0, stream=True,
            stream_options={"include_usage": True}))
        self.assertEqual(chunks[0].choices[0].delta.role, "assistant")
        text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
        self.assertEqual(text, whole.choices[0].message.content)
        self.assertEqual(chunks[-2].choices[0].finish_reason, "length")
        self.assertEqual(chunks[-1].usage.completion_tokens, N)
        self.assertEqual(chunks[-1].usage.prompt_tokens, whole.usage.prompt_tokens)

    def test_05_stop_sequences_and_sampling(self):
        full = chat(self.chat_prompt).choices[0].message.content
        words = full.split(" ")
        self.assertGreater(len(words), 2, full)
        stop = " " + words[2]
        cut = chat(self.chat_prompt, stop=[stop, "\u0000never"])
        self.assertEqual(cut.choices[0].message.content, full[: full.index(stop)])
        self.assertEqual(cut.choices[0].finish_reason, "stop")
        # Seeded sampling repeats itself; penalties are accepted.
        kw = dict(temperature=0.9, top_p=0.95, seed=1234, frequency_penalty=0.5,
                  presence_penalty=0.3)
        a = chat(self.chat_prompt, **kw).choices[0].message.content
        b = chat(self.chat_prompt, **kw).choices[0].message.content
        self.assertEqual(a, b)

    def test_06_concurrent_streams_equal_sequential_runs(self):
        prompts = [f"Write one short sentence about the number {i}." for i in range(8)]
        sequential = [chat(p).choices[0].message.content for p in prompts]
        self.assertEqual(len(set(sequential)), len(prompts), sequential)
        started = threading.Barrier(len(prompts) + 1)

        def one(p):
            started.wait()
            return stream_text(p)

        with ThreadPoolExecutor(len(prompts)) as pool:
            futures = [pool.submit(one, p) for p in prompts]
            started.wait()
            # Every session busy and the queue full: one more is refused at once.
            wait_for(lambda h: h["slots"]["idle"] == 0 and h["slots"]["waiting"] == QUEUE,
                     120, "all sessions busy and the queue full")
            r = raw.post("/v1/chat/completions", json={
                "model": MODEL, "messages": [{"role": "user", "content": "hi"}],
                "max_tokens": 1})
            err = self.assert_api_error(r, 503)
            self.assertEqual(err["code"], "server_busy")
            concurrent = [f.result() for f in futures]
        self.assertEqual(concurrent, sequential)

    def test_07_disconnect_frees_the_session(self):
        before = health()["requests"]["cancelled"]
        s = client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Tell me a long story."}],
            max_tokens=MAX_TOKENS, temperature=0, stream=True)
        got = 0
        for c in s:
            if c.choices and c.choices[0].delta.content:
                got += 1
                if got == 2:
                    break
        s.close()
        # The generation stops within a token or two and its session is free again, long
        # before MAX_TOKENS tokens could have been generated.
        wait_for(lambda h: h["slots"]["idle"] == PARALLEL
                 and h["requests"]["cancelled"] == before + 1, 60,
                 "the disconnected request's session freed")
        self.assertEqual(chat("Say hi.").usage.completion_tokens, N)

    def test_08_second_turn_prefills_only_new_tokens(self):
        messages = [{"role": "system", "content": "You are terse."},
                    {"role": "user", "content": "Name a fruit."}]
        first = client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=N, temperature=0)
        messages += [{"role": "assistant", "content": first.choices[0].message.content},
                     {"role": "user", "content": "And a vegetable?"}]
        second = client.chat.completions.create(
            model=MODEL, messages=messages, max_tokens=N, temperature=0)
        cached = second.usage.prompt_tokens_details.cached_tokens
        timings = second.model_extra["timings"]
        self.assertGreaterEqual(cached, first.usage.prompt_tokens)
        self.assertEqual(timings["cache_n"], cached)
        self.assertEqual(timings["prompt_n"], second.usage.prompt_tokens - cached)
        self.assertLessEqual(timings["prompt_n"],
                             second.usage.prompt_tokens - first.usage.prompt_tokens)

    def test_09_bad_requests_get_openai_errors(self):
        post = lambda path, **kw: raw.post(path, **kw)
        chat_path = "/v1/chat/completions"
        msgs = [{"role": "user", "content": "hi"}]
        self.assert_api_error(post(chat_path, content=b"{not json"), 400)
        self.assert_api_error(post(chat_path, content=b"[1,2]"), 400)
        self.assert_api_error(
            post(chat_path, json={"messages": msgs, "temperature": "hot"}), 400, "temperature")
        self.assert_api_error(post(chat_path, json={"messages": "hi"}), 400, "messages")
        self.assert_api_error(post(chat_path, json={"messages": []}), 400, "messages")
        self.assert_api_error(post(chat_path, json={}), 400, "messages")
        self.assert_api_error(
            post(chat_path, json={"messages": [{"role": "wizard", "content": "x"}]}), 400,
            "messages[0]")
        err = self.assert_api_error(
            post(chat_path, json={"model": "gpt-17", "messages": msgs}), 404, "model")
        self.assertEqual(err["code"], "model_not_found")
        for n in (0, -1, MAX_TOKENS + 1):
            self.assert_api_error(
                post(chat_path, json={"messages": msgs, "max_tokens": n}), 400, "max_tokens")
        self.assert_api_error(post(chat_path, json={"messages": msgs, "n": 2}), 400, "n")
        self.assert_api_error(
            post(chat_path, json={"messages": msgs, "top_p": 1.5}), 400, "top_p")
        self.assert_api_error(
            post("/v1/completions", json={"prompt": ["a", "b"]}), 400, "prompt")
        self.assert_api_error(
            post("/v1/completions", json={"prompt": [1, 99999999]}), 400, "prompt")
        self.assert_api_error(post("/v1/completions", json={"max_tokens": 3}), 400, "prompt")
        big = {"messages": [{"role": "user", "content": "x" * (MAX_BODY + 1)}]}
        err = self.assert_api_error(post(chat_path, json=big), 413)
        self.assertEqual(err["code"], "request_too_large")
        # A wrong key, and none.
        r = raw.post(chat_path, json={"messages": msgs}, key="wrong")
        self.assertEqual(self.assert_api_error(r, 401)["code"], "invalid_api_key")
        self.assert_api_error(Raw("").get("/v1/models"), 401)
        with self.assertRaises(openai.AuthenticationError):
            openai.OpenAI(base_url=BASE + "/v1", api_key="nope",
                          max_retries=0).models.list()
        self.assert_api_error(raw.get("/v1/nothing"), 404)
        self.assert_api_error(raw.get(chat_path), 405)
        # The client raises its usual exceptions.
        with self.assertRaises(openai.BadRequestError):
            chat("hi", n=3)
        with self.assertRaises(openai.NotFoundError):
            client.chat.completions.create(model="nope", messages=msgs)
        # Nothing of that hurt the server.
        self.assertEqual(health()["status"], "ok")
        self.assertEqual(chat("Say hi.").usage.completion_tokens, N)

    def test_10_memory_counted_stays_in_the_budget(self):
        m = health()["memory"]
        self.assertLessEqual(m["plan_total_bytes"], m["budget_bytes"])
        self.assertLessEqual(m["device_buffers_peak_bytes"], m["device_buffers_planned_bytes"])
        self.assertGreater(m["device_buffers_live_bytes"], 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
