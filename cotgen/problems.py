"""Problem sources: JSONL / JSON / Parquet files, HF datasets, and builtin generators."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from cotgen.chat_tokens import control_token, describe
from cotgen.errors import DataError, RunError, UsageError
from cotgen.tree import tree_id
from cotgen.verify import normalize_gold

# Field names tried in order when --question-field / --answer-field are not given.
QUESTION_FIELDS = ("question", "problem", "prompt", "instruction", "query", "input")
ANSWER_FIELDS = ("answer", "final_answer", "gold", "ground_truth", "target", "solution")
# Fields holding a worked solution rather than a bare answer: only their last \boxed{}
# (or `#### N`) is the gold; a solution without one gives no gold.
SOLUTION_FIELDS = ("solution",)

# Short names for the datasets the o1-replication community synthesizes from.
DATASET_ALIASES: dict[str, tuple[str, str | None]] = {
    "gsm8k": ("openai/gsm8k", "main"),
    "openai/gsm8k": ("openai/gsm8k", "main"),
    "math500": ("HuggingFaceH4/MATH-500", None),
    "math-500": ("HuggingFaceH4/MATH-500", None),
    "huggingfaceh4/math-500": ("HuggingFaceH4/MATH-500", None),
}
FILE_SUFFIXES = (".jsonl", ".ndjson", ".json", ".parquet")
BUILTIN_DEFAULT_LIMIT = 100  # builtin generators are infinite; this bounds them without --limit


@dataclass(frozen=True)
class Problem:
    """One problem to search over. `id` is the id its Tree will carry."""

    id: str  # tree_id(question, answer)
    question: str
    answer: str | None  # the bare gold answer (`18`, `\frac{1}{2}`); None when unknown
    source: str  # where it came from: `FILE#line`, `DATASET/split#row`, `builtin:arith?seed=0#3`


@dataclass(frozen=True)
class ProblemSet:
    """The problems of one source, and a message for every row that was dropped."""

    problems: list[Problem]
    skipped: list[str] = field(default_factory=list)  # one message per dropped row
    source: str = ""
    reasons: Counter = field(default_factory=Counter)  # dropped rows by reason
    split: str | None = None  # the dataset split read (dataset ids and folders only)
    benchmark: str | None = None  # the benchmark that split is ("GSM8K test"), when it is one

    def benchmark_warning(self) -> str | None:
        """What to tell a user whose problems are a benchmark's evaluation split."""
        if self.benchmark is None:
            return None
        other = "another --split (train where there is one)" if self.split == "test" else "another dataset"
        return (f"{self.source} is the {self.benchmark} benchmark: trees trained on it inflate every "
                f"score measured on {self.benchmark}; choose {other} unless that is what you want "
                "(the run folder's manifest and a pushed card say so)")

    def __len__(self) -> int:
        return len(self.problems)

    def __iter__(self) -> Iterator[Problem]:
        return iter(self.problems)


def load_problems(
    spec: str,
    *,
    split: str | None = None,
    question_field: str | None = None,
    answer_field: str | None = None,
    limit: int | None = None,
    skip: int = 0,
    seed: int = 0,
) -> ProblemSet:
    """Load the problems named by `spec` (what `--problems` takes).

    `spec` is a .jsonl / .json / .parquet file, a local dataset folder, an HF dataset id
    (`gsm8k`, `math500`, `HuggingFaceH4/MATH-500`, any other with the field options),
    or `builtin:arith` / `builtin:letters` (seeded by `seed`). Rows without a question
    and duplicates are dropped and reported; `skip` and `limit` count kept problems.
    Without `split`, a dataset gives its `train` split, or its only one; a split that is a
    known benchmark (MATH-500, GSM8K test, ...) is named in `ProblemSet.benchmark`.
    """
    if limit is not None and limit < 0:
        raise UsageError(f"--limit must be >= 0, not {limit}")
    if skip < 0:
        raise UsageError(f"--skip must be >= 0, not {skip}")
    if spec.startswith("builtin:"):
        return _load_builtin(spec, limit=limit, skip=skip, seed=seed)

    path = Path(spec).expanduser()
    if path.is_file():
        if path.suffix.lower() not in FILE_SUFFIXES:
            raise UsageError(
                f"{path}: unknown problem file type '{path.suffix.lower()}' (expected .jsonl, .json or .parquet)"
            )
        rows = _file_rows(path, question_field)
        source, where, split = path.name, str(path), None
    elif path.is_dir():
        ds, split = _open_split(str(path), None, split, local=True)
        rows = _dataset_rows(ds, str(path), split, question_field)
        source, where = f"{path.name}/{split}", f"{path} ({split})"
        name = path.name
    elif path.suffix.lower() in FILE_SUFFIXES or spec.startswith((".", "/", "~")):
        raise UsageError(f"{spec}: no such problem file")
    else:
        name, config = DATASET_ALIASES.get(spec.lower(), (spec, None))
        ds, split = _open_split(name, config, split, local=False)
        rows = _dataset_rows(ds, name, split, question_field)
        source, where = f"{name}/{split}", f"dataset {name} ({split})"
    loaded = _collect(rows, source, where, question_field, answer_field, limit, skip)
    if split is None:  # a file: no split, and no benchmark by name
        return loaded
    from cotgen.benchmark_names import benchmark_split

    return replace(loaded, split=split, benchmark=benchmark_split(name, split))


