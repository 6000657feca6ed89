"""``finsent label export``: choose stored news to label and write it for Label Studio (and for a person
with a spreadsheet).

The candidates are the predictions store's unlabelled texts, most recent first, at most
``label.max_candidates``, each text once (its latest row), leaving out every text already exported
(the store's ``label_tasks``) and every text already labelled (the training, evaluation and added
batches in ``data/``). The champion scores them again in one forward pass (its calibrated
probabilities, as it serves them, and sentence embeddings, as the drift check computes them), a strategy of ``finsent.labelling.select``
picks ``n``, and three files are written, each atomically, into a folder that holds no earlier export:
- ``tasks.json``: Label Studio's import format, the champion's choice as a pre-annotation;
- ``label_config.xml``: the labelling config those tasks need;
- ``to_label.csv``: the same texts as a plain CSV with an empty ``label`` column.
Only then are the chosen texts recorded in ``label_tasks``, in one transaction: a failed write
records nothing (the texts stay on offer), and a failed record leaves files whose texts may be
offered again, never texts marked exported that nobody received.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError

from finsent import files, utc
from finsent.config import Params, replace
from finsent.data import versioning
from finsent.data.frames import read_dataset, write_dataset
from finsent.errors import FinsentError
from finsent.labelling import label_studio
from finsent.labelling.keys import text_key, text_keys
from finsent.labelling.select import Selection, choose
from finsent.monitoring import drift
from finsent.monitoring.champion import Champion, cached_outputs, champion_reference, load_champion, reference_dir
from finsent.monitoring.store import insert_ignoring_duplicates, label_tasks, open_store, predictions, unusable
from finsent.paths import Layout
from finsent.vocabulary import LABELS

TASKS_FILE = "tasks.json"
CONFIG_FILE = "label_config.xml"
CSV_FILE = "to_label.csv"
EXPORT_FILES = (TASKS_FILE, CONFIG_FILE, CSV_FILE)
READ_CHUNK_ROWS = 5000  # store rows fetched at a time while looking for candidates


class LabellingError(FinsentError, ValueError):
    """Nothing can be exported or imported: no candidates, a folder holding an earlier export, no labels."""


@dataclass(frozen=True)
class Candidates:
    """The texts on offer: one row per text, and what was left out on the way."""

    frame: pd.DataFrame  # id, published_at, text, tickers, key
    rows_read: int
    already_exported: int  # texts (not rows) exported before
    already_labelled: int  # texts labelled in data/
    repeated: int  # older rows of a text met before


@dataclass(frozen=True)
class ExportSummary:
    strategy: str
    score_name: str
    exported: int
    candidates: int
    rows_read: int
    already_exported: int
    already_labelled: int
    repeated: int
    model_name: str
    model_version: str
    score_range: list[float]
    files: dict[str, str]
    seconds: dict[str, float] = field(default_factory=dict)


def labelled_keys(layout: Layout) -> set[str]:
    """The keys of every text labelled in ``data/``: the training file, the evaluation file (the test
    set is never offered for labelling) and the added batches."""
    paths = [layout.train_file, layout.eval_file, *sorted(layout.batches_dir.glob("*.csv"))]
    return set().union(*(text_keys(read_dataset(path)["text"]) for path in paths if path.is_file()))


def exported_keys(engine: Engine) -> set[str]:
    try:
        with engine.connect() as conn:
            return set(conn.execute(select(label_tasks.c.text_key)).scalars())
    except SQLAlchemyError as exc:
        raise unusable(engine.url.render_as_string(hide_password=True), exc) from exc


def read_candidates(engine: Engine, labelled: set[str], max_candidates: int) -> Candidates:
    """The most recent unlabelled stored texts, each once, that were never exported nor labelled."""
    exported = exported_keys(engine)
    query = (
        select(predictions.c.id, predictions.c.published_at, predictions.c.text, predictions.c.tickers)
        .where(predictions.c.label.is_(None))
        .order_by(predictions.c.published_at.desc(), predictions.c.id.desc())
    )
    rows: list[dict] = []
    seen: set[str] = set()
    read = n_exported = n_labelled = repeated = 0
    try:
        with engine.connect() as conn:
            result = conn.execution_options(yield_per=READ_CHUNK_ROWS).execute(query)
            for row in result:
                read += 1
                key = text_key(row.text)
                if key in seen:
                    repeated += 1
                    continue
                seen.add(key)
                if key in exported:
                    n_exported += 1
                elif key in labelled:
                    n_labelled += 1
                else:
                    rows.append({"id": int(row.id), "published_at": row.published_at, "text": row.text, "tickers": row.tickers, "key": key})
                    if len(rows) >= max_candidates:
                        break
            result.close()
    except SQLAlchemyError as exc:
        raise unusable(engine.url.render_as_string(hide_password=True), exc) from exc
    frame = pd.DataFrame(rows, columns=["id", "published_at", "text", "tickers", "key"])
    return Candidates(frame, rows_read=read, already_exported=n_exported, already_labelled=n_labelled, repeated=repeated)


def reference_embeddings(p: Params, root: Path, champion: Champion) -> np.ndarray:
    """The champion's embeddings of its training reference: the sample and cache the drift check uses."""
    cache = reference_dir(p, root, champion)
    reference = drift.sample_rows(champion_reference(champion, cache), p.drift.max_rows, p.drift.seed)
    embeddings, _ = cached_outputs(p, champion, reference["text"].astype(str).tolist(), cache / "outputs.npz")
    return embeddings


