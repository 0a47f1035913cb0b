"""Search quality (bench/search_quality.py): greedy vs best-of-N vs MCTS per value mode on
held-out builtin:arith problems with tiny-reasoner, compute-matched by generated tokens;
step ratings against exact step truth. Writes bench/search_quality.json and
bench/search_quality.png; returns the sq_* headline figures.

Size: SQ_PROBLEMS (default 200) problems x SQ_SEEDS (default 3) seeds; SQ_MODES picks the
gold-hidden value modes (default judge,confidence, and prm with SQ_PRM). SQ_PRM names a
process reward model folder (cotgen model train-prm, trained on seeds below 1000 only):
the prm value mode and the PRM's tie-break of the ratings (sq_rating_f1_prm_tiebreak).
SQ_SEARCH changes the search's settings, e.g. "probe=0,critics=0", and SQ_TAG names such a
variant: it writes bench/search_quality-TAG.json and .png, and its headline keys end in
_TAG. SQ_PROBLEM_SEED picks another held-out problem set (default 1000, tiny-reasoner's
evaluation seed).
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

HERE = Path(__file__).parent
# The search as the bench runs it: cotgen's defaults, but no simulation cap (the token
# budget stops it; the default cap is read off the same trees) and one simulation in flight
# per tree (so every node's cost is known).
SEARCH = dict(simulations=1000, parallel=1)
BON_N = 32  # samples drawn per problem and seed; budgets take a prefix of them
# cotgen's default search makes no critic; a second gold-visible pass with one per tree
# measures where critics land (sq_critic_precision) and what they cost (untagged runs only).
CRITICS = 1


def run(work: Path) -> dict[str, float]:
    from bench.search_quality import VALUE_MODES, headline, plot, run_all
    from cotgen.engines import build_engine
    from cotgen.engines.config import EngineConfig
    from cotgen.policy import load_prompts
    from cotgen.reasoner.evaluate import held_out_problems
    from cotgen.search.config import SearchConfig

    n = int(os.environ.get("SQ_PROBLEMS", "200"))
    search = {**SEARCH, **_settings(os.environ.get("SQ_SEARCH", ""))}
    problem_seed = int(os.environ.get("SQ_PROBLEM_SEED", "1000"))
    tag = os.environ.get("SQ_TAG", "")
    name = f"search_quality-{tag}" if tag else "search_quality"
    seeds = list(range(int(os.environ.get("SQ_SEEDS", "3"))))
    prm_id = os.environ.get("SQ_PRM") or None
    default_modes = ",".join(VALUE_MODES + (("prm",) if prm_id else ()))
    modes = tuple(m for m in os.environ.get("SQ_MODES", default_modes).split(",") if m)
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    async def main():
        engine = build_engine(EngineConfig(model="tiny-reasoner", max_batch=128))
        prm = None
        if prm_id:
            from cotgen.reward_model import load_reward_model

            prm = load_reward_model(prm_id)
        try:
            return await run_all(
                engine, load_prompts(), held_out_problems(n, seed=problem_seed), seeds, SearchConfig(**search),
                "tiny-reasoner", BON_N, modes=modes, default_simulations=SearchConfig().simulations,
                critics=0 if tag else CRITICS, prm=prm, prm_id=prm_id,
                log=lambda m: print(f"  [{time.perf_counter() - t0:.0f}s] {m}", flush=True),
            )
        finally:
            await engine.close()

    figures = asyncio.run(main())
    figures["seconds"] = round(time.perf_counter() - t0, 1)
    if prm_id:
        figures["prm"] = prm_id
    figures["search_settings"] = search
    figures["search_config"] = SearchConfig(**search).to_dict()  # every setting, defaults included
    figures["problem_seed"] = problem_seed
    (HERE / f"{name}.json").write_text(json.dumps(figures, indent=2) + "\n")
    plot(figures, HERE / f"{name}.png")
    return {f"{k}_{tag}" if tag else k: v for k, v in headline(figures).items()}


def _settings(text: str) -> dict[str, float | int | str]:
    """'branch=2,conclude_rate=0' as SearchConfig fields (numbers as numbers)."""
    out: dict[str, float | int | str] = {}
    for item in filter(None, (x.strip() for x in text.split(","))):
        key, _, value = item.partition("=")
        try:
            out[key] = int(value)
        except ValueError:
            try:
                out[key] = float(value)
            except ValueError:
                out[key] = value
    return out
