"""`cotgen model train-prm`: fine-tune a process reward model on cotgen's own step labels
(a prm or processbench export, or run folders), with transformers' Trainer."""

from __future__ import annotations

import json
import math
import os
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cotgen.errors import DataError, RunError, UsageError
from cotgen.reward_model import PRM_SETTINGS_FILE, PRMLayout

DEFAULT_SEPARATOR = "\n\n"  # cotgen's own step separator (policy.STEP_SEPARATOR)
IGNORE = -100  # the label torch's cross-entropy skips: every token but the step ends


@dataclass(frozen=True)
class PRMTrainConfig:
    """Settings of one train-prm run; cotgen_prm.json records them beside the model."""

    base: str  # the model whose weights start the PRM: alias, folder or Hub id
    separator: str = DEFAULT_SEPARATOR  # ends every step; the score is read at its last token
    epochs: float = 2.0  # passes over the paths
    lr: float = 5e-4  # peak learning rate (linear decay)
    batch_size: int = 16  # paths per optimizer step
    max_length: int | None = None  # longer paths are dropped (counted); None = the base's context
    seed: int = 0  # shuffling and the new head's weights
    device: str = "auto"  # auto = cuda when available, else cpu
    trust_remote_code: bool = False

    def __post_init__(self) -> None:
        if not self.separator:
            raise ValueError("separator must not be empty")
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise ValueError(f"epochs must be > 0, not {self.epochs}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ValueError(f"lr must be > 0, not {self.lr}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, not {self.batch_size}")
        if self.max_length is not None and self.max_length < 2:
            raise ValueError(f"max_length must be >= 2, not {self.max_length}")


@dataclass
class StepRows:
    """The supervised paths read from the inputs, and every input row left out, by reason."""

    paths: list[tuple[str, list[str], list[bool | None]]] = field(default_factory=list)  # None: no label
    dropped: Counter = field(default_factory=Counter)
    formats: Counter = field(default_factory=Counter)  # rows read per input format


def read_step_rows(inputs: list[Path]) -> StepRows:
    """(problem, steps, labels) from prm or processbench exports, or from tree shards and
    run folders (exported as prm rows with the prm format's defaults, the same labels)."""
    from cotgen.formats.base import ExportRefused
    from cotgen.formats.prm import PRMFormat
    from cotgen.formats.processbench import ProcessBenchFormat
    from cotgen.io.inputs import expand_inputs
    from cotgen.io.readers import TREES, open_rows
    from cotgen.io.trees import ROW_PARSERS, iter_located_trees

    out = StepRows()
    prm, pb = PRMFormat(), ProcessBenchFormat()
    for path in expand_inputs(inputs):
        reader = open_rows(path)
        fmt = reader.format
        if fmt == "prm" or fmt == "processbench":
            check = prm.check if fmt == "prm" else pb.check
            for _, row in reader.rows(on_bad=lambda i, bad: out.dropped.update(["unreadable row"])):
                errors = [f.message for f in check(row) if f.severity == "error"]
                if errors:
                    out.dropped[f"invalid {fmt} row"] += 1
                    continue
                out.formats[fmt] += 1
                out.paths.append(_prm_path(row) if fmt == "prm" else _processbench_path(row))
        elif fmt == TREES or fmt in ROW_PARSERS:
            for tree, _ in iter_located_trees([reader], on_skip=lambda msg, where: out.dropped.update(["unreadable tree"])):
                try:
                    rows = list(prm.export(tree))
                except ExportRefused as exc:
                    out.dropped[f"tree: {exc}"] += 1
                    continue
                out.formats["trees"] += 1
                out.paths += [_prm_path(r) for r in rows]
        else:
            raise UsageError(
                f"{path}: holds {fmt} rows, which carry no step labels; give a prm or processbench export, "
                "tree shards or run folders"
            )
    return out


def _prm_path(row: dict[str, Any]) -> tuple[str, list[str], list[bool | None]]:
    return row["prompt"], list(row["completions"]), [bool(x) for x in row["labels"]]


def _processbench_path(row: dict[str, Any]) -> tuple[str, list[str], list[bool | None]]:
    """ProcessBench's `label` is the first wrong step (-1: none): the steps before it are
    right, it is wrong, and the steps after it carry no label (ProcessBench says nothing)."""
    first = int(row["label"])
    steps = list(row["steps"])
    labels: list[bool | None] = [True if first < 0 or i < first else (False if i == first else None)
                                 for i in range(len(steps))]
    return row["problem"], steps, labels


def encode_paths(tokenizer: Any, layout: PRMLayout, rows: StepRows, max_length: int) -> list[dict[str, list[int]]]:
    """Token ids and labels per path: the label at each step's separator (1 right, 0
    wrong), IGNORE elsewhere and at unlabelled steps. Longer paths are dropped, counted."""
    examples = []
    for problem, steps, labels in rows.paths:
        ids, positions = layout.encode(tokenizer, problem, steps)
        if len(ids) > max_length:
            rows.dropped[f"longer than {max_length} tokens"] += 1
            continue
        target = [IGNORE] * len(ids)
        for at, label in zip(positions, labels, strict=True):
            if label is not None:
                target[at] = int(label)
        examples.append({"input_ids": ids, "labels": target})
    return examples


def train_prm(inputs: list[Path], out: Path, cfg: PRMTrainConfig, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Fine-tune `cfg.base` with a two-label token-classification head on the inputs' step
    labels; write the model, its tokenizer and cotgen_prm.json (the layout --value-model
    reads) to `out`. Returns what cotgen_prm.json records."""
    rows = read_step_rows(inputs)
    if not rows.paths:
        why = "; ".join(f"{k}: {v}" for k, v in rows.dropped.items()) or "no rows"
        raise DataError(f"no labelled path to train on in {', '.join(map(str, inputs))} ({why})")
    import torch
    from transformers import (
        AutoModelForTokenClassification,
        AutoTokenizer,
        DataCollatorForTokenClassification,
        PrinterCallback,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )
    from transformers.utils import logging as hf_logging

    from cotgen.engines.hf.loading import SMALL_MODEL_PARAMS, pick_device
    from cotgen.models import resolve_model

    t0 = time.perf_counter()
    resolved = resolve_model(cfg.base)
    device = pick_device(cfg.device)
    hf_logging.set_verbosity_error()  # "newly initialized: score.weight" is the point here
    hf_logging.disable_progress_bar()
    torch.manual_seed(cfg.seed)
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.load_from, trust_remote_code=cfg.trust_remote_code)
        model = AutoModelForTokenClassification.from_pretrained(
            resolved.load_from, num_labels=2, trust_remote_code=cfg.trust_remote_code,
            id2label={0: "wrong", 1: "right"}, label2id={"wrong": 0, "right": 1},
        )
    except (OSError, ValueError, ImportError) as exc:
        raise RunError(f"cannot load '{cfg.base}' as a token-classification model from {resolved.load_from}: {exc}") from None
    if device == "cpu" and sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMS:
        torch.set_num_threads(1)  # as the hf engine does: a small model's per-op overhead dwarfs the math
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.config.pad_token_id = tokenizer.pad_token_id
    context = getattr(model.config, "max_position_embeddings", None) or 4096
    layout = PRMLayout("token-classification", cfg.separator)
    examples = encode_paths(tokenizer, layout, rows, min(cfg.max_length or context, context))
    if not examples:
        raise DataError(f"every path is longer than the context ({dict(rows.dropped)})")
    random.Random(cfg.seed).shuffle(examples)
    labelled = [t for e in examples for t in e["labels"] if t != IGNORE]
    log(f"{len(examples)} paths, {len(labelled)} labelled steps ({sum(labelled)} right), "
        f"dropped: {dict(rows.dropped) or 'none'}")
    args = TrainingArguments(
        output_dir=str(out / ".trainer"), num_train_epochs=cfg.epochs, learning_rate=cfg.lr,
        per_device_train_batch_size=cfg.batch_size, lr_scheduler_type="linear", warmup_steps=0.05,  # a float below 1: a share of the steps
        logging_steps=max(1, len(examples) // cfg.batch_size // 5), save_strategy="no", report_to=[],
        seed=cfg.seed, use_cpu=device == "cpu", disable_tqdm=True, dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=args, train_dataset=examples,
                      data_collator=DataCollatorForTokenClassification(tokenizer, label_pad_token_id=IGNORE))
    trainer.remove_callback(PrinterCallback)  # it prints every log to stdout, which carries --json

    class Progress(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                log(f"step {state.global_step}/{state.max_steps}: loss {float(logs['loss']):.4f}")

    trainer.add_callback(Progress())
    result = trainer.train()
    out.mkdir(parents=True, exist_ok=True)
    # Marked unfinished first: a crash while the weights are saved must not leave a folder that
    # loads with another run's settings file, or with TRL's default separator.
    settings_file = out / PRM_SETTINGS_FILE
    settings_file.write_text(json.dumps({"complete": False, "layout": layout.kind, "separator": layout.separator})
                             + "\n", encoding="utf-8")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    _remove_tree(out / ".trainer")
    record = {
        "layout": layout.kind, "separator": layout.separator, "settings": asdict(cfg),
        "base_model": resolved.model_id, "inputs": [str(p) for p in inputs], "input_rows": dict(rows.formats),
        "dropped": dict(rows.dropped), "paths": len(examples), "labelled_steps": len(labelled),
        "right_steps": sum(labelled), "train_loss": result.training_loss,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    temporary = settings_file.with_name(f".{PRM_SETTINGS_FILE}.tmp")
    temporary.write_text(json.dumps({**record, "complete": True}, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, settings_file)
    return record


def _remove_tree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)

