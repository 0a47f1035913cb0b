"""ChatEngine: any OpenAI-compatible /v1/chat/completions endpoint as the policy (OpenAI,
DeepSeek, Together, vLLM serve's own chat endpoint).

The policy speaks text: it renders messages with `engine.render_chat` and appends the
solution's steps so far, which the model continues. A chat API takes messages, so this
engine's `render_chat` returns the messages themselves, encoded (MARK + JSON + END, see
encode_messages); `generate` decodes each prompt back into the messages and the text after
them, the assistant's partial answer. Nothing in the policy or the search changes.

The partial answer is continued in one of three ways (`continuation`):
  prefill  vLLM: the answer so far is the last assistant message, with
           continue_final_message=true and add_generation_prompt=false;
  prefix   DeepSeek's prefix completion (base URL .../beta): the last assistant
           message carries "prefix": true;
  restate  any server: the answer so far is an assistant message, and a user message asks
           for the steps that follow it.
`auto` probes the endpoint once at start: a server that honours an extension renders the
same messages in fewer prompt tokens than one that closes the assistant's turn and opens a
new one, and the API reports prompt tokens, so the probe needs no tokenizer and no model
that follows instructions.

HTTP is the standard library's (urllib), one daemon thread per request in flight, at most
`max_requests` at once. A request is retried on 429, 5xx, timeouts, dropped connections and
truncated replies, waiting as Retry-After says or with exponential backoff. A request that
still fails fails its tree (RunError); the endpoint refusing connections, or failing
GONE_AFTER requests in a row, is EngineFailed: the run stops (the openai engine's rule).

The API key comes from an environment variable (`api_key_env`, default COTGEN_API_KEY then
OPENAI_API_KEY); it lives in this object only, and is cut out of any message that might
echo it.
"""

from __future__ import annotations

import asyncio
import email.utils
import http.client
import json
import math
import os
import random
import socket
import threading
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass, replace
from typing import Any

from cotgen.engines.base import (
    BusyClock,
    Completion,
    EngineStats,
    GenerationParams,
    check_prompts,
    check_request,
)
from cotgen.engines.config import EngineConfig
from cotgen.errors import DataError, EngineFailed, RunError, UsageError

MARK = "\x00cotgen-chat:"  # starts a prompt that holds messages (JSON never holds a raw NUL)
END = "\x00"  # ends the JSON; what follows is the assistant's answer so far
DEFAULT_KEY_ENVS = ("COTGEN_API_KEY", "OPENAI_API_KEY")
CONTINUATIONS = ("auto", "prefill", "prefix", "restate")
RESTATE = ("Continue the solution exactly where it stops. Write only the steps that follow, "
           "separated by blank lines, without repeating any step above.")
TOP_K = 5  # alternatives per generated position (Marco-o1's confidence reads them)
SCORE_TOP = 20  # top log-probs asked for when scoring: OpenAI's and vLLM's maximum
ATTEMPTS = 6  # tries of one request on 429, 5xx, timeouts and dropped connections
RETRY_BACKOFF_S = 1.0  # first wait between tries, doubled each time (+ up to 25% jitter)
MAX_WAIT_S = 120.0  # the longest wait between tries, whatever Retry-After says
GONE_AFTER = 5  # requests failed in a row (all tries spent) that mean the endpoint is gone
_TRANSIENT = {408, 409, 425, 429}  # besides every 5xx


class BudgetSpent(EngineFailed):
    """--max-cost reached: the run stops as on Ctrl-C, finished trees saved. Exit code 3."""

    exit_code = 3


class _Retry(Exception):
    """One try failed in a way worth trying again."""

    def __init__(self, problem: str, retry_after: float | None = None, refused: bool = False) -> None:
        super().__init__(problem)
        self.problem, self.retry_after, self.refused = problem, retry_after, refused


@dataclass
class ApiUsage:
    """Tokens as the API reports them, over every request this engine made (probes too)."""

    requests: int = 0  # requests answered
    retries: int = 0  # tries that failed and were tried again
    failed_requests: int = 0  # requests that failed after every try
    prompt_tokens: int = 0
    completion_tokens: int = 0


