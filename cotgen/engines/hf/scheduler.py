"""Requests waiting for the hf engine, and which of them enter the running batch next."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


@dataclass(eq=False)
class Request:
    """One prompt of one call: its settings and, as they finish, its completions."""

    kind: str  # "gen" | "score"
    ids: list[int]
    future: asyncio.Future
    n: int = 1
    max_tokens: int = 0
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    ignore_eos: bool = False
    seeds: list[int] = field(default_factory=list)  # one per sample
    group: int = 0  # score: the call it belongs to
    results: list[Any] = field(default_factory=list)  # Completion per sample, as they finish
    admitted: int = 0  # samples that have entered the batch
    done: int = 0  # samples finished


def take_admissions(pending: list[Request], running: int, max_batch: int, min_free: int) -> list[tuple[Request, int]]:
    """(request, samples) to admit, oldest first, up to the free slots; `pending` loses the
    requests fully admitted (and those whose caller went away). A running batch admits only
    once `min_free` slots are free: each admission is a prefill and a merge. A request with
    more samples than there are slots is admitted over several rounds."""
    free = max_batch - running
    if running and free < min_free:
        return []
    taken = []
    while free > 0 and pending:
        req = pending[0]
        if req.future.done():  # its caller went away
            pending.pop(0)
            continue
        k = min(free, req.n - req.admitted)
        taken.append((req, k))
        free -= k
        req.admitted += k
        if req.admitted == req.n:
            pending.pop(0)
    return taken
