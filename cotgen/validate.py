"""Validation of files and run folders: per-row findings with reasons, one report per file."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotgen.errors import DataError, InvalidTree
from cotgen.formats import Finding, make_format
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


def iter_findings(source: Reader | Path | str, format: str | None = None) -> Iterator[tuple[int, list[Finding]]]:
    """(row index, findings) for every row of one file, streamed batch by batch; the
    findings list is empty for a valid row, so callers count rows from this too."""
    if not isinstance(source, Reader):
        source = open_rows(source, format)
    if isinstance(source, TreeShardReader):
        for index, tree in source.trees():
            yield index, [Finding("error", tree.message)] if isinstance(tree, BadRow) else tree_findings(tree)
        return
    if source.format == TREES:
        check, columns = check_tree_row, None
    else:
        fmt = make_format(source.format)
        check, columns = fmt.check, fmt.columns
    no_findings: list[Finding] = []
    for batch in source.batches(columns):
        for index, row in zip(batch.indices, batch.rows, strict=True):
            if isinstance(row, BadRow):
                yield index, [Finding("error", row.message)]
                continue
            findings = check(row)
            yield index, findings or no_findings


def validate_path(path: Path | str, format: str | None = None, max_errors: int | None = DEFAULT_MAX_ERRORS) -> FileReport:
    """Validate one file. A file that cannot be read at all (empty, binary, columns of no
    format, not a JSON array) raises DataError; a missing file or unknown format UsageError."""
    source = open_rows(path, format)
    report = FileReport(file=str(path), format=source.format)
    limit = max_errors if max_errors else None
    for index, findings in iter_findings(source):
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


def validate_paths(paths: Iterable[Path | str], format: str | None = None, max_errors: int | None = DEFAULT_MAX_ERRORS) -> Iterator[FileReport]:
    """A report per file. A file that cannot be read is reported (one error, row None) and
    the others are still validated; usage errors stop everything first."""
    check_format_name(format)
    for path in expand_inputs(paths):
        try:
            yield validate_path(path, format, max_errors)
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
