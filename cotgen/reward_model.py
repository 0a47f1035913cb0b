"""Process reward models (--value prm): how a PRM reads a path, the model on the hf engine or
on vLLM's pooling runner, and the Valuer the search uses it through.

A PRM is a second model beside the policy. It reads a problem and the steps of a path and
gives, at the token that ends each step (the step separator it was trained with), the
probability that the path is right up to there. Two layouts:

- `token-classification`: TRL's PRMTrainer layout, which `cotgen model train-prm` trains:
  the problem's tokens, then each step's tokens followed by the separator's, a
  two-label head read at the separator's last token. The separator is the one in the
  folder's cotgen_prm.json (train-prm writes it), else TRL's default "\\n".
- `qwen2.5-math-prm`: Qwen2.5-Math-PRM's own reward head (its repo's code, so
  --trust-remote-code): the chat template with the steps joined by <extra_0>, read at each
  <extra_0>.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cotgen.errors import DataError, RunError, UsageError

PRM_SETTINGS_FILE = "cotgen_prm.json"  # train-prm writes it into the folder: the layout it trained
TRL_SEPARATOR = "\n"  # TRL's PRMConfig.step_separator default
QWEN_PRM_SEPARATOR = "<extra_0>"
QWEN_PRM_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
LAYOUTS = ("token-classification", "qwen2.5-math-prm")
PRM_GPU_MEMORY = 0.1  # vllm: the PRM's default share of GPU memory (--prm-gpu-memory)
BATCH_PATHS = 32  # paths per PRM forward
BATCH_WAIT_S = 0.005  # how long the first path waits for company before its forward starts


@dataclass(frozen=True)
class PRMLayout:
    """How a PRM reads a path: what it was trained with."""

    kind: str = "token-classification"  # see LAYOUTS
    separator: str = TRL_SEPARATOR  # the step separator; the score is read at its last token

    def __post_init__(self) -> None:
        if self.kind not in LAYOUTS:
            raise ValueError(f"PRM layout must be one of {', '.join(LAYOUTS)}, not '{self.kind}'")
        if not self.separator:
            raise ValueError("the PRM's step separator must not be empty")

    def encode(self, tokenizer: Any, problem: str, steps: list[str]) -> tuple[list[int], list[int]]:
        """Token ids of the path and, one per step, the position its score is read at."""
        if self.kind == "qwen2.5-math-prm":
            return self._encode_qwen(tokenizer, problem, steps)
        ids: list[int] = []
        if tokenizer.bos_token_id is not None:
            ids.append(tokenizer.bos_token_id)  # as TRL's PRMTrainer does
        ids += tokenizer.encode(problem, add_special_tokens=False)
        sep = tokenizer.encode(self.separator, add_special_tokens=False)
        positions = []
        for step in steps:
            ids += tokenizer.encode(step, add_special_tokens=False) + sep
            positions.append(len(ids) - 1)
        return ids, positions

    def _encode_qwen(self, tokenizer: Any, problem: str, steps: list[str]) -> tuple[list[int], list[int]]:
        messages = [
            {"role": "system", "content": QWEN_PRM_SYSTEM},
            {"role": "user", "content": problem},
            {"role": "assistant", "content": "".join(s.replace(self.separator, " ") + self.separator for s in steps)},
        ]
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=False)
        ids = tokenizer.encode(text)
        sep_id = tokenizer.convert_tokens_to_ids(self.separator)
        positions = [i for i, t in enumerate(ids) if t == sep_id]
        if len(positions) != len(steps):
            raise DataError(f"the PRM's separator {self.separator!r} appears {len(positions)} times for {len(steps)} steps")
        return ids, positions


def read_layout(folder: Path | None, architectures: list[str]) -> PRMLayout:
    """The layout a model folder was trained with: cotgen_prm.json where train-prm wrote it,
    Qwen2.5-Math-PRM's by its architecture, else TRL's defaults."""
    if any("ProcessRewardModel" in a for a in architectures):
        return PRMLayout("qwen2.5-math-prm", QWEN_PRM_SEPARATOR)
    if folder is not None and (folder / PRM_SETTINGS_FILE).is_file():
        path = folder / PRM_SETTINGS_FILE
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
            unfinished = record.get("complete") is False
            layout = PRMLayout(record.get("layout", "token-classification"), record.get("separator", TRL_SEPARATOR))
        except (OSError, ValueError, AttributeError) as exc:
            raise RunError(f"{path}: unreadable PRM settings ({exc})") from None
        if unfinished:  # train-prm stopped while it saved the weights: they may be partly old
            raise RunError(f"{folder}: cotgen model train-prm did not finish writing this PRM; "
                           "run it again into this folder")
        return layout
    return PRMLayout()


def step_probability(logits: Any) -> Any:
    """P(step right) from the head's logits at the read positions: softmax's label 1 for a
    two-label head, the sigmoid for a one-label head."""
    import torch

    if logits.shape[-1] == 1:
        return torch.sigmoid(logits[..., 0])
    return torch.softmax(logits.float(), dim=-1)[..., 1]


class _Batcher:
    """Gathers the paths of concurrent callers into one forward, run in a worker thread:
    the search's trees value their answers at the same time."""

    def __init__(self, forward: Callable[[list[tuple[list[int], list[int]]]], list[list[float]]]) -> None:
        self.forward = forward
        self.queue: list[tuple[tuple[list[int], list[int]], asyncio.Future]] = []
        self.running = False
        self.lock = threading.Lock()  # one forward at a time, whichever event loop asks

    async def submit(self, encoded: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in encoded]
        self.queue += list(zip(encoded, futures, strict=True))
        if not self.running:
            # paths left by an event loop that stopped (Ctrl-C) have no one waiting for them
            self.queue = [(e, f) for e, f in self.queue if f.get_loop() is loop]
            self.running = True
            asyncio.ensure_future(self._drain())
        return list(await asyncio.gather(*futures))

    async def _drain(self) -> None:
        try:
            await asyncio.sleep(BATCH_WAIT_S)
            while self.queue:
                batch, self.queue = self.queue[:BATCH_PATHS], self.queue[BATCH_PATHS:]
                try:
                    scores = await asyncio.to_thread(self._locked, [e for e, _ in batch])
                except Exception as exc:  # every caller of the batch hears it
                    for _, fut in batch:
                        if not fut.done():
                            fut.set_exception(exc)
                    continue
                for (_, fut), s in zip(batch, scores, strict=True):
                    if not fut.done():
                        fut.set_result(s)
        finally:
            self.running = False

    def _locked(self, encoded: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        with self.lock:
            return self.forward(encoded)


class RewardModel:
    """A PRM loaded for scoring; `score(problem, paths)` is all the valuer uses."""

    model_id: str
    layout: PRMLayout
    tokenizer: Any
    context_len: int
    batcher: _Batcher

    async def score(self, problem: str, paths: list[list[str]]) -> list[list[float]]:
        """For each path (a list of step texts) under `problem`, P(right) after each step."""
        encoded = []
        for steps in paths:
            ids, positions = self.layout.encode(self.tokenizer, problem, steps)
            if len(ids) > self.context_len:
                raise DataError(
                    f"a path of {len(steps)} steps is {len(ids)} tokens, longer than the context of the "
                    f"reward model '{self.model_id}' ({self.context_len} tokens)"
                )
            encoded.append((ids, positions))
        return await self.batcher.submit(encoded)

    def close(self) -> None:
        pass


class HFRewardModel(RewardModel):
    """The PRM in transformers, on the policy's device: a token-classification model, or
    Qwen2.5-Math-PRM's reward head with trust_remote_code."""

    def __init__(self, name: str, device: str = "auto", dtype: str = "auto", trust_remote_code: bool = False) -> None:
        import torch
        from transformers import (
            AutoConfig,
            AutoModel,
            AutoModelForTokenClassification,
            AutoTokenizer,
        )
        from transformers.utils import logging as hf_logging

        from cotgen.engines.hf.loading import pick_device, pick_dtype
        from cotgen.models import resolve_model

        resolved = resolve_model(name)
        source = resolved.load_from
        self.model_id = resolved.model_id
        self.device = pick_device(device)
        hf_logging.disable_progress_bar()
        try:
            config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
            architectures = list(getattr(config, "architectures", None) or [])
            self.layout = read_layout(resolved.path, architectures)
            if self.layout.kind == "qwen2.5-math-prm":
                if not trust_remote_code:
                    raise UsageError(
                        f"--value-model {name}: Qwen2.5-Math-PRM's reward head is its repo's own code: "
                        "pass --trust-remote-code if you trust it"
                    )
                model_cls: Any = AutoModel
            elif any(a.endswith("ForTokenClassification") for a in architectures):
                model_cls = AutoModelForTokenClassification
            else:
                raise UsageError(
                    f"--value-model {name}: not a process reward model (architectures: "
                    f"{', '.join(architectures) or 'none'}); it takes a token-classification model, such as "
                    "one `cotgen model train-prm` writes, or Qwen2.5-Math-PRM with --trust-remote-code"
                )
            self.tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=trust_remote_code)
            self.model = model_cls.from_pretrained(
                source, dtype=pick_dtype(dtype, self.device), trust_remote_code=trust_remote_code
            )
        except (OSError, ValueError, ImportError) as exc:
            hint = " (pass --trust-remote-code if you trust it)" if "trust_remote_code" in str(exc) else ""
            raise RunError(f"cannot load the reward model '{name}' from {source}: {exc}{hint}") from None
        self.model.to(self.device).eval()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.context_len = getattr(self.model.config, "max_position_embeddings", None) or 4096
        self.batcher = _Batcher(self._forward)
        self._torch = torch

    def _forward(self, encoded: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        """One right-padded forward over the paths; the probabilities at each read position."""
        torch = self._torch
        width = max(len(ids) for ids, _ in encoded)
        ids = torch.full((len(encoded), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(encoded), width), dtype=torch.long)
        for i, (row, _) in enumerate(encoded):
            ids[i, : len(row)] = torch.tensor(row)
            mask[i, : len(row)] = 1
        with torch.no_grad():
            out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device))
        logits = out.logits if hasattr(out, "logits") else out[0]
        return [step_probability(logits[i, positions]).tolist() for i, (_, positions) in enumerate(encoded)]


