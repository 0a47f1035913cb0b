"""The hf engine's sampling functions, without a model."""

from __future__ import annotations

import torch

from cotgen.engines.hf.sampling import TOP_K, nucleus_argmax, pick_tokens


def test_nucleus_argmax_matches_a_sorted_nucleus():

    gen = torch.Generator().manual_seed(0)
    for scale in (0.5, 2.0, 8.0):  # flat to peaked distributions
        logprobs = torch.log_softmax(torch.randn(200, 300, generator=gen) * scale, dim=-1)
        perturbed = logprobs - torch.log(-torch.log(torch.rand(200, 300, generator=gen)))
        top_p = torch.rand(200, generator=gen).clamp(min=0.05)
        top_p[:20] = 1.0
        got = nucleus_argmax(logprobs, perturbed, top_p)
        probs, order = logprobs.exp().sort(dim=-1, descending=True)
        for r in range(200):
            size = int(((probs[r].cumsum(0) - probs[r]) < top_p[r]).sum())
            nucleus = order[r, :size]
            assert got[r].item() == nucleus[perturbed[r, nucleus].argmax()].item()


def test_greedy_rows_take_the_argmax_and_report_raw_logprobs():
    logits = torch.tensor([[0.0, 3.0, 1.0, -1.0, 0.5, 0.2], [2.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    picked = pick_tokens(logits, [0.0, 0.0], [1.0, 1.0], [None, None])
    lp = torch.log_softmax(logits, dim=-1)
    assert picked.tokens == [1, 0]
    assert picked.logprobs == [lp[0, 1].item(), lp[1, 0].item()]
    assert [len(t) for t in picked.top_logprobs] == [TOP_K, TOP_K]


def test_a_sampled_row_depends_only_on_its_own_generator():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(1))

    def draw(rows):
        gens = [torch.Generator().manual_seed(7) if i == 1 else torch.Generator().manual_seed(i) for i in rows]
        return pick_tokens(logits[rows], [1.0] * len(rows), [0.9] * len(rows), gens).tokens

    assert draw([0, 1, 2])[1] == draw([1])[0]


def test_banned_tokens_are_never_picked_in_banned_rows():
    logits = torch.tensor([[5.0, 0.0, 0.0], [5.0, 0.0, 0.0]])
    picked = pick_tokens(logits, [0.0, 0.0], [1.0, 1.0], [None, None], banned=[0], banned_rows=[1])
    assert picked.tokens[0] == 0 and picked.tokens[1] != 0
    assert picked.logprobs[1] == torch.log_softmax(logits, -1)[1, picked.tokens[1]].item()
