"""Exact and near-duplicate removal (normalized text + MinHash LSH) over trees and exports."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from cotgen.errors import (
    DataError,
    UsageError,
)
from cotgen.formats import format_class
from cotgen.formats.marco import dumps_marco
from cotgen.formats.row_problem import PROBLEM_COLUMN, problem_text
from cotgen.io.atomic import atomic_file, write_json_atomic
from cotgen.io.inputs import (
    DatasetInput,
    check_new_output,
    output_manifest,
    renumbered_names,
    resolve_dataset_inputs,
    staged_output,
)
from cotgen.io.layout import (
    MANIFEST,
)
from cotgen.io.readers import TREES, ParquetReader, open_rows
from cotgen.validate import refuse_invalid

REPORT = "dedupe.json"
# Uncompressed bytes per record batch when pass 2 copies kept rows: large enough that
# Parquet decoding and zstd work on big buffers, small enough to bound memory.
WRITE_BATCH_BYTES = 16 << 20
# Characters NFKC leaves alone that str.split() still treats as whitespace.
_UNICODE_SPACES = r"[\x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}]"
# Compatibility decompositions that change what a formula says: NFKC reads "10⁵" as "105",
# "x₂" as "x2", "½" as "1⁄2" and bold 𝐯 (a vector) as v. Such characters (and those whose
# decomposition holds one, as ㎡ holds ²) are kept apart from their look-alikes.
_MATHS_TAGS = ("<super>", "<sub>", "<fraction>", "<font>")
# Kept characters become ESCAPE + their hex code point + ';', which NFKC leaves alone and no
# other text can produce (ESCAPE itself, a private-use character, is escaped the same way).
_ESCAPE = "\U000F0000"


@functools.lru_cache(maxsize=1)
def _maths_escapes() -> tuple[dict[int, str], str]:
    """(str.translate table escaping every kept character, an RE2 class matching them)."""
    import unicodedata

    decomposition = {}
    for cp in range(0x110000):
        d = unicodedata.decomposition(chr(cp))
        if d:
            decomposition[cp] = d.split()
    memo: dict[int, bool] = {}

    def kept(cp: int) -> bool:
        if cp not in memo:
            parts = decomposition.get(cp)
            memo[cp] = bool(parts) and (
                parts[0] in _MATHS_TAGS or any(kept(int(x, 16)) for x in parts if not x.startswith("<"))
            )
        return memo[cp]

    codes = sorted([cp for cp in decomposition if kept(cp)] + [ord(_ESCAPE)])
    table = {cp: f"{_ESCAPE}{cp:X};" for cp in codes}
    ranges: list[list[int]] = []
    for cp in codes:
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    pattern = "[" + "".join(f"\\x{{{a:x}}}" + (f"-\\x{{{b:x}}}" if b > a else "") for a, b in ranges) + "]"
    return table, pattern


def normalize_texts(texts):
    """NFKC with whitespace collapsed to ' ', except that superscripts, subscripts,
    fractions and styled maths letters keep their identity (see _MATHS_TAGS); a pyarrow
    string array in, one out. Non-ASCII batches only: ASCII is already normal."""
    import pyarrow as pa
    import pyarrow.compute as pc

    table, pattern = _maths_escapes()
    hits = pc.match_substring_regex(texts, pattern)
    if pc.any(hits).as_py():
        rows = texts.to_pylist()
        for i in hits.to_numpy(zero_copy_only=False).nonzero()[0]:
            rows[i] = rows[i].translate(table)
        texts = pa.array(rows, pa.string())
    texts = pc.utf8_normalize(texts, "NFKC")
    return pc.replace_substring_regex(texts, _UNICODE_SPACES, " ")


@dataclass(frozen=True)
class DedupeConfig:
    """How duplicates are found; recorded in dedupe.json and the output manifest."""

    on: str = "text"  # "text": the row's full text; "problem": one tree per problem
    threshold: float = 0.85  # estimated Jaccard of word shingles at which rows are near copies
    num_perm: int = 128  # MinHash permutations: more = finer similarity, 4 bytes/row each
    ngram: int = 5  # words per shingle; long shingles keep look-alike rows of one family apart
    seed: int = 1  # MinHash seed; fixed so the same input always gives the same output
    batch_rows: int = 512  # rows per record batch: bounds the texts (and per-byte arrays) in flight

    def __post_init__(self) -> None:
        if self.on not in ("text", "problem"):
            raise ValueError(f"on must be 'text' or 'problem', not '{self.on}'")
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], not {self.threshold}")
        if not 2 <= self.num_perm <= 1024:
            raise ValueError(f"num_perm must be between 2 and 1024, not {self.num_perm}")
        if not 1 <= self.ngram <= 32:
            raise ValueError(f"ngram must be between 1 and 32, not {self.ngram}")
        if self.batch_rows < 1:
            raise ValueError(f"batch_rows must be positive, not {self.batch_rows}")


@dataclass
class DedupeReport:
    """What dedupe did: counts by reason and every cluster with its kept and dropped rows."""

    format: str
    inputs: list[str]
    out: str
    settings: dict[str, Any]
    rows: int = 0
    kept: int = 0
    dropped: dict[str, int] = field(default_factory=lambda: {"exact": 0, "near": 0})
    clusters: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        # Shallow on purpose: asdict() would deep-copy every cluster entry for nothing.
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


# -- reading --------------------------------------------------------------------------


def _marco_records(path: Path) -> list[dict[str, Any]]:
    """Every record of a Marco-o1 file, read by the one JSON-array reader (cotgen.io.readers)."""
    return [row for batch in open_rows(path, "marco").batches() for row in batch.rows]


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key in value:
            yield from _strings(value[key])
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def _tree_text(nodes: list[dict[str, Any]] | None) -> str:
    return "\n".join(n.get("text") or "" for n in nodes or [])


def _correct_leaves(nodes: list[dict[str, Any]] | None) -> int:
    return sum(1 for n in nodes or [] if n.get("terminal") and n.get("correct") is True)


@dataclass
class _Keys:
    """Pass-1 output for one batch: the texts to sign and, for trees, ids and ranks."""

    texts: Any  # pyarrow string array
    ids: list[str | None]
    correct: list[int]
    nodes: list[int]
    # Trees only: each row's gold answer. Rows whose answers differ are never duplicates.
    answers: list[str | None] | None = None


def _batches(inp: DatasetInput, path: Path, settings: DedupeConfig) -> Iterator[_Keys]:
    """Stream the keys of one file, one record batch at a time."""
    import pyarrow as pa

    fmt, on = inp.format, settings.on
    if fmt == "marco":
        records = _marco_records(path)
        for start in range(0, len(records), settings.batch_rows):
            chunk = records[start : start + settings.batch_rows]
            texts = [r["instruction"] if on == "problem" else r["instruction"] + "\n" + r["response"] for r in chunk]
            yield _Keys(pa.array(texts, pa.string()), [None] * len(chunk), [0] * len(chunk), [0] * len(chunk))
        return
    reader = ParquetReader(path)
    if fmt == TREES:
        columns = ["id", "problem", "answer", "nodes"] if on == "problem" else ["id", "answer", "nodes"]
    elif fmt == "openlongcot":
        # The gold answer where the export kept it: rows whose answers differ are not copies.
        columns = ["text", "answer"] if "answer" in reader.columns else ["text"]
    else:
        # The format's own columns: provenance (source, generator, tokens...) says where a
        # row came from, not what it says, so two copies from two runs are still copies.
        columns = list(format_class(fmt).columns) if fmt != "marco" else None
    row = 0
    for batch in reader.arrow_batches(columns, settings.batch_rows):
        n = batch.num_rows
        if fmt == "openlongcot" and on == "text":
            texts = batch.column("text")
            if texts.null_count:
                bad = row + texts.is_null().to_pylist().index(True)
                raise DataError(f"{path}: row {bad}: 'text' is null")
            answers = batch.column("answer").to_pylist() if batch.num_columns > 1 else None
            yield _Keys(texts.cast(pa.string()), [None] * n, [0] * n, [0] * n, answers)
        elif fmt == TREES:
            rows = batch.to_pylist()
            if on == "problem":
                texts = [r["problem"] or "" for r in rows]
            else:
                texts = [_tree_text(r["nodes"]) for r in rows]
            yield _Keys(
                pa.array(texts, pa.string()),
                [r["id"] for r in rows],
                [_correct_leaves(r["nodes"]) for r in rows],
                [len(r["nodes"] or []) for r in rows],
                [r["answer"] for r in rows],
            )
        else:
            rows = batch.to_pylist()
            if on == "problem":
                texts = [_row_problem(fmt, r) for r in rows]
            else:
                # A processbench row's id and generator name the path, not its text.
                texts = ["\n".join(_strings(r if fmt != "processbench" else [r.get("problem"), r.get("steps")]))
                         for r in rows]
            answers = [r["answer"] for r in rows] if columns and "answer" in columns else None
            yield _Keys(pa.array(texts, pa.string()), [None] * n, [0] * n, [0] * n, answers)
        row += n


def _row_problem(fmt: str, row: dict[str, Any]) -> str:
    """The problem a row is about, for --on problem over exports; "" where it has none.
    A dpo row's is its whole prompt (problem and shared steps), as it always was here;
    decontaminate alone cuts it to the problem's first paragraph."""
    return str(problem_text(fmt, row.get(PROBLEM_COLUMN[fmt])) or "")


