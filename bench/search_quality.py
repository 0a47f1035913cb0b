"""Search quality, compute-matched by generated tokens: greedy chain of thought, best-of-N and
cotgen's MCTS (per value mode) on held-out builtin:arith problems, with tiny-reasoner on the
hf engine; and the step ratings against exact step truth (cotgen.reasoner.arith).

Compute matching. Every method runs through a MeteredEngine that counts what the model
generates: each completion's tokens (policy steps, critics, refines, conclusions, rollouts,
whole solutions) and one token per judged prompt (the judge's Yes/No). A budget of k x G,
G the mean greedy solution length, admits every unit of work that started before the budget
was spent: a sample of best-of-N, an expansion of the search (its proposal and its
evaluation together). The last unit may overshoot, for both methods alike; the tokens each
actually used are reported beside the accuracies.

Protocol. The search runs without the gold answer (Tree.answer None), as a solver would:
terminal leaves are valued by the value head, not graded, so MCTS pass (a correct leaf in
the tree) and pick (the highest-value terminal leaf) are both earned without ground truth.
The rollout mode (Math-Shepherd) needs the gold to count its rollouts, so it runs with it;
its terminals are then graded during the search and its "pick" would read the answer off
the grader: it is reported as null. After the search the gold is attached, terminals are
graded and cotgen's ratings assigned (Math-Shepherd soft labels): those are what the
ProcessBench-style F1 measures against exact step truth.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cotgen.answers import extract_answer
from cotgen.engines.base import Completion, Engine
from cotgen.policy import EnginePolicy, EngineValuer, Prompts
from cotgen.problems import Problem
from cotgen.reasoner.arith import label_path
from cotgen.search.config import SearchConfig
from cotgen.search.mcts import TreeSearch
from cotgen.search.ratings import assign_ratings
from cotgen.tree import Tree, solution_steps
from cotgen.verify import grade

BUDGETS = (1, 2, 4, 8)  # multiples of the greedy tokens
VALUE_MODES = ("judge", "confidence", "rollout")
JUDGE_TOKENS = 1  # a judged prompt costs what the judge would write: one token, Yes or No


class MeteredEngine:
    """An Engine that counts generated tokens (and judged prompts) on the way through."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name, self.model_id = engine.name, engine.model_id
        self.tokens = 0

    @property
    def stats(self):
        return self.engine.stats

    async def generate(self, prompts: list[str], **sampling: Any) -> list[list[Completion]]:
        out = await self.engine.generate(prompts, **sampling)
        self.tokens += sum(c.tokens for row in out for c in row)
        return out

    async def score(self, prompts: list[str], candidates: list[str]) -> list[dict[str, float]]:
        out = await self.engine.score(prompts, candidates)
        self.tokens += JUDGE_TOKENS * len(prompts)
        return out

    def render_chat(self, messages, add_generation_prompt: bool = True) -> str:
        return self.engine.render_chat(messages, add_generation_prompt)

    def has_tokens(self, tokens: list[str]) -> bool:
        return self.engine.has_tokens(tokens)

    async def close(self) -> None:  # the shared engine is closed by its owner
        return None


