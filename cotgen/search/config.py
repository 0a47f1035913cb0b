"""SearchConfig: every setting of the tree search, validated when built, recorded in manifests."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

VALUE_MODES = ("judge", "confidence", "prm")
TIMING_ONLY = ("parallel",)  # settings that change how fast trees are made, never what they hold
RENAMED = {"value": "value_mode"}  # older manifests' names of a setting
ADDED = {"widen": 0.0}  # settings added later, at the value that searches as the versions before them did


@dataclass(frozen=True)
class SearchConfig:
    """Settings of one tree's search. The same record is what manifest.json stores.

    Every simulation is one rollout: the rest of a solution, sampled in one request from a
    node of the tree, to a final answer or the token limit (see docs/ARCHITECTURE.md and cotgen.search.mcts)."""

    simulations: int = 16  # rollouts per tree, each to a final answer (or the token limit)
    samples: int = 4  # the first rollouts all start at the root: best-of-N inside the tree
    widen: float = 0.0  # gold hidden: the root starts another sample while it has fewer than widen x sqrt(simulations)
    branch: int = 2  # rollouts that may start at one inner node
    enough_correct: int = 2  # stop a tree once this many rollouts ended correct; 0 = never
    c_puct: float = 1.5  # exploration weight; 0 = greedy on Q
    temperature: float = 0.8  # sampling temperature of the policy
    top_p: float = 0.95  # nucleus sampling of the policy
    max_tokens: int = 2048  # token limit of one rollout (the rest of a solution)
    max_step_tokens: int = 512  # token limit of one critic or refine
    max_depth: int = 100  # deepest step; a rollout's steps beyond it are joined into the last
    probe: bool = True  # gold visible: roll out inside failed paths to find their first error
    negative_after: int = 1  # a step with no correct answer below it is negative once this many rollouts through it failed
    critics: int = 0  # critics per tree, each on the estimated first error of a failed path
    refine: bool = True  # a critic gets a refine child (the step rewritten) that rolls out to an answer
    value_mode: str = "judge"  # gold hidden: how a final answer is valued, judge | confidence | prm (--value)
    value_model: str | None = None  # --value prm: the process reward model, a folder or Hub id (--value-model)
    virtual_loss: float = 1.0  # pending visits a running simulation adds to its path, each worth 0
    parallel: int = 4  # simulations of one tree in flight at once
    seed: int = 0  # with the tree id, seeds the tree's rng (engine seeds)

    def __post_init__(self) -> None:
        refuse_non_finite(self)
        for name in ("simulations", "samples", "branch", "max_tokens", "max_step_tokens", "max_depth",
                     "negative_after", "parallel"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        for name in ("enough_correct", "critics"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, not {getattr(self, name)}")
        if self.widen < 0:
            raise ValueError(f"widen must be >= 0, not {self.widen}")
        if self.c_puct < 0:
            raise ValueError(f"c_puct must be >= 0, not {self.c_puct}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, not {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p}")
        if self.value_mode not in VALUE_MODES:
            extra = (" (every simulation is a rollout to an answer now: the rollout value mode is gone)"
                     if self.value_mode == "rollout" else "")
            raise ValueError(f"value must be one of {', '.join(VALUE_MODES)}, not '{self.value_mode}'{extra}")
        if self.value_mode == "prm" and not (self.value_model or "").strip():
            raise ValueError("value prm needs the process reward model: --value-model ID_OR_FOLDER")
        if self.value_model is not None and self.value_mode != "prm":
            raise ValueError(f"value_model is the PRM of --value prm; value is '{self.value_mode}'")
        if self.virtual_loss < 0:
            raise ValueError(f"virtual_loss must be >= 0, not {self.virtual_loss}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def result_settings(self) -> dict[str, Any]:
        """The settings that shape the trees (see `shaping`)."""
        return self.shaping(asdict(self))

    @staticmethod
    def shaping(settings: dict[str, Any]) -> dict[str, Any]:
        """`settings` (a recorded SearchConfig, perhaps of an older version) without those that
        only change timing, so that a resumed run may change them. A record written before
        `value` was renamed `value_mode` reads as the same setting, and one written before a
        setting was added (ADDED) holds it at the value that searches as that version did."""
        renamed = {**ADDED, **{RENAMED.get(k, k): v for k, v in settings.items()}}
        return {k: v for k, v in renamed.items() if k not in TIMING_ONLY}


def refuse_non_finite(settings: Any) -> None:
    """Raise ValueError for a float field that is NaN or infinite: every range check below
    passes NaN (each comparison is False), and manifest.json would record it as NaN, which
    is not JSON."""
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{f.name} must be a finite number, not {value}")