# -- signatures -----------------------------------------------------------------------


class _Signer:
    """Normalized text -> (exact key, MinHash signature), vectorized over a record batch.

    Words are hashed in numpy with a polynomial hash over the UTF-8 bytes (prefix sums
    make every word O(1)), shingles combine `ngram` consecutive word hashes, and rensa
    turns each row's shingle hashes into its MinHash digest in one call per batch: the
    Python loop per word is what would otherwise dominate.
    """

    _P = 0x9E3779B97F4A7C15  # odd, so invertible modulo 2**64

    def __init__(self, settings: DedupeConfig) -> None:
        import numpy as np

        self.np = np
        self.s = settings
        self._sep = np.zeros(256, dtype=bool)
        # str.split() whitespace within ASCII; Unicode spaces are mapped to ' ' first.
        self._sep[[9, 10, 11, 12, 13, 28, 29, 30, 31, 32]] = True
        self._pow = np.ones(1, dtype=np.uint64)
        self._inv = np.ones(1, dtype=np.uint64)
        self._powsum = np.zeros(2, dtype=np.uint64)
        rng = np.random.default_rng(20250101)
        self._mults = rng.integers(1, 2**63, size=settings.ngram, dtype=np.uint64) | np.uint64(1)

    def _mix(self, x):
        """splitmix64's finalizer; works in place on a fresh copy of `x`."""
        np = self.np
        x = x ^ (x >> np.uint64(30))
        x *= np.uint64(0xBF58476D1CE4E5B9)
        x ^= x >> np.uint64(27)
        x *= np.uint64(0x94D049BB133111EB)
        x ^= x >> np.uint64(31)
        return x

    def _powers(self, n: int) -> None:
        np = self.np
        if len(self._pow) >= n:
            return
        n = max(n, 2 * len(self._pow), 1 << 21)
        p = np.full(n, self._P, dtype=np.uint64)
        p[0] = 1
        q = np.full(n, pow(self._P, -1, 2**64), dtype=np.uint64)
        q[0] = 1
        self._pow, self._inv = np.cumprod(p), np.cumprod(q)
        self._powsum = np.zeros(n + 1, dtype=np.uint64)
        np.cumsum(self._pow, out=self._powsum[1:])

    def sign(self, texts) -> tuple[Any, Any]:
        """Exact keys ((rows, 2) uint64) and a (rows, num_perm) uint32 signature matrix."""
        import pyarrow.compute as pc
        import rensa

        np, k = self.np, self.s.ngram
        if texts.null_count:
            texts = pc.fill_null(texts, "")
        offs, data = self._utf8(texts)
        if len(data) and data.max() >= 0x80:  # ASCII text is already NFKC with ASCII spaces
            texts = normalize_texts(texts)
            offs, data = self._utf8(texts)
        rows, size = len(texts), len(data)
        # str.split() whitespace within ASCII is 9-13 and 28-32: every byte above 32 is part
        # of a word, and so is a control byte outside those ranges (rare, hence the check).
        is_word = data > 32
        odd = (data < 28) & (np.subtract(data, 9, dtype=np.uint8) > 4)
        if odd.any():
            is_word |= odd
        del odd
        starts, ends = self._word_bounds(is_word, offs)
        del is_word
        self._powers(size + 1)
        # Word hash: sum of (byte + 1) * P**i over its bytes, scaled back by P**-start; the
        # +1 keeps NUL bytes from vanishing. sum(P**i) comes from a cached prefix sum.
        prefix = np.zeros(size + 1, dtype=np.uint64)
        np.multiply(data.astype(np.uint64), self._pow[:size], out=prefix[1:])
        np.cumsum(prefix, out=prefix)
        words = prefix[ends] - prefix[starts]
        del prefix
        words += self._powsum[ends] - self._powsum[starts]
        words *= self._inv[starts]
        words = self._mix(words)
        # first[r]: index of row r's first word; starts are sorted, so one search per row.
        first = np.searchsorted(starts, offs)
        per_row = np.diff(first)
        n = len(words)
        word_row = np.repeat(np.arange(rows), per_row)
        pos = np.arange(n, dtype=np.int64) - first[word_row]
        keys = self._exact_keys(words, pos, first, per_row)
        row_end = first[word_row + 1]
        # Shingle i spans words i..i+k-1 of one row; a row shorter than k is one shingle,
        # padded with zeros. Only valid shingles are kept, and a valid shingle of a row of
        # at least k words never reads past its row, so no mask is needed except for short rows.
        short = per_row < k
        valid = pos + (k - 1) < per_row[word_row]
        valid[first[:-1][short & (per_row > 0)]] = True
        padded = np.zeros(n + k - 1, dtype=np.uint64)
        padded[:n] = words
        shingles = words * self._mults[0]
        tmp = np.empty(n, dtype=np.uint64)
        for j in range(1, k):
            np.multiply(padded[j : j + n], self._mults[j], out=tmp)
            shingles += tmp
            np.left_shift(shingles, np.uint64(17), out=tmp)
            shingles >>= np.uint64(47)
            shingles |= tmp
        del tmp
        if short.any():
            heads = first[:-1][short & (per_row > 0)]
            fix = heads.astype(np.int64)
            h = words[fix] * self._mults[0]
            for j in range(1, k):
                inside = fix + j < row_end[fix]
                h = h + np.where(inside, padded[fix + j], np.uint64(0)) * self._mults[j]
                h = (h << np.uint64(17)) | (h >> np.uint64(47))
            shingles[fix] = h
        shingles = self._mix(shingles[valid])
        row_offsets = np.zeros(rows + 1, dtype=np.uint64)
        np.cumsum(np.bincount(word_row[valid], minlength=rows), out=row_offsets[1:])
        matrix = rensa.RMinHash.digest_matrix_from_flat_token_hashes(
            np.ascontiguousarray(shingles), row_offsets, self.s.num_perm, self.s.seed
        )
        flat = itertools.chain.from_iterable(matrix.to_rows())
        sigs = np.fromiter(flat, dtype=np.uint32, count=rows * self.s.num_perm).reshape(rows, self.s.num_perm)
        return keys, sigs

    def _utf8(self, texts):
        """Row offsets (from 0) and the UTF-8 bytes of a string array, without copying the bytes."""
        import pyarrow as pa

        np = self.np
        texts = pa.concat_arrays([texts]) if texts.offset else texts
        rows = len(texts)
        wide = texts.type == pa.large_string()
        offs = np.frombuffer(texts.buffers()[1], dtype=np.int64 if wide else np.int32, count=rows + 1).astype(np.int64)
        size = int(offs[-1] - offs[0])
        data = np.frombuffer(texts.buffers()[2], dtype=np.uint8, count=size, offset=int(offs[0])) if size else np.zeros(0, np.uint8)
        return offs - offs[0], data

    def _word_bounds(self, is_word, offs):
        """Start and end (exclusive) byte of every word; a word never spans two rows."""
        np = self.np
        size = len(is_word)
        if not size:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        # Changes alternate between a word starting and a word ending.
        changes = np.flatnonzero(is_word[1:] != is_word[:-1]) + 1  # bool: nonzero's fast path
        if is_word[0]:
            starts = np.concatenate([[0], changes[1::2]])
            ends = changes[0::2]
        else:
            starts, ends = changes[0::2], changes[1::2]
        if len(ends) < len(starts):
            ends = np.concatenate([ends, [size]])
        # Where one row's last byte and the next row's first byte are both word bytes the
        # scan above sees one word: cut it at the row boundary.
        inner = offs[1:-1]
        inner = inner[(inner > 0) & (inner < size)]
        cuts = np.unique(inner[is_word[inner] & is_word[inner - 1]])
        if len(cuts):
            starts = np.insert(starts, np.searchsorted(starts, cuts), cuts)
            ends = np.insert(ends, np.searchsorted(ends, cuts), cuts)
        return starts, ends

    def _exact_keys(self, words, pos, first, per_row):
        """128 bits per row from its word-hash sequence, i.e. its text with whitespace
        collapsed: two position-salted sums of mixed word hashes, so order counts."""
        np = self.np
        a = self._mix(words + pos.astype(np.uint64) * np.uint64(0xD6E8FEB86659FD93))
        b = self._mix((words ^ np.uint64(0x5851F42D4C957F2D)) + self._mix(pos.astype(np.uint64) + np.uint64(1)))
        keys = np.empty((len(per_row), 2), dtype=np.uint64)
        for col, v in enumerate((a, b)):
            csum = np.zeros(len(v) + 1, dtype=np.uint64)
            np.cumsum(v, out=csum[1:])
            keys[:, col] = csum[first[1:]] - csum[first[:-1]]
        keys[:, 1] ^= self._mix(per_row.astype(np.uint64) + np.uint64(0x2545F4914F6CDD1D))
        return keys


