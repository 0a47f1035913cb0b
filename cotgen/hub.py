"""Push a run or an export to a Hub dataset repo: validated shards, a merged dataset card, retries."""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cotgen import __version__
from cotgen.errors import DataError, RunError, UsageError, first_line
from cotgen.io.inputs import resolve_dataset_inputs
from cotgen.io.layout import MANIFEST, export_shard_name, is_run_dir, read_manifest
from cotgen.models import public_model_id
from cotgen.tree import arrow_schema

TAGS = ("synthetic", "chain-of-thought", "mcts", "cotgen")
RETRY_STATUS = (408, 429, 500, 502, 503, 504)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_SPLIT = re.compile(r"^[A-Za-z0-9_]+(?:\.[A-Za-z0-9_]+)*$")
_SECTION = "<!-- cotgen:config {name} -->"
_SECTION_END = "<!-- /cotgen:config {name} -->"
DESCRIPTIONS = {
    "trees": "MCTS search trees, one row per problem: every node with its text, prior, visits, value, rating and the verifier's verdict (cotgen tree shards).",
    "openlongcot": "LLaMA-O1's OpenLongCoT text: one row per tree, each node a `<start_of_father_id>...<end_of_rating>` record in pre-order.",
    "marco": "Marco-o1 CoT_demo records: `instruction` and a `response` of the form `<Thought>...</Thought><Output>...</Output>`.",
    "sft": "Chat messages (`messages: [{role, content}]`), TRL's conversational format.",
    "prm": "TRL step-wise supervision: `prompt`, `completions` and per-step `labels`.",
    "dpo": "Preference pairs: `prompt`, `chosen`, `rejected` from sibling steps whose values differ.",
    "processbench": "Qwen's ProcessBench columns: `id`, `generator`, `problem`, `steps`, `label` (index of the first wrong step, -1 if none), `final_answer_correct`.",
}


@dataclass(frozen=True)
class PushConfig:
    """Where and how `cotgen push` uploads; checked before any network call."""

    repo: str  # OWNER/NAME of the dataset repo; created when missing
    private: bool = False  # visibility of a repo this push creates; an existing repo keeps its own
    revision: str = "main"  # branch to commit to; it must already exist
    config: str | None = None  # config name on the Hub; None = the detected format ("trees" for runs)
    split: str = "train"  # split name in data/<config>/<split>-NNNNN-of-NNNNN.*
    message: str | None = None  # commit message; None = "cotgen push <config>/<split>"
    endpoint: str | None = None  # Hub URL; None = $HF_ENDPOINT, then huggingface.co
    license: str = "apache-2.0"  # card license; the generating model's terms may also apply
    max_commit_bytes: int = 2 << 30  # a commit uploads at most this much, so a failure loses little
    max_commit_files: int = 64  # and at most this many files
    retries: int = 5  # attempts per commit beyond the first, on 429, 5xx and dropped connections
    backoff: float = 2.0  # seconds before the first retry; doubles each time, capped at 60

    def __post_init__(self) -> None:
        from huggingface_hub.utils import HFValidationError, validate_repo_id

        if self.repo.count("/") != 1:
            raise ValueError(f"repo must be OWNER/NAME, not '{self.repo}'")
        try:
            validate_repo_id(self.repo)
        except HFValidationError:
            raise ValueError(
                f"repo '{self.repo}' is not a valid repo id: letters, digits, '-', '_' and '.' "
                "only, no '--' or '..', at most 96 characters"
            ) from None
        if self.config is not None and not _NAME.match(self.config):
            raise ValueError(f"config '{self.config}' must be letters, digits, '-', '_' or '.'")
        if not _SPLIT.match(self.split):
            # datasets refuses any other split name when the repo is loaded (naming._split_re).
            raise ValueError(f"split '{self.split}' must be letters, digits and '_', in parts joined by '.' "
                             "(what datasets accepts as a split name)")
        if not self.revision or any(c in self.revision for c in " ~^:?*[\\"):
            raise ValueError(f"revision '{self.revision}' is not a valid branch name")
        if self.max_commit_bytes < 1 or self.max_commit_files < 1 or self.retries < 0 or self.backoff < 0:
            raise ValueError("commit limits must be positive and retries/backoff not negative")


@dataclass
class PushReport:
    repo: str
    config: str
    split: str
    url: str
    rows: int = 0
    uploaded: list[str] = field(default_factory=list)  # repo paths sent in a commit
    unchanged: list[str] = field(default_factory=list)  # repo paths whose content the repo already had
    deleted: list[str] = field(default_factory=list)  # stale shards of this config/split removed
    commits: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class _Local:
    path: Path
    remote: str
    sha256: str
    size: int
    rows: int