def encode_messages(messages: list[dict[str, Any]]) -> str:
    """Messages as prompt text that decode_prompt reads back; text appended to it is the
    assistant's answer so far."""
    return MARK + json.dumps(messages, ensure_ascii=False) + END


def decode_prompt(prompt: str) -> tuple[list[dict[str, Any]], str]:
    """(messages, the assistant's answer so far). A prompt that holds no messages (a raw text
    prompt) is one user message."""
    if not prompt.startswith(MARK):
        return [{"role": "user", "content": prompt}], ""
    head, sep, tail = prompt[len(MARK):].partition(END)
    if not sep:
        raise UsageError("a chat prompt was cut before its end marker")
    messages = json.loads(head)
    if messages and messages[-1].get("role") == "assistant":  # render_chat(add_generation_prompt=False)
        tail = messages.pop()["content"] + tail
    return messages, tail


def api_key(cfg: EngineConfig) -> tuple[str | None, str]:
    """(the key, the name of the variable it came from, or of those tried)."""
    if cfg.api_key_env:
        key = os.environ.get(cfg.api_key_env)
        if not key:
            raise UsageError(f"--api-key-env {cfg.api_key_env}: that environment variable is not set")
        return _checked_key(key, cfg.api_key_env), cfg.api_key_env
    for name in DEFAULT_KEY_ENVS:
        if os.environ.get(name):
            return _checked_key(os.environ[name], name), name
    return None, " or $".join(DEFAULT_KEY_ENVS)


def _checked_key(key: str, name: str) -> str:
    """The key without surrounding whitespace; refused, by the variable's name only, when it
    holds a control character (a key read from a file with Windows line endings ends in \r):
    http.client would refuse the header with the whole key in its message."""
    key = key.strip()
    if not key or any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
        raise UsageError(f"${name} holds no usable API key (it is empty or contains a control "
                         "character such as a line break); set it to the key alone")
    return key


