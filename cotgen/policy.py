"""Prompt templates (prompts/) rendered into a Policy and a Valuer that run on an Engine."""

from __future__ import annotations

import hashlib
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path

from cotgen.engines.base import Completion, Engine, GenerationParams
from cotgen.errors import UsageError
from cotgen.formats.openlongcot import KIND_TAGS, MISSPELLED_RATING, RATING_START, record
from cotgen.formats.openlongcot import RATING_TOKENS as OPENLONGCOT_RATINGS
from cotgen.formats.openlongcot import TOKENS as OPENLONGCOT_TOKENS
from cotgen.search.config import SearchConfig
from cotgen.search.protocols import Candidate, Evaluation, Proposal, Rollout
from cotgen.tree import Node, Tree, has_final_answer, solution_steps

DEFAULT_PROMPTS = Path(__file__).parent / "prompts"

# template name -> placeholders it must contain. {hint} is optional everywhere it is used.
TEMPLATES: dict[str, tuple[str, ...]] = {
    "system": (),
    "step": ("problem",),
    "critic": ("problem", "steps", "step"),
    "refine": ("problem", "steps", "step", "critic"),
    "judge": ("problem", "steps", "step"),
    "conclusion": ("problem", "steps"),  # not asked by the search: tiny-reasoner's training data uses it
    "hint": ("answer",),
}
PLACEHOLDERS = ("problem", "steps", "step", "critic", "hint", "answer")
# Only these names are substituted, so LaTeX braces such as \boxed{} pass through untouched.
_PLACEHOLDER = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")

STEP_SEPARATOR = "\n\n"  # a reasoning step ends at a blank line
STEP_STOP = (STEP_SEPARATOR,)  # critics and refines are one paragraph
RATING_TOKENS = [OPENLONGCOT_RATINGS["positive"], OPENLONGCOT_RATINGS["negative"]]
YES, NO = ("Yes", "yes"), ("No", "no")  # no leading-space forms: their first token may be a bare space
NO_STEPS = "(none yet)"  # what {steps} shows before the first step

# Generated text must not carry record structure into the data: a model (the tiny one does,
# an OpenLongCoT-trained one may) can emit the format's tags or chat tokens, which would end
# a thought early or nest a record when exported. Control characters and U+FFFD (a byte-level
# BPE cut mid-character) make rows the validators reject, so they go too.
_STRUCTURE = re.compile(
    "|".join([
        r"<\|[^|<>\s]{1,40}\|>",
        *(re.escape(tag) for tag in (*OPENLONGCOT_TOKENS, MISSPELLED_RATING)),
        r"[\x00-\x08\x0b-\x1f\x7f\ufffd]",
    ])
)


def clean_text(text: str) -> str:
    """`text` without structural tags, chat tokens, control characters and U+FFFD, stripped."""
    return _STRUCTURE.sub("", text).strip()


@dataclass(frozen=True)
class Prompts:
    """The templates of a run, read and checked once at start."""

    texts: dict[str, str]
    source: str  # the folder they came from

    def render(self, name: str, **values: str) -> str:
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), self.texts[name])

    def digest(self) -> str:
        """A hash of every template: a run records it, so a resume cannot change the prompts."""
        h = hashlib.sha256()
        for name in sorted(self.texts):
            h.update(name.encode() + b"\x00" + self.texts[name].encode() + b"\x00")
        return h.hexdigest()[:16]


def load_prompts(directory: Path | None = None) -> Prompts:
    """Read every template from `directory` (default: the packaged prompts/), or raise one
    UsageError listing each missing, unreadable or incomplete template."""
    folder = Path(directory) if directory is not None else DEFAULT_PROMPTS
    if not folder.is_dir():
        raise UsageError(f"--prompts {folder}: no such folder")
    texts: dict[str, str] = {}
    problems: list[str] = []
    for name, required in TEMPLATES.items():
        path = folder / f"{name}.txt"
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            problems.append(f"{path}: missing")
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{path}: unreadable ({exc})")
            continue
        text = text[:-1] if text.endswith("\n") else text  # the file's final newline is not prompt
        if not text.strip():
            problems.append(f"{path}: empty")
            continue
        absent = [p for p in required if "{" + p + "}" not in text]
        if absent:
            problems.append(f"{path}: lacks the placeholder(s) " + ", ".join("{" + p + "}" for p in absent))
            continue
        texts[name] = text
    if problems:
        raise UsageError(
            "prompt templates are broken: " + "; ".join(problems)
            + f" (copy {DEFAULT_PROMPTS} to start a folder of your own)"
        )
    return Prompts(texts=texts, source=str(folder))