def push(
    input_path: Path,
    settings: PushConfig,
    token: str | None = None,
    log: Callable[[str], None] = lambda _msg: None,
) -> PushReport:
    """Validate `input_path` (a run folder, an export folder or file), then upload it."""
    with tempfile.TemporaryDirectory(prefix="cotgen-push-") as scratch:
        return _push(input_path, settings, token, log, Path(scratch))


def _push(input_path: Path, settings: PushConfig, token: str | None, log: Callable[[str], None], scratch: Path) -> PushReport:
    inp = resolve_dataset_inputs([Path(input_path)])
    fmt = inp.format
    config = settings.config or fmt
    rows = _validate_all(inp.files, fmt)
    token = _token(token)
    endpoint = (settings.endpoint or os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")
    manifest = _manifest_for(Path(input_path))

    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint, token=token)
    suffix = "json" if fmt == "marco" else "parquet"
    n = len(inp.files)
    public = [_public_copy(f, scratch / f"{i:05d}-{f.name}", trees=fmt == "trees") for i, f in enumerate(inp.files)]
    locals_ = [
        _Local(p, f"data/{config}/{export_shard_name(settings.split, i, n, suffix)}", *_sha256(p), rows[f])
        for i, (f, p) in enumerate(zip(inp.files, public, strict=True))
    ]
    report = PushReport(settings.repo, config, settings.split, f"{endpoint}/datasets/{settings.repo}")
    report.rows = sum(x.rows for x in locals_)

    call = _Retrying(settings, log)
    call(lambda: api.create_repo(settings.repo, repo_type="dataset", private=settings.private, exist_ok=True), "create the repo")
    remote = call(lambda: _remote_files(api, settings), "list the repo")

    from huggingface_hub import CommitOperationAdd, CommitOperationDelete

    additions = []
    for x in locals_:
        if remote.get(x.remote) == x.sha256:
            report.unchanged.append(x.remote)
        else:
            additions.append((x.remote, x.path, x.size))
    ours = {x.remote for x in locals_}
    stale_prefix = f"data/{config}/{settings.split}-"
    deletions = sorted(p for p in remote if p.startswith(stale_prefix) and p not in ours)

    card = _card(api, settings, remote, config, fmt, locals_, manifest, call)
    if card is not None:
        additions.append(("README.md", card, len(card)))
    else:
        report.unchanged.append("README.md")

    message = settings.message or f"cotgen push {config}/{settings.split}"
    batches = _commit_batches(additions, settings)
    for number, batch in enumerate(batches):
        ops: list[Any] = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=src if isinstance(src, bytes) else str(src)) for p, src, _ in batch]
        if number == len(batches) - 1:
            ops += [CommitOperationDelete(path_in_repo=p) for p in deletions]
        title = message if len(batches) == 1 else f"{message} ({number + 1}/{len(batches)})"
        log(f"commit {number + 1}/{len(batches)}: {len(batch)} file(s)")
        info = call(
            lambda ops=ops, title=title: api.create_commit(
                settings.repo, ops, commit_message=title, repo_type="dataset", revision=settings.revision
            ),
            "commit",
        )
        report.commits.append(info.oid)
        report.uploaded.extend(p for p, _, _ in batch)
    if not batches and deletions:
        info = call(
            lambda: api.create_commit(
                settings.repo, [CommitOperationDelete(path_in_repo=p) for p in deletions],
                commit_message=message, repo_type="dataset", revision=settings.revision,
            ),
            "commit",
        )
        report.commits.append(info.oid)
    report.deleted = deletions
    return report


# -- before the network ---------------------------------------------------------------