# -- rows ------------------------------------------------------------------------------
# Each source yields (where, row): `where` is "line N" or "row N", `row` the parsed value.


def _file_rows(path: Path, question_field: str | None) -> Iterator[tuple[str, Any]]:
    """Rows of a problem file through the one reader family; a row that is JSON but not
    an object is dropped like any unusable row, an unreadable one stops the load."""
    from cotgen.io.readers import BadRow, open_reader

    reader = open_reader(path)
    if reader.kind == "parquet":
        _check_columns(str(path), list(reader.columns), question_field)
    for batch in reader.batches():
        for index, row in zip(batch.indices, batch.rows, strict=True):
            loc = reader.where(index)
            if isinstance(row, BadRow):
                if not row.readable:
                    raise DataError(f"{path}: {row.message}")
                row = _NotAnObject(row.message.removeprefix(f"{loc}: "))
            yield loc, row


@dataclass(frozen=True)
class _NotAnObject:
    """A row that parsed but is no object; `_problem_fields` drops it with this message."""

    message: str


def _check_columns(where: str, columns: list[str], question_field: str | None) -> None:
    """Fail early when a columnar source has no question column at all."""
    wanted = (question_field,) if question_field else QUESTION_FIELDS
    if not any(name in columns for name in wanted):
        raise DataError(
            f"{where}: no question column (tried {', '.join(wanted)}; the columns are "
            f"{', '.join(columns)}); name it with --question-field"
        )


def _open_split(name: str, config: str | None, split: str | None, *, local: bool) -> tuple[Any, str]:
    """The dataset's `split`, or without one its `train` split (or its only split): training
    data comes from a train split unless the user asks otherwise. Returns (dataset, split)."""
    import datasets
    from huggingface_hub import constants

    try:
        ds = datasets.load_dataset(name, config, split=split)
        if split is None:  # a DatasetDict: pick the split here
            names = list(ds)
            if "train" in names or len(names) == 1:
                split = "train" if "train" in names else names[0]
            else:
                raise UsageError(f"dataset {name} has no train split (its splits: {', '.join(names)}): "
                                 "choose one with --split")
            ds = ds[split]
    except UsageError:
        raise
    except ValueError as exc:
        if "split" in str(exc).lower():
            raise UsageError(f"dataset {name}: {exc} (choose one with --split)") from None
        raise RunError(f"dataset {name} could not be loaded: {exc}") from None
    except Exception as exc:
        if not local and (constants.HF_HUB_OFFLINE or "Offline" in str(exc)):
            raise RunError(
                f"dataset {name} is not in the local cache and the Hub is offline "
                "(HF_HUB_OFFLINE=1): run once with network access to cache it, or pass a "
                ".jsonl / .json / .parquet file with --problems"
            ) from None
        raise RunError(
            f"dataset {name} could not be loaded ({type(exc).__name__}: {exc})"
        ) from None
    return ds, split


def _dataset_rows(ds: Any, name: str, split: str, question_field: str | None) -> Iterator[tuple[str, Any]]:
    _check_columns(f"dataset {name} ({split})", list(ds.column_names), question_field)
    for index, row in enumerate(ds):
        yield f"row {index}", row


# -- fields ----------------------------------------------------------------------------


