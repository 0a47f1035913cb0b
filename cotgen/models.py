"""Model names -> what to load: aliases, the tiny model, local folders and Hub ids."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath, PureWindowsPath

from cotgen.errors import RunError

ALIASES: dict[str, str] = {
    f"qwen2.5-{size}": f"Qwen/Qwen2.5-{size.upper()}-Instruct"
    for size in ("0.5b", "1.5b", "3b", "7b", "14b", "32b", "72b")
}
TINY = "tiny"
TINY_REASONER = "tiny-reasoner"

# A Hub repo id: "name" (legacy, no namespace) or "namespace/name".
_HUB_ID = re.compile(r"^(?:[A-Za-z0-9][\w.-]*/)?[A-Za-z0-9][\w.-]*$")


@dataclass(frozen=True)
class ResolvedModel:
    """What a model name turned into."""

    name: str  # as the user gave it
    model_id: str  # Hub id or folder path, what engines load (and what trees record)
    kind: str  # "tiny" | "packaged" | "alias" | "folder" | "hub"
    path: Path | None  # local folder with config.json, when there is one (folder, tiny, Hub cache)

    @property
    def load_from(self) -> str:
        """What to hand to from_pretrained: the local folder when known, else the Hub id."""
        return str(self.path) if self.path is not None else self.model_id


def _offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.is_offline_mode())


def _cached_snapshot(repo_id: str) -> Path | None:
    """The local snapshot folder of a Hub model already in the cache, if any."""
    from huggingface_hub import try_to_load_from_cache

    hit = try_to_load_from_cache(repo_id, "config.json")
    return Path(hit).parent if isinstance(hit, str) else None


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~", ".\\")) or name.count("/") > 1 or "\\" in name


def public_model_id(model_id: str) -> str:
    """The model id a dataset may publish: a Hub id or name as recorded; a local folder
    (which names a user's home or a cluster's disk) by the Hub id its config.json names
    (`_name_or_path`, when the folder is here and that is a Hub id), else by its last path
    component only."""
    text = model_id.strip()
    if not _looks_like_path(text):
        return text
    return _hub_id_of_folder(text) or (PureWindowsPath(text) if "\\" in text else PurePosixPath(text)).name


@lru_cache(maxsize=256)
def _hub_id_of_folder(folder: str) -> str | None:
    """The Hub id a model folder was saved from, per its config.json; None when unknown."""
    try:
        config = json.loads((Path(folder).expanduser() / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = config.get("_name_or_path") if isinstance(config, dict) else None
    if isinstance(name, str) and name.count("/") == 1 and not _looks_like_path(name) and _HUB_ID.match(name):
        return name
    return None


def local_model_folder(name: str) -> Path | None:
    """The folder `name` loads from when it is a user's local folder (resolve_model's order:
    tiny, tiny-reasoner and the aliases come first); None for those and for a Hub id."""
    text = name.strip()
    if text.lower() in (TINY, TINY_REASONER) or text.lower() in ALIASES:
        return None
    folder = Path(text).expanduser()
    return folder if folder.is_dir() else None


def resolve_model(name: str, *, offline: bool | None = None) -> ResolvedModel:
    """Turn `name` into something loadable, or raise one RunError saying what was tried.

    Order: `tiny` (built once into the user cache), `tiny-reasoner` (shipped), an alias, an existing folder, a Hub id.
    Offline (HF_HUB_OFFLINE=1, or offline=True) a Hub id must already be in the Hub cache.
    Online a Hub id is returned unchecked: the engine downloads it and reports failures.
    """
    from cotgen.tiny_model import tiny_model_path

    given = name
    name = name.strip()
    if name.lower() == TINY:
        path = tiny_model_path()
        # Recorded as "tiny", not the cache path: the path differs between machines.
        return ResolvedModel(given, TINY, "tiny", path)
    if name.lower() == TINY_REASONER:
        from cotgen.reasoner import packaged_model_path

        # Shipped inside the package; recorded by name, as "tiny" is.
        return ResolvedModel(given, TINY_REASONER, "packaged", packaged_model_path())

    tried: list[str] = []
    hub_id: str | None = ALIASES.get(name.lower())
    kind = "alias"
    if hub_id is not None:
        tried.append(f"alias '{name}' -> {hub_id}")
    else:
        folder = Path(name).expanduser()
        if folder.is_dir():
            if not (folder / "config.json").is_file():
                raise RunError(
                    f"model '{given}': folder {folder} exists but has no config.json "
                    "(expected a transformers model folder)"
                )
            return ResolvedModel(given, str(folder.resolve()), "folder", folder.resolve())
        if folder.exists():
            raise RunError(f"model '{given}': {folder} is a file, not a model folder")
        known = "" if "/" in name else f" ({', '.join([TINY, TINY_REASONER, *ALIASES])})"
        tried.append(f"not an alias{known}")
        tried.append(f"no such folder {name}")
        if _looks_like_path(name) or not _HUB_ID.match(name):
            raise RunError(f"model '{given}' cannot be found: " + "; ".join(tried))
        hub_id, kind = name, "hub"
        tried.append(f"Hub id {hub_id}")

    offline = _offline() if offline is None else offline
    snapshot = _cached_snapshot(hub_id)
    if snapshot is None and offline:
        from huggingface_hub import constants

        tried.append(f"offline (HF_HUB_OFFLINE=1) and not in the Hub cache {constants.HF_HUB_CACHE}")
        raise RunError(
            f"model '{given}' cannot be had: " + "; ".join(tried) + ". Download it once online "
            f"(hf download {hub_id}), pass a local folder, or use --model tiny"
        )
    return ResolvedModel(given, hub_id, kind, snapshot)