def chosen_rows(candidates: pd.DataFrame, probs: np.ndarray, selection: Selection) -> pd.DataFrame:
    """The chosen candidates in the selection's order, with what the files show of each."""
    position = pd.Series(np.arange(len(candidates)), index=candidates["id"].to_numpy())
    rows = position.loc[selection.ids].to_numpy()
    out = candidates.iloc[rows].reset_index(drop=True)
    published = pd.to_datetime(out["published_at"]).dt.tz_localize("UTC")
    return pd.DataFrame(
        {
            "id": out["id"].to_numpy(),
            "key": out["key"].to_numpy(),
            "text": out["text"].to_numpy(),
            "ticker": out["tickers"].fillna("").to_numpy(),
            "published_at": published.dt.strftime("%Y-%m-%dT%H:%M:%SZ").to_numpy(),
            "predicted": [LABELS[i] for i in probs[rows].argmax(axis=1)],
            "confidence": probs[rows].max(axis=1).astype(float),
            "strategy": selection.strategy,
            "score": selection.scores.astype(float),
        }
    )


def check_out_dir(out_dir: Path) -> Path:
    """The folder for the files: a folder holding an earlier export is refused (its texts are marked
    exported: overwriting it would lose them)."""
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise LabellingError(f"{out_dir} is a file, not a folder for the export")
    held = [name for name in EXPORT_FILES if (out_dir / name).exists()]
    if held:
        raise LabellingError(f"{out_dir} already holds an export ({', '.join(held)}); give a new folder with --out")
    return out_dir


def write_files(out_dir: Path, chosen: pd.DataFrame, model_version: str) -> dict[str, str]:
    """The three files, or none of them: a failed write removes those written before it."""
    tasks = label_studio.make_tasks(chosen, model_version)
    files.ensure_dir(out_dir)
    written: list[Path] = []
    try:
        written.append(files.write_text(out_dir / CONFIG_FILE, label_studio.label_config()))
        written.append(write_dataset(label_studio.to_label_frame(chosen), out_dir / CSV_FILE))
        written.append(files.write_text(out_dir / TASKS_FILE, json.dumps(tasks, indent=2, ensure_ascii=False)))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return {"tasks": str(out_dir / TASKS_FILE), "label_config": str(out_dir / CONFIG_FILE), "csv": str(out_dir / CSV_FILE)}