@functools.lru_cache(maxsize=8)
def lsh_bands(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band): the fewest false candidates below `threshold` among the
    layouts that make a pair at `threshold` a candidate with probability >= 0.99.

    Candidates are checked against the signatures, so a false candidate costs one
    comparison while a missed one is a duplicate kept: recall comes first.
    """

    def candidate(s: float, b: int, r: int) -> float:
        return 1 - (1 - s**r) ** b

    def false_area(b: int, r: int) -> float:
        steps = 100
        h = threshold / steps
        return sum(candidate((i + 0.5) * h, b, r) for i in range(steps)) * h

    layouts = [(b, num_perm // b) for b in range(1, num_perm + 1)]
    sure = [lay for lay in layouts if candidate(threshold, *lay) >= 0.99]
    if not sure:
        return max(layouts, key=lambda lay: candidate(threshold, *lay))
    return min(sure, key=lambda lay: (false_area(*lay), lay))


# -- the two passes -------------------------------------------------------------------


def dedupe(paths: list[Path], out: Path, settings: DedupeConfig | None = None) -> DedupeReport:
    """Dedupe `paths` (one format) into `out`, same format and shard layout, plus dedupe.json.
    Invalid input is refused before anything is written; `out` appears whole or not at all."""
    settings = settings or DedupeConfig()
    inp = resolve_dataset_inputs([Path(p) for p in paths])
    out = Path(out)
    check_new_output(out, inp)
    if settings.on == "problem" and inp.format not in (TREES, "openlongcot", "marco", "sft", "prm", "dpo", "processbench"):
        raise UsageError(f"--on problem does not apply to {inp.format} files")
    if inp.format in (TREES, "marco"):
        # Records that validate refuses (a null problem, a cycle, a record that is no object)
        # are refused before anything is written: a run or Marco-o1 file out of dedupe is
        # read as records and must hold valid ones. Parquet exports are deduped as text,
        # at full speed; their own checks stay with validate.
        refuse_invalid(inp.files, inp.format, "dedupe", check_ids=False)
    # The output is built in a hidden folder beside --out and renamed into place at the end:
    # --out appears whole or not at all (a full disk, a crash).
    with staged_output(out, "write the dedupe output") as staging:
        report = _dedupe_into(inp, staging, settings)
        report.out = str(out)
        write_json_atomic(staging / REPORT, report.as_json())
    return report


def _dedupe_into(inp: DatasetInput, out: Path, settings: DedupeConfig) -> DedupeReport:
    """Both passes, writing the kept rows and the manifest into `out`; the report is the caller's to write."""
    import numpy as np

    # Pass 1, streaming: per row an exact key and one hash per LSH band stay in memory;
    # the signatures go to a file, and only those of rows that share a band come back.
    signer = _Signer(settings)
    bands, per_band = lsh_bands(settings.threshold, settings.num_perm)
    key_parts, band_parts, correct_parts, size_parts = [], [], [], []
    ids: list[str | None] = []
    file_rows: list[int] = []
    with _SignatureFile(out / ".signatures", settings.num_perm) as store:
        for path in inp.files:
            row = 0
            for batch in _batches(inp, path, settings):
                k, s = signer.sign(batch.texts)
                b = _band_keys(s, bands, per_band)
                if batch.answers is not None:
                    # The gold answer is part of every key: different answers, different problems.
                    g = _answer_hashes(batch.answers)
                    k[:, 0] ^= g
                    b ^= g[:, None]
                store.add(s)
                key_parts.append(k)
                band_parts.append(b)
                correct_parts.append(np.asarray(batch.correct, dtype=np.int32))
                size_parts.append(np.asarray(batch.nodes, dtype=np.int32))
                if inp.format == TREES:
                    ids.extend(batch.ids)
                row += len(k)
            file_rows.append(row)
        keys = np.concatenate(key_parts) if key_parts else np.zeros((0, 2), np.uint64)
        band_keys = np.concatenate(band_parts) if band_parts else np.zeros((0, bands), np.uint64)
        del key_parts, band_parts
        correct = np.concatenate(correct_parts) if correct_parts else np.zeros(0, np.int32)
        sizes = np.concatenate(size_parts) if size_parts else np.zeros(0, np.int32)
        keep, dup_of, reason, similarity = _decide(keys, band_keys, store, correct, sizes, settings)
    if not ids:
        ids = _NoIds()

    # Pass 2: stream every file again and write the kept rows in the same layout.
    out.mkdir(parents=True, exist_ok=True)
    report = DedupeReport(inp.format, [str(p) for p in inp.files], str(out), asdict(settings))
    report.rows = len(keys)
    report.kept = int(keep.sum())
    report.dropped = {"exact": int(np.count_nonzero(reason == _EXACT)), "near": int(np.count_nonzero(reason == _NEAR))}
    start = 0
    names = renumbered_names(inp)
    for fi, path in enumerate(inp.files):
        mask = keep[start : start + file_rows[fi]]
        kept = _write_file(inp, path, out / names[fi], mask, settings)
        report.files.append({"input": str(path), "output": names[fi], "rows": file_rows[fi], "kept": kept})
        start += file_rows[fi]
    report.clusters = _clusters(keep, dup_of, reason, similarity, np.array(file_rows), ids, inp.files)
    if inp.format == TREES:
        _write_manifest(inp, out, report, settings)
    return report




