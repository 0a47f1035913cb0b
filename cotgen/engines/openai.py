"""OpenAIEngine: any OpenAI-compatible /v1/completions server (vLLM serve, SGLang, llama.cpp).

Each call is one HTTP request carrying all its prompts; the server batches concurrent
requests itself. Standard library HTTP (urllib) in a thread pool sized to max_batch, so
that many trees can have a request in flight at once.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cotgen.config import EngineConfig
from cotgen.engines.base import (
    Completion,
    EngineStats,
    GenerationParams,
    render_chat_template,
    single_tokens,
)
from cotgen.errors import DataError, RunError, UsageError

TOP_K = 5  # alternatives reported per position
SCORE_TOP = 20  # top log-probs asked for when scoring; vLLM serve's default maximum
RETRIES = 3  # attempts on 429, 5xx and dropped connections
RETRY_BACKOFF_S = 0.5  # first wait between attempts, doubled each time
_TRANSIENT = {429, 500, 502, 503, 504}


class OpenAIEngine:
    """A completions server. The model name is sent as given (aliases mapped to Hub ids)."""

    name = "openai"

    def __init__(self, cfg: EngineConfig) -> None:
        from cotgen.models import ALIASES

        self.cfg = cfg
        self.model_id = ALIASES.get(cfg.model.lower(), cfg.model)
        self.url = cfg.base_url.rstrip("/") + "/completions"
        self.api_key = cfg.api_key or os.environ.get("OPENAI_API_KEY")
        self.stats = EngineStats()
        self._executor = ThreadPoolExecutor(max_workers=cfg.max_batch, thread_name_prefix="cotgen-openai")
        self._tokenizer = None

    # --- HTTP -------------------------------------------------------------------------

    def _post(self, body: dict[str, Any]) -> dict[str, Any]:
        data = json.dumps(body).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        problem = ""
        for attempt in range(RETRIES):
            if attempt:
                time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
            request = urllib.request.Request(self.url, data=data, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.cfg.request_timeout_s) as response:
                    return json.loads(response.read())
            except urllib.error.HTTPError as exc:
                detail = exc.read().decode(errors="replace")[:500]
                if exc.code in _TRANSIENT:
                    problem = f"HTTP {exc.code}: {detail}"
                    continue
                if exc.code == 400:
                    # The server refused this request (too long a prompt, bad parameter).
                    raise DataError(f"{self.url} refused the request (HTTP 400): {detail}") from None
                raise RunError(f"{self.url} answered HTTP {exc.code}: {detail}") from None
            except (urllib.error.URLError, ConnectionError, TimeoutError) as exc:
                problem = f"{getattr(exc, 'reason', exc)}"
            except json.JSONDecodeError as exc:
                raise RunError(f"{self.url} answered with invalid JSON: {exc}") from None
        raise RunError(f"cannot get completions from {self.url} after {RETRIES} attempts: {problem}")

    async def _call(self, body: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        try:
            return await loop.run_in_executor(self._executor, self._post, body)
        finally:
            self.stats.busy_seconds += time.perf_counter() - t0

    # --- the Engine interface -------------------------------------------------------

    async def generate(self, prompts: list[str], **sampling: Any) -> list[list[Completion]]:
        if isinstance(prompts, str):
            raise UsageError("prompts must be a list of strings, not one string")
        params = GenerationParams(**sampling)
        n, max_tokens, seed, ignore_eos = params.n, params.max_tokens, params.seed, params.ignore_eos
        if not prompts:
            return []
        body: dict[str, Any] = {
            "model": self.model_id,
            "prompt": list(prompts),
            "n": n,
            "max_tokens": max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "logprobs": TOP_K,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if seed is not None:
            body["seed"] = seed
        if ignore_eos:
            body["ignore_eos"] = True  # a vLLM/SGLang extension; others ignore it
        reply = await self._call(body)
        choices = self._choices(reply, len(prompts) * n)
        self.stats.batches += 1
        self.stats.sequences += len(choices)
        out: list[list[Completion]] = [[] for _ in prompts]
        # OpenAI numbers choices prompt-major: choice i*n + j is sample j of prompt i.
        for choice in sorted(choices, key=lambda c: c.get("index", 0)):
            index = int(choice.get("index", 0))
            completion = self._completion(choice, list(params.stop))
            self.stats.generated_tokens += completion.tokens
            out[index // n].append(completion)
        return out

    def _choices(self, reply: dict[str, Any], expected: int) -> list[dict[str, Any]]:
        choices = reply.get("choices")
        if not isinstance(choices, list) or len(choices) != expected:
            got = len(choices) if isinstance(choices, list) else "no"
            raise RunError(f"{self.url} answered {got} choices, expected {expected}")
        indices = sorted(int(c.get("index", -1)) for c in choices)
        if indices != list(range(expected)):
            raise RunError(f"{self.url} answered choice indices {indices[:10]}..., expected 0..{expected - 1}")
        return choices

    def _completion(self, choice: dict[str, Any], stop: list[str]) -> Completion:
        text = choice.get("text") or ""
        lp = choice.get("logprobs") or {}
        tokens = list(lp.get("tokens") or [])
        chosen = [x if x is not None else -math.inf for x in (lp.get("token_logprobs") or [])]
        tops = [sorted((d or {}).values(), reverse=True)[:TOP_K] for d in (lp.get("top_logprobs") or [])]
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        # Servers trim stop strings already; a server that does not is trimmed here.
        cuts = [text.find(s) for s in stop if s and s in text]
        if cuts:
            text, finish = text[: min(cuts)], "stop"
            kept, size = 0, 0
            while kept < len(tokens) and size + len(tokens[kept]) <= len(text):
                size += len(tokens[kept])
                kept += 1
            tokens, chosen, tops = tokens[:kept], chosen[:kept], tops[:kept]
        count = len(tokens) if tokens else len(chosen)
        return Completion(text=text, tokens=count, finish_reason=finish, logprobs=chosen[:count], top_logprobs=tops[:count])

    async def score(self, prompts: list[str], candidates: list[str]) -> list[dict[str, float]]:
        """Candidates are matched against the top-20 next tokens by their text; one missing
        from the top 20 gets -inf (its probability is below the 20th token's)."""
        if not prompts:
            return []
        body = {
            "model": self.model_id,
            "prompt": list(prompts),
            "max_tokens": 1,
            "temperature": 0.0,
            "logprobs": SCORE_TOP,
        }
        reply = await self._call(body)
        choices = sorted(self._choices(reply, len(prompts)), key=lambda c: c.get("index", 0))
        self.stats.score_batches += 1
        self.stats.scored_prompts += len(prompts)
        rows = []
        for choice in choices:
            top = ((choice.get("logprobs") or {}).get("top_logprobs") or [{}])[0] or {}
            rows.append({c: float(top.get(c, -math.inf)) for c in candidates})
        return rows

    def _tok(self):
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            from cotgen.models import resolve_model

            model = resolve_model(self.cfg.model)
            try:
                self._tokenizer = AutoTokenizer.from_pretrained(
                    model.load_from, trust_remote_code=self.cfg.trust_remote_code
                )
            except (OSError, ValueError) as exc:
                raise RunError(f"cannot load the tokenizer of '{self.cfg.model}' for the chat template: {exc}") from None
        return self._tokenizer

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Rendered locally with the model's own tokenizer (the server is only asked for completions)."""
        return render_chat_template(self._tok(), self.model_id, messages, add_generation_prompt)

    def has_tokens(self, tokens: list[str]) -> bool:
        return single_tokens(self._tok(), tokens)

    async def close(self) -> None:
        self._executor.shutdown(wait=False)
