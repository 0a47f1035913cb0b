"""Search quality, compute-matched by generated tokens: greedy chain of thought, best-of-N and
cotgen's search on held-out builtin:arith problems, with tiny-reasoner on the hf engine; and
the step ratings and critics against exact step truth (cotgen.reasoner.arith.label_path).

Two settings.

- Gold visible, the data run (`visible`): cotgen's default search settings, the gold answer
  in the tree, the `enough_correct` stop on. Best-of-N draws samples in order with the same
  stop (until `enough_correct` of them are right). Solved = some correct answer.
- Gold hidden, the solver (`hidden`, per value mode): the tree has no gold; final answers
  are valued by the value head. Pass = a correct answer in the tree; pick = the answer with
  the highest value; vote = the answer most rollouts ended at (each merged leaf counts its
  visits), best-of-N's majority applied to the tree; weighted vote = the answer whose
  rollouts' values sum highest (cotgen.search.vote); descent = greedy on value from the
  root. No early stop (it needs the gold). Best-of-N is weighed by the same value head as
  a search whose every rollout starts at the root (`bon_valued`): its samples valued,
  metered and read at each budget as the search's are.

Compute matching. Every method runs through a MeteredEngine that counts what the model
generates (each completion's tokens, one token per judged prompt) and, separately, the prompt
tokens the engine processed. A budget of k x G, G the mean greedy solution length, admits
every unit of work that started before the budget was spent: a best-of-N sample, a
simulation of the search (its rollout, critic, refine and valuing). The last unit may
overshoot, for both methods alike; the tokens each used are reported beside the figures.

A search runs once per problem and seed up to the largest budget, one simulation at a time,
and is read at each smaller budget by keeping the simulations that started before it: the
nodes they made, the visits they added, the ratings the kept tree gets.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cotgen.answers import extract_answer
from cotgen.engines.base import Completion, Engine, GenerationParams
from cotgen.policy import EnginePolicy, EngineValuer, Prompts
from cotgen.problems import Problem
from cotgen.reasoner.arith import label_path
from cotgen.reasoner.evaluate import bon_at, path_errors, processbench_f1
from cotgen.reward_model import PRMValuer, RewardModel
from cotgen.search.config import SearchConfig
from cotgen.search.mcts import TreeSearch
from cotgen.search.ratings import assign_ratings
from cotgen.search.vote import Ballot, ballots, estimate, winner
from cotgen.tree import Node, Tree, solution_steps
from cotgen.verify import grade

BUDGETS = (1, 2, 4, 8, 16)  # multiples of the greedy tokens
VALUE_MODES = ("judge", "confidence")  # the value modes on the policy itself; "prm" joins with a PRM given
JUDGE_TOKENS = 1  # a judged prompt costs what the judge would write: one token, Yes or No
ROOT_ONLY = 1_000_000  # SearchConfig.samples of a search that is best-of-N: every rollout from the root


class MeteredEngine:
    """An Engine that counts generated tokens (and judged prompts) and processed prompt
    tokens on the way through."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name, self.model_id = engine.name, engine.model_id
        self.tokens = 0
        self.prompt_tokens = 0

    @property
    def stats(self):
        return self.engine.stats

    async def generate(self, prompts: list[str], params: GenerationParams) -> list[list[Completion]]:
        out = await self.engine.generate(prompts, params)
        self.tokens += sum(c.tokens for row in out for c in row)
        self.prompt_tokens += sum(c.prompt_tokens for row in out for c in row)
        return out

    async def score(self, prompts: list[str], candidates: list[str]) -> list[dict[str, float]]:
        out = await self.engine.score(prompts, candidates)
        self.tokens += JUDGE_TOKENS * len(prompts)
        tokenizer = getattr(self.engine, "tokenizer", None)
        if tokenizer is not None:
            self.prompt_tokens += sum(len(tokenizer.encode(p)) for p in prompts)
        return out

    def render_chat(self, messages, add_generation_prompt: bool = True) -> str:
        return self.engine.render_chat(messages, add_generation_prompt)

    def has_tokens(self, tokens: list[str]) -> bool:
        return self.engine.has_tokens(tokens)

    async def close(self) -> None:  # the shared engine is closed by its owner
        return None


