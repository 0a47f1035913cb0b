"""The one adapter over transformers' KV cache: every call that names the cache, reads it
from a model output or reshapes it is here, through the supported API where one exists.

Rows are selected with `Cache.batch_select_indices`. Joining two caches (left-padded to one
width) and dropping leading columns have no method of their own: they rebuild a
`DynamicCache` from (keys, values) per layer, the constructor's documented input. The
forward's cache argument is `cache` in transformers >= 5.x and `past_key_values` before;
passing the old name prints a FutureWarning on every run.
"""

from __future__ import annotations

import inspect
from typing import Any


class CacheAdapter:
    """Bound to one model: how its forward takes a cache, and cache surgery on its caches."""

    def __init__(self, model: Any) -> None:
        params = inspect.signature(model.forward).parameters
        self.kwarg = "cache" if "cache" in params else "past_key_values"

    def forward(self, model: Any, cache: Any = None, **inputs: Any) -> tuple[Any, Any]:
        """(logits, cache after the forward) of `model(**inputs)` on top of `cache`."""
        if cache is not None:
            inputs[self.kwarg] = cache
        out = model(**inputs)
        return out.logits, self.output_cache(out)

    def output_cache(self, out: Any) -> Any:
        # Read by the name the forward takes: the old attribute warns on read where `cache` exists.
        return out.get("cache") if self.kwarg == "cache" else out.past_key_values

    @staticmethod
    def select(cache: Any, rows: Any) -> Any:
        """Keep the batch rows `rows` (a LongTensor, repeats allowed), in that order."""
        cache.batch_select_indices(rows)
        return cache

    @staticmethod
    def concat(first: Any, second: Any, width: int) -> Any:
        """One cache holding the rows of `first` then those of `second`, each left-padded
        with zeros to `width` columns."""
        from torch.nn.functional import pad

        def grown(t: Any) -> Any:
            return pad(t, (0, 0, width - t.shape[-2], 0))

        layers = []
        for (k1, v1, *_), (k2, v2, *_) in zip(_layers(first), _layers(second), strict=True):
            layers.append((_cat(grown(k1), grown(k2)), _cat(grown(v1), grown(v2))))
        return _rebuilt(first, layers)

    @staticmethod
    def drop_columns(cache: Any, start: int) -> Any:
        """The cache without its first `start` columns (padding in every row)."""
        if start == 0:
            return cache
        return _rebuilt(cache, [(k[:, :, start:], v[:, :, start:]) for k, v, *_ in _layers(cache)])


def _layers(cache: Any) -> list[tuple[Any, ...]]:
    return list(iter(cache))


def _cat(a: Any, b: Any) -> Any:
    import torch

    return torch.cat([a, b])


def _rebuilt(like: Any, layers: list[tuple[Any, Any]]) -> Any:
    return type(like)(ddp_cache_data=layers)
