"""cotgen: synthesize long chain-of-thought training data with MCTS over reasoning steps."""

__version__ = "0.1.0"
