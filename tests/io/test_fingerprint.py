"""Model-folder fingerprints: a model retrained into the folder a run started with is a
changed setting, refused on resume; a Hub id, and a folder started before fingerprints,
resume as before."""

from __future__ import annotations

import json
import os

import pytest
from scripted_engine import ScriptedEngine

from cotgen.engines.config import EngineConfig
from cotgen.errors import UsageError
from cotgen.io.atomic import write_json_atomic
from cotgen.io.fingerprint import SAMPLE, folder_fingerprint
from cotgen.io.layout import read_manifest
from cotgen.search import SearchConfig
from cotgen.synthesize import RunConfig, run

WEIGHTS = 8 * SAMPLE  # large enough to be sampled, not read whole


def _model(folder, seed=0):
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"model_type": "qwen2", "hidden_size": 8}))
    (folder / "model.safetensors").write_bytes(bytes([seed]) * WEIGHTS)
    return folder


def _patch(path, at, data):
    with open(path, "r+b") as f:
        f.seek(at)
        f.write(data)


def test_the_fingerprint_sees_the_start_middle_end_and_size_of_large_files_and_all_of_small_ones(tmp_path):
    folder = _model(tmp_path / "m")
    (folder / "README.md").write_text("notes")
    (folder / ".cache").mkdir()
    (folder / ".cache" / "x.json").write_text("{}")
    base = folder_fingerprint(folder)
    assert sorted(base["files"]) == ["config.json", "model.safetensors"]  # no README, no hidden files
    assert str(tmp_path) not in json.dumps(base)  # nothing machine-local: the manifest may be published
    weights = folder / "model.safetensors"
    for at in (10, WEIGHTS // 2, WEIGHTS - 10):
        _patch(weights, at, b"\x01")
        changed = folder_fingerprint(folder)
        assert changed["sha256"] != base["sha256"] and changed["files"]["config.json"] == base["files"]["config.json"]
        _patch(weights, at, b"\x00")
        assert folder_fingerprint(folder) == base
    (folder / "README.md").write_text("other notes")
    assert folder_fingerprint(folder) == base
    with open(weights, "ab") as f:
        f.write(b"\x00")
    assert folder_fingerprint(folder)["sha256"] != base["sha256"]


def _opts(out, limit=3):
    return RunConfig(problems="builtin:arith", out=out, limit=limit, concurrency=2, shard_trees=1)


CFG = SearchConfig(simulations=2, parallel=1)


def test_a_policy_retrained_into_the_same_folder_is_refused_on_resume(tmp_path):
    model = _model(tmp_path / "policy")
    out = tmp_path / "run"
    run(_opts(out), CFG, EngineConfig(model=str(model)), engine=ScriptedEngine())
    recorded = read_manifest(out)["settings"]["model_fingerprints"]
    assert set(recorded) == {"model"} and str(tmp_path) not in json.dumps(recorded)

    # the same folder, unchanged: resumes
    assert run(_opts(out, 4), CFG, EngineConfig(model=str(model)), engine=ScriptedEngine()).trees == 1
    _patch(model / "model.safetensors", WEIGHTS - 5, b"\x07")  # retrained: same size, other weights
    with pytest.raises(UsageError) as e:
        run(_opts(out, 5), CFG, EngineConfig(model=str(model)), engine=ScriptedEngine())
    message = str(e.value)
    assert "other settings" in message and "model: " in message and "changed: model.safetensors" in message
    assert "config.json" not in message

    # the same relative path from another directory, holding another model: refused too
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    _model(elsewhere / "policy", seed=1)
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        run(_opts(tmp_path / "rel"), CFG, EngineConfig(model="./policy"), engine=ScriptedEngine())
        os.chdir(elsewhere)
        with pytest.raises(UsageError, match="changed: model.safetensors"):
            run(_opts(tmp_path / "rel", 4), CFG, EngineConfig(model="./policy"), engine=ScriptedEngine())
    finally:
        os.chdir(cwd)


def test_a_folder_started_before_fingerprints_resumes_unchecked(tmp_path):
    model = _model(tmp_path / "policy")
    out = tmp_path / "run"
    run(_opts(out), CFG, EngineConfig(model=str(model)), engine=ScriptedEngine())
    manifest = read_manifest(out)
    del manifest["settings"]["model_fingerprints"]  # as an older cotgen wrote it
    write_json_atomic(out / "manifest.json", manifest)
    _patch(model / "model.safetensors", 0, b"\x09")
    assert run(_opts(out, 4), CFG, EngineConfig(model=str(model)), engine=ScriptedEngine()).trees == 1
    assert "model" in read_manifest(out)["settings"]["model_fingerprints"]  # recorded from now on


def test_a_hub_id_is_compared_by_name_only(tmp_path):
    out = tmp_path / "run"
    run(_opts(out), CFG, EngineConfig(model="someone/some-model"), engine=ScriptedEngine())
    assert read_manifest(out)["settings"]["model_fingerprints"] == {}
    assert run(_opts(out, 4), CFG, EngineConfig(model="someone/some-model"), engine=ScriptedEngine()).trees == 1
    with pytest.raises(UsageError, match="model: 'someone/some-model' -> 'someone/other'"):
        run(_opts(out, 5), CFG, EngineConfig(model="someone/other"), engine=ScriptedEngine())


def test_only_the_files_a_loader_reads_count(tmp_path):
    """Checkpoints below the folder, an evaluation written after training, or a hidden file
    change nothing that is loaded; a chat template saved beside the tokenizer does."""
    model = _model(tmp_path / "policy")
    before = folder_fingerprint(model)
    (model / "checkpoint-500").mkdir()
    (model / "checkpoint-500" / "model.safetensors").write_bytes(b"\x01" * 100)
    (model / "original").mkdir()
    (model / "original" / "params.json").write_text("{}")
    (model / "eval_results.json").write_text('{"eval_loss": 0.3}')
    (model / ".cache.json").write_text("{}")
    assert folder_fingerprint(model) == before
    (model / "chat_template.jinja").write_text("{{ messages }}")
    assert "chat_template.jinja" in folder_fingerprint(model)["files"]


def test_a_folder_later_served_by_a_server_resumes(tmp_path):
    """A run started on vllm in-process and resumed against `vllm serve FOLDER` with
    --engine openai: the server's model is not fingerprinted, and that is not a change."""
    model = _model(tmp_path / "policy")
    out = tmp_path / "run"
    run(_opts(out), CFG, EngineConfig(engine="vllm", model=str(model)), engine=ScriptedEngine())
    assert "model" in read_manifest(out)["settings"]["model_fingerprints"]
    served = EngineConfig(engine="openai", model=str(model), base_url="http://127.0.0.1:9/v1")
    assert run(_opts(out, 4), CFG, served, engine=ScriptedEngine()).trees == 1