class VLLMRewardModel(RewardModel):
    """The PRM on vLLM's pooling runner (`token_classify`), in its own engine on the same
    device as the policy, holding `gpu_memory_utilization` of the GPU's memory."""

    def __init__(self, name: str, gpu_memory_utilization: float, dtype: str = "auto",
                 trust_remote_code: bool = False, max_model_len: int | None = None) -> None:
        from cotgen.engines.vllm import check_vllm_available
        from cotgen.models import resolve_model

        platform = check_vllm_available()
        from transformers import AutoConfig
        from vllm import LLM

        resolved = resolve_model(name)
        source = resolved.load_from
        self.model_id = resolved.model_id
        try:
            config = AutoConfig.from_pretrained(source, trust_remote_code=trust_remote_code)
        except (OSError, ValueError, ImportError) as exc:
            raise RunError(f"cannot load the reward model '{name}' from {source}: {exc}") from None
        self.layout = read_layout(resolved.path, list(getattr(config, "architectures", None) or []))
        if self.layout.kind == "qwen2.5-math-prm" and not trust_remote_code:
            raise UsageError(f"--value-model {name}: Qwen2.5-Math-PRM needs --trust-remote-code")
        model_len = getattr(config, "max_position_embeddings", None) or 4096
        self.context_len = min(max_model_len or model_len, model_len)
        kwargs: dict[str, Any] = {}
        if platform == "cpu":
            # as the vllm engine runs there: no graph capture, no chunked prefill (pooling needs the whole path)
            kwargs.update(enforce_eager=True, enable_chunked_prefill=False, max_num_batched_tokens=max(self.context_len, 4096))
            dtype = "float32" if dtype == "auto" else dtype
        else:
            kwargs["gpu_memory_utilization"] = gpu_memory_utilization
        try:
            self.llm = LLM(
                model=source, runner="pooling", dtype=dtype, trust_remote_code=trust_remote_code,
                max_model_len=self.context_len, **kwargs,
            )
        except Exception as exc:  # vLLM raises many kinds; all mean the same to a user
            raise RunError(f"vllm could not start the reward model '{name}' ({source}): {exc}") from None
        self.tokenizer = self.llm.get_tokenizer()
        self.batcher = _Batcher(self._forward)

    def _forward(self, encoded: list[tuple[list[int], list[int]]]) -> list[list[float]]:
        import torch
        from vllm import TokensPrompt

        outs = self.llm.encode([TokensPrompt(prompt_token_ids=ids) for ids, _ in encoded],
                               pooling_task="token_classify", use_tqdm=False)
        scores = []
        for out, (_, positions) in zip(outs, encoded, strict=True):
            probs = torch.as_tensor(out.outputs.data)  # per token, the head's activation (softmax)
            scores.append((probs[positions, 1] if probs.shape[-1] > 1 else probs[positions, 0]).tolist())
        return scores

    def close(self) -> None:
        shutdown = getattr(getattr(self.llm, "llm_engine", None), "engine_core", None)
        if shutdown is not None and hasattr(shutdown, "shutdown"):
            shutdown.shutdown()


