"""Validation of files and run folders: per-row findings with reasons, one report per file."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotgen.errors import DataError, InvalidTree, first_line
from cotgen.formats import Finding, make_format, provenance
from cotgen.io.inputs import expand_inputs
from cotgen.io.readers import TREES, BadRow, Reader, TreeShardReader, check_format_name, open_rows
from cotgen.tree import Tree, broken_invariants

MAX_MESSAGE_CHARS = 1000  # a finding may quote row text; a 50 MB row must not become a 50 MB line
DEFAULT_MAX_ERRORS = 100  # findings kept per file; the counts stay exact beyond it


@dataclass
class FileReport:
    """What validating one file found. `errors` holds at most `max_errors` findings (errors
    and warnings, in row order); `error_count` and `warning_count` count all of them."""

    file: str
    format: str | None
    rows: int = 0
    valid_rows: int = 0  # rows with no error (warnings allowed)
    errors: list[dict[str, Any]] = field(default_factory=list)
    error_count: int = 0
    warning_count: int = 0

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def as_json(self) -> dict[str, Any]:
        return {
            "file": self.file,
            "format": self.format,
            "rows": self.rows,
            "valid_rows": self.valid_rows,
            "errors": self.errors,
            "error_count": self.error_count,
            "warning_count": self.warning_count,
        }


def check_tree_row(row: dict[str, Any]) -> list[Finding]:
    """Findings of one tree-shard row: a record that is not a tree, then every broken invariant."""
    try:
        tree = Tree.from_row(row)
    except InvalidTree as exc:
        return [Finding("error", str(exc))]
    return tree_findings(tree)


def tree_findings(tree: Tree) -> list[Finding]:
    """Every broken invariant of a tree as an error; a failed search as a warning."""
    out = [Finding("error", invariant) for invariant in broken_invariants(tree)]
    if tree.error is not None:
        out.append(Finding("warning", f"the search failed for this tree: {tree.error}"))
    return out


def iter_findings(
    source: Reader | Path | str, format: str | None = None, seen_ids: set[str] | None = None,
    check_ids: bool = True,
) -> Iterator[tuple[int, list[Finding]]]:
    """(row index, findings) for every row of one file, streamed batch by batch; the
    findings list is empty for a valid row, so callers count rows from this too.

    `seen_ids` holds the tree ids met so far; a tree id met again, in this file or an
    earlier one sharing the set, is an error (export and push would otherwise carry the
    tree twice). Only formats with an `id` column have tree ids. The set is the one thing
    validate keeps per row (about 70 bytes a row); the rest of its memory is flat.
    """
    if not isinstance(source, Reader):
        source = open_rows(source, format)
    seen = seen_ids if seen_ids is not None else set()
    if not check_ids:
        seen = _Forgetful()
    if isinstance(source, TreeShardReader):
        for index, tree in source.trees():
            if isinstance(tree, BadRow):
                yield index, [Finding("error", tree.message)]
                continue
            findings = tree_findings(tree)
            _check_duplicate(tree.id, seen, findings)
            yield index, findings
        return
    if source.format == TREES:
        check, columns = check_tree_row, None
    else:
        fmt = make_format(source.format)
        check, columns = fmt.check, fmt.columns
        extra = provenance.extra_columns(source.format, columns, source.columns)
        if extra:  # an export's provenance columns are checked too (a local path in generator)
            check, columns = provenance.with_checks(fmt.check), (*columns, *extra)
    # Parquet: the id column is read on its own, so the format's own columns keep their fast
    # single-column path (validating OpenLongCoT reads only `text`). Other kinds hold dicts.
    ids = _id_column(source) if source.kind == "parquet" and "id" in source.columns and columns else None
    no_findings: list[Finding] = []
    for batch in source.batches(columns):
        for index, row in zip(batch.indices, batch.rows, strict=True):
            if isinstance(row, BadRow):
                if ids is not None:
                    next(ids)
                yield index, [Finding("error", row.message)]
                continue
            findings = check(row)
            tid = next(ids) if ids is not None else (row.get("id") if isinstance(row, dict) else None)
            if tid is not None:
                findings = list(findings)
                if source.format != TREES and not isinstance(tid, str):
                    findings.append(Finding("error", f"field 'id' is not a string: {tid!r}"))
                _check_duplicate(tid, seen, findings)
            yield index, findings or no_findings


def _id_column(source: Reader) -> Iterator[Any]:
    """The `id` of every row of a Parquet file, in row order, a record batch at a time."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        for batch in pq.ParquetFile(source.path, pre_buffer=False).iter_batches(columns=["id"]):
            yield from batch.column(0).to_pylist()
    except (OSError, pa.ArrowException) as exc:
        raise DataError(f"{source.path}: cannot read the id column ({first_line(exc)})") from None


