"""A cheap fingerprint of a local model folder, so that a resume notices a model retrained
into the same folder (the path alone cannot)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

# The files a model loads from: weights, configs, tokenizer files, a remote-code repo's Python.
# A README or a training log beside them changes no tree, so it changes no fingerprint.
MODEL_FILE_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".json", ".model", ".txt", ".py",
                       ".tiktoken", ".jinja")
# Files of those kinds that Trainer writes beside a model, and no loader reads: an evaluation
# run after the fact must not make the folder look retrained.
NOT_LOADED = ("training_args.bin", "trainer_state.json", "all_results.json", "train_results.json",
              "eval_results.json", "test_results.json")
SAMPLE = 1 << 20  # bytes read at a large file's start, middle and end
WHOLE = 3 * SAMPLE  # files up to this size are read whole (every config.json, most tokenizers)


def folder_fingerprint(folder: Path) -> dict[str, Any]:
    """{"sha256": one digest of the folder, "files": {relative name: digest of that file}}.

    A large file is read at its start, middle and end, 3 MiB, with its size: a 15 GB model
    costs a few dozen MiB of reads, not 15 GB. Retraining rewrites the first and last
    tensors of a safetensors file (and its header, where dtypes or shapes change), so the
    samples see it; a change confined to the middle of a file of the same size is not seen.
    Only the folder's own files count, as from_pretrained reads only those: checkpoint-*/
    folders, an `original/` copy of the weights, and hidden files come and go without changing
    what is loaded. Names are relative to the folder: nothing here names the machine, so the
    manifest that records it may be published."""
    files: dict[str, str] = {}
    for path in sorted(Path(folder).iterdir()):
        name = path.name
        if name.startswith(".") or path.suffix not in MODEL_FILE_SUFFIXES or name in NOT_LOADED:
            continue
        if path.is_file():
            files[name] = _file_digest(path)
    whole = hashlib.sha256("".join(f"{name}\0{digest}\n" for name, digest in files.items()).encode())
    return {"sha256": whole.hexdigest(), "files": files}


def _file_digest(path: Path) -> str:
    size = path.stat().st_size
    h = hashlib.sha256(str(size).encode() + b"\0")
    with open(path, "rb") as f:
        if size <= WHOLE:
            h.update(f.read())
        else:
            for at in (0, size // 2 - SAMPLE // 2, size - SAMPLE):
                f.seek(at)
                h.update(f.read(SAMPLE))
    return h.hexdigest()[:32]


def what_changed(old: dict[str, Any], new: dict[str, Any] | None) -> str:
    """The files that differ between two fingerprints, for a refusal message."""
    a = old.get("files") if isinstance(old.get("files"), dict) else {}
    b = (new or {}).get("files") or {}
    parts = []
    for label, names in (("changed", [n for n in a if n in b and a[n] != b[n]]),
                         ("added", [n for n in b if n not in a]),
                         ("removed", [n for n in a if n not in b])):
        if names:
            shown = ", ".join(sorted(names)[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
            parts.append(f"{label}: {shown}")
    return "; ".join(parts) or "its fingerprint differs"