class BudgetedSearch(TreeSearch):
    """cotgen's TreeSearch, one simulation at a time, stopped once the meter passes the
    budget; it records the tokens spent before each node's expansion began."""

    def __init__(self, *args: Any, meter: MeteredEngine, budget: float, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.meter, self.budget = meter, budget
        self.started_at: dict[int, int] = {0: 0}  # node id -> tokens spent before its expansion

    def should_stop(self) -> bool:
        return self.meter.tokens >= self.budget or super().should_stop()

    async def _expand(self, leaf):
        before, spent = len(self.tree.nodes), self.meter.tokens
        value = await super()._expand(leaf)
        for node_id in range(before, len(self.tree.nodes)):
            self.started_at[node_id] = spent
        return value


@dataclass
class SearchRecord:
    """One searched tree: what the bench needs of it."""

    tree: Tree
    started_at: dict[int, int]
    tokens: int  # all the search spent
    verdicts: dict[int, bool] = field(default_factory=dict)  # terminal id -> graded post hoc


def _grade(text: str, gold: str) -> bool | None:
    return grade(text, gold).correct


async def search_one(
    engine: Engine, prompts: Prompts, problem: Problem, cfg: SearchConfig, budget: float, model: str
) -> SearchRecord:
    meter = MeteredEngine(engine)
    with_gold = cfg.value == "rollout"
    tree = Tree.new(problem.question, problem.answer if with_gold else None, source=problem.source, model=model)
    policy = EnginePolicy(meter, prompts, cfg)
    valuer = EngineValuer(meter, prompts, cfg, grade=_grade)
    rng = random.Random(cfg.seed ^ int(tree.id, 16))
    search = BudgetedSearch(tree, policy, valuer, _grade, cfg, rng, meter=meter, budget=budget)
    await search.run()
    record = SearchRecord(tree, search.started_at, meter.tokens)
    # Grade every terminal against the gold now, then rate as cotgen does after a search.
    tree.answer = problem.answer
    for node in tree.nodes:
        if node.terminal:
            node.correct = bool(_grade(node.text, problem.answer))
            record.verdicts[node.id] = node.correct
    assign_ratings(tree)
    return record


def mcts_at(record: SearchRecord, budget: float) -> tuple[bool, bool, bool, int]:
    """(a correct leaf exists, the highest-value terminal leaf is correct, the answer most
    terminal leaves state is correct, tokens used) for the part of the search that started
    before `budget` tokens were spent. The vote is best-of-N's majority applied to the
    tree's leaves (ties to the leaf started first): a pick that needs no value head."""
    kept = [n for n in record.tree.nodes if record.started_at.get(n.id, 0) < budget or n.id == 0]
    terminals = [n for n in kept if n.terminal]
    passed = any(record.verdicts[n.id] for n in terminals)
    picked = max(terminals, key=lambda n: (n.value, -n.id)) if terminals else None
    pick_ok = bool(picked is not None and record.verdicts[picked.id])
    stated = [(n, extract_answer(n.text)) for n in sorted(terminals, key=lambda n: record.started_at.get(n.id, 0))]
    stated = [(n, a) for n, a in stated if a is not None]
    votes = Counter(a for _, a in stated)
    vote_ok = False
    if votes:
        top = max(votes.values())
        winner = next(n for n, a in stated if votes[a] == top)
        vote_ok = bool(record.verdicts[winner.id])
    kept_ids = {n.id for n in kept}
    spent = [record.started_at[n.id] for n in record.tree.nodes if n.id not in kept_ids]
    used = min(spent) if spent else record.tokens
    return passed, pick_ok, vote_ok, used


def bon_at(samples: list[tuple[int, str | None, bool]], budget: float) -> tuple[bool, bool, int]:
    """(pass@N, majority vote correct, tokens used) over the samples started within budget;
    a sample is (tokens, extracted answer, correct)."""
    taken, spent = [], 0
    for s in samples:
        if spent >= budget:
            break
        taken.append(s)
        spent += s[0]
    passed = any(s[2] for s in taken)
    answers = Counter(s[1] for s in taken if s[1] is not None)
    majority = False
    if answers:
        top = max(answers.values())
        winner = next(s[1] for s in taken if s[1] is not None and answers[s[1]] == top)  # first to reach the top
        majority = next(s[2] for s in taken if s[1] == winner)
    return passed, majority, spent


# -- step truth ---------------------------------------------------------------------


def path_errors(tree: Tree) -> list[tuple[int | None, int | None]]:
    """Per terminal leaf: (index of the earliest wrong step by exact truth, index of the
    earliest step cotgen rated negative), None when there is none (ProcessBench)."""
    out = []
    for leaf in (n for n in tree.nodes if n.terminal):
        steps = solution_steps(tree.path_to(leaf.id))
        truth = label_path(tree.problem, [s.text for s in steps])
        wrong = next((i for i, v in enumerate(truth) if not v.correct), None)
        rated = next((i for i, s in enumerate(steps) if s.rating == "negative"), None)
        out.append((wrong, rated))
    return out


def processbench_f1(pairs: list[tuple[int | None, int | None]]) -> dict[str, float]:
    """Accuracy on paths with an error (the earliest error found exactly), on paths without
    (nothing flagged), and their harmonic mean."""
    err = [p for p in pairs if p[0] is not None]
    ok = [p for p in pairs if p[0] is None]
    acc_err = sum(w == r for w, r in err) / len(err) if err else 0.0
    acc_ok = sum(r is None for _, r in ok) / len(ok) if ok else 0.0
    f1 = 2 * acc_err * acc_ok / (acc_err + acc_ok) if acc_err + acc_ok else 0.0
    return {"f1": f1, "acc_error_paths": acc_err, "acc_correct_paths": acc_ok, "error_paths": len(err), "correct_paths": len(ok)}


def step_value_pairs(tree: Tree) -> list[tuple[float, bool]]:
    """(value-head estimate, exact truth) of every step node the value head scored; truth is
    that the step and every step before it on its path are right."""
    out = []
    for node in tree.nodes:
        if node.q_estimate is None or node.kind in ("problem", "critic"):
            continue
        steps = solution_steps(tree.path_to(node.id))
        truth = label_path(tree.problem, [s.text for s in steps])
        out.append((node.q_estimate, all(v.correct for v in truth)))
    return out


def auc(pairs: list[tuple[float, bool]]) -> float | None:
    """Area under the ROC curve (Mann-Whitney, ties count half); None without both classes."""
    pos = [s for s, y in pairs if y]
    neg = [s for s, y in pairs if not y]
    if not pos or not neg:
        return None
    ranked = sorted([(s, 1) for s in pos] + [(s, 0) for s in neg])
    rank_sum, i = 0.0, 0
    while i < len(ranked):
        j = i
        while j < len(ranked) and ranked[j][0] == ranked[i][0]:
            j += 1
        mid = (i + j + 1) / 2  # 1-based mean rank of the tie group
        rank_sum += mid * sum(1 for k in range(i, j) if ranked[k][1])
        i = j
    return (rank_sum - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg))