_EXACT, _NEAR = 1, 2  # codes in the reason array; 0 = kept
_REASONS = {_EXACT: "exact", _NEAR: "near"}


def _decide(keys, band_keys, store: _SignatureFile, correct, sizes, settings: DedupeConfig):
    """Greedy in rank order: a row is dropped when it equals, or is near, a row already kept.

    Rank is first-seen order for --on text; for --on problem, most correct leaves first,
    then most nodes, then first seen. Only kept rows enter the LSH buckets, so a chain of
    near copies never drags a row away from something it does not resemble itself.

    The greedy walk only needs rows that share some LSH bucket with another row: every
    other row has no candidate and is never one, so it is kept without entering the loop.
    Exact copies are found by sorting the keys.
    """
    import numpy as np

    n = len(keys)
    everyone = np.arange(n)
    if settings.on == "problem":
        order = np.lexsort((everyone, -sizes, -correct)) if n else everyone
    else:
        order = everyone
    rank = np.empty(n, dtype=np.int64)
    rank[order] = everyone
    keep = np.zeros(n, dtype=bool)
    dup_of = np.full(n, -1, dtype=np.int64)
    reason = np.zeros(n, dtype=np.int8)
    similarity = np.zeros(n, dtype=np.float64)
    if not n:
        return keep, dup_of, reason, similarity

    # Exact: within a run of equal keys the lowest rank is the one every other points to.
    by_key = np.lexsort((rank, keys[:, 1], keys[:, 0]))
    sorted_keys = keys[by_key]
    head = np.ones(n, dtype=bool)
    head[1:] = (sorted_keys[1:] != sorted_keys[:-1]).any(axis=1)
    first_of = np.empty(n, dtype=np.int64)
    first_of[by_key] = by_key[head][np.cumsum(head) - 1]
    exact = first_of != everyone
    dup_of[exact], reason[exact], similarity[exact] = first_of[exact], _EXACT, 1.0

    reps = np.flatnonzero(~exact)
    bands = band_keys.shape[1]
    shared = np.zeros(len(reps), dtype=bool)
    for b in range(bands):
        _, inverse, counts = np.unique(band_keys[reps, b], return_inverse=True, return_counts=True)
        shared |= counts[inverse.reshape(-1)] > 1
    keep[reps[~shared]] = True

    # Only the walked rows' signatures are read back: `sigs[p]` is row walk_rows[p]'s.
    walk_rows = reps[shared]  # ascending
    sigs = store.read(walk_rows)
    walk_order = np.argsort(rank[walk_rows], kind="stable")
    walk_keys = band_keys[walk_rows[walk_order]].tolist()
    buckets: list[dict[int, list[int]]] = [{} for _ in range(bands)]
    for p, row_keys in zip(walk_order.tolist(), walk_keys, strict=True):
        i = int(walk_rows[p])
        candidates: set[int] = set()
        for b in range(bands):
            candidates.update(buckets[b].get(row_keys[b], ()))
        if candidates:
            found = np.fromiter(candidates, dtype=np.int64, count=len(candidates))
            found = found[np.argsort(rank[walk_rows[found]], kind="stable")]
            sims = np.count_nonzero(sigs[found] == sigs[p], axis=1) / settings.num_perm
            hits = np.flatnonzero(sims >= settings.threshold)
            if len(hits):
                dup_of[i], reason[i], similarity[i] = walk_rows[found[hits[0]]], _NEAR, sims[hits[0]]
                continue
        keep[i] = True
        for b in range(bands):
            buckets[b].setdefault(row_keys[b], []).append(p)
    return keep, dup_of, reason, similarity