def _public_copy(path: Path, scratch: Path, trees: bool = False) -> Path:
    """`path`, or a copy in `scratch` fixed for publishing:

    - where it names a local folder, the public model id instead (models.public_model_id): a
      pushed shard names no machine-local path. Two places can: the `model` column (a run
      with --model /some/folder records that path) and the `config` column's `value_model`
      (--value prm --value-model /some/folder);
    - a tree shard written by an older cotgen, cast to today's tree schema (the fields it
      lacks are null): `datasets` takes one schema for all of a config's files, so a run
      folder resumed across versions would not load from the Hub."""
    if path.suffix != ".parquet":
        return path
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(path)
    names = schema.names
    current = arrow_schema() if trees else None
    outdated = current is not None and not schema.remove_metadata().equals(current)
    if "model" not in names and "config" not in names and not outdated:
        return path
    table = pq.read_table(path)
    changed = False
    if outdated:
        try:
            table = table.cast(current)
        except (pa.ArrowException, ValueError, NotImplementedError) as exc:
            raise DataError(f"{path}: cannot be read as a tree shard of this cotgen ({first_line(exc)})") from None
        changed = True
    for name, publish in (("model", _public_model), ("config", _public_config)):
        if name not in names or not pa.types.is_string(table.column(name).type):
            continue
        column = table.column(name)
        values = column.to_pylist()
        published = {v: publish(v) for v in set(values) if isinstance(v, str)}
        if all(k == v for k, v in published.items()):
            continue
        fixed = pa.array([published.get(v, v) if isinstance(v, str) else v for v in values], type=column.type)
        table = table.set_column(table.schema.get_field_index(name), table.schema.field(name), fixed)
        changed = True
    if not changed:
        return path
    pq.write_table(table, scratch)
    return scratch


def _public_model(value: str) -> str:
    return public_model_id(value)


def _public_config(value: str) -> str:
    """A tree's recorded search settings (JSON) with its PRM named publicly."""
    try:
        config = json.loads(value)
    except ValueError:
        return value
    prm = config.get("value_model") if isinstance(config, dict) else None
    if not isinstance(prm, str) or public_model_id(prm) == prm:
        return value
    return json.dumps({**config, "value_model": public_model_id(prm)})


def _validate_all(files: list[Path], fmt: str) -> dict[Path, int]:
    """Rows per file; refuses the push when any row of any file is invalid, before any upload
    (one config of a dataset holds each tree once)."""
    from cotgen.validate import refuse_invalid

    return refuse_invalid(files, fmt, "push")


def _token(token: str | None) -> str:
    if token:
        return token
    from huggingface_hub import get_token

    found = os.environ.get("HF_TOKEN") or get_token()
    if not found:
        raise UsageError("no Hugging Face token: set HF_TOKEN or log in with `hf auth login`")
    return found


def _manifest_for(path: Path) -> dict[str, Any]:
    if path.is_dir() and is_run_dir(path):
        return read_manifest(path)
    folder = path if path.is_dir() else path.parent
    return read_manifest(folder) if (folder / MANIFEST).is_file() else {}


def _sha256(path: Path) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
            size += len(chunk)
    return h.hexdigest(), size


def _commit_batches(additions: list[tuple[str, Any, int]], settings: PushConfig) -> list[list[tuple[str, Any, int]]]:
    batches: list[list[tuple[str, Any, int]]] = []
    current: list[tuple[str, Any, int]] = []
    size = 0
    for item in additions:
        if current and (size + item[2] > settings.max_commit_bytes or len(current) >= settings.max_commit_files):
            batches.append(current)
            current, size = [], 0
        current.append(item)
        size += item[2]
    if current:
        batches.append(current)
    return batches


# -- the network ----------------------------------------------------------------------


class _Retrying:
    """Run one Hub call, retrying transient failures with exponential backoff.

    huggingface_hub already retries each HTTP request (http_backoff: 408/429/5xx and
    network errors, 5 times); this wraps a whole step (a commit: preupload, LFS uploads,
    the commit itself) so a failure that outlasts those retries still resumes: files the
    Hub already holds are not sent again. Errors the user must fix are mapped to messages.
    """

    def __init__(self, settings: PushConfig, log: Callable[[str], None]) -> None:
        self.settings = settings
        self.log = log

    def __call__(self, fn: Callable[[], Any], what: str) -> Any:
        wait = self.settings.backoff
        for attempt in range(self.settings.retries + 1):
            try:
                return fn()
            except Exception as exc:
                transient = _classify(exc, self.settings, what)
                if not transient or attempt == self.settings.retries:
                    raise RunError(f"could not {what} on {self.settings.repo}: {_short(exc)}") from None
                self.log(f"{what}: {_short(exc)}; retrying in {wait:.0f}s")
                time.sleep(wait)
                wait = min(wait * 2, 60.0)
        raise AssertionError("unreachable")


