"""Benchmark decontamination: drop rows whose problem shares a word n-gram with a benchmark question.

The rule is open-r1's (scripts/decontaminate.py): normalise both texts, cut them into word
8-grams, and call a row contaminated when any of its n-grams is one of a benchmark
question's. The normalisation here is stricter than open-r1's lowercasing and whitespace
split, so copies with changed whitespace, case or punctuation still match: NFKC, casefold,
apostrophes and digit group commas removed, [asy] drawings left out, and every other
non-alphanumeric character a word break. That cuts LaTeX into numbers, one-letter variables
and command names, so an n-gram is matched only when it holds PROSE_WORDS prose words.

A benchmark question is also matched when a row's whole problem is the same words (a
question shorter than n words, or all formula). The benchmarks' n-grams are held in memory
(MATH-500 and GSM8K test: ~62k); the input is streamed one record batch at a time, so memory stays flat in its size.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotgen.benchmarks import BenchmarkItem, load_benchmark
from cotgen.errors import (
    DataError,
    UsageError,
)
from cotgen.formats.dpo import SEPARATOR as DPO_SEPARATOR
from cotgen.formats.row_problem import PROBLEM_COLUMN, problem_text
from cotgen.io.atomic import atomic_file, write_json_atomic
from cotgen.io.inputs import (
    DatasetInput,
    check_new_output,
    expand_inputs,
    output_manifest,
    renumbered_names,
    resolve_dataset_inputs,
    staged_output,
)
from cotgen.io.layout import (
    MANIFEST,
    TREES_DIR,
)
from cotgen.io.readers import TREES, ParquetReader, open_rows

REPORT = "decontaminate.json"
DEFAULT_NGRAM = 8
WRITE_BATCH_BYTES = 16 << 20  # uncompressed bytes per record batch copied to the output
PROSE_WORDS = 3  # prose words an n-gram needs to be matched (see prose_ngrams)
SHOWN_NGRAMS = 20  # shared n-grams listed per removed row in the report (all are counted)

_APOSTROPHES = re.compile(r"['`\u2018\u2019\u02bc\u2032]")
_DIGIT_GROUP = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")  # 1,000 -> 1000
_TOKEN = re.compile(r"(\\?)([^\W_]+)")  # runs of letters and digits, and whether a backslash leads
_ASY = re.compile(r"\[asy\].*?\[/asy\]", re.S)  # Asymptote drawings: code, not the question


def words(text: str) -> list[str]:
    """The normalised words of `text`: what n-grams are cut from."""
    return [w for w, _ in _tokens(text)]


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(word, whether it is prose: a word of 2+ letters, not a LaTeX command) for each
    normalised word of `text`, [asy] drawings left out."""
    if not text.isascii():  # ASCII is already NFKC
        text = unicodedata.normalize("NFKC", text)
    text = _DIGIT_GROUP.sub("", _APOSTROPHES.sub("", _ASY.sub(" ", text.casefold())))
    return [(w, not slash and len(w) > 1 and w.isalpha()) for slash, w in _TOKEN.findall(text)]


def prose_ngrams(text: str, n: int) -> tuple[tuple[str, ...], list[tuple[str, ...]]]:
    """(all the words of `text`, its n-grams that are matched): those with at least
    PROSE_WORDS prose words (all n when n is smaller). A run of numbers, one-letter variables
    and LaTeX commands (`1 2 3 4 5 6 7 8`, `draw 0 0 1 0 1 1 0`) is formula, not a copied
    question: two fresh problems share one by chance. A text shorter than n words has none."""
    tokens = _tokens(text)
    need = min(PROSE_WORDS, n)
    ws = tuple(w for w, _ in tokens)
    prose = [0]
    for _, p in tokens:
        prose.append(prose[-1] + p)
    return ws, [ws[i:i + n] for i in range(len(ws) - n + 1) if prose[i + n] - prose[i] >= need]


@dataclass(frozen=True)
class Match:
    """A contaminated text: the benchmark question it matched best and the n-grams they share."""

    item: BenchmarkItem
    shared: list[str]  # each n-gram joined by spaces, in the order the text has them

    def as_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.item.benchmark,
            "benchmark_item": self.item.where,
            "benchmark_question": self.item.question,
            "shared_ngrams": self.shared[:SHOWN_NGRAMS],
            "shared_count": len(self.shared),
        }