async def run_all(
    engine: Engine, prompts: Prompts, problems: list[Problem], seeds: list[int], cfg: SearchConfig,
    model: str, bon_n: int, concurrency: int = 64, modes: tuple[str, ...] = VALUE_MODES, log=print,
) -> dict[str, Any]:
    """Every method on every problem and seed; returns the figures (see the module docstring)."""
    from cotgen.reasoner.evaluate import sample_solutions

    greedy = await sample_solutions(engine, problems, prompts=prompts)
    g_tokens = sum(s[0].tokens for s in greedy) / len(problems)
    g_acc = sum(s[0].correct for s in greedy) / len(problems)
    log(f"greedy: accuracy {g_acc:.3f}, {g_tokens:.1f} tokens per problem")
    top = max(BUDGETS) * g_tokens
    figures: dict[str, Any] = {"greedy_acc": g_acc, "greedy_tokens": g_tokens, "problems": len(problems),
                               "seeds": seeds, "budgets": list(BUDGETS), "bon": {}, "mcts": {}}
    gate = asyncio.Semaphore(concurrency)
    bon = {k: {"pass": [], "maj": [], "tokens": []} for k in BUDGETS}
    for seed in seeds:
        rows = await sample_solutions(
            engine, problems, n=bon_n, temperature=cfg.temperature, top_p=cfg.top_p, seed=seed, prompts=prompts
        )
        for row in rows:
            samples = [(s.tokens, s.answer, s.correct) for s in row]
            if sum(s[0] for s in samples) < top:
                log(f"warning: {bon_n} samples hold fewer than {top:.0f} tokens; raise bon_n")
            for k in BUDGETS:
                p, m, used = bon_at(samples, k * g_tokens)
                bon[k]["pass"].append(p)
                bon[k]["maj"].append(m)
                bon[k]["tokens"].append(used)
        log(f"best-of-N seed {seed} done")
    for k in BUDGETS:
        figures["bon"][k] = {m: sum(v) / len(v) for m, v in bon[k].items()}

    ratings: dict[str, Any] = {}
    for mode in modes:
        mcfg = SearchConfig(**{**cfg.to_dict(), "value": mode})
        per = {k: {"pass": [], "pick": [], "vote": [], "tokens": []} for k in BUDGETS}
        records: list[SearchRecord] = []
        for seed in seeds:
            scfg = SearchConfig(**{**mcfg.to_dict(), "seed": seed})

            async def one(problem: Problem, scfg: SearchConfig = scfg) -> SearchRecord:
                async with gate:
                    return await search_one(engine, prompts, problem, scfg, top, model)

            records += await asyncio.gather(*(one(p) for p in problems))
            log(f"mcts {mode} seed {seed} done")
        for r in records:
            for k in BUDGETS:
                p, pick, vote, used = mcts_at(r, k * g_tokens)
                per[k]["pass"].append(p)
                per[k]["pick"].append(pick)
                per[k]["vote"].append(vote)
                per[k]["tokens"].append(used)
        figures["mcts"][mode] = {k: {m: sum(v) / len(v) for m, v in per[k].items()} for k in BUDGETS}
        if mode == "rollout":
            for k in BUDGETS:
                # read off the grader: see the docstring
                figures["mcts"][mode][k]["pick"] = figures["mcts"][mode][k]["vote"] = None
        pairs = [p for r in records for p in path_errors(r.tree)]
        values = [p for r in records for p in step_value_pairs(r.tree)]
        ratings[mode] = {**processbench_f1(pairs), "value_auc": auc(values), "scored_steps": len(values)}
        spent = Counter()
        for r in records:
            for n in r.tree.nodes:
                spent[n.kind] += n.tokens
        ratings[mode]["policy_tokens_by_kind"] = dict(spent)
        ratings[mode]["tokens_per_tree"] = sum(r.tokens for r in records) / len(records)
    figures["ratings"] = ratings
    return figures


