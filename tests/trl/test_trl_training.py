"""TRL is the real client of the sft and dpo exports: one training step each on the tiny model."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "formats"))
from trees import order_of_operations, ungraded_three_way  # noqa: E402

from cotgen.formats.dpo import DPOFormat  # noqa: E402
from cotgen.formats.sft import SFTFormat  # noqa: E402

pytestmark = pytest.mark.slow


def _export_and_load(fmt, trees, tmp_path, monkeypatch):
    """Export `trees` the way `cotgen export` writes a shard, then load it as users do."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import load_dataset

    monkeypatch.setenv("HF_DATASETS_CACHE", str(tmp_path / "hf-cache"))
    from cotgen.formats import provenance
    from cotgen.verify import grader_id

    # With the provenance columns the exporter adds (source, generator, ...): trainers must
    # take rows that carry them.
    rows = [{**row, **provenance.row_provenance(tree, row, grader_id())} for tree in trees for row in fmt.export(tree)]
    path = tmp_path / f"{fmt.name}" / "train-00000-of-00001.parquet"
    path.parent.mkdir()
    schema = pa.schema(list(fmt.arrow_schema()) + provenance.arrow_fields())
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    dataset = load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf-cache"))
    assert dataset.to_list() == rows
    return dataset


def _common_args(tmp_path: Path, name: str) -> dict:
    return dict(
        output_dir=str(tmp_path / name),
        max_steps=1,
        per_device_train_batch_size=2,
        learning_rate=1e-2,  # large enough that one step visibly moves the weights
        report_to="none",
        use_cpu=True,
        save_strategy="no",
        logging_steps=1,
        max_length=512,
        seed=0,
    )


def _weights(model) -> dict:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _moved(before: dict, model) -> bool:
    return any(not before[k].equal(v) for k, v in model.state_dict().items())


def test_sft_trainer_takes_one_step_on_the_sft_export(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    fmt = SFTFormat()
    dataset = _export_and_load(fmt, [order_of_operations(), order_of_operations()], tmp_path, monkeypatch)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = _weights(model)
    trainer = SFTTrainer(
        model=model,
        args=SFTConfig(**_common_args(tmp_path, "sft-run")),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    # TRL read the rows as conversations: its tokens are the chat template's rendering.
    rendered = tokenizer.apply_chat_template(dataset[0]["messages"], tokenize=False)
    assert tokenizer.decode(trainer.train_dataset[0]["input_ids"]) == rendered
    assert "<|im_start|>assistant\n<think>\n" in rendered

    result = trainer.train()
    assert result.global_step == 1
    assert math.isfinite(result.training_loss) and result.training_loss > 0
    assert _moved(before, model)


def test_dpo_trainer_takes_one_step_on_the_dpo_export(tiny_model_dir, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import DPOConfig, DPOTrainer

    fmt = DPOFormat()
    dataset = _export_and_load(fmt, [order_of_operations(), ungraded_three_way()], tmp_path, monkeypatch)
    assert len(dataset) == 3
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    before = _weights(model)
    trainer = DPOTrainer(
        model=model,
        args=DPOConfig(**_common_args(tmp_path, "dpo-run")),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    result = trainer.train()
    assert result.global_step == 1
    # Before its first update the policy equals the reference, so the sigmoid DPO loss
    # is exactly log 2: proof that chosen and rejected were both scored.
    assert result.training_loss == pytest.approx(math.log(2), abs=1e-4)
    assert _moved(before, model)
