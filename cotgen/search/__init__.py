"""Pure MCTS over reasoning steps: protocols, settings, PUCT selection, the search loop, ratings."""

from cotgen.search.config import SearchConfig
from cotgen.search.mcts import TreeSearch, run_search
from cotgen.search.protocols import Candidate, Evaluation, Grader, Policy, Proposal, Valuer
from cotgen.search.ratings import assign_ratings

__all__ = [
    "Candidate",
    "Evaluation",
    "Grader",
    "Policy",
    "Proposal",
    "SearchConfig",
    "TreeSearch",
    "Valuer",
    "assign_ratings",
    "run_search",
]