@dataclass
class Simulation:
    """One simulation of a searched tree: the meter before it, where its chain ended."""

    tokens_before: int
    prompt_tokens_before: int
    end: int  # node id the simulation's chain ended at
    first_node: int  # id of the first node it created (== len(nodes) before it)
    why: str


class BudgetedSearch(TreeSearch):
    """cotgen's TreeSearch, one simulation at a time, stopped once the meter passes the
    budget; it logs every simulation (see Simulation)."""

    def __init__(self, *args: Any, meter: MeteredEngine, budget: float, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.meter, self.budget = meter, budget
        self.log: list[Simulation] = []

    def should_stop(self) -> bool:
        return self.meter.tokens >= self.budget or super().should_stop()

    async def simulate(self) -> None:
        before, prompt_before, first = self.meter.tokens, self.meter.prompt_tokens, len(self.tree.nodes)
        await super().simulate()
        why, end = self.history[-1]
        self.log.append(Simulation(before, prompt_before, end, first, why))


@dataclass
class SearchRecord:
    """One searched tree: what the bench needs of it."""

    tree: Tree
    log: list[Simulation]
    tokens: int  # all the search spent
    prompt_tokens: int
    verdicts: dict[int, bool] = field(default_factory=dict)  # terminal id -> graded (post hoc when hidden)
    confidence: dict[int, float] = field(default_factory=dict)  # answered node id -> Marco-o1 confidence


def _grade(text: str, gold: str) -> bool | None:
    return grade(text, gold).correct


class MeteredPRMValuer(PRMValuer):
    """--value prm's valuer, metered as the judge is: a valued path costs what the judge
    would write (JUDGE_TOKENS), and its tokens count as processed prompt tokens."""

    def __init__(self, prm: RewardModel, meter: MeteredEngine) -> None:
        super().__init__(prm)
        self.meter = meter

    async def evaluate(self, tree, parent, kind, candidates, seed):
        ev = await super().evaluate(tree, parent, kind, candidates, seed)
        self.meter.tokens += JUDGE_TOKENS * len(candidates)
        steps = [s.text for s in solution_steps(tree.path_to(parent.id))]
        self.meter.prompt_tokens += sum(
            len(self.prm.layout.encode(self.prm.tokenizer, tree.problem, steps + [c.text])[0]) for c in candidates)
        return ev


async def search_one(
    engine: Engine, prompts: Prompts, problem: Problem, cfg: SearchConfig, budget: float, model: str,
    visible: bool, prm: RewardModel | None = None,
) -> SearchRecord:
    meter = MeteredEngine(engine)
    tree = Tree.new(problem.question, problem.answer if visible else None, source=problem.source, model=model)
    policy = EnginePolicy(meter, prompts, cfg)
    valuer = MeteredPRMValuer(prm, meter) if cfg.value_mode == "prm" else EngineValuer(meter, prompts, cfg)
    rng = random.Random(cfg.seed ^ int(tree.id, 16))
    search = BudgetedSearch(tree, policy, valuer, _grade, cfg, rng, meter=meter, budget=budget)
    await search.run()
    record = SearchRecord(tree, search.log, meter.tokens, meter.prompt_tokens)
    tree.answer = problem.answer  # grade every final answer now (hidden: after the search)
    for node in tree.nodes:
        if node.terminal:
            node.correct = bool(_grade(node.text, problem.answer))
            record.verdicts[node.id] = node.correct
            if search.confidence.get(node.id) is not None:
                record.confidence[node.id] = search.confidence[node.id]
    return record


def kept_tree(record: SearchRecord, budget: float, negative_after: int,
              simulations: int | None = None) -> tuple[Tree, list[Simulation], int, int]:
    """The tree as it stood after the simulations that started before `budget` tokens (and
    among the first `simulations`), rated as cotgen rates it; with those simulations and
    the generated and prompt tokens they used."""
    sims = [s for s in record.log if s.tokens_before < budget]
    if simulations is not None:
        sims = sims[:simulations]
    rest = record.log[len(sims):]
    cut = rest[0].first_node if rest else len(record.tree.nodes)
    full = record.tree
    tree = Tree(problem=full.problem, answer=full.answer, source=full.source, model=full.model, id=full.id)
    tree.nodes = [Node(**{**n.to_dict(), "visits": 0}) for n in full.nodes[:cut]]
    index = {n.id: n for n in tree.nodes}
    for s in sims:
        node = index.get(s.end)
        while node is not None:
            node.visits += 1
            node = index.get(node.parent)
    assign_ratings(tree, negative_after, failed_ends=True)
    used = rest[0].tokens_before if rest else record.tokens
    used_prompt = rest[0].prompt_tokens_before if rest else record.prompt_tokens
    return tree, sims, used, used_prompt


def answers(tree: Tree) -> list[Ballot]:
    """The tree's answered leaves (cotgen.search.vote.ballots): leaf, answer, rollouts."""
    return ballots(tree, extract_answer)


def vote(tree: Tree) -> bool:
    """Is the answer most rollouts ended at correct (ties to the earliest)?"""
    won = winner(ballots(tree, extract_answer))
    return bool(won is not None and won.leaf.correct)


def weighted_vote(tree: Tree, score=estimate) -> bool:
    """Is the answer whose rollouts' value estimates sum highest correct?"""
    won = winner(ballots(tree, extract_answer), score)
    return bool(won is not None and won.leaf.correct)


def descent(tree: Tree) -> bool:
    """Does the greedy descent on value (what `cotgen view` highlights in a tree with no
    correct path) end at a correct answer?"""
    kids = tree.children()
    node = tree.root
    while kids[node.id]:
        node = max(kids[node.id], key=lambda n: (n.value, n.visits, -n.id))
    return bool(node.terminal and node.correct)


def clean_solution(tree: Tree, leaf: Node) -> bool:
    """Every step on the path to the correct answer `leaf` is right by exact truth."""
    steps = solution_steps(tree.path_to(leaf.id))
    return all(v.correct for v in label_path(tree.problem, [s.text for s in steps]))


# -- step truth ---------------------------------------------------------------------


def node_labels(tree: Tree) -> tuple[int, int, int]:
    """(rated right, rated, steps): a step's truth is that it and every step before it on its
    path are right; positive should mean right, negative wrong; unknown is not rated."""
    right = rated = total = 0
    for node in tree.nodes:
        if node.kind not in ("step", "refine"):
            continue
        total += 1
        if node.rating == "unknown":
            continue
        steps = solution_steps(tree.path_to(node.id))
        truth = all(v.correct for v in label_path(tree.problem, [s.text for s in steps]))
        rated += 1
        right += truth == (node.rating == "positive")
    return right, rated, total


def critic_hits(tree: Tree) -> tuple[int, int]:
    """(critics on a step that is wrong by exact truth, critics)."""
    hits = total = 0
    index = tree.by_id()
    for node in tree.nodes:
        if node.kind != "critic":
            continue
        total += 1
        steps = solution_steps(tree.path_to(index[node.parent].id))
        truth = label_path(tree.problem, [s.text for s in steps])
        hits += bool(truth) and not truth[-1].correct
    return hits, total


def step_value_pairs(tree: Tree) -> list[tuple[float, bool]]:
    """(value-head estimate, correct) of every final answer the value head scored."""
    return [(n.q_estimate, bool(n.correct)) for n in tree.nodes if n.q_estimate is not None and n.terminal]


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


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def visible_figures(records: list[SearchRecord], g_tokens: float, cfg: SearchConfig,
                    simulations: int | None = None) -> dict[int | str, dict[str, float]]:
    """The gold-visible figures of the searched trees at each budget (and, under "default",
    after the first `simulations` simulations with no token budget)."""
    out: dict[int | str, dict[str, float]] = {}
    cuts: list[tuple[int | str, float, int | None]] = [(k, k * g_tokens, None) for k in BUDGETS]
    if simulations is not None:
        cuts.append(("default", float("inf"), simulations))
    for key, budget, sims in cuts:
        solved, clean, distinct, used, used_prompt, plans = [], [], [], [], [], Counter()
        pairs, labels, crit = [], [0, 0, 0], [0, 0]
        for r in records:
            tree, kept, spent, spent_prompt = kept_tree(r, budget, cfg.negative_after, sims)
            correct = [n for n in tree.nodes if n.terminal and n.correct]
            solved.append(bool(correct))
            clean.append(any(clean_solution(tree, n) for n in correct))
            distinct.append(len(correct))
            used.append(spent)
            used_prompt.append(spent_prompt)
            plans.update(s.why for s in kept)
            pairs += path_errors(tree)
            for i, v in enumerate(node_labels(tree)):
                labels[i] += v
            for i, v in enumerate(critic_hits(tree)):
                crit[i] += v
        f1 = processbench_f1(pairs)
        out[key] = {
            "solved": _mean(solved), "clean": _mean(clean), "distinct_correct": _mean(distinct),
            "tokens": _mean(used), "prompt_tokens": _mean(used_prompt),
            "rating_f1": f1["f1"], "acc_error_paths": f1["acc_error_paths"],
            "acc_correct_paths": f1["acc_correct_paths"], "error_paths": f1["error_paths"],
            "correct_paths": f1["correct_paths"],
            "label_accuracy": labels[0] / labels[1] if labels[1] else 0.0,
            "label_coverage": labels[1] / labels[2] if labels[2] else 0.0,
            "critics": crit[1], "critic_precision": crit[0] / crit[1] if crit[1] else None,
            "simulations_by_start": {k: v / len(records) for k, v in sorted(plans.items())},
        }
    return out


def hidden_figures(records: list[SearchRecord], g_tokens: float, cfg: SearchConfig) -> dict[int, dict[str, float]]:
    """The gold-hidden figures of the searched trees at each budget: pass, pick (highest
    value), vote, wvote (the vote weighted by the value head, cotgen.search.vote), descent
    (greedy on value), and wvote_confidence (weighted by the Marco-o1 confidence of each
    answer, whatever the value mode: how best-of-N is weighed by the confidence head)."""
    out: dict[int, dict[str, float]] = {}
    metrics = ("pass", "pick", "vote", "wvote", "wvote_confidence", "descent", "tokens", "prompt_tokens")
    for k in BUDGETS:
        per: dict[str, list[float]] = {m: [] for m in metrics}
        for r in records:
            tree, _, spent, spent_prompt = kept_tree(r, k * g_tokens, cfg.negative_after)
            stated = answers(tree)
            per["pass"].append(any(b.leaf.correct for b in stated))
            valued = [b.leaf for b in stated if b.leaf.q_estimate is not None]
            picked = max(valued, key=lambda n: (n.q_estimate, -n.id)) if valued else None
            per["pick"].append(bool(picked is not None and picked.correct))
            per["vote"].append(vote(tree))
            per["wvote"].append(weighted_vote(tree))
            per["wvote_confidence"].append(weighted_vote(tree, lambda n, c=r.confidence: c.get(n.id, 0.5)))
            per["descent"].append(descent(tree))
            per["tokens"].append(spent)
            per["prompt_tokens"].append(spent_prompt)
        out[k] = {m: _mean(v) for m, v in per.items()}
    return out


def bon_default(rows: list[list[tuple[int, str | None, bool]]], tokens: float, enough: int,
                prompt_per_sample: float = 0.0) -> dict[str, float]:
    """Best-of-N with the `enough` stop at the N whose mean tokens match `tokens`, solved
    share (and samples taken) interpolated between the two N around it."""
    curve = [(0.0, 0.0, 0.0)]
    for n in range(1, len(rows[0]) + 1):
        solved, spent, taken = [], [], []
        for samples in rows:
            p, _, used, k = bon_at(samples[:n], float("inf"), enough)
            solved.append(p)
            spent.append(used)
            taken.append(k)
        curve.append((_mean(spent), _mean(solved), _mean(taken)))
    for i in range(1, len(curve)):
        (t0, s0, k0), (t1, s1, k1) = curve[i - 1], curve[i]
        if t1 >= tokens:
            frac = (tokens - t0) / (t1 - t0) if t1 > t0 else 1.0
            samples = k0 + frac * (k1 - k0)
            return {"solved": s0 + frac * (s1 - s0), "tokens": tokens, "n": i - 1 + frac,
                    "prompt_tokens": samples * prompt_per_sample}
    t, s, k = curve[-1]
    return {"solved": s, "tokens": t, "n": float(len(rows[0])), "prompt_tokens": k * prompt_per_sample,
            "short_of_tokens": True}


async def run_all(
    engine: Engine, prompts: Prompts, problems: list[Problem], seeds: list[int], cfg: SearchConfig,
    model: str, bon_n: int, concurrency: int = 64, modes: tuple[str, ...] = VALUE_MODES, log=print,
    default_simulations: int | None = None, critics: int = 0, prm: RewardModel | None = None,
    prm_id: str | None = None,
) -> dict[str, Any]:
    """Every method on every problem and seed; returns the figures (see the module docstring).
    `critics` > 0 (and the search's own setting 0): the gold-visible search runs once more with
    that many critics, for where they land (`visible_critics`, `sq_critic_precision`). With
    `prm` (loaded from `prm_id`), mode "prm" values answers by it, and it breaks the ties of
    the gold-visible ratings where the tree lacks evidence (`prm_tiebreak`)."""
    from cotgen.reasoner.evaluate import sample_solutions

    greedy = await sample_solutions(engine, problems, prompts=prompts)
    g_tokens = sum(s[0].tokens for s in greedy) / len(problems)
    g_acc = sum(s[0].correct for s in greedy) / len(problems)
    log(f"greedy: accuracy {g_acc:.3f}, {g_tokens:.1f} tokens per problem")
    top = max(BUDGETS) * g_tokens
    figures: dict[str, Any] = {"greedy_acc": g_acc, "greedy_tokens": g_tokens, "problems": len(problems),
                               "seeds": seeds, "budgets": list(BUDGETS), "bon": {}, "bon_visible": {},
                               "visible": {}, "mcts": {}, "ratings": {}}
    gate = asyncio.Semaphore(concurrency)
    bon = {k: {"pass": [], "maj": [], "tokens": [], "prompt_tokens": []} for k in BUDGETS}
    bon_v = {k: {"solved": [], "tokens": [], "prompt_tokens": []} for k in BUDGETS}
    rows_all: list[list[tuple[int, str | None, bool]]] = []
    per_sample = 0.0
    for seed in seeds:
        meter = MeteredEngine(engine)
        rows = await sample_solutions(
            meter, problems, n=bon_n, temperature=cfg.temperature, top_p=cfg.top_p, seed=seed, prompts=prompts
        )
        per_sample = meter.prompt_tokens / (bon_n * len(problems))  # every sample processes its prompt
        for row in rows:
            samples = [(s.tokens, s.answer, s.correct) for s in row]
            rows_all.append(samples)
            if sum(s[0] for s in samples) < top:
                log(f"warning: {bon_n} samples hold fewer than {top:.0f} tokens; raise bon_n")
            for k in BUDGETS:
                p, m, used, taken = bon_at(samples, k * g_tokens)
                bon[k]["pass"].append(p)
                bon[k]["maj"].append(m)
                bon[k]["tokens"].append(used)
                bon[k]["prompt_tokens"].append(taken * per_sample)
                p, _, used, taken = bon_at(samples, k * g_tokens, cfg.enough_correct)
                bon_v[k]["solved"].append(p)
                bon_v[k]["tokens"].append(used)
                bon_v[k]["prompt_tokens"].append(taken * per_sample)
        log(f"best-of-N seed {seed} done")
    for k in BUDGETS:
        figures["bon"][k] = {m: _mean(v) for m, v in bon[k].items()}
        figures["bon_visible"][k] = {m: _mean(v) for m, v in bon_v[k].items()}

    async def searched(scfg: SearchConfig, visible: bool) -> list[SearchRecord]:
        async def one(problem: Problem) -> SearchRecord:
            async with gate:
                return await search_one(engine, prompts, problem, scfg, top, model, visible, prm)
        return list(await asyncio.gather(*(one(p) for p in problems)))

    records: list[SearchRecord] = []
    for seed in seeds:
        records += await searched(SearchConfig(**{**cfg.to_dict(), "seed": seed}), True)
        log(f"mcts gold visible seed {seed} done")
    figures["visible"] = visible_figures(records, g_tokens, cfg, default_simulations)
    if critics and not cfg.critics:
        ccfg = SearchConfig(**{**cfg.to_dict(), "critics": critics})
        with_critics: list[SearchRecord] = []
        for seed in seeds:
            with_critics += await searched(SearchConfig(**{**ccfg.to_dict(), "seed": seed}), True)
            log(f"mcts gold visible with {critics} critic(s) seed {seed} done")
        figures["visible_critics"] = visible_figures(with_critics, g_tokens, ccfg, default_simulations)
    if default_simulations is not None:
        figures["bon_visible"]["default"] = bon_default(rows_all, figures["visible"]["default"]["tokens"],
                                                        cfg.enough_correct, per_sample)
    if prm is not None and default_simulations is not None:
        figures["prm_tiebreak"] = await prm_tiebreak_f1(records, prm, cfg, default_simulations)
    for mode in modes:
        mcfg = SearchConfig(**{**cfg.to_dict(), "value_mode": mode, "enough_correct": 0,
                               "value_model": prm_id if mode == "prm" else None})
        hidden: list[SearchRecord] = []
        for seed in seeds:
            hidden += await searched(SearchConfig(**{**mcfg.to_dict(), "seed": seed}), False)
            log(f"mcts gold hidden ({mode}) seed {seed} done")
        figures["mcts"][mode] = hidden_figures(hidden, g_tokens, mcfg)
        values = [p for r in hidden for p in step_value_pairs(r.tree)]
        figures["ratings"][mode] = {"value_auc": auc(values), "valued_answers": len(values)}
    if modes:
        # Best-of-N weighed by the same value heads: a tree whose every rollout starts at the
        # root holds best-of-N's samples, valued, metered and read at each budget as the search.
        head = "judge" if "judge" in modes else modes[0]
        bcfg = SearchConfig(**{**cfg.to_dict(), "value_mode": head, "enough_correct": 0, "samples": ROOT_ONLY,
                               "value_model": prm_id if head == "prm" else None})
        roots: list[SearchRecord] = []
        for seed in seeds:
            roots += await searched(SearchConfig(**{**bcfg.to_dict(), "seed": seed}), False)
            log(f"best-of-N valued ({head}) seed {seed} done")
        figures["bon_valued"] = {"mode": head, **hidden_figures(roots, g_tokens, bcfg)}
    return figures


async def prm_tiebreak_f1(records: list[SearchRecord], prm: RewardModel, cfg: SearchConfig,
                          simulations: int, threshold: float = 0.5) -> dict[str, Any]:
    """Rating F1 of the gold-visible trees (after the search's default simulations) when the
    PRM rates the steps the tree lacks the evidence for (rating unknown): negative below
    `threshold`. The search's own ratings stay where it has them."""
    pairs, filled = [], 0
    for r in records:
        tree, _, _, _ = kept_tree(r, float("inf"), cfg.negative_after, simulations)
        kids = tree.children()
        for leaf in (n for n in tree.nodes if n.terminal and not kids[n.id]):
            steps = solution_steps(tree.path_to(leaf.id))
            if not any(s.rating == "unknown" for s in steps):
                continue
            [scores] = await prm.score(tree.problem, [[s.text for s in steps]])
            for s, p in zip(steps, scores, strict=True):
                if s.rating == "unknown":
                    s.rating = "positive" if p >= threshold else "negative"
                    filled += 1
        pairs += path_errors(tree)
    return {**processbench_f1(pairs), "filled_ratings": filled}


def headline(figures: dict[str, Any]) -> dict[str, float]:
    """The flat keys bench/results.json gets."""
    out: dict[str, float] = {"sq_greedy_acc": figures["greedy_acc"]}
    for k in BUDGETS:
        out[f"sq_bon_pass_at_{k}x"] = figures["bon"][k]["pass"]
        out[f"sq_bon_maj_at_{k}x"] = figures["bon"][k]["maj"]
        out[f"sq_visible_bon_solved_at_{k}x"] = figures["bon_visible"][k]["solved"]
        vis = figures["visible"][k]
        out[f"sq_visible_bon_tokens_at_{k}x"] = figures["bon_visible"][k]["tokens"]
        out[f"sq_visible_bon_prompt_tokens_at_{k}x"] = figures["bon_visible"][k]["prompt_tokens"]
        out[f"sq_visible_mcts_solved_at_{k}x"] = vis["solved"]
        out[f"sq_visible_mcts_tokens_at_{k}x"] = vis["tokens"]
        out[f"sq_visible_mcts_prompt_tokens_at_{k}x"] = vis["prompt_tokens"]
        out[f"sq_visible_mcts_clean_at_{k}x"] = vis["clean"]
        out[f"sq_visible_mcts_distinct_correct_at_{k}x"] = vis["distinct_correct"]
        out[f"sq_rating_f1_at_{k}x"] = vis["rating_f1"]
        out[f"sq_label_accuracy_at_{k}x"] = vis["label_accuracy"]
        for mode, per in figures["mcts"].items():
            # cotgen's default value mode (judge) is also the unsuffixed headline figure
            for suffix in ([f"_{mode}", ""] if mode == "judge" else [f"_{mode}"]):
                out[f"sq_mcts_pass_at_{k}x{suffix}"] = per[k]["pass"]
                out[f"sq_mcts_pick_at_{k}x{suffix}"] = per[k]["pick"]
                out[f"sq_mcts_vote_at_{k}x{suffix}"] = per[k]["vote"]
                if "wvote" in per[k]:  # figure files written before the weighted vote lack it
                    out[f"sq_mcts_wvote_at_{k}x{suffix}"] = per[k]["wvote"]
        valued = figures.get("bon_valued")
        if valued:
            out[f"sq_bon_wvote_at_{k}x_{valued['mode']}"] = valued[k]["wvote"]
            out[f"sq_bon_wvote_at_{k}x_confidence"] = valued[k]["wvote_confidence"]
    default = figures["visible"].get("default")
    if default:
        out["sq_visible_default_mcts_solved"] = default["solved"]
        out["sq_visible_default_mcts_tokens"] = default["tokens"]
        out["sq_visible_default_mcts_prompt_tokens"] = default["prompt_tokens"]
        out["sq_visible_default_bon_solved"] = figures["bon_visible"]["default"]["solved"]
        out["sq_visible_default_bon_prompt_tokens"] = figures["bon_visible"]["default"]["prompt_tokens"]
        out["sq_rating_f1"] = default["rating_f1"]
    # Where critics land: the search's own trees when it makes critics, else the pass with them.
    for key in ("visible", "visible_critics"):
        at = figures.get(key, {}).get("default") or figures.get(key, {}).get(max(BUDGETS))
        if at and at["critic_precision"] is not None:
            out["sq_critic_precision"] = at["critic_precision"]
            if key == "visible_critics":
                out["sq_critics_rating_f1"] = at["rating_f1"]
                out["sq_critics_solved"] = at["solved"]
            break
    if "prm_tiebreak" in figures:
        out["sq_rating_f1_prm_tiebreak"] = figures["prm_tiebreak"]["f1"]
    for mode, r in figures["ratings"].items():
        if r["value_auc"] is not None:
            out["sq_value_auc" + ("" if mode == "judge" else f"_{mode}")] = r["value_auc"]
    return out


def load_figures(path) -> dict[str, Any]:
    """search_quality.json read back, its budget keys (strings in JSON) as ints again."""
    import json

    def keys(per: dict[str, Any]) -> dict[Any, Any]:
        return {int(k) if k.isdigit() else k: v for k, v in per.items()}

    figures = json.loads(open(path).read())
    for name in ("bon", "bon_visible", "visible", "visible_critics"):
        if name in figures:
            figures[name] = keys(figures[name])
    figures["mcts"] = {m: keys(per) for m, per in figures["mcts"].items()}
    if "bon_valued" in figures:
        figures["bon_valued"] = keys(figures["bon_valued"])
    return figures


def plot(figures: dict[str, Any], path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.8), dpi=120)
    ks = list(BUDGETS)
    vis, bonv = figures["visible"], figures["bon_visible"]
    left.plot([bonv[k]["tokens"] for k in ks], [bonv[k]["solved"] for k in ks], "o-", color="black",
              label="best-of-N (same stop)")
    left.plot([vis[k]["tokens"] for k in ks], [vis[k]["solved"] for k in ks], "s-", color="tab:blue",
              label="search: solved")
    left.plot([vis[k]["tokens"] for k in ks], [vis[k]["clean"] for k in ks], "s:", color="tab:blue",
              label="search: clean solution")
    left.set_title("gold visible (the data run)")
    bon = figures["bon"]
    right.plot([bon[k]["tokens"] for k in ks], [bon[k]["pass"] for k in ks], "o-", color="black", label="best-of-N pass@N")
    right.plot([bon[k]["tokens"] for k in ks], [bon[k]["maj"] for k in ks], "o--", color="gray", label="best-of-N majority")
    valued = figures.get("bon_valued")
    if valued:
        right.plot([valued[k]["tokens"] for k in ks], [valued[k]["wvote_confidence"] for k in ks], "o-.",
                   color="tab:brown", label="best-of-N weighted vote (confidence)")
    colors = {"judge": "tab:blue", "confidence": "tab:orange"}
    for mode, per in figures["mcts"].items():
        c = colors.get(mode, "tab:green")
        right.plot([per[k]["tokens"] for k in ks], [per[k]["pass"] for k in ks], "s-", color=c, label=f"search ({mode}) pass")
        right.plot([per[k]["tokens"] for k in ks], [per[k]["pick"] for k in ks], "s--", color=c, label=f"search ({mode}) pick")
        right.plot([per[k]["tokens"] for k in ks], [per[k]["vote"] for k in ks], "s:", color=c, label=f"search ({mode}) vote")
        if "wvote" in per[ks[0]]:
            right.plot([per[k]["tokens"] for k in ks], [per[k]["wvote"] for k in ks], "s-.", color=c,
                       label=f"search ({mode}) weighted vote")
    right.set_title("gold hidden (the solver)")
    for ax in (left, right):
        ax.scatter([figures["greedy_tokens"]], [figures["greedy_acc"]], marker="*", s=160, color="red", zorder=5,
                   label="greedy")
        ax.set_xscale("log", base=2)
        ax.set_xlabel("generated tokens per problem")
        ax.set_ylabel("share of problems")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"tiny-reasoner, {figures['problems']} held-out builtin:arith problems x {len(figures['seeds'])} seeds")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
