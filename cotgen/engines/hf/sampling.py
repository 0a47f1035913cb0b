"""Pure sampling functions over a batch of logits; torch only, no model.

Log-probs reported are those of the raw model distribution (log_softmax of the logits,
before temperature and top-p), so a prior computed from them does not depend on how the
token was sampled. Every sampled row draws with its own torch.Generator: its token depends
on nothing else in the batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

TOP_K = 5  # alternatives reported per position (Marco-o1's confidence reads five)


@dataclass
class Picked:
    """The tokens chosen for a batch of rows, with what is reported about them."""

    tokens: list[int]
    logprobs: list[float]  # raw log-prob of each chosen token
    top_logprobs: list[list[float]]  # the TOP_K highest raw log-probs of each row


def pick_tokens(
    logits: Any,
    temperatures: list[float],
    top_ps: list[float],
    generators: list[Any],
    banned: list[int] | None = None,
    banned_rows: list[int] | None = None,
) -> Picked:
    """One token per row of `logits` (rows x vocab). A row with a generator samples at its
    temperature within its top-p nucleus; a row without one is greedy. `banned` token ids
    (EOS under ignore_eos) are never picked in `banned_rows`, but keep their raw log-prob."""
    import torch

    logits = logits.float()
    lp = torch.log_softmax(logits, dim=-1)
    top = lp.topk(min(TOP_K, lp.shape[-1]), dim=-1).values
    if banned and banned_rows:
        logits = logits.clone()
        logits[torch.tensor(banned_rows)[:, None], torch.tensor(sorted(banned))[None, :]] = float("-inf")
    choice = logits.argmax(-1)
    sampled = [i for i, g in enumerate(generators) if g is not None]
    if sampled:
        at = torch.tensor(sampled, device=logits.device)
        temps = torch.tensor([temperatures[i] for i in sampled], device=logits.device)
        scaled = torch.log_softmax(logits.index_select(0, at) / temps.unsqueeze(1), dim=-1)
        # Gumbel-max with each row's own generator: a row's draw depends on nothing else in the batch.
        noise = torch.stack([torch.rand(lp.shape[-1], generator=generators[i]) for i in sampled])
        perturbed = scaled + -torch.log(-torch.log(noise.clamp(min=1e-20))).to(logits.device)
        row_top_ps = [top_ps[i] for i in sampled]
        if min(row_top_ps) < 1.0:
            choice[at] = nucleus_argmax(scaled, perturbed, torch.tensor(row_top_ps, device=logits.device))
        else:
            choice[at] = perturbed.argmax(-1)
    chosen = lp.gather(1, choice.unsqueeze(1)).squeeze(1).tolist()
    return Picked(choice.tolist(), chosen, top.tolist())


def nucleus_argmax(logprobs: Any, perturbed: Any, top_p: Any) -> Any:
    """Per row, the argmax of `perturbed` (log-probs plus Gumbel noise) over the top-p
    nucleus of `logprobs`: an exact nucleus sample, with no sort of the vocabulary. A token
    is in the nucleus when the mass of the tokens more likely than it is below top_p; the
    plain argmax nearly always is, and when it is not, it and every less likely token are
    ruled out and the argmax is taken again."""
    probs = logprobs.exp()
    limit = top_p.masked_fill(top_p >= 1.0, float("inf")).unsqueeze(1)
    while True:
        pick = perturbed.argmax(-1, keepdim=True)
        p = probs.gather(1, pick)
        outside = (probs * (probs > p)).sum(-1, keepdim=True) >= limit
        if not bool(outside.any()):
            return pick.squeeze(1)
        perturbed = perturbed.masked_fill(outside & (probs <= p), float("-inf"))