def _answer_text(value: Any, field_name: str) -> str | None:
    """The bare gold answer of one field value (GSM8K `#### N`, MATH's last box)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise TypeError(
            f"answer field '{field_name}' holds a {type(value).__name__}, not text or a number"
        )
    text = str(value).strip()
    if not text:
        return None
    if (
        field_name in SOLUTION_FIELDS
        and "####" not in text
        and "\\boxed" not in text
        and "\\fbox" not in text
    ):
        return None
    return normalize_gold(text)


class _Drop(Exception):
    """A row that cannot be used: `reason` is counted, `message` reported."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _problem_fields(
    row: Any, question_field: str | None, answer_field: str | None
) -> tuple[str, str | None]:
    """(question, answer) of one row; raises _Drop saying why a row cannot be used."""
    if isinstance(row, _NotAnObject):
        raise _Drop("not an object", row.message)
    if not isinstance(row, dict):
        raise _Drop("not an object", f"a JSON {type(row).__name__}, expected an object")
    if question_field:
        if question_field not in row:
            raise _Drop("no question", f"no question field '{question_field}'")
        q_name = question_field
    else:
        q_name = next((k for k in QUESTION_FIELDS if k in row), None)
        if q_name is None:
            raise _Drop("no question", f"no question field (tried {', '.join(QUESTION_FIELDS)})")
    question = row[q_name]
    if not isinstance(question, str):
        raise _Drop(
            "bad question", f"question field '{q_name}' holds a {type(question).__name__}, not text"
        )
    if not question.strip():
        raise _Drop("no question", f"question field '{q_name}' is empty")

    if answer_field:
        if answer_field not in row:
            raise _Drop("no answer", f"no answer field '{answer_field}'")
        names = [answer_field]
    else:
        # MATH rows carry both `answer` and `solution`; the first present non-empty wins.
        names = [k for k in ANSWER_FIELDS if k in row]
    answer = None
    for name in names:
        try:
            answer = _answer_text(row[name], name)
        except TypeError as exc:
            raise _Drop("bad answer", str(exc)) from None
        if answer is not None:
            break
    return question, answer


def _collect(
    rows: Iterator[tuple[str, Any]],
    source: str,
    where: str,
    question_field: str | None,
    answer_field: str | None,
    limit: int | None,
    skip: int,
) -> ProblemSet:
    problems: list[Problem] = []
    skipped: list[str] = []
    reasons: Counter = Counter()
    first_seen: dict[str, str] = {}
    usable = 0
    for loc, row in rows:
        if limit is not None and len(problems) >= limit:
            break  # rows after the limit are never read, so never reported
        try:
            question, answer = _problem_fields(row, question_field, answer_field)
        except _Drop as drop:
            skipped.append(f"{where}: {loc}: {drop}")
            reasons[drop.reason] += 1
            continue
        _refuse_unencodable(where, loc, question, answer)
        _refuse_control_tokens(where, loc, question, answer)
        pid = tree_id(question, answer)
        if pid in first_seen:
            skipped.append(f"{where}: {loc}: duplicate of {first_seen[pid]} (id {pid})")
            reasons["duplicate"] += 1
            continue
        first_seen[pid] = loc
        usable += 1
        if usable <= skip:
            continue
        problems.append(
            Problem(id=pid, question=question, answer=answer, source=f"{source}#{loc.split()[-1]}")
        )
    if usable == 0 and limit != 0:
        detail = f"; {len(skipped)} rows dropped, first: {skipped[0]}" if skipped else ""
        raise DataError(f"{where}: no usable problems{detail}")
    return ProblemSet(problems=problems, skipped=skipped, source=source, reasons=reasons)


def _refuse_unencodable(where: str, loc: str, question: str, answer: str | None) -> None:
    """A question or answer holding a lone surrogate (JSON's "\\ud800") stops the load: no
    tokenizer takes it and no shard can store it, so every run would fail on it again."""
    for name, text in (("question", question), ("answer", answer or "")):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise DataError(
                f"{where}: {loc}: the {name} holds {exc.object[exc.start:exc.end]!r} at char {exc.start}, "
                "a lone surrogate that UTF-8 cannot encode: fix or drop the row"
            ) from None


def _refuse_control_tokens(where: str, loc: str, question: str, answer: str | None) -> None:
    """A problem whose question or answer (the hint prompt shows it) holds a chat-template
    control token stops the load: rendered through the chat template it would forge turns
    of the conversation (see cotgen.chat_tokens). Refused, not dropped: a dropped row is only
    counted, and a poisoned source is worth a look."""
    for name, text in (("question", question), ("answer", answer or "")):
        found = control_token(text)
        if found is not None:
            raise DataError(
                f"{where}: {loc}: {describe(f'the {name}', found)}; a chat template would read it as a "
                "turn boundary: remove it from the problem file, or drop the row"
            )


# -- builtin generators ------------------------------------------------------------------

