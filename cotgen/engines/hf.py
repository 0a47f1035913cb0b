"""HFEngine: transformers in-process; concurrent callers are gathered into left-padded batches.

How a request becomes a batch:
- `generate`/`score` tokenize, check the context length (a prompt that does not fit fails
  for its own call, before it can join a batch) and queue one item per prompt.
- One dispatcher task per event loop waits `batch_wait_ms` for company, then takes the
  oldest item and every queued item with the same sampling key (temperature, top_p,
  max_tokens, stop, ignore_eos) up to `max_batch` sequences (n samples = n sequences;
  an item with n > max_batch is split). Items with other keys wait for a later batch:
  one `model.generate` has one set of sampling settings.
- The batch runs in one worker thread so the event loop keeps serving callers.

Log-probs are those of the sampled token under the raw model distribution
(log_softmax of the logits, before temperature/top-p), the same for every temperature,
so a prior computed from them does not depend on how the step was sampled. Top-5 are the
five highest of that distribution at each position.

Seeds: a batch is sampled with one torch seed, the seed of its first item that gave one,
else the next draw of the engine's own RNG (EngineConfig.seed). Sampling is therefore
reproducible for the same sequence of batches; a seeded call alone in its batch always
gives the same samples.
"""

from __future__ import annotations

import asyncio
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from cotgen.config import EngineConfig
from cotgen.engines import EngineStats
from cotgen.engines.base import Completion
from cotgen.errors import DataError, RunError, UsageError
from cotgen.models import ResolvedModel

TOP_K = 5  # alternatives reported per position (Marco-o1's confidence reads five)
SMALL_MODEL_PARAMS = 50_000_000  # below this, one CPU thread beats several (EngineConfig.cpu_threads)


@dataclass
class _Item:
    """One prompt of one call, waiting for a batch."""

    key: tuple
    ids: list[int]
    n: int
    seed: int | None
    future: asyncio.Future
    results: list = field(default_factory=list)


def _pick_device(device: str) -> str:
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RunError(f"--device {device} was asked for, but torch sees no CUDA GPU here")
    if device == "mps" and not torch.backends.mps.is_available():
        raise RunError("--device mps was asked for, but torch sees no MPS device here")
    return device


def _pick_dtype(dtype: str, device: str):
    import torch

    if dtype == "auto":
        return torch.bfloat16 if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


