"""Near-duplicate removal past one machine: a cotgen export through datatrove's MinHash pipeline.

`cotgen dedupe` holds about 380 bytes a row in memory (README, "cotgen dedupe"); past ten
million rows or one machine, datatrove's four MinHash stages do the same job on its Slurm or
Ray executors. This script is the recipe, on the local executor: swap LocalPipelineExecutor
for SlurmPipelineExecutor (or RayPipelineExecutor) and raise `tasks` / `workers` to scale.

    pip install datatrove                  # not a cotgen dependency
    python scripts/datatrove_minhash.py EXPORT_DIR OUT_DIR [--work WORK_DIR] [--tasks N]

EXPORT_DIR holds the Parquet shards of one cotgen export (`<split>-NNNNN-of-NNNNN.parquet`).
OpenLongCoT rows are read as they are (`text` and `id` are datatrove's own column names);
rows of the other Parquet formats are read as the text of the format's own columns (as
`cotgen dedupe` reads them; provenance columns left out), with the file and row as id. Every
row's columns ride along in the document's metadata and are written back as they were, so
OUT_DIR holds the kept rows in the export's own columns, as Parquet that `cotgen validate`
reads (datatrove names the output files itself, `00000.parquet`...; rename them
`train-00000-of-0000N.parquet` for `cotgen push`). Removed rows are in WORK_DIR/removed.

Settings follow `cotgen dedupe`'s defaults where datatrove has them (word 5-grams, 14 bands of
8 hashes: a pair at Jaccard 0.85 is a candidate with probability 0.99+); datatrove's text
normalisation differs from cotgen's (it lower-cases and folds diacritics; numbers and
punctuation are kept here, unlike datatrove's default), so the two need not drop the very
same rows.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

# The columns each format is compared on (cotgen.formats: the format's own columns).
FORMAT_COLUMNS = {
    ("messages",): "sft",
    ("prompt", "completions", "labels"): "prm",
    ("prompt", "chosen", "rejected"): "dpo",
    ("id", "generator", "problem", "steps", "label", "final_answer_correct"): "processbench",
}
TEXT_COLUMNS = {"sft": ["messages"], "prm": ["prompt", "completions"], "dpo": ["prompt", "chosen", "rejected"],
                "processbench": ["problem", "steps"]}


def _strings(value):
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key in value:
            yield from _strings(value[key])
    elif isinstance(value, (list, tuple)):
        for item in value:
            yield from _strings(item)


def detect_format(export_dir: Path) -> str:
    import pyarrow.parquet as pq

    shards = sorted(export_dir.glob("*-?????-of-?????.parquet"))
    if not shards:
        raise SystemExit(f"{export_dir}: no Parquet export shards (<split>-NNNNN-of-NNNNN.parquet)")
    names = set(pq.read_schema(shards[0]).names)
    if "text" in names:
        return "openlongcot"
    for cols, fmt in FORMAT_COLUMNS.items():
        if set(cols) <= names:
            return fmt
    raise SystemExit(f"{shards[0]}: columns {sorted(names)} are no cotgen Parquet export")


def read_row(self, data: dict, path: str, id_in_file: int | str) -> dict:
    """datatrove reader adapter: the row's text to compare, and the whole row as metadata."""
    if "text" in data:  # OpenLongCoT
        text = data["text"]
    else:
        fmt = next(f for cols, f in FORMAT_COLUMNS.items() if set(cols) <= set(data))
        text = "\n".join(s for c in TEXT_COLUMNS[fmt] for s in _strings(data.get(c)))
    return {"text": text, "id": f"{path}/{id_in_file}", "metadata": {"row": json.dumps(data, ensure_ascii=False)}}


def write_row(self, document) -> dict:
    """datatrove writer adapter: the original row, columns as they were."""
    return json.loads(document.metadata["row"])


def pipeline(export_dir: Path, out_dir: Path, work: Path, tasks: int = 1, workers: int = 1):
    """The four executors, in order (signatures, buckets, clusters, filter)."""
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.dedup import (
        MinhashDedupBuckets,
        MinhashDedupCluster,
        MinhashDedupFilter,
        MinhashDedupSignature,
    )
    from datatrove.pipeline.dedup.minhash import MinhashConfig
    from datatrove.pipeline.readers import ParquetReader
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.utils.hashing import HashConfig
    from datatrove.utils.text import TextNormConfig

    # Numbers and punctuation are the mathematics: datatrove's default normalisation turns
    # every number into 0 and drops punctuation, which merges "2+3" and "7-1". sha1 needs no
    # extra package (datatrove's default hash, xxhash, does).
    config = MinhashConfig(
        n_grams=5, num_buckets=14, hashes_per_bucket=8,
        norm_config=TextNormConfig(norm_numbers=False, remove_punctuation=False),
        hash_config=HashConfig(precision=64, hash_fc="sha1"),
    )

    def reader():
        return ParquetReader(str(export_dir), glob_pattern="*-?????-of-?????.parquet", adapter=read_row)

    sigs, buckets, clusters = work / "signatures", work / "buckets", work / "remove_ids"
    stage1 = LocalPipelineExecutor(pipeline=[reader(), MinhashDedupSignature(output_folder=str(sigs), config=config)],
                                   tasks=tasks, workers=workers, logging_dir=str(work / "logs" / "1"))
    stage2 = LocalPipelineExecutor(pipeline=[MinhashDedupBuckets(input_folder=str(sigs), output_folder=str(buckets), config=config)],
                                   tasks=config.num_buckets, workers=workers, logging_dir=str(work / "logs" / "2"))
    stage3 = LocalPipelineExecutor(pipeline=[MinhashDedupCluster(input_folder=str(buckets), output_folder=str(clusters), config=config)],
                                   tasks=1, logging_dir=str(work / "logs" / "3"))
    stage4 = LocalPipelineExecutor(
        pipeline=[
            reader(),
            MinhashDedupFilter(input_folder=str(clusters),
                               exclusion_writer=ParquetWriter(str(work / "removed"), adapter=write_row)),
            ParquetWriter(str(out_dir), adapter=write_row),
        ],
        tasks=tasks, workers=workers, logging_dir=str(work / "logs" / "4"),
    )
    return [stage1, stage2, stage3, stage4]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default OUT_DIR.work)")
    parser.add_argument("--tasks", type=int, default=1)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    detect_format(args.export_dir)  # a clear refusal before datatrove starts
    work = args.work or args.out_dir.with_name(args.out_dir.name + ".work")
    for stage in pipeline(args.export_dir, args.out_dir, work, args.tasks, args.workers):
        stage.run()


if __name__ == "__main__":
    main()