def _classify(exc: Exception, settings: PushConfig, what: str) -> bool:
    """True for a transient failure; raises the user-facing error for one that is not."""
    import httpx2
    from huggingface_hub.errors import (
        HfHubHTTPError,
        OfflineModeIsEnabled,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, OfflineModeIsEnabled):
        raise UsageError("HF_HUB_OFFLINE is set: unset it to push") from None
    if isinstance(exc, RevisionNotFoundError):
        raise UsageError(f"revision '{settings.revision}' does not exist in {settings.repo}: create the branch first") from None
    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status == 401 or (isinstance(exc, RepositoryNotFoundError) and status == 401):
        raise UsageError("the Hub rejected the token (401): check HF_TOKEN or log in again") from None
    if status == 403:
        raise UsageError(f"the token may not write to {settings.repo} (403 forbidden)") from None
    if isinstance(exc, RepositoryNotFoundError):
        raise UsageError(f"{settings.repo}: repository not found or not visible with this token") from None
    if isinstance(exc, HfHubHTTPError):
        return status in RETRY_STATUS
    # Dropped connections, timeouts, resets: httpx's own, and what huggingface_hub re-raises.
    return isinstance(exc, httpx2.TransportError | ConnectionError | TimeoutError)


def _short(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:300]


def _remote_files(api, settings: PushConfig) -> dict[str, str]:
    """Repo path -> content hash (sha256 for LFS files, git blob id otherwise) at the revision."""
    from huggingface_hub.hf_api import RepoFile

    out = {}
    for entry in api.list_repo_tree(settings.repo, recursive=True, repo_type="dataset", revision=settings.revision):
        if isinstance(entry, RepoFile):
            out[entry.path] = entry.lfs.sha256 if entry.lfs else entry.blob_id
    return out


def _git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\x00" % len(data) + data).hexdigest()


# -- the dataset card -----------------------------------------------------------------


def _card(api, settings, remote, config, fmt, locals_, manifest, call) -> bytes | None:
    """The new README.md, or None when the repo's is already exactly this."""
    old = ""
    if "README.md" in remote:
        from huggingface_hub import hf_hub_download

        path = call(
            lambda: hf_hub_download(
                settings.repo, "README.md", repo_type="dataset", revision=settings.revision,
                endpoint=api.endpoint, token=api.token,
            ),
            "read the dataset card",
        )
        old = Path(path).read_text(encoding="utf-8")
    text = render_card(old, settings, config, fmt, locals_, manifest).encode("utf-8")
    if remote.get("README.md") == _git_blob_id(text):
        return None
    return text


def split_card(text: str) -> tuple[dict[str, Any], str]:
    """(YAML front matter, body) of a dataset card; a card without front matter has {}."""
    import yaml

    if text.startswith("---\n"):
        end = text.find("\n---", 4)
        if end != -1:
            meta = yaml.safe_load(text[4:end]) or {}
            body = text[end + 4 :].lstrip("\n")
            return (meta if isinstance(meta, dict) else {}), body
    return {}, text


def render_card(old: str, settings: PushConfig, config: str, fmt: str, locals_: list[_Local], manifest: dict[str, Any]) -> str:
    """Merge this config into the card `old`: other configs' YAML entries and sections stay."""
    import yaml

    meta, body = split_card(old)
    configs = [c for c in meta.get("configs") or [] if isinstance(c, dict) and c.get("config_name") != config]
    configs.append({
        "config_name": config,
        "data_files": [{"split": settings.split, "path": f"data/{config}/{settings.split}-*"}],
    })
    meta["configs"] = sorted(configs, key=lambda c: str(c.get("config_name")))
    meta.setdefault("license", settings.license)
    meta["tags"] = sorted(set(meta.get("tags") or []) | set(TAGS))
    section = _card_section(settings, config, fmt, locals_, manifest)
    start, end = _SECTION.format(name=config), _SECTION_END.format(name=config)
    if start in body and end in body:
        body = body[: body.index(start)] + section + body[body.index(end) + len(end) :]
    else:
        if not body.strip():
            body = f"# {settings.repo.split('/')[1]}\n\nSynthesized with [cotgen](https://github.com/) (MCTS over reasoning steps).\n"
        body = body.rstrip("\n") + "\n\n" + section + "\n"
    head = yaml.safe_dump(meta, sort_keys=False, allow_unicode=True)
    return f"---\n{head}---\n\n{body.lstrip(chr(10))}"


# What of a run manifest describes the data, and so goes on the public card. An allow-list:
# the manifest also records machine-local settings (the engine's --base-url, which may name
# an internal host, device, batch sizes, the output path) that say nothing about the data.
_PUBLISHED_SETTINGS = ("model", "search", "prompts", "hint_answer")


