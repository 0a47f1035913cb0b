"""OpenAIEngine: any OpenAI-compatible /v1/completions server (vLLM serve, SGLang, llama.cpp).

Each call is one HTTP request carrying all its prompts; the server batches concurrent
requests itself. Standard library HTTP (urllib) in a thread pool sized to max_batch, so
that many trees can have a request in flight at once.

vLLM servers get vLLM's extensions (tested against a real vLLM server): tokens come back as
token ids (`return_tokens_as_token_ids`: top-5 lists keyed by text lose tokens that decode
alike), special tokens stay in the text as with the hf engine, and the judge's candidates
are scored exactly. `score_method` says how scores were had, the best the server offers:
`token_ids` (vLLM's `logprob_token_ids`: the candidates' log-probs at the next position,
one prefill, prefix cache used), `prompt_logprobs` (each candidate appended to the prompt,
its prompt log-prob read back: exact, one prefill per candidate), or `top_logprobs` (any
server: candidates matched by text in the top 20; one outside them gets -inf). A server
that refuses the extensions (HTTP 400 naming them) is asked again without them.

The server going away (connection refused or dropped, 5xx, after the retries) is
EngineFailed: a run stops rather than record every tree in flight as failed.
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
from dataclasses import replace
from typing import Any

from cotgen.engines.base import (
    BusyClock,
    Completion,
    EngineStats,
    GenerationParams,
    check_prompts,
    check_request,
    render_chat_template,
    single_tokens,
)
from cotgen.engines.config import EngineConfig
from cotgen.errors import DataError, EngineFailed, RunError, UsageError

TOP_K = 5  # alternatives reported per position
SCORE_TOP = 20  # top log-probs asked for when scoring; vLLM serve's default maximum
RETRIES = 3  # attempts on 429, 5xx and dropped connections
RETRY_BACKOFF_S = 0.5  # first wait between attempts, doubled each time
_TRANSIENT = {429, 500, 502, 503, 504}
# vLLM's extensions to /v1/completions that generate sends while the server takes them.
VLLM_GENERATE_EXTRAS = {"return_tokens_as_token_ids": True, "skip_special_tokens": False,
                        "spaces_between_special_tokens": False}
SCORE_METHODS = ("token_ids", "prompt_logprobs", "top_logprobs")  # best first
_TOKEN_ID = "token_id:"


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
        self._busy = BusyClock(self.stats)
        self._executor = ThreadPoolExecutor(max_workers=cfg.max_batch, thread_name_prefix="cotgen-openai")
        self._tokenizer = None
        self._no_tokenizer = False  # the model's tokenizer cannot be had here (see _local_tokenizer)
        self._eos: set[int] = set()
        self.extras = True  # send vLLM's extensions until the server refuses them
        self.score_method: str | None = None  # found on the first score() call (SCORE_METHODS)

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
        raise EngineFailed(f"cannot get completions from {self.url} after {RETRIES} attempts: {problem}")

    async def _call(self, body: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        self._busy.enter()
        try:
            reply = await loop.run_in_executor(self._executor, self._post, body)
        finally:
            self._busy.leave()
        usage = reply.get("usage") or {}
        details = usage.get("prompt_tokens_details") or {}
        if "cached_tokens" in details:  # vLLM with --enable-prompt-tokens-details
            self.stats.prefix_cache = True
            self.stats.prompt_tokens += int(usage.get("prompt_tokens") or 0)
            self.stats.cached_prompt_tokens += int(details.get("cached_tokens") or 0)
        return reply

    async def _call_with_extras(self, body: dict[str, Any], extras: dict[str, Any]) -> dict[str, Any]:
        """`body` plus `extras` (vLLM's extensions) while the server takes them; a server that
        refuses them by name (HTTP 400) is asked without them, now and from then on."""
        if not self.extras:
            return await self._call(body)
        try:
            return await self._call({**body, **extras})
        except DataError as exc:
            if not any(name in str(exc) for name in extras):
                raise
            self.extras = False
            return await self._call(body)

    # --- the Engine interface -------------------------------------------------------

    async def generate(self, prompts: list[str], params: GenerationParams) -> list[list[Completion]]:
        check_request(prompts, params)
        if not prompts:
            return []
        # vLLM refuses n > 1 when greedy; the n greedy samples are one sample n times (as hf's agree).
        copies, n = (params.n, 1) if params.temperature == 0 else (1, params.n)
        body: dict[str, Any] = {
            "model": self.model_id,
            "prompt": list(prompts),
            "n": n,
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
            "logprobs": TOP_K,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        if params.ignore_eos:
            body["ignore_eos"] = True  # a vLLM/SGLang extension; others ignore it
        reply = await self._call_with_extras(body, VLLM_GENERATE_EXTRAS)
        choices = self._choices(reply, len(prompts) * n)
        self.stats.batches += 1
        self.stats.sequences += len(choices)
        out: list[list[Completion]] = [[] for _ in prompts]
        # OpenAI numbers choices prompt-major: choice i*n + j is sample j of prompt i.
        for choice in sorted(choices, key=lambda c: c.get("index", 0)):
            index = int(choice.get("index", 0))
            completion = self._completion(choice, list(params.stop))
            self.stats.generated_tokens += completion.tokens
            out[index // n].extend(replace(completion) for _ in range(copies))
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
        """One choice as a Completion whose tokens are those wholly before a stop string, and
        never the EOS token (as the hf engine counts them)."""
        text = choice.get("text") or ""
        lp = choice.get("logprobs") or {}
        tokens = list(lp.get("tokens") or [])
        chosen = [x if x is not None else -math.inf for x in (lp.get("token_logprobs") or [])]
        tops = [sorted((d or {}).values(), reverse=True)[:TOP_K] for d in (lp.get("top_logprobs") or [])]
        finish = "length" if choice.get("finish_reason") == "length" else "stop"
        ids = _token_ids(tokens)
        # Servers trim stop strings already; a server that does not is trimmed here.
        cuts = [text.find(s) for s in stop if s and s in text]
        if cuts:
            text, finish = text[: min(cuts)], "stop"
        tokenizer = self._local_tokenizer() if ids is not None else None
        if tokenizer is not None:
            kept = len(ids)
            if finish == "stop" and choice.get("stop_reason") is None and ids and ids[-1] in self._eos:
                kept -= 1  # the EOS token ends the completion; it is not part of it
            if cuts or isinstance(choice.get("stop_reason"), str):
                # The text was cut at a stop string; the token(s) that held it are dropped.
                while kept > 0:
                    head = tokenizer.decode(ids[:kept], skip_special_tokens=False, clean_up_tokenization_spaces=False)
                    if len(head) <= len(text) and text.startswith(head):
                        break
                    kept -= 1
        else:
            kept, size = 0, 0
            while kept < len(tokens) and size + len(tokens[kept]) <= len(text):
                size += len(tokens[kept])
                kept += 1
            if not tokens:
                kept = len(chosen)
        return Completion(
            text=text, tokens=kept, finish_reason=finish, logprobs=chosen[:kept], top_logprobs=tops[:kept],
            token_ids=ids[:kept] if ids is not None else [],
        )

    async def score(self, prompts: list[str], candidates: list[str]) -> list[dict[str, float]]:
        """Each candidate's first token's log-prob as the next token, by the best method the
        server offers (see the module docstring); `score_method` says which."""
        check_prompts(prompts)
        if not prompts:
            return []
        tokenizer = self._local_tokenizer()
        first: dict[str, int] = {}
        if tokenizer is not None:
            for c in candidates:
                ids = tokenizer.encode(c, add_special_tokens=False)
                if not ids:
                    raise UsageError(f"score: candidate {c!r} is empty once tokenized")
                first[c] = ids[0]
        methods = [self.score_method] if self.score_method else list(SCORE_METHODS if first else SCORE_METHODS[-1:])
        for method in methods:
            rows = await getattr(self, f"_score_{method}")(prompts, candidates, first, tokenizer)
            if rows is not None:
                self.score_method = method
                self.stats.score_batches += 1
                self.stats.scored_prompts += len(prompts)
                return rows
        raise RunError(f"{self.url} gave no log-probs for the judge's candidates")

    async def _score_token_ids(self, prompts, candidates, first, tokenizer) -> list[dict[str, float]] | None:
        """vLLM's logprob_token_ids: exactly the candidates' log-probs; None if not offered."""
        wanted = sorted(set(first.values()))
        body = {"model": self.model_id, "prompt": list(prompts), "max_tokens": 1, "temperature": 0.0,
                "logprobs": len(wanted), "logprob_token_ids": wanted, "return_tokens_as_token_ids": True}
        reply = await self._try_extension(body, "logprob_token_ids")
        if reply is None:
            return None
        rows = []
        for choice in sorted(self._choices(reply, len(prompts)), key=lambda c: c.get("index", 0)):
            top = ((choice.get("logprobs") or {}).get("top_logprobs") or [{}])[0] or {}
            got = {int(k[len(_TOKEN_ID):]): v for k, v in top.items() if k.startswith(_TOKEN_ID)}
            if not set(wanted) <= set(got):
                return None  # the server ignored the extension
            rows.append({c: float(got[i]) for c, i in first.items()})
        return rows

    async def _score_prompt_logprobs(self, prompts, candidates, first, tokenizer) -> list[dict[str, float]] | None:
        """vLLM's prompt_logprobs: each candidate token appended to the prompt (as token ids),
        its log-prob at the last prompt position read back; None if not offered."""
        wanted = sorted(set(first.values()))
        bases = [tokenizer.encode(p) for p in prompts]
        seqs = [ids + [t] for ids in bases for t in wanted]
        body = {"model": self.model_id, "prompt": seqs, "max_tokens": 1, "temperature": 0.0, "prompt_logprobs": 0}
        reply = await self._try_extension(body, "prompt_logprobs")
        if reply is None:
            return None
        found: dict[tuple[int, int], float] = {}
        for choice in self._choices(reply, len(seqs)):
            i = int(choice["index"])
            last = (choice.get("prompt_logprobs") or [None])[-1]
            token = seqs[i][-1]
            entry = (last or {}).get(str(token))
            if entry is None:
                return None
            found[(i // len(wanted), token)] = float(entry["logprob"] if isinstance(entry, dict) else entry)
        return [{c: found[(p, t)] for c, t in first.items()} for p in range(len(prompts))]

    async def _score_top_logprobs(self, prompts, candidates, first, tokenizer) -> list[dict[str, float]]:
        """Any server: candidates matched by text in the top 20 next tokens; one missing from
        them gets -inf (its probability is below the 20th token's)."""
        body = {"model": self.model_id, "prompt": list(prompts), "max_tokens": 1, "temperature": 0.0,
                "logprobs": SCORE_TOP}
        reply = await self._call(body)
        rows = []
        for choice in sorted(self._choices(reply, len(prompts)), key=lambda c: c.get("index", 0)):
            top = ((choice.get("logprobs") or {}).get("top_logprobs") or [{}])[0] or {}
            rows.append({c: float(top.get(c, -math.inf)) for c in candidates})
        return rows

    async def _try_extension(self, body: dict[str, Any], name: str) -> dict[str, Any] | None:
        """The reply to `body`, or None when the server refuses the extension `name` by name."""
        try:
            return await self._call(body)
        except DataError as exc:
            if name in str(exc) or "extra" in str(exc).lower():
                return None
            raise

    def _local_tokenizer(self):
        """The model's tokenizer when it can be had here, else None (token ids, the judge's
        exact methods and stop-string token trimming then fall back to text)."""
        if self._no_tokenizer:
            return None
        try:
            return self._tok()
        except RunError:
            self._no_tokenizer = True
            return None

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
            eos = self._tokenizer.eos_token_id
            self._eos = {eos} if eos is not None else set()
            try:
                from transformers import GenerationConfig

                more = GenerationConfig.from_pretrained(model.load_from).eos_token_id
                self._eos |= set(more if isinstance(more, list) else [more]) - {None}
            except (OSError, ValueError):
                pass  # no generation_config.json: the tokenizer's EOS is the one
        return self._tokenizer

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        """Rendered locally with the model's own tokenizer (the server is only asked for completions)."""
        return render_chat_template(self._tok(), self.model_id, messages, add_generation_prompt)

    def has_tokens(self, tokens: list[str]) -> bool:
        return single_tokens(self._tok(), tokens)

    async def close(self) -> None:
        self._executor.shutdown(wait=False)


def _token_ids(tokens: list[str]) -> list[int] | None:
    """The ids of `tokens` when the server sent them as 'token_id:N' (vLLM's
    return_tokens_as_token_ids), else None."""
    if not tokens or not all(isinstance(t, str) and t.startswith(_TOKEN_ID) for t in tokens):
        return None
    try:
        return [int(t[len(_TOKEN_ID):]) for t in tokens]
    except ValueError:
        return None
