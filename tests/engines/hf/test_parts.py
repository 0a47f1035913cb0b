"""The hf engine's stop strings, admission and KV batch, each without a model."""

from __future__ import annotations

import asyncio

import torch
from transformers import DynamicCache

from cotgen.engines.hf.batch import COMPACT_MIN_COLUMNS, KVBatch, Row
from cotgen.engines.hf.cache import CacheAdapter
from cotgen.engines.hf.scheduler import Request, take_admissions
from cotgen.engines.hf.stops import StopStrings

VOCAB = {1: "ab", 2: "\n", 3: "\n\nc", 4: "d"}


def decode(ids: list[int]) -> str:
    return "".join(VOCAB[i] for i in ids)


def test_a_stop_string_is_seen_the_token_it_ends_in_and_cut_there():
    stops = StopStrings(decode)
    assert not stops.stopped([1], ("\n\n",))
    assert not stops.stopped([1, 2], ("\n\n",))
    assert stops.stopped([1, 2, 2], ("\n\n",))
    assert stops.cut([1, 2, 2], ("\n\n",)) == ("ab", [1], True)
    assert stops.cut([1, 3], ("\n\n",)) == ("ab", [1], True)  # the token reaching into it goes
    assert stops.cut([1, 4], ("\n\n",)) == ("abd", [1, 4], False)


def _request(n: int) -> Request:
    loop = asyncio.new_event_loop()
    try:
        return Request("gen", [1, 2, 3], loop.create_future(), n=n)
    finally:
        loop.close()


def test_admission_fills_free_slots_oldest_first_and_splits_a_big_request():
    big, small = _request(5), _request(1)
    pending = [big, small]
    assert take_admissions(pending, running=0, max_batch=4, min_free=1) == [(big, 4)]
    assert pending == [big, small] and big.admitted == 4
    assert take_admissions(pending, running=3, max_batch=4, min_free=2) == []  # too few free slots
    assert take_admissions(pending, running=2, max_batch=4, min_free=2) == [(big, 1), (small, 1)]
    assert pending == []


def _cache(rows: int, width: int, fill: float) -> DynamicCache:
    k = torch.full((rows, 2, width, 4), fill)
    return DynamicCache(ddp_cache_data=[(k, k.clone() + 1)])


def _row(token: int) -> Row:
    return Row(_request(1), 0, None, pos=0, tokens=[token])


def test_merge_left_pads_the_narrower_and_drop_compacts():
    batch = KVBatch()
    batch.merge([_row(1)], _cache(1, 3, 1.0), torch.ones(1, 3, dtype=torch.long))
    wide = COMPACT_MIN_COLUMNS + 4
    batch.merge([_row(2), _row(3)], _cache(2, wide, 2.0), torch.ones(2, wide, dtype=torch.long))
    [(keys, values, *_)] = list(iter(batch.cache))
    assert keys.shape == (3, 2, wide, 4) and batch.mask.shape == (3, wide)
    assert batch.mask[0].tolist() == [0] * (wide - 3) + [1] * 3
    assert keys[0, 0, : wide - 3].abs().sum() == 0 and keys[0, 0, -1, 0] == 1.0
    assert batch.next_ids == [1, 2, 3]
    batch.drop([1, 2])  # the wide rows go: the columns only they used go too
    [(keys, values, *_)] = list(iter(batch.cache))
    assert keys.shape == (1, 2, 3, 4) and batch.mask.tolist() == [[1, 1, 1]]
    assert torch.equal(values, torch.full((1, 2, 3, 4), 2.0))
    batch.drop([0])
    assert batch.rows == [] and batch.cache is None


def test_the_adapter_selects_rows_with_repeats():
    cache = DynamicCache(ddp_cache_data=[(torch.arange(2.0).view(2, 1, 1, 1), torch.zeros(2, 1, 1, 1))])
    [(keys, *_)] = list(iter(CacheAdapter.select(cache, torch.tensor([1, 1, 0]))))
    assert keys.flatten().tolist() == [1.0, 1.0, 0.0]
