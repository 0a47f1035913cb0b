"""The hf engine's running batch: rows, their KV cache left-padded to one width, the mask.

The worker thread changes it during a step; the event loop reads `rows` between steps (which
rows' callers went away, how many slots are free) and resets it only through the worker, so
the two never change it at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cotgen.engines.hf.cache import CacheAdapter
from cotgen.engines.hf.scheduler import Request

COMPACT_MIN_COLUMNS = 8  # drop all-padding cache columns once at least this many pile up


@dataclass(eq=False)
class Row:
    """One sequence in the running batch."""

    req: Request
    index: int  # which of the request's samples
    generator: Any  # torch.Generator; None when greedy
    pos: int  # position id of the next token fed
    tokens: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    tops: list[list[float]] = field(default_factory=list)
    stop_at: int | None = None  # set when a stop string appeared
    eos: bool = False


class KVBatch:
    """Rows and their cache: `merge` appends rows, `drop` removes rows and then the cache
    columns no row still uses (compaction)."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.rows: list[Row] = []
        self.cache = None  # a transformers cache over len(rows) rows
        self.mask = None  # (rows, width) long: 1 where the cache column is a real token
        self.next_ids: list[int] = []  # per row: the sampled token not yet fed

    def merge(self, rows: list[Row], cache: Any, mask: Any) -> None:
        """Append rows (their cache and mask) to the batch, left-padding whichever is narrower."""
        import torch
        from torch.nn.functional import pad

        if not self.rows:
            self.rows, self.cache, self.mask = rows, cache, mask
            self.next_ids = [r.tokens[-1] for r in rows]
            return
        width = max(self.mask.shape[1], mask.shape[1])
        self.cache = CacheAdapter.concat(self.cache, cache, width)
        self.mask = torch.cat([pad(self.mask, (width - self.mask.shape[1], 0)), pad(mask, (width - mask.shape[1], 0))])
        self.rows = self.rows + rows
        self.next_ids = self.next_ids + [r.tokens[-1] for r in rows]

    def drop(self, gone: list[int]) -> None:
        """Remove rows from the batch, then the cache columns that are padding in every row left."""
        import torch

        if not gone:
            return
        drop = set(gone)
        keep = [i for i in range(len(self.rows)) if i not in drop]
        self.rows = [self.rows[i] for i in keep]
        if not keep:
            self.reset()
            return
        at = torch.tensor(keep, device=self.mask.device)
        self.mask = self.mask.index_select(0, at)
        start = int(self.mask.any(0).int().argmax())  # first column some row still uses
        start = start if start >= COMPACT_MIN_COLUMNS else 0
        self.cache = CacheAdapter.drop_columns(CacheAdapter.select(self.cache, at), start)
        self.mask = self.mask[:, start:]