_NAMES = (
    "Ava",
    "Ben",
    "Chloe",
    "Diego",
    "Emma",
    "Farid",
    "Grace",
    "Hiro",
    "Ines",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Priya",
)
_ITEMS = (
    "apples",
    "marbles",
    "stickers",
    "books",
    "coins",
    "pencils",
    "cookies",
    "shells",
    "cards",
    "stamps",
)
_WORDS = (
    "strawberry", "banana", "mississippi", "bookkeeper", "committee", "parallel", "occurrence",
    "necessary", "assessment", "balloon", "coffee", "letter", "success", "pepper", "referee",
    "tomorrow", "address", "accommodate", "possession", "millennium", "embarrass", "raspberry",
    "hippopotamus", "onomatopoeia", "abracadabra", "cinnamon", "bubblegum", "grasshopper",
    "kangaroo", "peppermint", "butterfly", "woodpecker", "rhythm", "queue", "level", "banana split",
    "tennessee", "cappuccino", "spaghetti", "broccoli", "giraffe", "zucchini", "llama", "yellow",
)  # fmt: skip


def _arith(rng: random.Random) -> tuple[str, int]:
    """A multi-step word problem with an exact non-negative integer answer."""
    name, other = rng.sample(_NAMES, 2)
    item = rng.choice(_ITEMS)
    kind = rng.randrange(4)
    if kind == 0:
        start, boxes, per, given = rng.randint(5, 60), rng.randint(2, 9), rng.randint(2, 12), 0
        total = start + boxes * per
        given = rng.randint(1, total - 1)
        return (
            f"{name} has {start} {item}. {name} buys {boxes} boxes with {per} {item} in each box, "
            f"then gives {given} {item} to {other}. How many {item} does {name} have now?",
            total - given,
        )
    if kind == 1:
        per_day, days, extra = rng.randint(3, 40), rng.randint(2, 14), rng.randint(1, 50)
        return (
            f"{name} collects {per_day} {item} every day for {days} days. {other} collects "
            f"{extra} more {item} than {name} in total. How many {item} do they collect together?",
            2 * per_day * days + extra,
        )
    if kind == 2:
        groups, each = rng.randint(2, 12), rng.randint(2, 15)
        total = groups * each
        share = rng.randint(2, min(6, total // 2))
        kept = rng.randint(0, max(0, total - 2 * share))
        kept += (total - kept) % share  # the rest divides exactly among the friends
        return (
            f"{name} has {groups} bags of {item} with {each} in each bag. {name} keeps {kept} "
            f"and shares the rest equally among {share} friends. How many {item} does each friend get?",
            (total - kept) // share,
        )
    a, b, c = rng.randint(2, 30), rng.randint(2, 9), rng.randint(1, 99)
    d = rng.randint(1, min(50, a * b + c - 1))
    return (
        f"Start with {a}. Multiply it by {b}, add {c}, then subtract {d}. What number do you get?",
        a * b + c - d,
    )


def _letters(rng: random.Random) -> tuple[str, int]:
    """Count one letter in a word or short phrase; sometimes the letter is absent."""
    phrase = " ".join(rng.sample(_WORDS, rng.choice((1, 1, 2, 3))))
    present = sorted({c for c in phrase if c.isalpha()})
    if rng.random() < 0.9:
        letter = rng.choice(present)
    else:
        letter = rng.choice([c for c in "abcdefghijklmnopqrstuvwxyz" if c not in present])
    return f'How many times does the letter "{letter}" appear in "{phrase}"?', phrase.count(letter)


BUILTINS = {"arith": _arith, "letters": _letters}


def _load_builtin(spec: str, *, limit: int | None, skip: int, seed: int) -> ProblemSet:
    kind = spec.removeprefix("builtin:")
    make = BUILTINS.get(kind)
    if make is None:
        raise UsageError(
            f"unknown builtin problem generator '{spec}' (expected one of: {', '.join('builtin:' + k for k in BUILTINS)})"
        )
    wanted = BUILTIN_DEFAULT_LIMIT if limit is None else limit
    source = f"{spec}?seed={seed}"
    rng = random.Random(seed)
    seen: set[str] = set()
    problems: list[Problem] = []
    skipped: list[str] = []
    reasons: Counter = Counter()
    drawn = 0
    # The generators' spaces are far larger than any sane limit; the cap stops a loop
    # that would otherwise spin on duplicates.
    while len(problems) < wanted and drawn < 100 * (wanted + skip) + 1000:
        question, answer = make(rng)
        drawn += 1
        pid = tree_id(question, str(answer))
        if pid in seen:
            skipped.append(f"{source}: draw {drawn}: duplicate (id {pid})")
            reasons["duplicate"] += 1
            continue
        seen.add(pid)
        if len(seen) <= skip:
            continue
        problems.append(
            Problem(
                id=pid, question=question, answer=str(answer), source=f"{source}#{len(seen) - 1}"
            )
        )
    return ProblemSet(problems=problems, skipped=skipped, source=source, reasons=reasons)
