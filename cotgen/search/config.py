"""SearchConfig: every setting of the tree search, validated when built, recorded in manifests."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

VALUE_MODES = ("judge", "confidence", "rollout")
TIMING_ONLY = ("parallel",)  # settings that change how fast trees are made, never what they hold


@dataclass(frozen=True)
class SearchConfig:
    """Settings of one tree's search. The same record is what manifest.json stores."""

    simulations: int = 16  # simulations per tree (each expands one leaf or revisits a terminal)
    branch: int = 3  # children per expansion, sampled in one request with n = branch
    max_depth: int = 8  # deepest node; nodes at max_depth - 1 expand into conclusions
    enough_correct: int = 2  # stop a tree early once this many terminal leaves are correct; 0 = never
    c_puct: float = 1.5  # exploration weight; 0 = greedy on Q
    temperature: float = 0.8  # sampling temperature of the policy
    top_p: float = 0.95  # nucleus sampling of the policy
    max_step_tokens: int = 96  # token cap for one step, critic, refine or conclusion
    critic_rate: float = 0.15  # chance that expanding a step criticizes it instead of continuing
    conclude_rate: float = 0.2  # chance that expanding a step concludes (final answer) before max_depth
    refine: bool = True  # a critic gets refine children (the step rewritten); off: critics are leaves
    value: str = "judge"  # judge | confidence | rollout (see DESIGN.md, Search)
    rollouts: int = 4  # rollout value mode: completions per node
    rollout_tokens: int = 256  # rollout value mode: token cap of one completion
    virtual_loss: float = 1.0  # pending visits a running simulation adds to its path, each worth 0
    parallel: int = 4  # simulations of one tree in flight at once
    seed: int = 0  # with the tree id, seeds the tree's rng (meta actions, engine seeds)

    def __post_init__(self) -> None:
        for name in ("simulations", "branch", "max_depth", "max_step_tokens", "rollouts",
                     "rollout_tokens", "parallel"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, not {getattr(self, name)}")
        if self.max_depth < 2:
            raise ValueError(f"max_depth must be >= 2 (a step and a conclusion), not {self.max_depth}")
        if self.enough_correct < 0:
            raise ValueError(f"enough_correct must be >= 0, not {self.enough_correct}")
        if self.c_puct < 0:
            raise ValueError(f"c_puct must be >= 0, not {self.c_puct}")
        if self.temperature < 0:
            raise ValueError(f"temperature must be >= 0, not {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"top_p must be in (0, 1], not {self.top_p}")
        if not 0.0 <= self.critic_rate <= 1.0:
            raise ValueError(f"critic_rate must be in [0, 1], not {self.critic_rate}")
        if not 0.0 <= self.conclude_rate <= 1.0:
            raise ValueError(f"conclude_rate must be in [0, 1], not {self.conclude_rate}")
        if self.value not in VALUE_MODES:
            raise ValueError(f"value must be one of {', '.join(VALUE_MODES)}, not '{self.value}'")
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
        only change timing, so that a resumed run may change them."""
        return {k: v for k, v in settings.items() if k not in TIMING_ONLY}