class _SignatureFile:
    """Pass 1's MinHash signatures, appended to a scratch file (deleted on exit) instead of
    held in memory: at num_perm 128 they are 512 bytes a row, 512 MB per million rows, and
    the walk needs only the rows that share an LSH band with another."""

    READ_ROWS = 1 << 16  # rows per read when gathering: bounds the read buffer (32 MB at 128)

    def __init__(self, path: Path, num_perm: int) -> None:
        self.path, self.num_perm, self.rows = path, num_perm, 0
        self._file = open(path, "wb")  # noqa: SIM115 (closed in __exit__)

    def __enter__(self) -> _SignatureFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._file.close()
        self.path.unlink(missing_ok=True)

    def add(self, sigs) -> None:
        import numpy as np

        self._file.write(np.ascontiguousarray(sigs, dtype=np.uint32).tobytes())
        self.rows += len(sigs)

    def read(self, rows):
        """The signatures of `rows` (ascending row numbers), one per row, in that order."""
        import numpy as np

        self._file.flush()
        out = np.empty((len(rows), self.num_perm), dtype=np.uint32)
        width = self.num_perm * 4
        with open(self.path, "rb") as f:
            done = 0
            while done < len(rows):
                start = int(rows[done])
                stop = min(start + self.READ_ROWS, self.rows)
                take = int(np.searchsorted(rows, stop, side="left"))
                f.seek(start * width)
                chunk = np.fromfile(f, dtype=np.uint32, count=(stop - start) * self.num_perm)
                chunk = chunk.reshape(stop - start, self.num_perm)
                out[done:take] = chunk[rows[done:take] - start]
                done = take
        return out