def reasoning(tree: Tree, node_id: int) -> list[str]:
    """The texts of the reasoning steps on the path to `node_id` (tree.solution_steps: a
    refine replaces the step its critic criticized, and critics are not reasoning)."""
    return [node.text for node in solution_steps(tree.path_to(node_id))]


def confidence(c: Completion) -> float | None:
    """Marco-o1's confidence: per token exp(logp chosen) / sum of exp(logp) over the top-5
    alternatives (the chosen token added when it is not among them), averaged."""
    if not c.logprobs or len(c.top_logprobs) != len(c.logprobs):
        return None
    total = 0.0
    for chosen, top in zip(c.logprobs, c.top_logprobs, strict=True):
        alts = [math.exp(t) for t in top]
        denom = sum(alts)
        if not top or chosen < min(top) - 1e-6:
            denom += math.exp(chosen)
        total += math.exp(chosen) / denom if denom > 0 else 0.0
    return total / len(c.logprobs)


def _two_way(logps: dict[str, float], good: tuple[str, ...], bad: tuple[str, ...]) -> float:
    """P(good) among good + bad next tokens, from their log-probs."""
    top = max(logps.values())
    if top == -math.inf:  # none of them among the engine's top log-probs (openai: top 20)
        return 0.5
    g = sum(math.exp(logps[t] - top) for t in good if t in logps)
    b = sum(math.exp(logps[t] - top) for t in bad if t in logps)
    return g / (g + b) if g + b > 0 else 0.5


class EnginePolicy:
    """Proposes children by rendering the template of their kind and sampling the engine once
    with n = proposal.n. The gold answer reaches the prompt only with `hint_answer`."""

    def __init__(self, engine: Engine, prompts: Prompts, cfg: SearchConfig, hint_answer: bool = False) -> None:
        self.engine, self.prompts, self.cfg, self.hint_answer = engine, prompts, cfg, hint_answer
        self.generated_tokens = 0  # over every tree: the progress bar's tokens/s
        # The two requests the policy makes, built once; a call changes only n and the seed.
        # A rollout runs to the end of the solution, as far as the context allows.
        self.rollout_params = GenerationParams(
            max_tokens=cfg.max_tokens, temperature=cfg.temperature, top_p=cfg.top_p, fit_context=True
        )
        self.step_params = GenerationParams(
            max_tokens=cfg.max_step_tokens, temperature=cfg.temperature, top_p=cfg.top_p, stop=STEP_STOP
        )

    def _chat(self, user: str) -> str:
        return self.engine.render_chat(
            [{"role": "system", "content": self.prompts.texts["system"]}, {"role": "user", "content": user}]
        )

    def _hint(self, tree: Tree) -> str:
        if self.hint_answer and tree.answer is not None:
            return self.prompts.render("hint", answer=tree.answer)
        return ""

    def prompt(self, tree: Tree, parent: Node, kind: str) -> str:
        """The prompt that asks for a child of `kind` under `parent`: `step` continues the
        solution after `parent` (the assistant writes on from its own steps so far)."""
        p = self.prompts
        hint = self._hint(tree)
        if kind == "step":
            steps = reasoning(tree, parent.id)
            prefix = "".join(s + STEP_SEPARATOR for s in steps)
            return self._chat(p.render("step", problem=tree.problem, hint=hint)) + prefix
        if kind == "critic":
            before = reasoning(tree, parent.id)[:-1]
            user = p.render("critic", problem=tree.problem, hint=hint, steps=_joined(before), step=parent.text)
        elif kind == "refine":
            step = tree.by_id()[parent.parent]
            before = reasoning(tree, step.id)[:-1]
            user = p.render(
                "refine", problem=tree.problem, hint=hint, steps=_joined(before), step=step.text, critic=parent.text
            )
        else:
            raise ValueError(f"no prompt for children of kind '{kind}'")
        return self._chat(user)

    async def rollout(self, tree: Tree, start: Node, seed: int) -> Rollout:
        """The rest of the solution after `start`, in one request up to `max_tokens`, split
        into steps at the blank lines; see `split_rollout`."""
        prompt = self.prompt(tree, start, "step")
        [[c]] = await self.engine.generate([prompt], replace(self.rollout_params, seed=seed))
        self.generated_tokens += c.tokens
        return split_rollout(c)

    async def propose(self, tree: Tree, proposal: Proposal) -> list[Candidate]:
        """Critic or refine texts: one paragraph each, up to `max_step_tokens`."""
        parent = tree.nodes[proposal.parent]
        prompt = self.prompt(tree, parent, proposal.kind)
        params = replace(self.step_params, n=proposal.n, seed=proposal.seed)
        [completions] = await self.engine.generate([prompt], params)
        self.generated_tokens += sum(c.tokens for c in completions)
        return [
            Candidate(
                text=clean_text(c.text),
                tokens=c.tokens,
                logprob=c.mean_logprob,
                confidence=confidence(c),
                finish_reason=c.finish_reason,
                prompt_tokens=c.prompt_tokens,
            )
            for c in completions
        ]