def headline(figures: dict[str, Any]) -> dict[str, float]:
    """The flat keys bench/results.json gets."""
    out: dict[str, float] = {"sq_greedy_acc": figures["greedy_acc"]}
    for k in BUDGETS:
        out[f"sq_bon_pass_at_{k}x"] = figures["bon"][k]["pass"]
        out[f"sq_bon_maj_at_{k}x"] = figures["bon"][k]["maj"]
        for mode, per in figures["mcts"].items():
            # cotgen's default value mode (judge) is also the unsuffixed headline figure
            suffixes = [f"_{mode}", ""] if mode == "judge" else [f"_{mode}"]
            for suffix in suffixes:
                out[f"sq_mcts_pass_at_{k}x{suffix}"] = per[k]["pass"]
                if per[k]["pick"] is not None:
                    out[f"sq_mcts_pick_at_{k}x{suffix}"] = per[k]["pick"]
                if per[k].get("vote") is not None:
                    out[f"sq_mcts_vote_at_{k}x{suffix}"] = per[k]["vote"]
    judge = figures["ratings"].get("judge")
    if judge:
        out["sq_rating_f1"] = judge["f1"]
        if judge["value_auc"] is not None:
            out["sq_value_auc"] = judge["value_auc"]
    return out


def load_figures(path) -> dict[str, Any]:
    """search_quality.json read back, its budget keys (strings in JSON) as ints again."""
    import json

    figures = json.loads(open(path).read())
    figures["bon"] = {int(k): v for k, v in figures["bon"].items()}
    figures["mcts"] = {m: {int(k): v for k, v in per.items()} for m, per in figures["mcts"].items()}
    return figures


def plot(figures: dict[str, Any], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=120)
    ks = list(BUDGETS)
    bon = figures["bon"]
    ax.plot([bon[k]["tokens"] for k in ks], [bon[k]["pass"] for k in ks], "o-", color="black", label="best-of-N pass@N")
    ax.plot([bon[k]["tokens"] for k in ks], [bon[k]["maj"] for k in ks], "o--", color="gray", label="best-of-N majority")
    colors = {"judge": "tab:blue", "confidence": "tab:orange", "rollout": "tab:green"}
    for mode, per in figures["mcts"].items():
        ax.plot([per[k]["tokens"] for k in ks], [per[k]["pass"] for k in ks], "s-", color=colors[mode],
                label=f"MCTS ({mode}) correct leaf")
        if per[ks[0]]["pick"] is not None:
            ax.plot([per[k]["tokens"] for k in ks], [per[k]["pick"] for k in ks], "s--", color=colors[mode],
                    label=f"MCTS ({mode}) pick")
        if per[ks[0]].get("vote") is not None:
            ax.plot([per[k]["tokens"] for k in ks], [per[k]["vote"] for k in ks], "s:", color=colors[mode],
                    label=f"MCTS ({mode}) leaf vote")
    ax.scatter([figures["greedy_tokens"]], [figures["greedy_acc"]], marker="*", s=160, color="red", zorder=5,
               label="greedy")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("generated tokens per problem (judge and rollout tokens included)")
    ax.set_ylabel("share of problems")
    top = max([figures["greedy_acc"]] + [bon[k]["pass"] for k in ks]
              + [per[k]["pass"] for per in figures["mcts"].values() for k in ks])
    ax.set_ylim(0, min(1.0, max(0.1, 1.3 * top)))
    ax.set_title(f"tiny-reasoner, {figures['problems']} held-out builtin:arith problems x {len(figures['seeds'])} seeds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