def published_settings(manifest: dict[str, Any]) -> dict[str, Any]:
    """The generation settings a dataset card publishes: model, search settings, prompt
    digest, hint flag, problem source, cotgen version and counts; nothing machine-local."""
    settings = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
    out: dict[str, Any] = {k: settings[k] for k in _PUBLISHED_SETTINGS if settings.get(k) is not None}
    if isinstance(out.get("model"), str):
        out["model"] = public_model_id(out["model"])  # --model /some/folder: its name, or its Hub id
    search = out.get("search")
    if isinstance(search, dict) and isinstance(search.get("value_model"), str):
        # --value prm's PRM, named the same way
        out["search"] = {**search, "value_model": public_model_id(search["value_model"])}
    if isinstance(manifest.get("problems_source"), str):
        out["problems_source"] = manifest["problems_source"]
    out["cotgen_version"] = manifest.get("cotgen_version") or __version__
    if isinstance(manifest.get("counts"), dict):
        out["counts"] = manifest["counts"]
    api = (manifest.get("last_run") or {}).get("api") if isinstance(manifest.get("last_run"), dict) else None
    if isinstance(api, dict):  # --engine chat: what the last run's API calls cost
        out["api_usage"] = {k: api.get(k) for k in ("prompt_tokens", "completion_tokens", "cost_usd", "continuation")}
    return out


def _card_section(settings, config, fmt, locals_, manifest) -> str:
    rows = sum(x.rows for x in locals_)
    lines = [
        _SECTION.format(name=config),
        f"## Config `{config}`",
        "",
        DESCRIPTIONS.get(fmt, f"Rows in the `{fmt}` format."),
        "",
        f"- split `{settings.split}`: {rows} rows in {len(locals_)} file(s)",
        f"- load: `datasets.load_dataset(\"{settings.repo}\", \"{config}\", split=\"{settings.split}\")`",
    ]
    generation = published_settings(manifest)
    lines += _benchmark_notes(manifest)
    lines += ["", "### Generation settings", "", "```json", json.dumps(generation, indent=2, sort_keys=True, ensure_ascii=False), "```"]
    lines += provenance_lines(locals_, manifest)
    sample = _sample_row(locals_[0].path, fmt) if locals_ else None
    if sample is not None:
        lines += ["", "### Sample row", "", "```json", json.dumps(sample, indent=2, ensure_ascii=False, default=str), "```"]
    lines.append(_SECTION_END.format(name=config))
    return "\n".join(lines)


def provenance_lines(locals_, manifest: dict[str, Any]) -> list[str]:
    """The card's provenance: the generator, the problems' sources and the grader, from the
    export's summary sidecars (cotgen.formats.provenance), else from the run manifest."""
    from collections import Counter

    from cotgen.formats.provenance import COLUMNS, EXACT_FORMATS, source_dataset, summary_name
    from cotgen.io.layout import EXPORT_SHARD
    from cotgen.models import public_model_id

    total = {"generators": Counter(), "sources": Counter(), "verified_by": Counter()}
    truncated = tokens = 0
    formats, seen = set(), set()
    for x in locals_:
        m = EXPORT_SHARD.match(x.path.name)
        side = x.path.parent / summary_name(m['split'] if m else 'train')
        if side in seen or not side.is_file():
            continue
        seen.add(side)
        try:
            summary = json.loads(side.read_text(encoding="utf-8"))
            for key, counts in total.items():
                counts.update(summary[key])
            truncated, tokens = truncated + int(summary["truncated_rows"]), tokens + int(summary["tokens"])
            formats.add(summary["format"])
        except (OSError, ValueError, KeyError, TypeError):
            continue  # a damaged summary leaves the card without it, never stops a push
    rows = sum(x.rows for x in locals_)
    if not seen and locals_ and locals_[0].path.suffix == ".parquet":
        # An export without its summary (deduped, decontaminated): the rows' own columns.
        for x in locals_:
            found = _provenance_columns(x.path)
            if found is None:
                break
            seen.add(x.path)
            formats.add("columns")
            for key, column in (("generators", "generator"), ("sources", "source"), ("verified_by", "verified_by")):
                total[key].update(source_dataset(v or "") if column == "source" else (v or "") for v in found[column])
            truncated += sum(1 for v in found["truncated"] if v)
            tokens += sum(v or 0 for v in found["tokens"])
    if not seen:  # a run folder: its manifest says which model, which problems, which grader
        settings = manifest.get("settings") if isinstance(manifest.get("settings"), dict) else {}
        if isinstance(settings.get("model"), str):
            total["generators"][public_model_id(settings["model"])] = rows
        if isinstance(manifest.get("problems_source"), str):
            total["sources"][source_dataset(manifest["problems_source"])] = rows
        if isinstance(manifest.get("verified_by"), str):
            total["verified_by"][manifest["verified_by"]] = rows
    if not any(total.values()):
        return []

    def listed(counts: Counter) -> str:
        return ", ".join(f"`{k or '(none)'}` ({n} rows)" for k, n in counts.most_common()) or "not recorded"

    lines = ["", "### Provenance", "",
             f"- generator: {listed(total['generators'])}",
             f"- problems from: {listed(total['sources'])}",
             f"- verified by: {listed(total['verified_by'])}"]
    if seen:
        lines.append(f"- truncated rows (a node cut by a token limit): {truncated}; tokens generated: {tokens}")
        where = ("a sidecar `_<split>.provenance.jsonl` beside the export, one line per row"
                 if formats & set(EXACT_FORMATS) else "the columns " + ", ".join(f"`{c}`" for c in COLUMNS))
        lines.append(f"- per row: {where}")
    return lines


