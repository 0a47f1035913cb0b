"""A fake OpenAI-compatible chat endpoint on 127.0.0.1 for the chat engine's tests: it
answers like a small maths model, reports usage (and tallies what it reported, for the cost
tests), records every request (headers too, for the key tests) and injects faults.

`faults` is consumed one per request, in order: "429" (with Retry-After: 1), "500",
"timeout" (no answer until the client hangs up, or after `slow_s`), "truncated" (cut JSON), "drop" (closes the connection
without an answer), "gone" (drops it and shuts the server down), "trickle" (a byte every slow_s / 10 s), "echo400" (a 400 whose body echoes the Authorization header), None
(answer normally). `dialect` says which continuation extension it honours: "vllm"
(continue_final_message), "deepseek" (prefix: true) or "strict" (refuses unknown fields,
as OpenAI does).
"""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def answer_for(messages: list[dict]) -> str:
    """A step, then a boxed answer: the sum of the numbers in the problem (right for
    builtin:arith's additions, wrong for the rest; both make valid trees)."""
    user = next((m["content"] for m in messages if m.get("role") == "user"), "")
    if "critic" in user.lower() or "wrong" in user.lower():
        return "The step adds the wrong numbers."
    return "First add the numbers.\n\nThe answer is \\boxed{4}."