class _NoIds:
    """The ids of rows that have none (exports): every lookup gives None."""

    def __getitem__(self, i: int) -> None:
        return None


def _answer_hashes(answers: list[str | None]):
    """A 64-bit hash of each gold answer as written (stripped; none is its own value):
    answers that differ only in form ("1/2", "0.5") count as different, which keeps both."""
    import hashlib

    import numpy as np

    out = np.empty(len(answers), dtype=np.uint64)
    for i, a in enumerate(answers):
        text = b"\x00none" if a is None else b"=" + str(a).strip().encode("utf-8", "surrogatepass")
        out[i] = int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")
    return out


def _band_keys(sigs, bands: int, per_band: int):
    """(rows, bands) uint64: one hash per LSH band of each signature."""
    import numpy as np

    n = len(sigs)
    out = np.zeros((n, bands), dtype=np.uint64)
    for b in range(bands):
        h = np.full(n, b + 1, dtype=np.uint64)
        for c in range(b * per_band, (b + 1) * per_band):
            h = (h ^ sigs[:, c].astype(np.uint64)) * np.uint64(0x100000001B3)
            h = h ^ (h >> np.uint64(29))
        out[:, b] = h
    return out


def _clusters(keep, dup_of, reason, similarity, file_rows, ids, files) -> list[dict[str, Any]]:
    """One entry per kept row that has copies: the copies in row order, each with its reason."""
    import numpy as np

    dropped = np.flatnonzero(~keep)
    root = dup_of[dropped]
    while True:  # follow chains (an exact copy of a near copy) to the kept row
        up = ~keep[root]
        if not up.any():
            break
        root[up] = dup_of[root[up]]
    by_root = np.argsort(root, kind="stable")
    dropped, root = dropped[by_root], root[by_root]
    file_start = np.concatenate([[0], np.cumsum(file_rows)])
    names = [str(f) for f in files]

    def loc(i: int) -> dict[str, Any]:
        fi = int(np.searchsorted(file_start, i, side="right")) - 1
        out: dict[str, Any] = {"file": names[fi], "row": i - int(file_start[fi])}
        if ids[i] is not None:
            out["id"] = ids[i]
        return out

    clusters: list[dict[str, Any]] = []
    last = -1
    for i, k, why, sim in zip(dropped.tolist(), root.tolist(), reason[dropped].tolist(),
                              similarity[dropped].tolist(), strict=True):
        if k != last:
            clusters.append({"kept": loc(k), "dropped": []})
            last = k
        clusters[-1]["dropped"].append({**loc(i), "reason": _REASONS[why], "similarity": round(sim, 4)})
    return clusters