def _provenance_columns(path: Path) -> dict[str, list[Any]] | None:
    """The provenance columns of one Parquet file, or None when it lacks one of them."""
    import pyarrow.parquet as pq

    from cotgen.formats.provenance import COLUMNS

    pf = pq.ParquetFile(path, pre_buffer=False)
    if not set(COLUMNS) <= set(pf.schema_arrow.names):
        return None
    return pf.read(columns=list(COLUMNS)).to_pydict()


def _benchmark_notes(manifest: dict[str, Any]) -> list[str]:
    """What a card must say about benchmarks: problems taken from one's evaluation split
    (cotgen.problems), and the decontamination done before or after the search."""
    lines = []
    split = manifest.get("problems_split")
    if isinstance(manifest.get("benchmark_problems"), str):
        lines.append(f"- **Warning: the problems are the {manifest['benchmark_problems']} benchmark** "
                     f"(`{manifest.get('problems_source')}`). A model trained on these rows has seen that "
                     "benchmark's questions: do not report scores on it.")
    elif isinstance(split, str):
        lines.append(f"- problems: split `{split}` of `{manifest.get('problems_source')}`")
    before = manifest.get("decontaminated_problems")
    if isinstance(before, dict):
        lines.append(f"- decontaminated before the search against {_benchmark_names(before.get('against'))} "
                     f"({before.get('ngram')}-gram overlap): {len(before.get('dropped') or [])} problem(s) dropped")
    after = manifest.get("decontamination")
    if isinstance(after, dict):
        lines.append(f"- decontaminated with `cotgen decontaminate` against {_benchmark_names(after.get('against'))} "
                     f"({after.get('ngram')}-gram overlap): {after.get('removed')} of {after.get('rows')} trees removed")
    return ["", "### Benchmarks", "", *lines] if lines else []


def _benchmark_names(against: Any) -> str:
    """Built-in benchmarks by name, local benchmark files by file name only: a card must not
    publish a local path (/home/me/private_eval.jsonl)."""
    from cotgen.benchmarks import _ALIASES, BUILTIN_BENCHMARKS

    names = []
    for spec in against if isinstance(against, list) else []:
        spec = str(spec)
        builtin = _ALIASES.get(spec.lower(), spec.lower()) in BUILTIN_BENCHMARKS
        names.append(spec if builtin else Path(spec).name)
    return ", ".join(names)


def _sample_row(path: Path, fmt: str) -> dict[str, Any] | None:
    """The first row, long strings and node lists cut so the card stays readable."""
    if fmt == "marco":
        records = json.loads(path.read_text(encoding="utf-8"))
        row = records[0] if records else None
    else:
        import pyarrow.parquet as pq

        pf = pq.ParquetFile(path)
        row = next((b.to_pylist()[0] for b in pf.iter_batches(batch_size=1) if b.num_rows), None)
    if row is None:
        return None

    def cut(value: Any) -> Any:
        if isinstance(value, str):
            return value if len(value) <= 600 else value[:600] + " [...]"
        if isinstance(value, list):
            return [cut(v) for v in value[:4]] + ([f"[... {len(value) - 4} more]"] if len(value) > 4 else [])
        if isinstance(value, dict):
            return {k: cut(v) for k, v in value.items()}
        return value

    return cut(row)