class ChatEngine:
    """An OpenAI-compatible chat endpoint. The model name is sent as given."""

    name = "chat"

    def __init__(self, cfg: EngineConfig, probe: bool = True) -> None:
        self.cfg = cfg
        self.model_id = cfg.model
        self.url = cfg.base_url.rstrip("/") + "/chat/completions"
        self._key, self.key_source = api_key(cfg)
        self.stats = EngineStats()
        self.usage = ApiUsage()
        self._busy = BusyClock(self.stats)
        self._slots: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None
        self._failed_in_a_row = 0
        self.spent = False  # --max-cost reached: no request is sent any more
        self.continuation = cfg.continuation if cfg.continuation != "auto" else "restate"
        self.logprobs = False  # the endpoint returns log-probs (found by the probe)
        self.several = True  # the endpoint takes n > 1 (found by the probe; else one request a sample)
        self.max_field = "max_tokens"  # OpenAI's reasoning models take only max_completion_tokens
        if probe:
            _run_sync(self._probe())

    # --- secrets ----------------------------------------------------------------------

    def _scrub(self, text: str) -> str:
        """`text` with the key cut out (a server may echo a header in an error page)."""
        return text.replace(self._key, "***") if self._key else text

    # --- HTTP -------------------------------------------------------------------------

    def _try_once(self, body: dict[str, Any]) -> dict[str, Any]:
        """One HTTP request; raises _Retry for what is worth trying again, DataError for a
        request the server refused, EngineFailed for a key or URL it never serves."""
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        request = urllib.request.Request(self.url, data=json.dumps(body).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.cfg.request_timeout_s) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            detail = self._scrub(_read_detail(exc))[:500]  # cut after the scrub: never half a key
            if exc.code in _TRANSIENT or exc.code >= 500:
                raise _Retry(f"HTTP {exc.code}: {detail}", _retry_after(exc.headers.get("Retry-After"))) from None
            if exc.code in (401, 403):
                what = f"the API key from ${self.key_source}" if self._key else f"a request without a key (${self.key_source} unset)"
                raise EngineFailed(f"{self.url} refused {what} (HTTP {exc.code}): {detail}") from None
            if exc.code == 404:
                raise EngineFailed(f"{self.url} answered HTTP 404 (no such endpoint or model "
                                   f"'{self.model_id}'): {detail}") from None
            raise DataError(f"{self.url} refused the request (HTTP {exc.code}): {detail}") from None
        except urllib.error.URLError as exc:
            reason = exc.reason
            refused = isinstance(reason, (ConnectionRefusedError, socket.gaierror))
            raise _Retry(f"cannot reach the server: {reason}", refused=refused) from None
        except TimeoutError:
            raise _Retry(f"no answer within {self.cfg.request_timeout_s:g} s") from None
        except (http.client.HTTPException, ConnectionError, OSError) as exc:
            raise _Retry(f"the connection dropped: {type(exc).__name__}: {exc}") from None
        try:
            reply = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _Retry(f"invalid or truncated JSON ({len(raw)} bytes)") from None
        if not isinstance(reply, dict) or not isinstance(reply.get("choices"), list):
            raise _Retry("a reply without choices")
        if not all(isinstance(c, dict) for c in reply["choices"]):
            raise _Retry("a reply with a malformed choice")
        return reply

    def _slot(self) -> asyncio.Semaphore:
        """The cap on requests in flight, one per event loop (the probe runs in its own)."""
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots[0] is not loop:
            self._slots = (loop, asyncio.Semaphore(self.cfg.max_requests))
        return self._slots[1]

    async def _request(self, body: dict[str, Any]) -> dict[str, Any]:
        """The reply to `body`, tried up to ATTEMPTS times."""
        async with self._slot():
            problem, refused = "", False
            for attempt in range(ATTEMPTS):
                self._check_budget()
                self._busy.enter()
                try:
                    # The socket's timeout bounds each read; this bounds the whole request (a
                    # server that trickles bytes). A thread left behind ends at its socket timeout.
                    reply = await _deadline(_in_thread(self._try_once, body), self.cfg.request_timeout_s)
                except _Retry as exc:
                    problem, refused = exc.problem, exc.refused  # gone: refused at the last try
                    if attempt + 1 < ATTEMPTS:
                        self.usage.retries += 1
                        await asyncio.sleep(_wait(attempt, exc.retry_after))
                    continue
                finally:
                    self._busy.leave()
                self._failed_in_a_row = 0
                self._count(reply)
                return reply
        self.usage.failed_requests += 1
        self._failed_in_a_row += 1
        if refused:
            raise EngineFailed(f"{self.url} is gone: {problem}")
        if self._failed_in_a_row >= GONE_AFTER:
            raise EngineFailed(f"{self.url} failed {self._failed_in_a_row} requests in a row; the last: {problem}")
        raise RunError(f"{self.url} failed the request after {ATTEMPTS} tries: {problem}")

    def _count(self, reply: dict[str, Any]) -> None:
        usage = reply.get("usage") or {}
        self.usage.requests += 1
        self.stats.batches += 1
        self.usage.prompt_tokens += int(usage.get("prompt_tokens") or 0)
        self.usage.completion_tokens += int(usage.get("completion_tokens") or 0)
        details = usage.get("prompt_tokens_details") or {}
        if "cached_tokens" in details:  # OpenAI, vLLM with --enable-prompt-tokens-details
            self.stats.prefix_cache = True
            self.stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.stats.cached_prompt_tokens += int(details.get("cached_tokens") or 0)
        self._check_budget()

    # --- cost -------------------------------------------------------------------------

    @property
    def cost_usd(self) -> float | None:
        """What the tokens so far cost at --price-in/--price-out; None without prices."""
        if self.cfg.price_in is None and self.cfg.price_out is None:
            return None
        return (self.usage.prompt_tokens * (self.cfg.price_in or 0.0)
                + self.usage.completion_tokens * (self.cfg.price_out or 0.0)) / 1e6

    def _check_budget(self) -> None:
        cost = self.cost_usd
        if self.cfg.max_cost is not None and cost is not None and cost >= self.cfg.max_cost:
            self.spent = True
        if self.spent:
            raise BudgetSpent(f"--max-cost {self.cfg.max_cost:g} USD reached ({cost:.4f} USD spent on "
                              f"{self.usage.prompt_tokens:,} prompt and {self.usage.completion_tokens:,} completion tokens)")

    def api_usage(self) -> dict[str, Any]:
        """What the summary, --json, the manifest and the card report."""
        cost = self.cost_usd
        return {**asdict(self.usage), "continuation": self.continuation, "logprobs": self.logprobs,
                "takes_n": self.several,
                "cost_usd": None if cost is None else round(cost, 6),
                "price_in": self.cfg.price_in, "price_out": self.cfg.price_out}

    # --- the probe ----------------------------------------------------------------------

    async def _probe(self) -> None:
        """At start: the key and model work, whether log-probs come back and n > 1 is taken,
        and (auto) how a partial answer is continued."""
        hello = [{"role": "user", "content": "Say OK."}]
        body = {"model": self.model_id, "messages": hello, "max_tokens": 1, "temperature": 0.0}
        try:
            await self._request(body)
        except DataError as exc:
            if "max_tokens" not in str(exc):
                raise
            self.max_field = "max_completion_tokens"
            body = {"model": self.model_id, "messages": hello, self.max_field: 1}
            await self._request(body)
        try:
            reply = await self._request({**body, "logprobs": True, "top_logprobs": TOP_K, "n": 2})
            self.logprobs = bool(((reply.get("choices") or [{}])[0].get("logprobs") or {}).get("content"))
        except DataError:  # log-probs or n refused: which?
            self.several = await self._accepts({**body, "n": 2})
            self.logprobs = await self._accepts({**body, "logprobs": True, "top_logprobs": TOP_K})
        if self.cfg.continuation == "auto":
            self.continuation = await self._probe_continuation()

    async def _probe_continuation(self) -> str:
        """prefill or prefix when the endpoint renders a final assistant message in fewer
        prompt tokens with the extension than without it (it left the turn open), else restate."""
        messages = [{"role": "user", "content": "Count from 1 to 10."}, {"role": "assistant", "content": "1, 2, 3,"}]
        base = {"model": self.model_id, self.max_field: 1, "temperature": 0.0}
        plain = await self._prompt_tokens({**base, "messages": messages})
        tries = {
            "prefill": {**base, "messages": messages, "continue_final_message": True, "add_generation_prompt": False},
            "prefix": {**base, "messages": [messages[0], {**messages[1], "prefix": True}]},
        }
        for mode, body in tries.items():
            tokens = await self._prompt_tokens(body)
            if tokens is not None and (plain is None or tokens < plain):
                return mode
        return "restate"

    async def _accepts(self, body: dict[str, Any]) -> bool:
        try:
            reply = await self._request(body)
        except DataError:
            return False
        if body.get("logprobs"):
            return bool(((reply.get("choices") or [{}])[0].get("logprobs") or {}).get("content"))
        return True

    async def _prompt_tokens(self, body: dict[str, Any]) -> int | None:
        """The prompt tokens the endpoint reports for `body`; None if it refuses or says not."""
        try:
            reply = await self._request(body)
        except DataError:
            return None
        tokens = (reply.get("usage") or {}).get("prompt_tokens")
        return int(tokens) if isinstance(tokens, int) and tokens > 0 else None

    # --- the Engine interface -------------------------------------------------------

    def _messages(self, prompt: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The messages of a prompt, continued as `continuation` says, and the body fields it needs."""
        messages, partial = decode_prompt(prompt)
        if not partial:
            return messages, {}
        if self.continuation == "prefill":
            return [*messages, {"role": "assistant", "content": partial}], {
                "continue_final_message": True, "add_generation_prompt": False}
        if self.continuation == "prefix":
            return [*messages, {"role": "assistant", "content": partial, "prefix": True}], {}
        return [*messages, {"role": "assistant", "content": partial.rstrip()}, {"role": "user", "content": RESTATE}], {}

    async def generate(self, prompts: list[str], params: GenerationParams) -> list[list[Completion]]:
        check_request(prompts, params)
        return await _gather([self._generate_one(p, params) for p in prompts])

    async def _generate_one(self, prompt: str, params: GenerationParams) -> list[Completion]:
        messages, extras = self._messages(prompt)
        # n greedy samples are one sample n times (as the other engines' agree), paid once.
        copies, want = (params.n, 1) if params.temperature == 0 else (1, params.n)
        body: dict[str, Any] = {"model": self.model_id, "messages": messages, self.max_field: params.max_tokens,
                                "temperature": params.temperature, "top_p": params.top_p, **extras}
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.ignore_eos:
            body["ignore_eos"] = True  # a vLLM extension (benchmarks)
        if self.logprobs:
            body.update(logprobs=True, top_logprobs=TOP_K)
        out: list[Completion] = []
        while len(out) < want:  # a server that ignores n (DeepSeek) answers one at a time
            reply = await self._request({**body, "n": want - len(out) if self.several else 1})
            got = self._completions(reply, params.stop)
            if not got:
                raise RunError(f"{self.url} answered no choices")
            out += got[: want - len(out)]
        self.stats.sequences += len(out)
        if self.continuation == "restate":
            out = [_without_echo(c, decode_prompt(prompt)[1]) for c in out]
        # The copies are the same sample, paid once: only the first carries its tokens.
        return [c if i == 0 else replace(c, tokens=0, prompt_tokens=0) for c in out for i in range(copies)]

    def _completions(self, reply: dict[str, Any], stop: tuple[str, ...]) -> list[Completion]:
        """The reply's choices, in order, with the API's completion tokens shared among them
        by text length (they sum to what the API billed) and its prompt tokens on the first
        (billed once per request, whatever n)."""
        choices = sorted(reply["choices"], key=lambda c: c.get("index", 0) if isinstance(c, dict) else 0)
        texts, finishes, lps, tops = [], [], [], []
        for choice in choices:
            message = choice.get("message") or {}  # every choice is a dict (_try_once)
            text = message.get("content") or ""
            finish = "length" if choice.get("finish_reason") == "length" else "stop"
            cuts = [text.find(s) for s in stop if s in text]  # a server that did not trim them
            if cuts:
                text, finish = text[: min(cuts)], "stop"
            content = ((choice.get("logprobs") or {}).get("content")) or []
            lps.append([float(t.get("logprob", -math.inf)) for t in content])
            tops.append([sorted((float(a.get("logprob", -math.inf)) for a in t.get("top_logprobs") or []),
                                reverse=True)[:TOP_K] for t in content])
            texts.append(text)
            finishes.append(finish)
        usage = reply.get("usage") or {}
        shares = _shares(int(usage.get("completion_tokens") or 0), [len(t) for t in texts])
        prompt_tokens = int(usage.get("prompt_tokens") or 0)
        out = []
        for i, text in enumerate(texts):
            out.append(Completion(text=text, tokens=shares[i], finish_reason=finishes[i], logprobs=lps[i],
                                  top_logprobs=tops[i], prompt_tokens=prompt_tokens if i == 0 else 0))
            self.stats.generated_tokens += shares[i]
        return out

    async def score(self, prompts: list[str], candidates: list[str]) -> list[dict[str, float]]:
        """Each candidate's log-prob as the first token of the answer, matched by text in the
        top 20 (one outside them gets -inf). Needs an endpoint that returns log-probs."""
        check_prompts(prompts)
        if not self.logprobs:
            raise UsageError(f"{self.url} returns no log-probs: the judge cannot score")

        async def one(prompt: str) -> dict[str, float]:
            messages, extras = self._messages(prompt)
            reply = await self._request({"model": self.model_id, "messages": messages, self.max_field: 1,
                                         "temperature": 0.0, "logprobs": True, "top_logprobs": SCORE_TOP, **extras})
            content = ((reply["choices"] or [{}])[0].get("logprobs") or {}).get("content") or [{}]
            top = {a.get("token"): float(a.get("logprob", -math.inf)) for a in content[0].get("top_logprobs") or []}
            return {c: top.get(c, -math.inf) for c in candidates}

        rows = await _gather([one(p) for p in prompts])
        self.stats.score_batches += 1
        self.stats.scored_prompts += len(prompts)
        return rows

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """The messages themselves, encoded (see the module docstring): the endpoint applies
        the model's chat template."""
        return encode_messages(list(messages))

    def has_tokens(self, tokens: list[str]) -> bool:
        return False  # the vocabulary is the server's: the judge asks Yes/No

    async def close(self) -> None:
        return None  # request threads are daemons; nothing is held open between requests


LOGPROB_VALUES = ("judge", "confidence")  # value modes that read the policy's log-probs (prm does not)


def refuse_value_without_logprobs(engine: Any, value_mode: str, no_answer: int) -> None:
    """Problems without a gold answer are valued by the policy's log-probs (judge,
    confidence): refuse the run at start when the chat endpoint returns none."""
    if value_mode not in LOGPROB_VALUES:
        return
    if no_answer and getattr(engine, "name", "") == "chat" and not engine.logprobs:
        raise UsageError(
            f"{no_answer} problem(s) have no gold answer, and --value {value_mode} needs log-probs, "
            f"which {engine.url} does not return; give the problems answers (--answer-field), "
            "or use an endpoint that returns log-probs (OpenAI, vLLM)"
        )


# --- helpers -----------------------------------------------------------------------


def _without_echo(c: Completion, partial: str) -> Completion:
    """Restated steps are sometimes written out again before the new ones: drop that echo."""
    head = partial.strip()
    if head and c.text.lstrip().startswith(head):
        return replace(c, text=c.text.lstrip()[len(head):].lstrip("\n"))
    return c


def _shares(total: int, sizes: list[int]) -> list[int]:
    """`total` split in proportion to `sizes`, in whole numbers that sum to it."""
    if not sizes:
        return []
    weight = sum(sizes) or len(sizes)
    raw = [total * (s if sum(sizes) else 1) / weight for s in sizes]
    out = [int(x) for x in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - out[i], reverse=True)[: total - sum(out)]:
        out[i] += 1
    return out


def _read_detail(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read(65536).decode(errors="replace")
    except (OSError, http.client.HTTPException):
        return ""


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds: a number, or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _wait(attempt: int, retry_after: float | None) -> float:
    if retry_after is not None:
        return min(retry_after, MAX_WAIT_S)
    base = RETRY_BACKOFF_S * 2**attempt
    return min(base * (1 + random.random() / 4), MAX_WAIT_S)


async def _in_thread(fn, *args):
    """fn(*args) in a daemon thread: a run stopped mid-request exits at once instead of
    waiting (as a thread pool would at exit) for the server."""
    loop = asyncio.get_running_loop()
    future = loop.create_future()

    def settle(result, error) -> None:
        if not future.done():
            future.set_exception(error) if error is not None else future.set_result(result)

    def work() -> None:
        try:
            result, error = fn(*args), None
        except BaseException as exc:  # handed to the awaiting task, raised there
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:
            pass  # the loop closed: nobody waits for this reply any more

    threading.Thread(target=work, daemon=True, name="cotgen-chat").start()
    return await future


async def _deadline(awaitable, seconds: float):
    try:
        return await asyncio.wait_for(awaitable, seconds)
    except asyncio.TimeoutError:
        raise _Retry(f"no answer within {seconds:g} s") from None


async def _gather(coros: list) -> list:
    """asyncio.gather, but the first failure cancels the rest (no request left orphaned)."""
    tasks = [asyncio.ensure_future(c) for c in coros]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _run_sync(coro) -> None:
    """Run `coro` to the end from sync code, also where an event loop already runs here."""
    box: dict[str, BaseException] = {}

    def main() -> None:
        try:
            asyncio.run(coro)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=main, daemon=True, name="cotgen-chat-probe")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
