"""HFEngine: transformers in-process, with our own decode loop and continuous batching.

How a request becomes tokens:
- `generate`/`score` tokenize, check the context length (a prompt that does not fit fails
  for its own call, before it can join a batch) and queue one request per prompt.
- One dispatcher task per event loop drives a worker thread. The worker keeps up to
  `max_batch` sequences (n samples = n sequences) in one KV cache and advances them one
  token per forward pass. A sequence leaves the batch the step it ends (EOS, a stop string,
  max_tokens) and its caller hears at once; queued sequences are admitted into the free
  slots between steps: their prompts are prefilled (once per prompt, the KV repeated for
  its n samples), left-padded to the batch's width and appended to the cache. A running
  batch admits once 1/8 of its slots are free (one prefill for several requests, not one
  per request). Cache columns that are padding in every row are dropped as rows leave.
- Sampling settings are per sequence (temperature, top_p, stop, max_tokens, ignore_eos),
  so any requests share a batch. When the engine is idle, the first request waits
  `batch_wait_ms` for company so concurrent callers start together.
- Score requests are prefill-only (last-position logits) and run between decode steps;
  they never hold a slot. The prompts of one `score` call (the judge's candidates of one
  node) usually share a long prefix: it is run once and each prompt's rest on top of it.

Log-probs are those of the sampled token under the raw model distribution
(log_softmax of the logits, before temperature/top-p), the same for every temperature,
so a prior computed from them does not depend on how the step was sampled. Top-5 are the
five highest of that distribution at each position.

Seeds: every sampled sequence has its own torch.Generator, seeded from the call's seed,
the prompt's index in the call and the sample's index (a call without a seed takes the next draw of the engine's own RNG,
EngineConfig.seed, when it is made). A sequence's samples depend only on its generator and
its own logits, not on which other sequences share the batch: the same seeded call gives
the same completions alone or in any company, up to float rounding of batched kernels
(left padding changes the summation order in the last bits; a sampled token could only
change where two candidates are within that rounding).

Stop strings are checked as tokens arrive, on the decoded tail of the sequence, so a
sequence stops the step its stop string appears; the text is cut at the first stop string
and only tokens that lie wholly before the cut are kept.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from cotgen.engines.base import (
    Completion,
    EngineStats,
    GenerationParams,
    check_request,
    encode_prompts,
    fitted_max_tokens,
    render_chat_template,
    single_tokens,
)
from cotgen.engines.config import EngineConfig
from cotgen.engines.hf.batch import KVBatch, Row
from cotgen.engines.hf.cache import CacheAdapter
from cotgen.engines.hf.loading import load_model
from cotgen.engines.hf.sampling import pick_tokens
from cotgen.engines.hf.scheduler import Request, take_admissions
from cotgen.engines.hf.stops import StopStrings
from cotgen.errors import RunError, UsageError
from cotgen.models import ResolvedModel

STEPS_PER_CALL = 16  # decode steps per worker hand-off when nothing finishes and nobody waits
SWITCH_INTERVAL_S = 0.0005  # process-wide GIL switch interval the engine asks for (see __init__)
ADMIT_FRACTION = 8  # a running batch admits once 1/ADMIT_FRACTION of its slots are free
SCORE_MAX_PROMPTS = 64  # prompts per score forward: bounds the activations of one prefill


class HFEngine:
    """transformers in-process, CPU or GPU. See the module docstring for batching."""

    name = "hf"

    def __init__(self, model: ResolvedModel, cfg: EngineConfig | None = None) -> None:
        import torch

        cfg = cfg or EngineConfig(model=model.name)
        self.cfg = cfg
        self.model_id = model.model_id
        loaded = load_model(model, cfg)
        self.model, self.tokenizer, self.device = loaded.model, loaded.tokenizer, loaded.device
        self.pad_id, self.eos_ids, self.context_len = loaded.pad_id, loaded.eos_ids, loaded.context_len
        self._cache = CacheAdapter(self.model)
        # The worker drops the GIL inside every torch op; with the default 5 ms switch
        # interval a busy event loop (the search's own Python) then holds it for up to 5 ms
        # per op. A shorter interval measured +10-15% search tokens/s on the tiny model.
        sys.setswitchinterval(min(sys.getswitchinterval(), SWITCH_INTERVAL_S))
        self.stats = EngineStats()
        self._torch = torch
        self._rng = random.Random(cfg.seed)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cotgen-hf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[Request] = []  # gen requests with samples not yet admitted, oldest first
        self._scores: list[Request] = []
        self._wake: asyncio.Event | None = None
        self._arrived = threading.Event()  # tells the worker that someone waits for a slot
        self._dispatcher: asyncio.Task | None = None
        self._batch = KVBatch()
        self._calls = itertools.count()
        # A fast tokenizer's backend decodes what tokenizer.decode(..., clean_up=False) does.
        self._backend = getattr(self.tokenizer, "_tokenizer", None) if self.tokenizer.is_fast else None
        self._stops = StopStrings(self._decode)
        # Admit into a running batch once this many slots are free: each admission is a
        # prefill forward and a cache merge, so a few rows at a time cost more than a slot
        # left empty for a step or two.
        self._admit_min_free = max(1, cfg.max_batch // ADMIT_FRACTION)

    # --- the Engine interface -------------------------------------------------------

    async def generate(self, prompts: list[str], params: GenerationParams) -> list[list[Completion]]:
        check_request(prompts, params)
        if not prompts:
            return []
        n = params.n
        encoded = self._encode(prompts, room=params.max_tokens, fit=params.fit_context)
        base = params.seed if params.seed is not None else self._rng.getrandbits(63)
        requests = []
        for p, ids in enumerate(encoded):
            seeds = [hash((base, p, j)) & (2**63 - 1) for j in range(n)]
            requests.append(
                self._new_request(
                    "gen", ids, n=n, max_tokens=fitted_max_tokens(params, ids, self.context_len), temperature=params.temperature,
                    top_p=params.top_p, stop=params.stop, ignore_eos=params.ignore_eos,
                    seeds=seeds, results=[None] * n,
                )
            )
        self._pending.extend(requests)
        self._arrived.set()
        self._wake.set()
        return list(await asyncio.gather(*(r.future for r in requests)))

    async def score(self, prompts: list[str], candidates: list[str]) -> list[dict[str, float]]:
        if not prompts:
            return []
        first_ids = {}
        for c in candidates:
            ids = self.tokenizer.encode(c, add_special_tokens=False)
            if not ids:
                raise UsageError(f"score: candidate {c!r} is empty once tokenized")
            first_ids[c] = ids[0]
        encoded = self._encode(prompts, room=0)
        call = next(self._calls)  # prompts of one call are scored as a group (shared prefix)
        requests = [self._new_request("score", ids, group=call) for ids in encoded]
        self._scores.extend(requests)
        self._wake.set()
        rows = await asyncio.gather(*(r.future for r in requests))
        return [{c: float(row[i]) for c, i in first_ids.items()} for row in rows]

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        return render_chat_template(self.tokenizer, self.model_id, messages, add_generation_prompt)

    def has_tokens(self, tokens: list[str]) -> bool:
        return single_tokens(self.tokenizer, tokens)

    async def close(self) -> None:
        if self._dispatcher is not None and not self._dispatcher.done():
            self._dispatcher.cancel()
            try:
                await self._dispatcher
            except asyncio.CancelledError:
                pass
        self._dispatcher = None
        self._executor.shutdown(wait=True)

    # --- queueing (event loop) ------------------------------------------------------

    def _encode(self, prompts: list[str], room: int, fit: bool = False) -> list[list[int]]:
        return encode_prompts(self.tokenizer, prompts, room, self.context_len, self.model_id, fit)

    def _new_request(self, kind: str, ids: list[int], **settings) -> Request:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._dispatcher is None or self._dispatcher.done():
            # A new event loop (each asyncio.run) gets its own queue and dispatcher; rows of
            # an earlier loop have no one left to hear them.
            self._loop = loop
            self._pending, self._scores = [], []
            self._wake = asyncio.Event()
            self._dispatcher = loop.create_task(self._dispatch())
        return Request(kind, ids, loop.create_future(), **settings)

    def _take_admissions(self) -> list[tuple[Request, int]]:
        taken = take_admissions(self._pending, len(self._batch.rows), self.cfg.max_batch, self._admit_min_free)
        self.stats.prompt_tokens += sum(k * len(req.ids) for req, k in taken)
        if not self._pending:
            self._arrived.clear()
        return taken

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            # Rows left by an earlier event loop have no one to hear them. The reset runs in
            # the worker, after whatever it is still doing for that loop.
            await loop.run_in_executor(self._executor, self._batch.reset)
            while True:
                if not self._pending and not self._scores and not self._batch.rows:
                    self._wake.clear()
                    await self._wake.wait()
                    # The gather window: concurrent callers get to queue before the batch starts.
                    queued = sum(r.n for r in self._pending)
                    if queued < self.cfg.max_batch and self.cfg.batch_wait_ms > 0:
                        await asyncio.sleep(self.cfg.batch_wait_ms / 1000)
                if self._scores:
                    scores, self._scores = self._scores[:SCORE_MAX_PROMPTS], self._scores[SCORE_MAX_PROMPTS:]
                    scores = [r for r in scores if not r.future.done()]
                    if scores:
                        try:
                            rows = await loop.run_in_executor(self._executor, self._run_score, scores)
                        except Exception as exc:  # the forward failed: every caller in it hears why
                            _fail(scores, exc)
                        else:
                            for req, row in zip(scores, rows, strict=True):
                                if not req.future.done():
                                    req.future.set_result(row)
                    continue
                admit = self._take_admissions()
                gone = {id(r.req) for r in self._batch.rows if r.req.future.done()}
                if not admit and not self._batch.rows:
                    continue
                try:
                    finished = await loop.run_in_executor(self._executor, self._advance, admit, gone)
                except Exception as exc:  # a forward failed: the whole batch is lost, its callers hear why
                    _fail([r.req for r in self._batch.rows] + [req for req, _ in admit], exc)
                    self._batch.reset()
                    continue
                for req in finished:
                    if not req.future.done():
                        req.future.set_result(req.results)
        except BaseException as exc:
            # Nothing may hang: whatever stops the dispatcher (a bug, close(), a cancelled
            # loop) reaches every caller still waiting.
            reason = RunError("the hf engine was closed") if isinstance(exc, asyncio.CancelledError) else exc
            _fail([r.req for r in self._batch.rows] + self._pending + self._scores, reason)
            self._pending, self._scores = [], []
            try:  # in the worker: it may still be inside a step
                self._executor.submit(self._batch.reset)
            except RuntimeError:  # closed: nothing will run on the batch again
                pass
            raise

    # --- the worker thread ------------------------------------------------------------

    def _left_pad(self, rows: list[list[int]]):
        torch = self._torch
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
            mask[i, width - len(r):] = 1
        return ids.to(self.device), mask.to(self.device)

    def _prefill(self, prompts: list[list[int]], use_cache: bool):
        """One forward over left-padded prompts: last-position logits (and the cache)."""
        torch = self._torch
        ids, mask = self._left_pad(prompts)
        # Left padding puts every prompt's last token in the last column.
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits, cache = self._cache.forward(
                self.model, input_ids=ids, attention_mask=mask, position_ids=position_ids,
                use_cache=use_cache, logits_to_keep=1,
            )
        return logits[:, -1, :], mask, cache if use_cache else None

    def _run_score(self, batch: list[Request]) -> list[Any]:
        torch = self._torch
        t0 = time.perf_counter()
        groups: dict[int, list[int]] = {}  # one score() call's prompts share a long prefix (the path so far)
        for i, req in enumerate(batch):
            groups.setdefault(req.group, []).append(i)
        prefixes = {g: _common_prefix([batch[i].ids for i in members]) for g, members in groups.items()}
        total = sum(len(r.ids) for r in batch)
        shared = sum(prefixes[g] * (len(members) - 1) for g, members in groups.items())
        if shared * 4 < total or min(prefixes.values()) == 0:  # little in common: one plain forward
            logits, _, _ = self._prefill([r.ids for r in batch], use_cache=False)
        else:
            logits = self._score_shared(batch, groups, prefixes)
        logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
        self.stats.score_batches += 1
        self.stats.scored_prompts += len(batch)
        self.stats.busy_seconds += time.perf_counter() - t0
        return [logprobs[i] for i in range(len(batch))]

    def _score_shared(self, batch: list[Request], groups: dict[int, list[int]], prefixes: dict[int, int]):
        """Last-position logits of every prompt, each group's common prefix run once: a
        prefill of the prefixes, then the suffixes (left-padded, so every prompt ends in the
        last column) on top of their group's prefix cache."""
        torch = self._torch
        order = list(groups)
        _, prefix_mask, cache = self._prefill([batch[groups[g][0]].ids[: prefixes[g]] for g in order], use_cache=True)
        row_group = [0] * len(batch)
        for k, g in enumerate(order):
            for i in groups[g]:
                row_group[i] = k
        at = torch.tensor(row_group, device=prefix_mask.device)
        cache = self._cache.select(cache, at)
        suffix_ids, suffix_mask = self._left_pad([r.ids[prefixes[order[row_group[i]]]:] for i, r in enumerate(batch)])
        start = torch.tensor([prefixes[order[k]] for k in row_group], device=suffix_mask.device)
        positions = start.unsqueeze(1) + (suffix_mask.cumsum(-1) - 1).clamp(min=0)
        mask = torch.cat([prefix_mask.index_select(0, at), suffix_mask], dim=1)
        with torch.inference_mode():
            logits, _ = self._cache.forward(
                self.model, cache, input_ids=suffix_ids, attention_mask=mask, position_ids=positions,
                use_cache=True, logits_to_keep=1,
            )
        return logits[:, -1, :]

    def _advance(self, admit: list[tuple[Request, int]], gone: set[int]) -> list[Request]:
        """Admit new rows, then decode until a request finishes, a score or enough queued
        sequences wait, or STEPS_PER_CALL steps pass. Returns the requests that finished.
        (It reads the event loop's queues without a lock: a stale read only delays a break
        by one step.)"""
        t0 = time.perf_counter()
        finished: list[Request] = []
        try:
            if gone:
                self._batch.drop([i for i, r in enumerate(self._batch.rows) if id(r.req) in gone])
            if admit:
                finished += self._admit(admit)
            for _ in range(STEPS_PER_CALL):
                if finished or not self._batch.rows:
                    break
                if self._scores:  # the judge waits on these: they go between two steps
                    break
                if self._arrived.is_set() and self.cfg.max_batch - len(self._batch.rows) >= self._admit_min_free:
                    break
                finished += self._decode_step()
        finally:
            self.stats.busy_seconds += time.perf_counter() - t0
        return finished

    def _admit(self, admit: list[tuple[Request, int]]) -> list[Request]:
        """Prefill each admitted prompt once, sample every new row's first token, and merge
        the rows that go on into the running batch."""
        torch = self._torch
        logits, mask, cache = self._prefill([req.ids for req, _ in admit], use_cache=True)
        owner = [p for p, (_, k) in enumerate(admit) for _ in range(k)]
        rows = []
        for req, k in admit:
            for j in range(req.admitted - k, req.admitted):
                gen = None
                if req.temperature > 0:
                    gen = torch.Generator(device="cpu").manual_seed(req.seeds[j])
                rows.append(Row(req, j, gen, pos=len(req.ids)))
        self.stats.batches += 1
        self.stats.sequences += len(rows)
        index = torch.tensor(owner, device=logits.device)
        finished, keep = self._sample(rows, logits.index_select(0, index))
        if keep:
            at = index[torch.tensor(keep, device=index.device)]
            self._batch.merge([rows[i] for i in keep], self._cache.select(cache, at), mask.index_select(0, at))
        return finished

    def _decode_step(self) -> list[Request]:
        torch = self._torch
        b = self._batch
        ids = torch.tensor(b.next_ids, dtype=torch.long, device=self.device).unsqueeze(1)
        positions = torch.tensor([r.pos for r in b.rows], dtype=torch.long, device=self.device).unsqueeze(1)
        b.mask = torch.cat([b.mask, b.mask.new_ones((len(b.rows), 1))], dim=1)
        with torch.inference_mode():
            logits, b.cache = self._cache.forward(
                self.model, b.cache, input_ids=ids, attention_mask=b.mask, position_ids=positions,
                use_cache=True, logits_to_keep=1,
            )
        self.stats.decode_steps += 1
        self.stats.decode_rows += len(b.rows)
        for r in b.rows:
            r.pos += 1
        finished, keep = self._sample(b.rows, logits[:, -1, :])
        if len(keep) < len(b.rows):
            kept = set(keep)
            b.drop([i for i in range(len(b.rows)) if i not in kept])
        b.next_ids = [r.tokens[-1] for r in b.rows]
        return finished

    def _sample(self, rows: list[Row], logits) -> tuple[list[Request], list[int]]:
        """Pick each row's next token from its logits (rows x vocab) with its own settings,
        record it, and decide whether the row goes on. Returns (requests that completed,
        indices of rows that continue)."""
        picked = pick_tokens(
            logits,
            [r.req.temperature for r in rows],
            [r.req.top_p for r in rows],
            [r.generator for r in rows],
            # ignore_eos: EOS is never picked (its raw log-prob is still what is reported).
            banned=sorted(self.eos_ids),
            banned_rows=[i for i, r in enumerate(rows) if r.req.ignore_eos],
        )
        finished, keep = [], []
        for i, r in enumerate(rows):
            token = picked.tokens[i]
            req = r.req
            if token in self.eos_ids and not req.ignore_eos:
                r.eos = True
            else:
                r.tokens.append(token)
                r.logprobs.append(picked.logprobs[i])
                r.tops.append(picked.top_logprobs[i])
                if req.stop and self._stops.stopped(r.tokens, req.stop):
                    r.stop_at = len(r.tokens)
            if r.eos or r.stop_at is not None or len(r.tokens) >= req.max_tokens:
                req.results[r.index] = self._completion(r)
                req.done += 1
                if req.done == req.n:
                    finished.append(req)
            else:
                keep.append(i)
        self.stats.generated_tokens += len(rows)
        return finished, keep

    def _completion(self, r: Row) -> Completion:
        """The row's text cut at the first stop string; tokens and log-probs follow the kept text."""
        text, kept, stopped = self._stops.cut(r.tokens, r.req.stop)
        return Completion(
            text=text,
            tokens=len(kept),
            finish_reason="stop" if r.eos or stopped else "length",
            logprobs=r.logprobs[: len(kept)],
            top_logprobs=r.tops[: len(kept)],
            token_ids=list(kept),
            prompt_tokens=len(r.req.ids),
        )

    def _decode(self, ids: list[int]) -> str:
        if self._backend is not None:  # the Rust tokenizer itself: same text, no per-id checks
            return self._backend.decode(ids, skip_special_tokens=False)
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def _common_prefix(rows: list[list[int]]) -> int:
    """Length of the longest common prefix of `rows`, leaving every row at least one token."""
    n = min(len(r) for r in rows) - 1
    first = rows[0]
    for r in rows[1:]:
        k = 0
        while k < n and r[k] == first[k]:
            k += 1
        n = k
    return n


def _fail(requests: list[Request], exc: BaseException) -> None:
    for req in requests:
        if not req.future.done():
            req.future.set_exception(exc)