def load_reward_model(name: str, engine: str = "hf", device: str = "auto", dtype: str = "auto",
                      trust_remote_code: bool = False, gpu_memory_utilization: float = PRM_GPU_MEMORY,
                      max_model_len: int | None = None) -> RewardModel:
    """The PRM `name` (a folder or Hub id) on vLLM when the policy runs there, else in transformers."""
    if engine == "vllm":
        return VLLMRewardModel(name, gpu_memory_utilization, dtype, trust_remote_code, max_model_len)
    return HFRewardModel(name, device, dtype, trust_remote_code)


class PRMValuer:
    """Values a rollout's final answer by the PRM's probability at its last step: the
    chance the whole path, answer included, is right (the PRM's labels are cotgen's ratings:
    a step is right when a correct answer is reached through it)."""

    def __init__(self, prm: RewardModel) -> None:
        self.prm = prm
        self.generated_tokens = 0  # a PRM generates nothing

    async def evaluate(self, tree, parent, kind, candidates, seed):
        from cotgen.policy import reasoning
        from cotgen.search.protocols import Evaluation

        before = reasoning(tree, parent.id)
        scores = await self.prm.score(tree.problem, [before + [c.text] for c in candidates])
        return Evaluation([s[-1] if s else 0.5 for s in scores])


def build_valuer(engine: Any, prompts: Any, search: Any, engine_cfg: Any = None) -> Any:
    """The value head `search.value_mode` asks for: the policy model itself (judge,
    confidence) or the PRM `search.value_model` (prm), loaded on the policy's engine kind."""
    if search.value_mode != "prm":
        from cotgen.policy import EngineValuer

        return EngineValuer(engine, prompts, search)
    if engine_cfg is None:
        return PRMValuer(load_reward_model(search.value_model))
    return PRMValuer(load_reward_model(
        search.value_model, "vllm" if engine_cfg.engine == "vllm" else "hf", engine_cfg.device, engine_cfg.dtype,
        engine_cfg.trust_remote_code, engine_cfg.prm_gpu_memory_utilization or PRM_GPU_MEMORY, engine_cfg.max_model_len,
    ))