class BenchmarkIndex:
    """The n-grams of every question of some benchmarks, each pointing at its first question."""

    def __init__(self, items: Iterable[BenchmarkItem], n: int = DEFAULT_NGRAM) -> None:
        if not 1 <= n <= 64:
            raise UsageError(f"--ngram must be between 1 and 64, not {n}")
        self.n = n
        self.items: list[BenchmarkItem] = []
        self.grams: dict[tuple[str, ...], int] = {}
        self.whole: dict[tuple[str, ...], int] = {}  # each question's words, matched whole
        for item in items:
            index = len(self.items)
            self.items.append(item)
            ws, grams = prose_ngrams(item.question, n)
            if ws:
                self.whole.setdefault(ws, index)
            for gram in grams:
                self.grams.setdefault(gram, index)

    @classmethod
    def load(cls, specs: Iterable[str], n: int = DEFAULT_NGRAM) -> BenchmarkIndex:
        specs = list(dict.fromkeys(specs))
        if not specs:
            raise UsageError("give at least one benchmark with --against (e.g. math500, gsm8k or a .jsonl file)")
        items: list[BenchmarkItem] = []
        for spec in specs:
            items.extend(load_benchmark(spec))
        return cls(items, n)

    def sizes(self) -> dict[str, int]:
        return dict(Counter(item.benchmark for item in self.items))

    def match(self, text: str) -> Match | None:
        """The benchmark question `text` overlaps (most shared n-grams wins), or None; or
        the one whose words are all of `text`'s (a short question, or one all formula)."""
        grams = self.grams
        ws, cut = prose_ngrams(text, self.n)
        hits = [g for g in cut if g in grams]
        if not hits:
            if ws in self.whole:
                return Match(self.items[self.whole[ws]], [" ".join(ws)])
            return None
        best = Counter(grams[g] for g in hits).most_common(1)[0][0]
        shared = list(dict.fromkeys(" ".join(g) for g in hits))
        return Match(self.items[best], shared)


# -- problems before a search (synthesize --decontaminate) ------------------------------------


def drop_contaminated(problems: list[Any], specs: Iterable[str], n: int = DEFAULT_NGRAM) -> tuple[list[Any], list[dict[str, Any]]]:
    """(kept problems, one entry per dropped problem) for cotgen.problems.Problem objects."""
    index = BenchmarkIndex.load(specs, n)
    kept, dropped = [], []
    for p in problems:
        found = index.match(p.question)
        if found is None:
            kept.append(p)
        else:
            dropped.append({"id": p.id, "source": p.source, "question": _cut(p.question), **found.as_json()})
    return kept, dropped


# -- files ------------------------------------------------------------------------------------


@dataclass
class DecontaminateReport:
    """What decontaminate did: every removed row with the benchmark question it matched."""

    format: str
    inputs: list[str]
    out: str
    against: list[str]
    ngram: int
    benchmark_items: dict[str, int]
    rows: int = 0
    kept: int = 0
    removed_by_benchmark: dict[str, int] = field(default_factory=dict)
    removed: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__dataclass_fields__}


def decontaminate(paths: list[Path | str], out: Path | str, against: list[str], n: int = DEFAULT_NGRAM) -> DecontaminateReport:
    """Write the rows of `paths` (run folders, tree shards or exports of one format) that
    overlap no question of `against` to `out`, in the same format and layout, with
    decontaminate.json. `out` appears whole or not at all."""
    inp, line_based = _inputs([Path(p) for p in paths])
    out = Path(out)
    check_new_output(out, inp)
    index = BenchmarkIndex.load(against, n)  # a bad --against fails before anything is written
    with staged_output(out, "write the decontaminate output") as staging:
        report = DecontaminateReport(inp.format, [str(f) for f in inp.files], str(out), list(against), n, index.sizes())
        names = _output_names(inp, line_based)
        for path, name in zip(inp.files, names, strict=True):
            if line_based:
                _filter_lines(inp.format, path, staging / name, index, report)
            else:
                _filter_file(inp.format, path, staging / name, index, report)
        report.kept = report.rows - len(report.removed)
        if inp.format == TREES:
            _write_manifest(inp, staging, report)
        write_json_atomic(staging / REPORT, report.as_json())
    return report




