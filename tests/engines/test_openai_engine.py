"""OpenAIEngine against a fake OpenAI-compatible completions server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import json
import math
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from cotgen.engines import build_engine, openai
from cotgen.engines.base import GenerationParams
from cotgen.engines.config import EngineConfig
from cotgen.errors import DataError, EngineFailed, RunError


class FakeServer:
    """Answers /v1/completions; `status` lets a test make it fail; `requests` records bodies."""

    def __init__(self):
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        self.status: list[int] = []  # statuses to answer with before answering normally
        self.trim_stop = True
        self.refuse_extras = False  # answer 400 to vLLM's extensions, as a strict server may
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append(dict(self.headers))
                if self.path != "/v1/completions":
                    return self.reply(404, {"error": "not found"})
                if server.status:
                    return self.reply(server.status.pop(0), {"error": {"message": "prompt is too long"}})
                extra = sorted(set(body) & set(openai.VLLM_GENERATE_EXTRAS))
                if server.refuse_extras and extra:
                    return self.reply(400, {"error": {"message": f"unknown field: {extra[0]}"}})
                self.reply(200, server.answer(body))

            def reply(self, code, payload):
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # 40 callers connect at once; real servers allow more

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def answer(self, body):
        n = body.get("n", 1)
        choices = []
        for i in range(len(body["prompt"])):
            for j in range(n):
                tokens = [f"<{i}.{j}>", " A", "B", "\n\n", "C"][: body["max_tokens"]]
                text = "".join(tokens)
                finish = "length"
                stop = [s for s in body.get("stop", []) if s in text]
                if stop and self.trim_stop:
                    cut = text.find(stop[0])
                    text, tokens, finish = text[:cut], tokens[:3], "stop"
                top = [{t: -0.1 * (k + 1), "x": -2.0, "y": -3.0, "z": -4.0, "w": -5.0, "v": -6.0} for k, t in enumerate(tokens)]
                choices.append({
                    "index": i * n + j,
                    "text": text,
                    "finish_reason": finish,
                    "logprobs": {"tokens": tokens, "token_logprobs": [-0.1 * (k + 1) for k in range(len(tokens))],
                                 "top_logprobs": top},
                })
        choices.reverse()  # servers may answer out of order: parse by index
        return {"id": "cmpl-1", "object": "text_completion", "model": body["model"], "choices": choices}

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    s = FakeServer()
    yield s
    s.close()


@pytest.fixture
def engine(server, monkeypatch):
    monkeypatch.setattr(openai, "RETRY_BACKOFF_S", 0.0)
    eng = build_engine(EngineConfig(engine="openai", model="qwen2.5-7b", base_url=server.url, api_key="sk-test"))
    yield eng
    asyncio.run(eng.close())


def test_generate_parses_choices_by_index(engine, server):
    out = asyncio.run(engine.generate(["p0", "p1"], GenerationParams(n=3, max_tokens=5, temperature=0.5, seed=9)))
    assert [[c.text.split(">")[0] + ">" for c in x] for x in out] == [
        ["<0.0>", "<0.1>", "<0.2>"], ["<1.0>", "<1.1>", "<1.2>"]
    ]
    c = out[1][2]
    assert c.tokens == 5 and c.finish_reason == "length"
    assert c.logprobs == pytest.approx([-0.1, -0.2, -0.3, -0.4, -0.5])
    assert c.top_logprobs[0] == pytest.approx([-0.1, -2.0, -3.0, -4.0, -5.0])
    body = server.requests[-1]
    assert body == {"model": "Qwen/Qwen2.5-7B-Instruct", "prompt": ["p0", "p1"], "n": 3, "max_tokens": 5,
                    "temperature": 0.5, "top_p": 1.0, "logprobs": 5, "seed": 9, **openai.VLLM_GENERATE_EXTRAS}
    assert server.headers[-1]["Authorization"] == "Bearer sk-test"


def test_sampling_settings_come_as_one_generation_params(engine, server):
    with pytest.raises(TypeError):
        engine.generate(["p"], max_tokens=5)  # the old keyword form
    with pytest.raises(TypeError, match="as a GenerationParams, not a dict"):
        asyncio.run(engine.generate(["p"], {"max_tokens": 5}))
    assert server.requests == []  # refused before anything was sent


def test_a_server_refusing_vllm_extensions_is_asked_without_them(engine, server):
    server.refuse_extras = True
    for _ in range(2):
        [[c]] = asyncio.run(engine.generate(["p"], GenerationParams(max_tokens=5)))
        assert c.tokens == 5 and c.token_ids == []  # text tokens: no ids to report
    assert engine.extras is False
    sent = [set(r) & set(openai.VLLM_GENERATE_EXTRAS) for r in server.requests]
    assert sent == [set(openai.VLLM_GENERATE_EXTRAS), set(), set()]  # refused once, then never sent


def test_stop_strings(engine, server):
    [[c]] = asyncio.run(engine.generate(["p"], GenerationParams(max_tokens=5, stop=["\n\n"])))
    assert (c.text, c.tokens, c.finish_reason) == ("<0.0> AB", 3, "stop")
    server.trim_stop = False  # a server that leaves the stop string in: trimmed here
    [[c]] = asyncio.run(engine.generate(["p"], GenerationParams(max_tokens=5, stop=["\n\n"])))
    assert (c.text, c.tokens, c.finish_reason) == ("<0.0> AB", 3, "stop")
    assert len(c.logprobs) == len(c.top_logprobs) == 3


def test_score_reads_the_top_logprobs(engine, server):
    rows = asyncio.run(engine.score(["p0", "p1"], ["<1.0>", "x", "absent"]))
    assert rows[1]["<1.0>"] == pytest.approx(-0.1) and rows[1]["x"] == -2.0
    assert rows[0]["<1.0>"] == -math.inf and rows[0]["absent"] == -math.inf
    assert engine.score_method == "top_logprobs"  # no local tokenizer for this model: text matching
    assert server.requests[-1]["max_tokens"] == 1 and server.requests[-1]["logprobs"] == 20


def test_many_concurrent_callers(engine, server):
    async def main():
        return await asyncio.gather(*(engine.generate([f"p{i}"], GenerationParams(max_tokens=2)) for i in range(40)))

    out = asyncio.run(main())
    assert len(out) == 40 and all(x[0][0].tokens == 2 for x in out)
    assert engine.stats.batches == 40 and engine.stats.generated_tokens == 80
    assert sorted(r["prompt"][0] for r in server.requests) == sorted(f"p{i}" for i in range(40))


def test_http_400_is_a_data_error_for_that_call(engine, server):
    server.status = [400]
    with pytest.raises(DataError, match="HTTP 400.*prompt is too long"):
        asyncio.run(engine.generate(["p"], GenerationParams(max_tokens=2)))
    assert asyncio.run(engine.generate(["p"], GenerationParams(max_tokens=2)))[0][0].tokens == 2


def test_transient_errors_are_retried(engine, server):
    server.status = [503, 502]
    assert asyncio.run(engine.generate(["p"], GenerationParams(max_tokens=2)))[0][0].tokens == 2
    server.status = [500, 500, 500]
    with pytest.raises(EngineFailed, match="after 3 attempts: HTTP 500"):
        asyncio.run(engine.generate(["p"], GenerationParams(max_tokens=2)))


def test_unreachable_server(monkeypatch, server):
    monkeypatch.setattr(openai, "RETRY_BACKOFF_S", 0.0)
    url = server.url
    server.close()
    eng = build_engine(EngineConfig(engine="openai", base_url=url))
    with pytest.raises(EngineFailed, match="cannot get completions from http://127.0.0.1"):
        asyncio.run(eng.generate(["p"], GenerationParams(max_tokens=2)))


def test_wrong_choice_count_is_reported(engine, server, monkeypatch):
    monkeypatch.setattr(server, "answer", lambda body: {"choices": []})
    with pytest.raises(RunError, match="answered 0 choices, expected 2"):
        asyncio.run(engine.generate(["a", "b"], GenerationParams(max_tokens=2)))


def test_chat_uses_the_local_tokenizer(server, tiny_model_dir):
    eng = build_engine(EngineConfig(engine="openai", model=str(tiny_model_dir), base_url=server.url))
    assert eng.render_chat([{"role": "user", "content": "hi"}]).startswith("<|im_start|>user\nhi<|im_end|>")
    assert eng.has_tokens(["<positive_rating>"])
