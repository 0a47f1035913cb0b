"""tiny-reasoner: a ~1M-parameter Qwen2 trained here on builtin:arith, shipped in the package."""