def _inputs(paths: list[Path]) -> tuple[DatasetInput, bool]:
    """The inputs as dedupe and push take them (tree shards, Parquet exports, Marco-o1 files),
    or line files (.jsonl, OpenLongCoT .txt) of one format, copied line by line; and which."""
    files = expand_inputs(paths)
    if files and all(_line_file(f) for f in files):
        unique = list(dict.fromkeys(f.resolve() for f in files))
        formats = {f: open_rows(f).format for f in unique}
        if len(set(formats.values())) > 1:
            listing = "; ".join(f"{f}: {fmt}" for f, fmt in formats.items())
            raise UsageError(f"inputs hold more than one format: {listing}")
        return DatasetInput(formats[unique[0]], unique, None), True
    return resolve_dataset_inputs(paths), False


def _line_file(path: Path) -> bool:
    """A file of one row per line: JSONL (also under .json) or OpenLongCoT text."""
    reader = open_rows(path)
    return reader.kind in ("jsonl", "txt") or (reader.kind == "json" and getattr(reader, "_lines", None) is not None)


def _output_names(inp: DatasetInput, line_based: bool) -> list[str]:
    """Tree shards renumbered part-NNNNN; exports keep their split, renumbered -NNNNN-of-NNNNN;
    line files keep their names (numbered when two share one)."""
    if line_based:
        names: list[str] = []
        taken: set[str] = set()
        for f in inp.files:
            name, k = f.name, 1
            while name in taken:  # x/a.jsonl q/a-2.jsonl r/a.jsonl: the third is a-3.jsonl
                k += 1
                name = f"{f.stem}-{k}{f.suffix}"
            taken.add(name)
            names.append(name)
        return names
    return renumbered_names(inp)


# The column a format's problem is read from (row_problem.problem_text gets the problem out of it).
_PROBLEM_COLUMN = {TREES: "problem", **PROBLEM_COLUMN}


def _problem(fmt: str, value: Any) -> Any:
    value = problem_text(fmt, value)
    if fmt == "dpo" and isinstance(value, str):
        # The prompt is the problem and the shared solution steps, each ended by the dpo
        # SEPARATOR (cotgen/formats/dpo.py): only the problem is matched, not model reasoning.
        # A problem of several paragraphs is matched on its first one.
        return value.split(DPO_SEPARATOR, 1)[0]
    return value


def _filter_file(fmt: str, path: Path, target: Path, index: BenchmarkIndex, report: DecontaminateReport) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "marco":
        _filter_marco(path, target, index, report)
        return
    import pyarrow as pa
    import pyarrow.parquet as pq

    column = _PROBLEM_COLUMN.get(fmt)
    reader = ParquetReader(path)
    if column not in reader.columns:
        raise DataError(f"{path}: no '{column}' column to read the problem from (a {fmt} file has one)")
    ids = "id" in reader.columns
    rows = kept = failed = 0
    with atomic_file(target) as f:
        with pq.ParquetWriter(f, reader.parquet.schema_arrow, compression="zstd") as writer:
            for batch in reader.arrow_batches(batch_rows=_batch_rows(reader)):
                texts = batch.column(column).to_pylist()
                row_ids = batch.column("id").to_pylist() if ids else None
                mask = []
                for i, value in enumerate(texts):
                    text = _problem(fmt, value)
                    if not isinstance(text, str):
                        raise DataError(f"{path}: row {rows + i}: no problem text in '{column}' "
                                        f"(a {type(text).__name__}); validate {path} says more")
                    found = index.match(text)
                    mask.append(found is None)
                    if found is not None:
                        entry = {"file": str(path), "row": rows + i}
                        if row_ids is not None:
                            entry["id"] = row_ids[i]
                        report.removed.append({**entry, "problem": _cut(text), **found.as_json()})
                rows += len(texts)
                part = batch if all(mask) else batch.filter(pa.array(mask))
                if part.num_rows:
                    writer.write_batch(part)
                    kept += part.num_rows
                    if fmt == TREES:
                        failed += part.num_rows - part.column("error").null_count
    _count(report, path, target, rows, kept, failed)