def split_rollout(c: Completion) -> Rollout:
    """A completion as a rollout: its steps (the text between blank lines, cleaned, empty
    ones dropped) up to and including the first that states a final answer. Each step gets
    its share of the completion's tokens and log-probs by its share of the characters (the
    engine's tokens are not mapped back to text offsets). The rollout is truncated when the
    completion hit its token limit before a whole step answered: the piece the limit cut is
    never an answer, even where a \\boxed{} in it parses."""
    pieces = c.text.split(STEP_SEPARATOR)
    total = max(1, len(c.text))
    n_tok = len(c.logprobs) if c.logprobs else c.tokens
    steps: list[Candidate] = []
    pos, answered = 0, False
    for i, raw in enumerate(pieces):
        end = pos + len(raw) + (len(STEP_SEPARATOR) if i < len(pieces) - 1 else 0)
        lo, hi = round(n_tok * pos / total), round(n_tok * end / total)
        pos = end
        text = clean_text(raw)
        if not text:
            continue
        part = Completion(text=text, tokens=hi - lo, finish_reason="stop",
                          logprobs=c.logprobs[lo:hi], top_logprobs=c.top_logprobs[lo:hi])
        steps.append(Candidate(text=text, tokens=max(1, round(c.tokens * (hi - lo) / max(1, n_tok))),
                               logprob=part.mean_logprob, confidence=confidence(part)))
        cut = c.finish_reason == "length" and i == len(pieces) - 1  # the piece the token limit cut
        if not cut and has_final_answer(text):
            answered = True
            break
    return Rollout(steps=steps, truncated=c.finish_reason == "length" and not answered, tokens=c.tokens,
                   prompt_tokens=c.prompt_tokens)


class EngineValuer:
    """Values a rollout's final answer when the gold is hidden: `judge` (rating tokens or
    Yes/No) or `confidence` (Marco-o1)."""

    def __init__(
        self,
        engine: Engine,
        prompts: Prompts,
        cfg: SearchConfig,
    ) -> None:
        self.engine, self.prompts, self.cfg = engine, prompts, cfg
        self.mode = cfg.value_mode
        # A model trained on OpenLongCoT rates a record with its own tokens; others get asked.
        self.rating_tokens = cfg.value_mode == "judge" and engine.has_tokens(RATING_TOKENS)
        self.generated_tokens = 0

    async def evaluate(
        self, tree: Tree, parent: Node, kind: str, candidates: list[Candidate], seed: int
    ) -> Evaluation:
        if self.mode == "confidence":
            return Evaluation([c.confidence if c.confidence is not None else 0.5 for c in candidates])
        # Under a critic this already leaves out the criticized step: the refine takes its place.
        before = reasoning(tree, parent.id)
        if self.rating_tokens:
            prompts = [_openlongcot_record_prompt(tree.problem, before, c.text) for c in candidates]
            scores = await self.engine.score(prompts, RATING_TOKENS)
            return Evaluation([_two_way(s, (RATING_TOKENS[0],), (RATING_TOKENS[1],)) for s in scores])
        prompts = [
            self.engine.render_chat(
                [
                    {"role": "system", "content": self.prompts.texts["system"]},
                    {"role": "user", "content": self.prompts.render(
                        "judge", problem=tree.problem, steps=_joined(before), step=c.text)},
                ]
            )
            for c in candidates
        ]
        scores = await self.engine.score(prompts, list(YES + NO))
        return Evaluation([_two_way(s, YES, NO) for s in scores])


def _joined(steps: list[str]) -> str:
    return "\n\n".join(steps) if steps else NO_STEPS


def _openlongcot_record_prompt(problem: str, before: list[str], text: str) -> str:
    """The path as OpenLongCoT records (a chain: each record's father is the one before),
    ending where the model writes the candidate's rating. Earlier steps are not rated yet
    during the search, so they carry <unknown_rating>."""

    parts = [record(-1, 0, KIND_TAGS["problem"] + problem)]
    for i, step in enumerate(before, start=1):
        parts.append(record(i - 1, i, step, "unknown"))
    k = len(before) + 1
    parts.append(record(k - 1, k, text) + RATING_START)
    return "\n".join(parts)
