"""HFEngine on the tiny model: batching, left padding, log-probs, stop strings, refusals."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import torch

from cotgen.engines import build_engine
from cotgen.engines.base import Engine, GenerationParams
from cotgen.engines.config import EngineConfig
from cotgen.engines.hf import HFEngine
from cotgen.errors import DataError, RunError
from cotgen.models import resolve_model

PROMPTS = [
    "The answer is",
    "Let us compute 3 + 4 =",
    "Hi",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "She bought 12 apples and sold 5. How many apples are left over?",
    "x",
    "Solve for x: 2x + 3 = 11. First subtract 3 from each side, then divide by 2.",
    "\\boxed{",
    "#### 18",
    "wait maybe I made a mistake",
    "<start_of_father_id>-1<end_of_father_id><start_of_local_id>0<end_of_local_id>",
    "per day week each costs rate speed 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
]


def engine_for(model_dir, **cfg) -> HFEngine:
    return HFEngine(resolve_model(str(model_dir)), EngineConfig(model=str(model_dir), **cfg))


@pytest.fixture(scope="module")
def engine(tiny_model_dir):
    eng = build_engine(EngineConfig(model=str(tiny_model_dir)))
    yield eng
    asyncio.run(eng.close())


def teacher_forced(eng: HFEngine, prompt: str, generated: list[int]) -> list[float]:
    """Log-prob of each generated token under one plain forward pass over prompt + generated."""
    prompt_ids = eng.tokenizer.encode(prompt)
    ids = torch.tensor([prompt_ids + generated])
    with torch.inference_mode():
        logits = eng.model(input_ids=ids).logits[0].float()
    lp = torch.log_softmax(logits, dim=-1)
    start = len(prompt_ids) - 1
    return [lp[start + i, t].item() for i, t in enumerate(generated)]


def test_is_an_engine(engine):
    assert isinstance(engine, Engine)
    assert engine.name == "hf"


def test_concurrent_callers_get_their_own_greedy_result(engine):
    async def alone():
        greedy = GenerationParams(max_tokens=16, temperature=0)
        return [(await engine.generate([p], greedy))[0][0] for p in PROMPTS]

    async def together():
        before = engine.stats.batches
        greedy = GenerationParams(max_tokens=16, temperature=0)
        results = await asyncio.gather(*(engine.generate([p], greedy) for p in PROMPTS))
        return results, engine.stats.batches - before

    singles = asyncio.run(alone())
    batched, batches = asyncio.run(together())
    assert batches == 1  # every caller joined one left-padded batch
    for prompt, single, [[many]] in zip(PROMPTS, singles, batched, strict=True):
        assert many.text == single.text, prompt
        assert many.token_ids == single.token_ids
        assert many.logprobs == pytest.approx(single.logprobs, abs=1e-4)
    assert len({c.text for c in singles}) > len(PROMPTS) // 2  # distinct prompts, distinct outputs


def test_one_call_with_many_prompts_keeps_order(engine):
    greedy = GenerationParams(max_tokens=8, temperature=0)
    out = asyncio.run(engine.generate(PROMPTS[:5], greedy))
    single = [asyncio.run(engine.generate([p], greedy))[0][0].text for p in PROMPTS[:5]]
    assert [c[0].text for c in out] == single


def test_logprobs_match_a_teacher_forced_forward_pass(engine):
    for temperature in (0.0, 0.7, 1.5):
        params = GenerationParams(max_tokens=20, temperature=temperature, seed=3)
        [[c]] = asyncio.run(engine.generate([PROMPTS[4]], params))
        assert c.tokens == len(c.token_ids) == len(c.logprobs) == len(c.top_logprobs) > 0
        # Raw log_softmax of the logits, whatever the temperature.
        assert c.logprobs == pytest.approx(teacher_forced(engine, PROMPTS[4], c.token_ids), abs=1e-4)
        for chosen, top in zip(c.logprobs, c.top_logprobs, strict=True):
            assert len(top) == 5 and top == sorted(top, reverse=True)
            assert chosen <= top[0] + 1e-6
        if temperature == 0:
            assert [top[0] for top in c.top_logprobs] == pytest.approx(c.logprobs, abs=1e-6)
        assert c.mean_logprob == pytest.approx(sum(c.logprobs) / len(c.logprobs))


def test_stop_strings_are_trimmed(engine):
    outs = asyncio.run(engine.generate(PROMPTS, GenerationParams(max_tokens=30, temperature=0)))
    # A prompt whose greedy continuation runs the full length (no EOS).
    prompt, full = next((p, c) for p, [c] in zip(PROMPTS, outs, strict=True) if c.finish_reason == "length" and len(c.text) > 12)
    # A stop string taken from the middle of what the model writes.
    stop = next(full.text[i : i + 2] for i in range(8, len(full.text)) if full.text[i : i + 2].strip())
    params = GenerationParams(max_tokens=30, temperature=0, stop=[stop, "@@never@@"])
    [[cut]] = asyncio.run(engine.generate([prompt], params))
    expected = full.text[: full.text.find(stop)]
    assert cut.text == expected
    assert stop not in cut.text
    assert cut.finish_reason == "stop"
    assert cut.tokens < full.tokens
    assert cut.token_ids == full.token_ids[: cut.tokens]
    assert cut.logprobs == pytest.approx(full.logprobs[: cut.tokens], abs=1e-4)
    assert expected.startswith(engine.tokenizer.decode(cut.token_ids))


def test_overlong_prompt_fails_alone(tiny_model_dir):
    eng = engine_for(tiny_model_dir, max_model_len=64)
    long_prompt = " ".join(str(i) for i in range(200))

    async def main():
        return await asyncio.gather(
            eng.generate([PROMPTS[0]], GenerationParams(max_tokens=8, temperature=0)),
            eng.generate([long_prompt], GenerationParams(max_tokens=8, temperature=0)),
            eng.generate([PROMPTS[1]], GenerationParams(max_tokens=8, temperature=0)),
            eng.score([long_prompt], ["yes"]),
            return_exceptions=True,
        )

    first, refused, third, refused_score = asyncio.run(main())
    assert isinstance(refused, DataError)
    assert "exceeds the context of 64 tokens" in str(refused)
    assert isinstance(refused_score, DataError)
    assert first[0][0].tokens == 8 and third[0][0].tokens == 8
    # A prompt that fits alone but not with its max_tokens is refused too.
    with pytest.raises(DataError, match="with 60 tokens to generate"):
        asyncio.run(eng.generate([PROMPTS[4]], GenerationParams(max_tokens=60)))
    asyncio.run(eng.close())


def test_n_samples_seeded_and_reproducible(engine):
    async def sample():
        return await engine.generate(PROMPTS[:2], GenerationParams(n=3, max_tokens=12, temperature=1.0, seed=7))

    a = asyncio.run(sample())
    b = asyncio.run(sample())
    assert [len(x) for x in a] == [3, 3]
    assert [[c.text for c in x] for x in a] == [[c.text for c in x] for x in b]
    assert len({c.text for c in a[0]}) > 1  # samples differ from each other


def test_n_larger_than_max_batch_is_split(tiny_model_dir):
    eng = engine_for(tiny_model_dir, max_batch=4)
    # Every row runs the full length, so slots free up four at a time: 4 + 4 + 2 admitted.
    [completions] = asyncio.run(
        eng.generate([PROMPTS[0]], GenerationParams(n=10, max_tokens=4, temperature=1.0, seed=1, ignore_eos=True))
    )
    assert len(completions) == 10
    assert eng.stats.batches == 3 and eng.stats.sequences == 10
    asyncio.run(eng.close())


def test_mixed_settings_share_one_batch(engine):
    calls = [
        ([PROMPTS[0]], GenerationParams(max_tokens=5, temperature=0)),
        ([PROMPTS[1]], GenerationParams(max_tokens=7, temperature=0)),
        ([PROMPTS[2]], GenerationParams(max_tokens=5, temperature=0, stop=["@@"])),
        ([PROMPTS[3]], GenerationParams(max_tokens=5, temperature=0.8, top_p=0.9, seed=1)),
        ([PROMPTS[4]], GenerationParams(max_tokens=9, temperature=1.5, seed=2, ignore_eos=True)),
    ]

    async def main():
        before = engine.stats.batches
        out = await asyncio.gather(*(engine.generate(*c) for c in calls))
        return out, engine.stats.batches - before

    out, batches = asyncio.run(main())
    assert batches == 1  # sampling settings are per row: one admission for all five
    assert [c[0][0].tokens for c in out] == [5, 7, 5, 5, 9]
    for call, [[together]] in zip(calls, out, strict=True):
        [[alone]] = asyncio.run(engine.generate(*call))
        assert together.token_ids == alone.token_ids  # seeded samples do not depend on company
        assert together.logprobs == pytest.approx(alone.logprobs, abs=1e-4)


def test_different_temperatures_in_one_batch(engine):
    prompt = PROMPTS[4]

    async def main():
        return await asyncio.gather(
            engine.generate([prompt], GenerationParams(n=4, max_tokens=24, temperature=0, ignore_eos=True)),
            engine.generate([prompt], GenerationParams(n=4, max_tokens=24, temperature=3.0, seed=11,
                                                       ignore_eos=True)),
        )

    greedy, hot = asyncio.run(main())
    assert len({tuple(c.token_ids) for c in greedy[0]}) == 1  # greedy rows agree
    assert len({tuple(c.token_ids) for c in hot[0]}) == 4  # hot rows each draw their own
    # A hot row often leaves the greedy path; log-probs stay the raw distribution's.
    greedy_lp = sum(greedy[0][0].logprobs)
    assert all(sum(c.logprobs) < greedy_lp for c in hot[0])
    assert hot[0][0].logprobs == pytest.approx(teacher_forced(engine, prompt, hot[0][0].token_ids), abs=1e-4)


def test_short_request_admitted_while_a_long_one_runs_finishes_first(tiny_model_dir):
    eng = engine_for(tiny_model_dir)
    done: list[str] = []

    async def call(name, prompt, max_tokens):
        [[c]] = await eng.generate([prompt], GenerationParams(max_tokens=max_tokens, temperature=0, ignore_eos=True))
        done.append(name)
        return c

    async def main():
        long = asyncio.create_task(call("long", PROMPTS[6], 300))
        for _ in range(10_000):  # until the long row is decoding
            if eng.stats.decode_steps > 0:
                break
            await asyncio.sleep(0.001)
        short = await call("short", PROMPTS[4], 4)
        return await long, short

    long, short = asyncio.run(main())
    assert done == ["short", "long"]
    assert eng.stats.batches == 2  # the short one joined the running batch
    assert long.tokens == 300 and short.tokens == 4
    long_params = GenerationParams(max_tokens=300, temperature=0, ignore_eos=True)
    [[long_alone]] = asyncio.run(eng.generate([PROMPTS[6]], long_params))
    [[short_alone]] = asyncio.run(eng.generate([PROMPTS[4]], replace(long_params, max_tokens=4)))
    assert long.token_ids == long_alone.token_ids and short.token_ids == short_alone.token_ids
    asyncio.run(eng.close())


def test_a_finished_row_frees_its_slot(tiny_model_dir):
    eng = engine_for(tiny_model_dir, max_batch=2)
    done: list[str] = []

    async def call(name, max_tokens):
        await eng.generate([PROMPTS[0]], GenerationParams(max_tokens=max_tokens, temperature=0, ignore_eos=True))
        done.append(name)

    async def main():
        await asyncio.gather(call("long", 200), call("short", 4), call("waiting", 4))

    asyncio.run(main())
    # Two slots: long and short start; "waiting" takes short's slot long before long ends.
    assert done == ["short", "waiting", "long"]
    assert eng.stats.batches == 2 and eng.stats.sequences == 3
    assert eng.stats.decode_steps < 200 + 10  # never a step without the long row in it
    asyncio.run(eng.close())


def test_a_failing_forward_reaches_every_caller(tiny_model_dir, monkeypatch):
    eng = engine_for(tiny_model_dir, max_batch=2)

    def broken(*args, **kwargs):
        raise RuntimeError("simulated out of memory")

    monkeypatch.setattr(eng.model, "forward", broken)

    async def main():
        calls = [eng.generate([p], GenerationParams(max_tokens=8, temperature=0)) for p in PROMPTS[:5]]
        calls.append(eng.score(PROMPTS[:2], ["yes"]))
        # A hang would fail here instead of blocking the suite.
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=60)

    results = asyncio.run(main())
    assert len(results) == 6
    assert all(isinstance(r, RuntimeError) and "simulated out of memory" in str(r) for r in results)
    monkeypatch.undo()
    # The engine recovers.
    [[c]] = asyncio.run(eng.generate([PROMPTS[0]], GenerationParams(max_tokens=4, temperature=0)))
    assert c.text
    asyncio.run(eng.close())


def test_a_broken_dispatcher_reaches_every_caller(tiny_model_dir, monkeypatch):
    eng = engine_for(tiny_model_dir)

    def broken(*args, **kwargs):
        raise ValueError("simulated scheduler bug")

    monkeypatch.setattr(eng, "_take_admissions", broken)

    async def main():
        calls = [eng.generate([p], GenerationParams(max_tokens=8, temperature=0)) for p in PROMPTS[:4]]
        return await asyncio.wait_for(asyncio.gather(*calls, return_exceptions=True), timeout=60)

    results = asyncio.run(main())
    assert all(isinstance(r, ValueError) for r in results)
    asyncio.run(eng.close())


def test_close_fails_waiting_callers(tiny_model_dir):
    eng = engine_for(tiny_model_dir)

    async def main():
        params = GenerationParams(max_tokens=3000, temperature=0, ignore_eos=True)
        task = asyncio.create_task(eng.generate([PROMPTS[0]], params))
        for _ in range(10_000):
            if eng.stats.decode_steps > 0:
                break
            await asyncio.sleep(0.001)
        await eng.close()
        return await asyncio.wait_for(asyncio.gather(task, return_exceptions=True), timeout=60)

    [result] = asyncio.run(main())
    assert isinstance(result, RunError) and "closed" in str(result)


def test_cache_is_compacted(tiny_model_dir):
    eng = engine_for(tiny_model_dir, max_batch=2)
    widths: list[int] = []
    step = eng._decode_step

    def watched():
        widths.append(eng._batch.mask.shape[1])
        return step()

    eng._decode_step = watched
    long_prompt = " ".join(["apples"] * 60)

    async def main():
        # A long prompt that stops early next to a short one that runs on: once the long
        # row leaves, the columns only it used are dropped.
        return await asyncio.gather(
            eng.generate([long_prompt], GenerationParams(max_tokens=3, temperature=0, ignore_eos=True)),
            eng.generate([PROMPTS[2]], GenerationParams(max_tokens=40, temperature=0, ignore_eos=True)),
        )

    asyncio.run(main())
    assert max(widths) > 60
    assert widths[-1] < 2 + 40 + 1
    asyncio.run(eng.close())


def test_ignore_eos_generates_every_token(engine):
    params = GenerationParams(max_tokens=40, temperature=1.0, seed=5, ignore_eos=True)
    [[c]] = asyncio.run(engine.generate([PROMPTS[2]], params))
    assert c.finish_reason == "length" and c.tokens == 40


def test_score_matches_a_forward_pass(engine):
    candidates = ["<positive_rating>", "<negative_rating>", "yes", " no"]
    prompts = PROMPTS[:6]
    rows = asyncio.run(engine.score(prompts, candidates))
    assert_scores_match_a_forward_pass(engine, prompts, rows, candidates)


def test_chat_and_tokens(engine):
    text = engine.render_chat([{"role": "user", "content": "What is 2+2?"}])
    assert text == "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
    assert engine.has_tokens(["<positive_rating>", "<negative_rating>", "<|im_end|>"])
    assert not engine.has_tokens(["<positive_rating>", "a whole sentence of words"])


def test_stats_count_work(engine):
    before = engine.stats.generated_tokens
    params = GenerationParams(max_tokens=10, temperature=1.0, seed=2, ignore_eos=True)
    asyncio.run(engine.generate(PROMPTS[:4], params))
    assert engine.stats.generated_tokens - before == 40
    assert engine.stats.mean_batch_size > 1


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_is_a_clear_error(tiny_model_dir):
    with pytest.raises(RunError, match="--device cuda was asked for, but torch sees no CUDA GPU"):
        engine_for(tiny_model_dir, device="cuda")


def test_empty_calls(engine):
    assert asyncio.run(engine.generate([], GenerationParams())) == []
    assert asyncio.run(engine.score([], ["yes"])) == []


def test_score_with_a_shared_prefix_matches_a_forward_pass(engine, monkeypatch):
    shared_runs = []
    real = engine._score_shared
    monkeypatch.setattr(engine, "_score_shared", lambda *a: shared_runs.append(1) or real(*a))
    head = "<|im_start|>user\nShe bought 12 apples and sold 5. Is this step correct?\n" * 3
    prompts = [head + tail for tail in ("12 - 5 = 7", "12 + 5 = 17", "x", "so 7 apples are left over")]
    candidates = ["yes", " no", "<positive_rating>"]

    async def main():  # two calls, scored in one batch, each its own prefix group
        return await asyncio.gather(engine.score(prompts, candidates), engine.score(prompts[:2], candidates))

    before = engine.stats.score_batches
    rows, again = asyncio.run(main())
    assert engine.stats.score_batches - before == 1 and shared_runs == [1]  # the prefixes ran once
    assert_scores_match_a_forward_pass(engine, prompts + prompts[:2], rows + again, candidates)


def assert_scores_match_a_forward_pass(engine, prompts, rows, candidates):
    for prompt, row in zip(prompts, rows, strict=True):
        ids = torch.tensor([engine.tokenizer.encode(prompt)])
        with torch.inference_mode():
            lp = torch.log_softmax(engine.model(input_ids=ids).logits[0, -1].float(), dim=-1)
        for c in candidates:
            first = engine.tokenizer.encode(c, add_special_tokens=False)[0]
            assert row[c] == pytest.approx(lp[first].item(), abs=1e-4)
