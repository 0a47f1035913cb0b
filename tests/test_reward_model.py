"""--value prm: a process reward model as the value head, on the hf engine (tiny PRMs built
from tiny-reasoner's weights: a token-classification head, no download)."""

from __future__ import annotations

import asyncio
import json
import shutil

import pytest

from cotgen.errors import RunError, UsageError
from cotgen.reward_model import (
    PRM_SETTINGS_FILE,
    HFRewardModel,
    PRMLayout,
    PRMValuer,
    build_valuer,
    read_layout,
)
from cotgen.search.config import SearchConfig
from cotgen.search.protocols import Candidate
from cotgen.tree import Tree

SEP = "\n\n"


@pytest.fixture(scope="session")
def tiny_prm(tmp_path_factory):
    """tiny-reasoner with a fresh two-label token-classification head (random: the test
    reads where and how the score is taken, not whether it is any good)."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from cotgen.reasoner import packaged_model_path

    out = tmp_path_factory.mktemp("tiny-prm")
    torch.manual_seed(0)
    model = AutoModelForTokenClassification.from_pretrained(packaged_model_path(), num_labels=2)
    model.save_pretrained(out)
    AutoTokenizer.from_pretrained(packaged_model_path()).save_pretrained(out)
    (out / PRM_SETTINGS_FILE).write_text(json.dumps({"layout": "token-classification", "separator": SEP}))
    return out


def test_layout_reads_each_step_at_its_separator_last_token(tiny_prm):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_prm)
    ids, positions = PRMLayout(separator=SEP).encode(tok, "What is 2+3?", ["2+3 = 5", "The answer is 5"])
    sep = tok.encode(SEP, add_special_tokens=False)
    assert len(positions) == 2
    for at in positions:
        assert ids[at - len(sep) + 1: at + 1] == sep
    assert positions[-1] == len(ids) - 1
    # TRL's PRMTrainer layout: problem tokens, then each step's tokens and the separator's
    assert ids == (tok.encode("What is 2+3?", add_special_tokens=False) + tok.encode("2+3 = 5", add_special_tokens=False)
                   + sep + tok.encode("The answer is 5", add_special_tokens=False) + sep)


def test_read_layout_from_the_folder_qwen_and_trl_default(tmp_path, tiny_prm):
    assert read_layout(tiny_prm, ["Qwen2ForTokenClassification"]) == PRMLayout("token-classification", SEP)
    assert read_layout(tmp_path, ["Qwen2ForTokenClassification"]) == PRMLayout("token-classification", "\n")
    assert read_layout(tmp_path, ["Qwen2ForProcessRewardModel"]).kind == "qwen2.5-math-prm"


def test_a_prm_folder_train_prm_did_not_finish_is_refused(tmp_path):
    # train-prm marks its settings unfinished before it saves the weights (cotgen.prm_train)
    (tmp_path / PRM_SETTINGS_FILE).write_text(json.dumps({"complete": False, "separator": SEP}))
    with pytest.raises(RunError, match="did not finish"):
        read_layout(tmp_path, ["Qwen2ForTokenClassification"])


def test_scores_are_the_heads_probability_at_each_separator(tiny_prm):
    """The contract: P(label 1) of the token-classification head, read at each step's end;
    the same alone and batched with a longer path (right padding does not move it)."""
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    prm = HFRewardModel(str(tiny_prm), device="cpu")
    steps = ["Multiply 13 by 3: 13 * 3 = 39.", "Add 60: 39 + 60 = 99.", "The answer is \\boxed{88}."]
    together = asyncio.run(prm.score("Start with 13.", [steps, steps[:1]]))
    alone = asyncio.run(prm.score("Start with 13.", [steps[:1]]))

    tok = AutoTokenizer.from_pretrained(tiny_prm)
    model = AutoModelForTokenClassification.from_pretrained(tiny_prm).eval()
    ids, positions = PRMLayout(separator=SEP).encode(tok, "Start with 13.", steps)
    with torch.no_grad():
        probs = torch.softmax(model(torch.tensor([ids])).logits[0], -1)[:, 1]
    assert together[0] == pytest.approx([float(probs[p]) for p in positions], abs=1e-5)
    assert together[1] == pytest.approx(alone[0], abs=1e-5)
    assert together[1] == pytest.approx(together[0][:1], abs=1e-5)  # a causal model: the prefix's score


def test_valuer_values_an_answer_by_the_last_steps_probability(tiny_prm):
    prm = HFRewardModel(str(tiny_prm), device="cpu")
    tree = Tree.new("Start with 13.", None)
    first = tree.add(0, "step", "Multiply 13 by 3: 13 * 3 = 39.")
    cands = [Candidate("The answer is \\boxed{39}.", 5), Candidate("The answer is \\boxed{40}.", 5)]
    ev = asyncio.run(PRMValuer(prm).evaluate(tree, first, "step", cands, seed=0))
    want = asyncio.run(prm.score(tree.problem, [[first.text, c.text] for c in cands]))
    assert ev.values == pytest.approx([w[-1] for w in want])
    assert ev.values[0] != ev.values[1]


def test_build_valuer_loads_the_prm_only_for_value_prm(tiny_prm):
    from cotgen.policy import EngineValuer, load_prompts

    search = SearchConfig(value_mode="prm", value_model=str(tiny_prm))
    assert isinstance(build_valuer(object(), load_prompts(), search), PRMValuer)
    assert isinstance(build_valuer(_HasTokens(), load_prompts(), SearchConfig()), EngineValuer)


class _HasTokens:
    def has_tokens(self, tokens):
        return False


def test_a_causal_lm_is_refused_with_what_it_takes(tiny_model_dir):
    with pytest.raises(UsageError, match="not a process reward model.*token-classification.*train-prm"):
        HFRewardModel(str(tiny_model_dir), device="cpu")


def test_qwen_math_prm_needs_trust_remote_code(tmp_path, tiny_prm):
    """Qwen2.5-Math-PRM's head is its repo's own code: refused without --trust-remote-code
    (the model itself cannot be had here; its config's architecture is what is read)."""
    folder = tmp_path / "qwen-prm"
    folder.mkdir()
    config = json.loads((tiny_prm / "config.json").read_text())
    config["architectures"] = ["Qwen2ForProcessRewardModel"]
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(UsageError, match="--trust-remote-code"):
        HFRewardModel(str(folder), device="cpu")


def test_value_prm_needs_a_model_and_a_model_needs_value_prm():
    with pytest.raises(ValueError, match="--value-model"):
        SearchConfig(value_mode="prm")
    with pytest.raises(ValueError, match="value_model"):
        SearchConfig(value_model="some/prm")


def test_cli_refuses_value_prm_without_a_model(cli, tmp_path):
    r = cli("synthesize", "--problems", "builtin:arith", "--limit", "1", "--out", tmp_path / "o", "--value", "prm")
    assert r.code == 2
    assert "--value-model" in r.err


@pytest.mark.slow
def test_synthesize_with_a_prm_writes_valid_trees_and_resume_refuses_another(cli, tmp_path, tiny_prm):
    """Gold hidden, valued by the PRM: every answer has the PRM's estimate; the manifest
    names both models; a resume with another PRM is refused like any changed setting."""
    from cotgen.io.trees import iter_input_trees
    from cotgen.io.writers import read_manifest

    problems = tmp_path / "q.jsonl"
    problems.write_text("".join(json.dumps({"question": q}) + "\n" for q in
                                ["Start with 13. Multiply it by 3, then add 60. What number do you get?",
                                 "Start with 7. Add 5, then multiply by 2. What number do you get?"]))
    out = tmp_path / "run"
    args = ["synthesize", "--problems", problems, "--model", "tiny-reasoner", "--out", out, "--simulations", "4",
            "--value", "prm", "--quiet"]
    prm = tmp_path / "prm"
    shutil.copytree(tiny_prm, prm)
    r = cli(*args, "--value-model", prm)
    assert r.code == 0, r.err
    trees = list(iter_input_trees([out]))
    assert len(trees) == 2
    answers = [n for t in trees for n in t.nodes if n.terminal]
    assert answers and all(n.q_estimate is not None and 0 < n.q_estimate < 1 for n in answers)
    settings = read_manifest(out)["settings"]
    assert settings["model"] == "tiny-reasoner"
    assert settings["search"]["value_mode"] == "prm" and settings["search"]["value_model"] == str(prm)
    assert set(settings["model_fingerprints"]) == {"value_model"}  # tiny-reasoner is named, not a folder
    assert cli("validate", out).code == 0

    other = tmp_path / "other-prm"
    other.symlink_to(tiny_prm)
    r = cli(*args, "--value-model", other)
    assert r.code == 2
    assert "value_model" in r.err and "other-prm" in r.err

    # the PRM retrained into the same folder (another head, same size): refused as well
    import torch
    from transformers import AutoModelForTokenClassification

    from cotgen.reasoner import packaged_model_path

    torch.manual_seed(1)
    AutoModelForTokenClassification.from_pretrained(packaged_model_path(), num_labels=2).save_pretrained(prm)
    r = cli(*args, "--value-model", prm)
    assert r.code == 2
    assert "value_model" in r.err and "changed: model.safetensors" in r.err, r.err


def test_the_card_names_the_prm_without_its_local_path():
    from cotgen.hub import published_settings

    manifest = {"settings": {"model": "tiny-reasoner", "search": {"value_mode": "prm", "value_model": "/home/me/prms/tiny-prm"}}}
    published = published_settings(manifest)
    assert published["model"] == "tiny-reasoner"
    assert published["search"]["value_model"] == "tiny-prm"
    hub = {"settings": {"search": {"value_mode": "prm", "value_model": "Qwen/Qwen2.5-Math-PRM-7B"}}}
    assert published_settings(hub)["search"]["value_model"] == "Qwen/Qwen2.5-Math-PRM-7B"
