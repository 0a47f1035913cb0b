"""The engine contract: what every engine (hf, vllm, openai) must do, on the tiny model.

A test module subclasses EngineContract and provides two fixtures: `engine` (the engine
under test, context CONTEXT tokens) and `hf` (the hf engine on the same model, the
reference for judge scores, log-probs and token counts).
"""

from __future__ import annotations

import asyncio

import pytest

from cotgen.engines.base import GenerationParams
from cotgen.errors import DataError

CONTEXT = 2048  # max_model_len every engine under contract runs with
PROMPTS = [
    "The answer is",
    "Let us compute 3 + 4 =",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "She bought 12 apples and sold 5. How many apples are left over?",
    "Solve for x: 2x + 3 = 11. First subtract 3 from each side, then divide by 2.",
    "wait maybe I made a mistake",
    "per day week each costs rate speed 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20",
]
CANDIDATES = ["<positive_rating>", "<negative_rating>", "yes", " no", "The"]
TOLERANCE_NATS = 0.1  # the bound for judge scores across engines


def run(coro):
    return asyncio.run(coro)


class EngineContract:
    def test_n_samples_with_logprobs_and_top5(self, engine):
        out = run(engine.generate(PROMPTS[:2], GenerationParams(n=3, max_tokens=12, temperature=1.0, seed=7)))
        assert [len(row) for row in out] == [3, 3]
        for row in out:
            assert len({c.text for c in row}) > 1  # the samples differ from each other
            for c in row:
                assert 0 < c.tokens <= 12
                assert c.tokens == len(c.logprobs) == len(c.top_logprobs) == len(c.token_ids)
                for chosen, top in zip(c.logprobs, c.top_logprobs, strict=True):
                    assert len(top) == 5 and top == sorted(top, reverse=True)
                    assert chosen <= top[0] + 1e-4

    def test_sampling_settings_come_as_one_generation_params(self, engine):
        with pytest.raises(TypeError):
            engine.generate(PROMPTS[:1], max_tokens=8, temperature=0)  # the old keyword form
        with pytest.raises(TypeError, match="as a GenerationParams, not a dict"):
            run(engine.generate(PROMPTS[:1], {"max_tokens": 8}))

    def test_greedy_n_samples_agree(self, engine):
        [row] = run(engine.generate([PROMPTS[4]], GenerationParams(n=3, max_tokens=10, temperature=0)))
        assert len(row) == 3 and len({tuple(c.token_ids) for c in row}) == 1 and row[0].tokens > 0

    def test_seeded_output_is_the_same_alone_and_batched(self, engine):
        params = GenerationParams(n=2, max_tokens=16, temperature=1.0, seed=11)
        [alone] = run(engine.generate([PROMPTS[3]], params))

        async def batched():
            others = [engine.generate([p], GenerationParams(n=2, max_tokens=16, temperature=1.0, seed=i))
                      for i, p in enumerate(PROMPTS)]
            results = await asyncio.gather(engine.generate([PROMPTS[3]], params), *others)
            return results[0][0]

        together = run(batched())
        assert [c.token_ids for c in together] == [c.token_ids for c in alone]
        assert [c.text for c in together] == [c.text for c in alone]
        [again] = run(engine.generate([PROMPTS[3]], params))
        assert [c.text for c in again] == [c.text for c in alone]

    def test_stop_strings_are_trimmed(self, engine, hf):
        outs = run(engine.generate(PROMPTS, GenerationParams(max_tokens=30, temperature=0)))
        prompt, full = next((p, c) for p, [c] in zip(PROMPTS, outs, strict=True)
                            if c.finish_reason == "length" and len(c.text) > 12)
        stop = next(full.text[i : i + 2] for i in range(8, len(full.text)) if full.text[i : i + 2].strip())
        params = GenerationParams(max_tokens=30, temperature=0, stop=[stop, "@@never@@"])
        [[cut]] = run(engine.generate([prompt], params))
        assert cut.text == full.text[: full.text.find(stop)]
        assert cut.finish_reason == "stop"
        assert cut.tokens < full.tokens
        assert cut.token_ids == full.token_ids[: cut.tokens]
        assert len(cut.logprobs) == len(cut.top_logprobs) == cut.tokens
        # Only tokens wholly before the stop string are kept.
        decoded = hf.tokenizer.decode(cut.token_ids, skip_special_tokens=False)
        assert cut.text.startswith(decoded)
        longer = hf.tokenizer.decode(full.token_ids[: cut.tokens + 1], skip_special_tokens=False)
        assert not cut.text.startswith(longer)  # the next token reached into the stop string

    def test_token_counts_and_logprobs_agree_with_hf(self, engine, hf):
        params = GenerationParams(max_tokens=24, temperature=0, stop=["\n", "."])
        mine = run(engine.generate(PROMPTS, params))
        ref = run(hf.generate(PROMPTS, params))
        same = 0
        for [a], [b] in zip(mine, ref, strict=True):
            if a.text != b.text:
                continue  # greedy ties can break differently between kernels
            same += 1
            assert (a.tokens, a.token_ids, a.finish_reason) == (b.tokens, b.token_ids, b.finish_reason)
            assert a.logprobs == pytest.approx(b.logprobs, abs=1e-3)
        assert same >= len(PROMPTS) - 1

    def test_ignore_eos_generates_every_token(self, engine):
        params = GenerationParams(max_tokens=40, temperature=1.0, seed=5, ignore_eos=True)
        [[c]] = run(engine.generate([PROMPTS[2]], params))
        assert c.finish_reason == "length" and c.tokens == 40

    def test_overlong_prompt_fails_alone(self, engine):
        long_prompt = " ".join(str(i) for i in range(CONTEXT * 2))

        async def main():
            return await asyncio.gather(
                engine.generate([PROMPTS[0]], GenerationParams(max_tokens=8, temperature=0, ignore_eos=True)),
                engine.generate([long_prompt], GenerationParams(max_tokens=8, temperature=0)),
                engine.generate([PROMPTS[1]], GenerationParams(max_tokens=8, temperature=0, ignore_eos=True)),
                engine.score([long_prompt], ["yes"]),
                return_exceptions=True,
            )

        first, refused, third, refused_score = run(main())
        assert isinstance(refused, DataError), refused
        assert isinstance(refused_score, DataError), refused_score
        assert first[0][0].tokens == 8 and third[0][0].tokens == 8

    def test_judge_scores_match_hf(self, engine, hf):
        rows = run(engine.score(PROMPTS, CANDIDATES))
        ref = run(hf.score(PROMPTS, CANDIDATES))
        for row, expected in zip(rows, ref, strict=True):
            assert set(row) == set(CANDIDATES)
            for c in CANDIDATES:
                assert abs(row[c] - expected[c]) < TOLERANCE_NATS, (c, row[c], expected[c])
        assert len({round(v, 4) for row in rows for v in row.values()}) > len(PROMPTS)  # not a constant

    def test_chat_and_tokens(self, engine):
        text = engine.render_chat([{"role": "user", "content": "What is 2+2?"}])
        assert text == "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n"
        assert engine.has_tokens(["<positive_rating>", "<negative_rating>"])