def record(engine: Engine, chosen: pd.DataFrame, champion: Champion, out_dir: Path) -> int:
    """Mark the chosen texts exported, in one transaction; returns the rows recorded (a text another
    export recorded at the same moment is left as that export recorded it)."""
    now = utc.naive(utc.now())
    rows = [
        {
            "text_key": row.key,
            "prediction_id": int(row.id),
            "exported_at": now,
            "strategy": row.strategy,
            "score": float(row.score),
            "model_name": champion.name,
            "model_version": champion.version,
            "out_dir": str(out_dir),
        }
        for row in chosen.itertuples(index=False)
    ]
    try:
        with engine.begin() as conn:
            done = conn.execute(insert_ignoring_duplicates(engine, label_tasks).returning(label_tasks.c.text_key), rows)
            return len(done.all())
    except SQLAlchemyError as exc:
        raise unusable(engine.url.render_as_string(hide_password=True), exc) from exc


def export(
    p: Params, root: Path, n: int | None, strategy: str | None, out_dir: Path, *, champion: Champion | None = None, log=print
) -> ExportSummary:
    """Choose ``n`` stored texts by ``strategy`` (the ``label`` section's defaults when None) and write
    them to ``out_dir`` for labelling. ``champion``: an already loaded champion (else the registry's)."""
    sections = {k: v for k, v in {"n": n, "strategy": strategy}.items() if v is not None}
    p = replace(p, label=sections) if sections else p  # checked like params.yaml: a bad n or strategy fails here
    root = Path(root).resolve()
    out_dir = check_out_dir(Path(out_dir).resolve())
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    engine = open_store(p.monitor, root)
    versioning.ensure_data(root, p.data, log=log)
    candidates = read_candidates(engine, labelled_keys(Layout.of(root, p)), p.label.max_candidates)
    seconds["read"] = time.perf_counter() - started
    if candidates.frame.empty:
        raise LabellingError(
            f"no text to export: the store's {candidates.rows_read} unlabelled rows are all exported already "
            f"({candidates.already_exported}), labelled in data/ ({candidates.already_labelled}) or repeats ({candidates.repeated})"
        )
    started = time.perf_counter()
    champion = champion or load_champion(p, root)
    texts = candidates.frame["text"].astype(str).tolist()
    embeddings, probs = drift.champion_outputs(
        champion.scorer.model,
        champion.scorer.tokenizer,
        texts,
        max_length=p.drift.embedding_max_length,
        batch_size=p.drift.embedding_batch_size,
        calibration=champion.scorer.calibration,  # the probabilities the champion serves
    )
    reference = reference_embeddings(p, root, champion) if p.label.strategy == "drifted" else None
    seconds["score"] = time.perf_counter() - started
    started = time.perf_counter()
    selection = choose(p.label.strategy, candidates.frame["id"].to_numpy(), probs, embeddings, p.label.n, p.label, reference)
    seconds["select"] = time.perf_counter() - started
    chosen = chosen_rows(candidates.frame, probs, selection)
    paths = write_files(out_dir, chosen, f"{champion.name} v{champion.version}")
    recorded = record(engine, chosen, champion, out_dir)
    if recorded < len(chosen):
        log(f"{len(chosen) - recorded} of the exported texts were recorded by another export at the same moment")
    log(f"exported {len(chosen)} of {len(candidates.frame)} candidate texts by {selection.strategy} to {out_dir}")
    return ExportSummary(
        strategy=selection.strategy,
        score_name=selection.score_name,
        exported=len(chosen),
        candidates=len(candidates.frame),
        rows_read=candidates.rows_read,
        already_exported=candidates.already_exported,
        already_labelled=candidates.already_labelled,
        repeated=candidates.repeated,
        model_name=champion.name,
        model_version=champion.version,
        score_range=[float(selection.scores.min()), float(selection.scores.max())],
        files=paths,
        seconds={k: round(v, 3) for k, v in seconds.items()},
    )