class _Forgetful(set):
    """A set that never holds anything: no tree id is ever met twice (dedupe's own inputs)."""

    def add(self, item) -> None:
        pass


def _check_duplicate(tid: object, seen: set[str], findings: list[Finding]) -> None:
    if not isinstance(tid, str):
        return  # a mistyped id is reported by the record checks
    if tid in seen:
        findings.append(Finding("error", f"duplicate tree id {tid}: an earlier row of this input has it"))
    else:
        seen.add(tid)


def validate_path(
    path: Path | str, format: str | None = None, max_errors: int | None = DEFAULT_MAX_ERRORS,
    seen_ids: set[str] | None = None, check_ids: bool = True,
) -> FileReport:
    """Validate one file. A file that cannot be read at all (empty, binary, columns of no
    format, not a JSON array) raises DataError; a missing file or unknown format UsageError.
    `seen_ids` carries tree ids across the files of one run or export (see iter_findings)."""
    source = open_rows(path, format)
    report = FileReport(file=str(path), format=source.format)
    limit = max_errors if max_errors else None
    for index, findings in iter_findings(source, seen_ids=seen_ids, check_ids=check_ids):
        report.rows += 1
        has_error = False
        for finding in findings:
            if finding.severity == "error":
                report.error_count += 1
                has_error = True
            else:
                report.warning_count += 1
            if limit is None or len(report.errors) < limit:
                report.errors.append(_finding_json(finding, index))
        if not has_error:
            report.valid_rows += 1
    if report.rows == 0:
        report.errors.append({"row": None, "severity": "warning", "message": "the file holds no rows"})
        report.warning_count += 1
    return report


def _finding_json(finding: Finding, row: int) -> dict[str, Any]:
    out = finding.as_json(row)
    message = out["message"]
    if len(message) > MAX_MESSAGE_CHARS:
        out["message"] = message[:MAX_MESSAGE_CHARS] + f"... ({len(message):,} characters)"
    return out


def _input_groups(paths: Iterable[Path | str]) -> list[list[Path | _Refused]]:
    """The files of each input: one group per run folder, export folder or file. Tree ids
    must be unique within a group (two runs of the same problems may share ids). An input
    that cannot be read at all (an unfinished run or export) stands as one refusal, so the
    other inputs are still validated; a missing path stops everything (UsageError)."""
    groups: list[list[Path | _Refused]] = []
    for path in map(Path, paths):
        try:
            groups.append(list(expand_inputs([path])))
        except DataError as exc:
            groups.append([_Refused(path, str(exc))])
    return groups


@dataclass(frozen=True)
class _Refused:
    """An input that cannot be validated at all (an unfinished run folder), with the reason."""

    path: Path
    reason: str


def validate_paths(paths: Iterable[Path | str], format: str | None = None, max_errors: int | None = DEFAULT_MAX_ERRORS) -> Iterator[FileReport]:
    """A report per file. A file that cannot be read is reported (one error, row None) and
    the others are still validated; usage errors stop everything first."""
    check_format_name(format)
    for group in _input_groups(paths):
        seen_ids: set[str] = set()
        for path in group:
            try:
                if isinstance(path, _Refused):
                    path, reason = path.path, path.reason
                    raise DataError(reason)
                yield validate_path(path, format, max_errors, seen_ids=seen_ids)
            except DataError as exc:
                message = str(exc)
                # The report names the file already; do not say it twice.
                message = message.removeprefix(f"{path}: ")
                yield FileReport(
                    file=str(path),
                    format=None,
                    errors=[{"row": None, "severity": "error", "message": _short(message)}],
                    error_count=1,
                )


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE_CHARS else message[:MAX_MESSAGE_CHARS] + "..."


def refuse_invalid(files: list[Path], fmt: str, doing: str, *, check_ids: bool = True) -> dict[Path, int]:
    """Rows per file; a DataError listing the first invalid rows of every file when any row
    is invalid, before the caller (push, dedupe) writes anything. Tree ids must be unique
    across `files` unless `check_ids` is False (dedupe, whose job is removing duplicates)."""
    problems = []
    rows: dict[Path, int] = {}
    seen_ids: set[str] = set()
    for f in files:
        rep = validate_path(f, None if fmt == TREES else fmt, seen_ids=seen_ids, check_ids=check_ids)
        rows[f] = rep.rows
        if rep.error_count:
            errors = [e for e in rep.errors if e["severity"] == "error"]
            shown = "; ".join(f"row {e['row']}: {e['message']}" for e in errors[:5])
            more = f" (and {rep.error_count - len(errors[:5])} more)" if rep.error_count > 5 else ""
            problems.append(f"{f}: {rep.error_count} invalid row(s): {shown}{more}")
    if problems:
        raise DataError(f"refusing to {doing} invalid data (run `cotgen validate` for the full list):\n" + "\n".join(problems))
    return rows