class HFEngine:
    """transformers in-process, CPU or GPU. See the module docstring for batching."""

    name = "hf"

    def __init__(self, model: ResolvedModel, cfg: EngineConfig | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        cfg = cfg or EngineConfig(model=model.name)
        self.cfg = cfg
        self.model_id = model.model_id
        self.device = _pick_device(cfg.device)
        source = model.load_from
        hf_logging.disable_progress_bar()
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=cfg.trust_remote_code)
            self.model = AutoModelForCausalLM.from_pretrained(
                source,
                dtype=_pick_dtype(cfg.dtype, self.device),
                trust_remote_code=cfg.trust_remote_code,
            )
        except (OSError, ValueError, ImportError) as exc:
            hint = ""
            if "trust_remote_code" in str(exc) and not cfg.trust_remote_code:
                hint = " (this model ships its own code: pass --trust-remote-code if you trust it)"
            raise RunError(f"cannot load model '{model.name}' from {source}: {exc}{hint}") from None
        self.model.to(self.device).eval()
        if self.device == "cpu":
            small = sum(p.numel() for p in self.model.parameters()) < SMALL_MODEL_PARAMS
            threads = cfg.cpu_threads or (1 if small else 0)
            if threads:
                torch.set_num_threads(threads)  # process-wide: the engine owns the CPU
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token_id is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.pad_id = self.tokenizer.pad_token_id
        eos = self.model.generation_config.eos_token_id
        if eos is None:
            eos = self.tokenizer.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos]) - {None}
        model_len = getattr(self.model.config, "max_position_embeddings", None) or 2048
        self.context_len = min(cfg.max_model_len or model_len, model_len)
        self.stats = EngineStats()
        self._torch = torch
        self._rng = random.Random(cfg.seed)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cotgen-hf")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._pending: list[_Item] = []
        self._wake: asyncio.Event | None = None
        self._dispatcher: asyncio.Task | None = None

    # --- the Engine interface -------------------------------------------------------

    async def generate(
        self,
        prompts: list[str],
        n: int = 1,
        max_tokens: int = 256,
        temperature: float = 0.7,
        top_p: float = 1.0,
        stop: list[str] | None = None,
        seed: int | None = None,
        ignore_eos: bool = False,
    ) -> list[list[Completion]]:
        """`ignore_eos` makes every sequence run to max_tokens (benchmarks)."""
        if not prompts:
            return []
        if n < 1 or max_tokens < 1:
            raise UsageError(f"generate needs n >= 1 and max_tokens >= 1 (got n={n}, max_tokens={max_tokens})")
        if temperature < 0 or not 0 < top_p <= 1:
            raise UsageError(f"generate needs temperature >= 0 and 0 < top_p <= 1 (got {temperature}, {top_p})")
        stop_key = tuple(sorted(set(s for s in (stop or []) if s)))
        key = ("gen", float(temperature), float(top_p) if temperature > 0 else 1.0, max_tokens, stop_key, ignore_eos)
        encoded = self._encode(prompts, room=max_tokens)
        items: list[_Item] = []
        for ids in encoded:
            left = n
            while left > 0:  # an item never holds more sequences than a batch may
                part = min(left, self.cfg.max_batch)
                items.append(self._new_item(key, ids, part, seed))
                left -= part
        self._submit(items)
        parts = await asyncio.gather(*(item.future for item in items))
        out: list[list[Completion]] = []
        k = 0
        for _ in encoded:
            completions: list[Completion] = []
            while len(completions) < n:
                completions.extend(parts[k])
                k += 1
            out.append(completions)
        return out

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
        items = [self._new_item(("score",), ids, 1, None) for ids in encoded]
        self._submit(items)
        rows = await asyncio.gather(*(item.future for item in items))
        return [{c: float(row[i]) for c, i in first_ids.items()} for row in rows]

    def render_chat(self, messages: list[dict[str, str]], add_generation_prompt: bool = True) -> str:
        if not getattr(self.tokenizer, "chat_template", None):
            raise RunError(f"model '{self.model_id}' has no chat template; use a chat/instruct model")
        return self.tokenizer.apply_chat_template(
            messages, tokenize=False, add_generation_prompt=add_generation_prompt
        )

    def has_tokens(self, tokens: list[str]) -> bool:
        return all(len(self.tokenizer.encode(t, add_special_tokens=False)) == 1 for t in tokens)

    async def close(self) -> None:
        if self._dispatcher is not None and not self._dispatcher.done():
            self._dispatcher.cancel()
            try:
                await self._dispatcher
            except asyncio.CancelledError:
                pass
        self._dispatcher = None
        self._executor.shutdown(wait=True)

    # --- queueing -----------------------------------------------------------------

    def _encode(self, prompts: list[str], room: int) -> list[list[int]]:
        """Token ids per prompt; refuses the whole call if one prompt leaves no `room`."""
        if isinstance(prompts, str):
            raise UsageError("prompts must be a list of strings, not one string")
        encoded = []
        for i, prompt in enumerate(prompts):
            ids = self.tokenizer.encode(prompt)
            if not ids:
                raise DataError(f"prompt {i} of this call is empty once tokenized")
            if len(ids) + room > self.context_len:
                raise DataError(
                    f"prompt {i} of this call is {len(ids)} tokens; with {room} tokens to generate "
                    f"it exceeds the context of {self.context_len} tokens of '{self.model_id}'"
                )
            encoded.append(ids)
        return encoded

    def _new_item(self, key: tuple, ids: list[int], n: int, seed: int | None) -> _Item:
        loop = asyncio.get_running_loop()
        if loop is not self._loop or self._dispatcher is None or self._dispatcher.done():
            # A new event loop (each asyncio.run) gets its own queue and dispatcher.
            self._loop = loop
            self._pending = []
            self._wake = asyncio.Event()
            self._dispatcher = loop.create_task(self._dispatch())
        return _Item(key, ids, n, seed, loop.create_future())

    def _submit(self, items: list[_Item]) -> None:
        self._pending.extend(items)
        self._wake.set()

    def _take_batch(self) -> list[_Item]:
        """The oldest item and every queued item with its key, up to max_batch sequences."""
        key = self._pending[0].key
        batch, rest, size = [], [], 0
        for item in self._pending:
            if item.key == key and size + item.n <= self.cfg.max_batch:
                batch.append(item)
                size += item.n
            else:
                rest.append(item)
        self._pending = rest
        return batch

    async def _dispatch(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            # The gather window: callers woken by the previous batch get to queue again.
            queued = sum(item.n for item in self._pending)
            if queued < self.cfg.max_batch and self.cfg.batch_wait_ms > 0:
                await asyncio.sleep(self.cfg.batch_wait_ms / 1000)
            if not self._pending:
                self._wake.clear()
                continue
            batch = self._take_batch()
            batch = [item for item in batch if not item.future.cancelled()]
            if not batch:
                continue
            run = self._run_score if batch[0].key[0] == "score" else self._run_generate
            try:
                results = await loop.run_in_executor(self._executor, run, batch)
            except Exception as exc:  # the batch failed: every caller in it hears why
                for item in batch:
                    if not item.future.done():
                        item.future.set_exception(exc)
            else:
                for item, result in zip(batch, results, strict=True):
                    if not item.future.done():
                        item.future.set_result(result)

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

    def _run_score(self, batch: list[_Item]) -> list[Any]:
        torch = self._torch
        t0 = time.perf_counter()
        ids, mask = self._left_pad([item.ids for item in batch])
        # Left padding puts every prompt's last token in the last column.
        position_ids = (mask.cumsum(-1) - 1).clamp(min=0)
        with torch.inference_mode():
            logits = self.model(input_ids=ids, attention_mask=mask, position_ids=position_ids).logits[:, -1, :]
        logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
        self.stats.score_batches += 1
        self.stats.scored_prompts += len(batch)
        self.stats.busy_seconds += time.perf_counter() - t0
        return [logprobs[i] for i in range(len(batch))]

    def _run_generate(self, batch: list[_Item]) -> list[list[Completion]]:
        torch = self._torch
        t0 = time.perf_counter()
        _, temperature, top_p, max_tokens, stop, ignore_eos = batch[0].key
        rows = [item.ids for item in batch for _ in range(item.n)]
        ids, mask = self._left_pad(rows)
        kwargs: dict[str, Any] = dict(
            max_new_tokens=max_tokens,
            pad_token_id=self.pad_id,
            eos_token_id=sorted(self.eos_ids),
            return_dict_in_generate=True,
            output_logits=True,
        )
        if temperature > 0:
            kwargs.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if stop:
            kwargs.update(stop_strings=list(stop), tokenizer=self.tokenizer)
        if ignore_eos:
            kwargs["min_new_tokens"] = max_tokens
        seeds = [item.seed for item in batch if item.seed is not None]
        seed = seeds[0] if seeds else self._rng.getrandbits(63)
        devices = [self.device] if self.device.startswith("cuda") else []
        with torch.random.fork_rng(devices=devices), torch.inference_mode():
            torch.manual_seed(seed)
            out = self.model.generate(input_ids=ids, attention_mask=mask, **kwargs)
        new = out.sequences[:, ids.shape[1]:].cpu()
        chosen_lp, top_lp = [], []
        for step, logits in enumerate(out.logits):  # one (rows, vocab) tensor per step
            lp = torch.log_softmax(logits.float(), dim=-1)
            chosen_lp.append(lp.gather(1, new[:, step : step + 1].to(lp.device)).squeeze(1).cpu())
            top_lp.append(lp.topk(min(TOP_K, lp.shape[-1]), dim=-1).values.cpu())
        chosen = torch.stack(chosen_lp, dim=1).tolist()  # rows x steps
        tops = torch.stack(top_lp, dim=1).tolist()  # rows x steps x 5
        completions = [
            self._completion(new[r].tolist(), chosen[r], tops[r], stop) for r in range(len(rows))
        ]
        self.stats.batches += 1
        self.stats.sequences += len(rows)
        self.stats.busy_seconds += time.perf_counter() - t0
        grouped, r = [], 0
        for item in batch:
            grouped.append(completions[r : r + item.n])
            r += item.n
        return grouped

    def _completion(self, new: list[int], lps: list[float], tops: list[list[float]], stop: tuple) -> Completion:
        """Cut at EOS, then at the first stop string; tokens and log-probs follow the kept text."""
        end = next((i for i, t in enumerate(new) if t in self.eos_ids), None)
        self.stats.generated_tokens += len(new) if end is None else end + 1
        finish = "stop" if end is not None else "length"
        kept = new if end is None else new[:end]
        text = self._decode(kept)
        cuts = [text.find(s) for s in stop if s in text]
        if cuts:
            cut = min(cuts)
            text = text[:cut]
            finish = "stop"
            # Keep the tokens whose text lies wholly before the stop string: the token
            # that reached into the stop string is not part of the completion.
            k = 0
            while k < len(kept) and len(self._decode(kept[: k + 1])) <= cut and text.startswith(
                self._decode(kept[: k + 1])
            ):
                k += 1
            kept = kept[:k]
        return Completion(
            text=text,
            tokens=len(kept),
            finish_reason=finish,
            logprobs=lps[: len(kept)],
            top_logprobs=tops[: len(kept)],
            token_ids=kept,
        )

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)
