"""Model names: aliases, tiny, folders, Hub ids, and one clear error when a model cannot be had."""

from __future__ import annotations

import pytest
from huggingface_hub import constants

from cotgen.engines.config import EngineConfig
from cotgen.errors import RunError
from cotgen.models import ALIASES, resolve_model


def test_aliases():
    assert ALIASES["qwen2.5-7b"] == "Qwen/Qwen2.5-7B-Instruct"
    assert ALIASES["qwen2.5-0.5b"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert set(ALIASES) == {f"qwen2.5-{s}" for s in ("0.5b", "1.5b", "3b", "7b", "14b", "32b", "72b")}


def fake_hub_cache(root, repo_id):
    """The folder layout huggingface_hub's cache uses, with a config.json in one snapshot."""
    repo = root / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot = repo / "snapshots" / "abc123"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").write_text("{}")
    return snapshot


def test_alias_offline_and_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(RunError) as info:
        resolve_model("qwen2.5-7b", offline=True)
    message = str(info.value)
    assert "alias 'qwen2.5-7b' -> Qwen/Qwen2.5-7B-Instruct" in message
    assert "offline" in message and "not in the Hub cache" in message and str(tmp_path) in message


def test_alias_cached_resolves_to_the_snapshot(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    snapshot = fake_hub_cache(tmp_path, "Qwen/Qwen2.5-7B-Instruct")
    model = resolve_model("Qwen2.5-7B", offline=True)
    assert (model.model_id, model.kind, model.path) == ("Qwen/Qwen2.5-7B-Instruct", "alias", snapshot)
    assert model.load_from == str(snapshot)


def test_hub_id_online_is_left_to_the_engine(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    model = resolve_model("some-org/some-model", offline=False)
    assert (model.model_id, model.kind, model.path) == ("some-org/some-model", "hub", None)
    assert model.load_from == "some-org/some-model"


def test_hub_id_offline_not_cached(tmp_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(RunError, match="no such folder some-org/x; Hub id some-org/x; offline"):
        resolve_model("some-org/x", offline=True)


def test_folder(tiny_model_dir):
    model = resolve_model(str(tiny_model_dir))
    assert model.kind == "folder" and model.path == tiny_model_dir.resolve()


def test_folder_without_config(tmp_path):
    with pytest.raises(RunError, match="has no config.json"):
        resolve_model(str(tmp_path))


def test_missing_folder(tmp_path):
    with pytest.raises(RunError, match="no such folder"):
        resolve_model(str(tmp_path / "nope"))
    with pytest.raises(RunError, match="cannot be found"):
        resolve_model("./models/nope")


def test_tiny_uses_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("COTGEN_CACHE", str(tmp_path))
    model = resolve_model("tiny")
    assert model.kind == "tiny" and model.path.parent == tmp_path
    assert model.model_id == "tiny" and model.load_from == str(model.path)


@pytest.mark.parametrize(
    "field, value",
    [("engine", "tgi"), ("device", "tpu"), ("dtype", "int4"), ("max_batch", 0), ("batch_wait_ms", -1),
     ("max_model_len", 1), ("base_url", "localhost:8000"), ("gpu_memory_utilization", 1.5), ("model", " ")],
)
def test_engine_config_checks(field, value):
    with pytest.raises(ValueError, match=field):
        EngineConfig(**{field: value})


def test_engine_config_hides_the_key():
    assert EngineConfig(api_key="sk-secret").to_dict()["api_key"] == "***"
    assert EngineConfig().to_dict()["engine"] == "hf"


def test_cli_resolve(cli, tiny_model_dir, tmp_path, monkeypatch):
    r = cli("model", "resolve", tiny_model_dir)
    assert r.code == 0 and "[folder]" in r.out
    r = cli("model", "resolve", tiny_model_dir, "--json")
    assert r.code == 0 and '"kind": "folder"' in r.out
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    r = cli("model", "resolve", "qwen2.5-72b")
    assert r.code == 1
    assert "Qwen/Qwen2.5-72B-Instruct" in r.err and "Traceback" not in r.err