class FakeChatServer:
    def __init__(self, dialect: str = "vllm", faults: list | None = None, logprobs: bool = True,
                 slow_s: float = 3.0, usage: bool = True, delay_s: float = 0.0, several: bool = True) -> None:
        self.several = several  # takes n > 1 (else a 400, as some providers answer)
        self.dialect, self.faults, self.logprobs, self.slow_s, self.usage = dialect, list(faults or []), logprobs, slow_s, usage
        self.delay_s = delay_s  # every answer waits this long (to see requests overlap)
        self.in_flight = self.max_in_flight = 0
        self.requests: list[dict] = []  # {"headers": {...}, "body": {...}, "fault": ...}
        self.prompt_tokens = 0  # tallies of the usage reported in answers that went out whole
        self.completion_tokens = 0
        self.billed: list[tuple[dict, int, int]] = []  # (request body, prompt, completion tokens) of each
        self.lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                with server.lock:
                    fault = server.faults.pop(0) if server.faults else None
                    server.requests.append({"headers": dict(self.headers), "body": body, "fault": fault})
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                self.in_flight = True
                try:
                    time.sleep(server.delay_s)
                    server.handle(self, body, fault)
                finally:
                    server.answered(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.handle_error = lambda request, address: None  # a client that hung up is no news
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    # --- answers ---------------------------------------------------------------------

    def answered(self, h) -> None:
        """The request leaves `in_flight`, once, before its answer goes out: the client may
        send its next request as soon as it has read this one, and this thread can be the
        slower of the two (a busy machine), which would count 1 over the client's cap."""
        with self.lock:
            if h.in_flight:
                h.in_flight = False
                self.in_flight -= 1

    def send(self, h, code: int, payload: bytes, headers: dict | None = None, length: int | None = None) -> None:
        self.answered(h)
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(payload) if length is None else length))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        try:
            h.end_headers()
            h.wfile.write(payload)
            h.wfile.flush()
        except OSError:
            pass  # the client gave up first (a timeout)

    def handle(self, h, body: dict, fault) -> None:
        if fault == "429":
            return self.send(h, 429, b'{"error": "rate limited"}', {"Retry-After": "1"})
        if fault == "500":
            return self.send(h, 500, b'{"error": "internal"}')
        if fault == "gone":  # the endpoint goes away: this connection drops, later ones are refused
            threading.Thread(target=self.close, daemon=True).start()
            fault = "drop"
        if fault == "drop":
            self.answered(h)
            h.close_connection = True
            h.connection.shutdown(2)
            return None
        if fault == "echo400":
            echo = json.dumps({"error": f"bad request from {h.headers.get('Authorization')}"}).encode()
            return self.send(h, 400, echo)
        if fault == "timeout" and self.hung_up(h, self.slow_s):
            return None  # the client gave up (its socket timed out): nothing goes out, nothing is billed
        if fault == "trickle":  # a byte at a time, each within any socket timeout, the whole too slow
            payload = json.dumps(self.reply(body, body.get("messages") or [], False)).encode()
            self.answered(h)
            h.send_response(200)
            h.send_header("Content-Type", "application/json")
            h.send_header("Content-Length", str(len(payload)))
            h.end_headers()
            try:
                for i in range(len(payload)):
                    h.wfile.write(payload[i:i + 1])
                    h.wfile.flush()
                    time.sleep(self.slow_s / 10)
            except OSError:
                pass
            return None
        messages = body.get("messages") or []
        unknown = [k for k in ("continue_final_message", "add_generation_prompt") if k in body]
        prefix = bool(messages) and bool(messages[-1].get("prefix"))
        if self.dialect == "strict" and (unknown or prefix):
            return self.send(h, 400, json.dumps({"error": f"Unrecognized request argument: {unknown or 'prefix'}"}).encode())
        if body.get("logprobs") and not self.logprobs and self.dialect == "strict":
            return self.send(h, 400, b'{"error": "logprobs are not supported"}')
        if int(body.get("n") or 1) > 1 and not self.several:
            return self.send(h, 400, b'{"error": "n must be 1"}')
        reply = self.reply(body, messages, prefix)
        payload = json.dumps(reply).encode()
        if fault == "truncated":
            cut = payload[: len(payload) // 2]
            return self.send(h, 200, cut)
        if fault == "timeout":  # the client gave up on it: nobody reads its usage
            return self.send(h, 200, payload)
        with self.lock:
            usage = reply.get("usage") or {}
            self.prompt_tokens += usage.get("prompt_tokens", 0)
            self.completion_tokens += usage.get("completion_tokens", 0)
            self.billed.append((body, usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)))
        return self.send(h, 200, payload)

    @staticmethod
    def hung_up(h, limit: float) -> bool:
        """Wait, at most `limit` s, for the client to close the connection. Waiting for the
        hang-up rather than a fixed time means a timed-out request is never answered while
        its client could still read the answer, however slow a busy machine makes either."""
        readable, _, _ = select.select([h.connection], [], [], limit)
        if not readable:
            return False
        try:  # the client sends nothing after its request: readable is its EOF (or a reset)
            return h.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def reply(self, body: dict, messages: list[dict], prefix: bool) -> dict:
        # The extension honoured leaves the assistant's turn open: 3 tokens fewer.
        continued = (self.dialect == "vllm" and body.get("continue_final_message")) or (self.dialect == "deepseek" and prefix)
        prompt_tokens = len(json.dumps([m.get("content") for m in messages])) // 4 + (0 if continued else 3)
        n = int(body.get("n") or 1)
        max_tokens = int(body.get("max_tokens") or 16)
        choices = []
        completion_tokens = 0
        for i in range(n):
            text = answer_for(messages)
            words = text.split(" ")
            finish = "stop"
            if len(words) > max_tokens:
                words, finish = words[:max_tokens], "length"
            text = " ".join(words)
            for s in body.get("stop") or []:
                if s in text:
                    text, finish = text[: text.index(s)], "stop"
            tokens = len(text.split(" "))
            completion_tokens += tokens
            choice = {"index": i, "message": {"role": "assistant", "content": text}, "finish_reason": finish}
            if body.get("logprobs") and self.logprobs:
                top = [{"token": t, "logprob": lp} for t, lp in
                       [("Yes", -0.2), ("No", -1.8), ("yes", -3.0), ("no", -4.0), ("The", -5.0)]]
                top += [{"token": f"x{j}", "logprob": -6.0 - j} for j in range(int(body.get("top_logprobs") or 0) - 5)]
                choice["logprobs"] = {"content": [
                    {"token": w, "logprob": -0.1, "top_logprobs": top[: int(body.get("top_logprobs") or 0)]}
                    for w in text.split(" ")
                ]}
            choices.append(choice)
        reply = {"id": "fake", "object": "chat.completion", "model": body.get("model"), "choices": choices}
        if self.usage:
            reply["usage"] = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                              "total_tokens": prompt_tokens + completion_tokens}
        return reply
