"""The hf engine: transformers in-process with its own decode loop and continuous batching.

engine.py (HFEngine: the Engine interface, the dispatcher and the worker steps), loading.py
(model and tokenizer), scheduler.py (requests and admission), batch.py (the running batch:
merge, drop, compact), cache.py (the one adapter over transformers' KV cache), sampling.py
(pure sampling functions) and stops.py (stop-string matching).
"""

from cotgen.engines.hf.engine import HFEngine

__all__ = ["HFEngine"]