def _filter_marco(path: Path, target: Path, index: BenchmarkIndex, report: DecontaminateReport) -> None:
    """A Marco-o1 file is one JSON array (read whole by its one reader); kept records are
    written back by the format's own writer, so the file stays byte-compatible."""
    from cotgen.formats.marco import dumps_marco

    records = [r for batch in open_rows(path, "marco").batches() for r in batch.rows]
    kept = []
    for i, record in enumerate(records):
        text = record.get("instruction") if isinstance(record, dict) else None
        if not isinstance(text, str):
            raise DataError(f"{path}: record {i}: no 'instruction' text to read the problem from")
        found = index.match(text)
        if found is None:
            kept.append(record)
        else:
            report.removed.append({"file": str(path), "row": i, "problem": _cut(text), **found.as_json()})
    with atomic_file(target, "w") as f:
        f.write(dumps_marco(kept))
    _count(report, path, target, len(records), len(kept), 0)


def _filter_lines(fmt: str, path: Path, target: Path, index: BenchmarkIndex, report: DecontaminateReport) -> None:
    """Stream a JSONL or OpenLongCoT .txt file; kept lines are copied byte for byte."""
    from cotgen.io.readers import BadRow

    opened = open_rows(path)
    reader = getattr(opened, "_lines", None) or opened  # JSONL under a .json name
    column = _PROBLEM_COLUMN.get(fmt)
    rows = kept = 0
    with open(path, "rb") as src, atomic_file(target) as dst:
        for lineno, raw in enumerate(src):
            line = reader._strip(raw)
            if not line.strip():
                dst.write(raw)  # blank lines stay where they were
                continue
            try:
                text = line.decode("utf-8")
                row = reader._row(text.removeprefix("\ufeff") if lineno == 0 else text, lineno)
            except UnicodeDecodeError:
                raise DataError(f"{path}: line {lineno + 1}: not valid UTF-8") from None
            if isinstance(row, BadRow):
                raise DataError(f"{path}: {row.message}")
            text = _problem(fmt, row.get(column))
            if not isinstance(text, str):
                raise DataError(f"{path}: line {lineno + 1}: no problem text in '{column}'")
            rows += 1
            found = index.match(text)
            if found is None:
                dst.write(raw)
                kept += 1
            else:
                report.removed.append({"file": str(path), "line": lineno + 1, "problem": _cut(text), **found.as_json()})
    _count(report, path, target, rows, kept, 0)


def _count(report: DecontaminateReport, path: Path, target: Path, rows: int, kept: int, failed: int) -> None:
    report.rows += rows
    for entry in report.removed[len(report.removed) - (rows - kept):]:
        report.removed_by_benchmark[entry["benchmark"]] = report.removed_by_benchmark.get(entry["benchmark"], 0) + 1
    name = target.relative_to(target.parents[1]) if target.parent.name == TREES_DIR else Path(target.name)
    report.files.append({"input": str(path), "output": str(name), "rows": rows, "kept": kept, "failed": failed})


def _batch_rows(reader: ParquetReader) -> int:
    """Rows per record batch: about WRITE_BATCH_BYTES uncompressed, by the file's own metadata."""
    return max(64, reader.rows_in_bytes(WRITE_BATCH_BYTES))


def _write_manifest(inp: DatasetInput, out: Path, report: DecontaminateReport) -> None:
    """The first input run's manifest, with this output's shards and what was removed."""
    shards = [{"name": Path(f["output"]).name, "rows": f["kept"], "failed": f["failed"]} for f in report.files]
    manifest = output_manifest(inp, shards)
    manifest["decontamination"] = {
        "against": report.against,
        "ngram": report.ngram,
        "rows": report.rows,
        "kept": report.kept,
        "removed": len(report.removed),
        "removed_by_benchmark": report.removed_by_benchmark,
    }
    write_json_atomic(out / MANIFEST, manifest)


def _cut(text: str, limit: int = 500) -> str:
    return text if len(text) <= limit else text[:limit] + " [...]"