def _write_file(inp: DatasetInput, path: Path, target: Path, mask, settings: DedupeConfig) -> int:
    """Write the rows of `path` where `mask` is true to `target`, atomically; returns the count."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    target.parent.mkdir(parents=True, exist_ok=True)
    kept = int(mask.sum())
    if inp.format == "marco":
        records = [r for r, k in zip(_marco_records(path), mask, strict=True) if k]
        with atomic_file(target, "w") as f:
            f.write(dumps_marco(records))
        return kept
    reader = ParquetReader(path)
    row = 0
    with atomic_file(target) as f:
        with pq.ParquetWriter(f, reader.parquet.schema_arrow, compression="zstd") as writer:
            for batch in reader.arrow_batches(batch_rows=_write_batch_rows(reader, settings)):
                part = mask[row : row + batch.num_rows]
                row += batch.num_rows
                if part.all():
                    writer.write_batch(batch)
                elif part.any():
                    writer.write_batch(batch.filter(pa.array(part)))
    return kept


def _write_batch_rows(reader: ParquetReader, settings: DedupeConfig) -> int:
    """Rows per pass-2 batch: about WRITE_BATCH_BYTES uncompressed, at least batch_rows.

    Pass 2 only filters and re-encodes, so it can take far bigger batches than pass 1,
    whose per-byte arrays are several times the text; the file's own metadata says how
    big its rows are. Depends only on the input file, so the output stays deterministic.
    """
    return max(settings.batch_rows, reader.rows_in_bytes(WRITE_BATCH_BYTES))


def _write_manifest(inp: DatasetInput, out: Path, report: DedupeReport, settings: DedupeConfig) -> None:
    """The first input run's manifest, with this output's shards, counts and dedupe settings."""
    import pyarrow.parquet as pq

    shards = []
    for entry in report.files:
        path = out / entry["output"]
        errors = pq.read_table(path, columns=["error"]).column("error")
        shards.append({"name": path.name, "rows": entry["kept"], "failed": len(errors) - errors.null_count})
    manifest = output_manifest(inp, shards)
    manifest["dedupe"] = {
        "settings": asdict(settings),
        "inputs": report.inputs,
        "rows": report.rows,
        "kept": report.kept,
        "dropped": report.dropped,
    }
    write_json_atomic(out / MANIFEST, manifest)
