"""Dataset versions with DVC.

``data/`` is one DVC-tracked folder (``data.dvc``). Its version is the DVC hash of the folder; with
the git commit it names exactly what a run trained on, and ``checkout_version`` restores it from the
DVC cache or remote. A fresh clone with no reachable remote bootstraps ``data/`` from the copy shipped
in git (``datasets/tfns``), which hashes to the committed version.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from finsent.config import DataParams
from finsent.errors import FinsentError

DVC_FILE = "data.dvc"


class VersioningError(FinsentError, RuntimeError):
    """DVC could not produce or restore a dataset version."""


@dataclass(frozen=True)
class DataVersion:
    dvc_md5: str  # hash of the data/ folder, as in data.dvc ("<md5>.dir")
    git_commit: str | None  # HEAD when the version was read
    data_dvc_committed: bool  # False when data.dvc differs from HEAD (version not yet in git)

    def to_tags(self) -> dict[str, str]:
        return {
            "data.dvc_md5": self.dvc_md5,
            "data.git_commit": self.git_commit or "none",
            "data.dvc_file_committed": str(self.data_dvc_committed).lower(),
        }

    def to_dict(self) -> dict:
        return asdict(self)


@contextlib.contextmanager
def _repo(root: Path):
    """A DVC Repo with the working directory at its root: DVC resolves targets against the cwd."""
    import os

    from dvc.repo import Repo

    logging.getLogger("dvc").setLevel(logging.WARNING)
    previous = os.getcwd()
    os.chdir(root)
    try:
        with Repo(str(root)) as repo:
            yield repo
    except FinsentError:
        raise
    except Exception as exc:  # a DVC config, cache or repository DVC cannot use: say what, in one line
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise VersioningError(f"DVC cannot work in {root}: {type(exc).__name__}: {reason}") from exc
    finally:
        os.chdir(previous)


def _git(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=False)


def recorded_md5(root: Path) -> str | None:
    """The folder hash that data.dvc records, or None when there is no data.dvc yet."""
    path = root / DVC_FILE
    if not path.is_file():
        return None
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        outs = raw.get("outs") or []
        md5 = outs[0].get("md5") if outs else None
    except (yaml.YAMLError, UnicodeDecodeError, AttributeError, TypeError, KeyError) as exc:
        raise VersioningError(f"{path} is not a DVC file ({type(exc).__name__}); restore it, e.g. git checkout {DVC_FILE}") from exc
    if not md5:  # an empty file (a write cut short) is not "no version yet": that would re-initialise data/
        raise VersioningError(f"{path} records no data version (empty or cut short); restore it, e.g. git checkout {DVC_FILE}")
    return md5


def current_version(root: Path) -> DataVersion:
    md5 = recorded_md5(root)
    if md5 is None:
        raise VersioningError(f"{root / DVC_FILE} not found: run `finsent data init` (or `dvc add data`) first")
    head = _git(root, "rev-parse", "HEAD")
    commit = head.stdout.strip() if head.returncode == 0 else None
    clean = _git(root, "diff", "--quiet", "HEAD", "--", DVC_FILE).returncode == 0 if commit else False
    return DataVersion(dvc_md5=md5, git_commit=commit, data_dvc_committed=clean)


def _changes(repo) -> list:
    """What differs between data/ and data.dvc; 'not in cache' is not a difference of content."""
    status = repo.status(targets=[DVC_FILE])
    changes = []
    for entries in status.values():
        for entry in entries:
            if isinstance(entry, dict):
                for kind, outs in entry.items():
                    if isinstance(outs, dict) and all(v == "not in cache" for v in outs.values()):
                        continue
                    changes.append({kind: outs})
            else:
                changes.append(entry)
    return changes


def is_in_sync(root: Path) -> bool:
    """True when data/ holds exactly what data.dvc records."""
    with _repo(root) as repo:
        return not _changes(repo)


def _copy_shipped(root: Path, p: DataParams) -> None:
    shipped = root / p.shipped_dir
    target = root / p.data_dir / Path(p.train_file).parent
    if not shipped.is_dir():
        raise VersioningError(f"shipped dataset {shipped} not found")
    target.mkdir(parents=True, exist_ok=True)
    for item in shipped.iterdir():
        if item.is_file():
            shutil.copy2(item, target / item.name)


def ensure_data(root: Path, p: DataParams, log=print) -> DataVersion:
    """Make sure data/ holds the recorded version: from the DVC cache, else the remote, else the
    shipped copy (a fresh clone). Files a user added or changed under data/ are never overwritten:
    they are left for validation and ``version_workspace``.
    """
    root = Path(root)
    data = root / p.data_dir
    finish_interrupted_change_if_idle(root, log)
    if recorded_md5(root) is None:
        _copy_shipped(root, p)
        return add_and_push(root, p, message="initial dataset: shipped TFNS copy", log=log)
    if data.is_dir() and any(data.rglob("*.csv")):
        if not is_in_sync(root):
            log("data/ has changes not yet versioned; they will be validated, then versioned")
        return current_version(root)
    with _repo(root) as repo:
        with contextlib.suppress(Exception):
            repo.checkout(targets=[DVC_FILE])
        if not _changes(repo) and not repo.status(targets=[DVC_FILE]):
            log("data/ restored from the DVC cache")
            return current_version(root)
        try:
            repo.pull(targets=[DVC_FILE], remote=p.dvc_remote)
            if not repo.status(targets=[DVC_FILE]):
                log("data/ pulled from the DVC remote")
                return current_version(root)
        except Exception as exc:  # noqa: BLE001 - any remote failure falls back to the shipped copy
            log(f"DVC remote not usable ({type(exc).__name__}); trying the shipped copy")
    _copy_shipped(root, p)
    recorded, dvc_file = recorded_md5(root), (root / DVC_FILE).read_bytes()
    missing = VersioningError(
        f"data/ differs from the version in {DVC_FILE} ({recorded}) and that version is in no DVC cache "
        "or reachable remote; run `dvc pull` with access to the remote that holds it"
    )
    if not is_in_sync(root):
        raise missing
    with _repo(root) as repo:
        repo.commit(DVC_FILE, force=True)  # fill the cache; the hash is unchanged
    if recorded_md5(root) != recorded:  # with no cache DVC cannot compare: the commit hashed something else
        (root / DVC_FILE).write_bytes(dvc_file)
        raise missing
    _push(root, p, log)
    log("data/ bootstrapped from the shipped copy")
    return current_version(root)


def version_workspace(root: Path, p: DataParams, log=print, git_commit: bool = False) -> DataVersion:
    """After validation: version data/ if it changed since data.dvc (dvc add, dvc push), else return
    the current version. The flow leaves committing data.dvc to the user (``data_dvc_committed``
    records it); the data can be restored from its hash alone."""
    if is_in_sync(root):
        return current_version(root)
    return add_and_push(root, p, message="version validated changes under data/", log=log, git_commit=git_commit)


def _push(root: Path, p: DataParams, log) -> None:
    try:
        with _repo(root) as repo:
            repo.push(targets=[DVC_FILE], remote=p.dvc_remote)
    except Exception as exc:  # noqa: BLE001
        raise VersioningError(f"dvc push to remote {p.dvc_remote or '(default)'} failed: {exc}") from exc


def _commit_data_dvc(root: Path, message: str, log) -> None:
    if not (root / ".git").exists():
        return
    _git(root, "add", DVC_FILE, ".gitignore")
    done = _git(root, "commit", "-m", f"data: {message}", "--", DVC_FILE, ".gitignore")
    if done.returncode != 0 and "nothing" not in done.stdout + done.stderr:
        log(f"data.dvc not committed to git: {done.stderr.strip() or done.stdout.strip()}")


def add_and_push(
    root: Path, p: DataParams, message: str, log=print, git_commit: bool = True, on_pushed: Callable[[], None] | None = None
) -> DataVersion:
    """Version data/ as it is now: dvc add, dvc push, and commit data.dvc to git when possible."""
    root = Path(root)
    with _repo(root) as repo:
        repo.add(p.data_dir)
    _push(root, p, log)
    if on_pushed is not None:
        on_pushed()
    if git_commit:
        _commit_data_dvc(root, message, log)
    return current_version(root)


# --- changes of the data version that survive a kill --------------------------------------------------
# A `data add` killed (kill -9, power loss) between copying its batch and pushing the new version left a
# version in data.dvc whose files the remote lacked, and the next training run trained on it; a `data
# checkout` killed while restoring left a partial data/ that training would have versioned as new data.
# Each writes a journal first. The next command to take the data lock (so the writer is gone) reads it:
# a change killed before its point of no return is rolled back, one killed after it is finished.


def _journal_path(root: Path) -> Path:
    return Path(root) / ".dvc" / "tmp" / "finsent-change.json"


def _restore_data_dvc(root: Path, previous: str | None) -> None:
    dvc_path = root / DVC_FILE
    if previous is not None and (not dvc_path.is_file() or dvc_path.read_text() != previous):
        dvc_path.write_text(previous)


def _in_project(root: Path, relative: str) -> Path:
    """A path the journal names, which must lie inside the project: the rollback deletes what it names."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()) or path == root.resolve():
        raise ValueError(f"the journal names {relative!r}, which is not inside the project")
    return path


def _finish_add(root: Path, record: dict, log) -> str:
    batch = record["batch"]
    target = _in_project(root, batch)
    if record["done"]:  # pushed: the version is whole in the remote; only data.dvc's git commit may be missing
        if record["git_commit"]:
            _commit_data_dvc(root, f"add batch {Path(batch).stem} (finished after an interruption)", log)
        return f"finished an interrupted `data add` of {batch}: its version had been pushed"
    dvc_path = root / DVC_FILE
    if not target.exists() and dvc_path.is_file() and dvc_path.read_text() == record["data_dvc"]:
        return f"cleared the journal of a `data add` of {batch} that was stopped before it changed anything"
    target.unlink(missing_ok=True)
    _restore_data_dvc(root, record["data_dvc"])
    return f"rolled back an interrupted `data add` of {batch} (stopped before its version was pushed)"


def _finish_checkout(root: Path, record: dict) -> str:
    data = _in_project(root, record["data_dir"])
    stash = _in_project(root, record["stash"]) if record["stash"] else None
    if record["done"]:  # data/ holds the version asked for: only the stash of the old one is left
        if stash is not None:
            shutil.rmtree(stash, ignore_errors=True)
        return f"finished an interrupted `data checkout` of {record['version']}"
    if stash is None:  # there was no data/ before: whatever was restored of it goes
        shutil.rmtree(data, ignore_errors=True)
    elif stash.exists():  # renamed aside (one atomic rename): put it back over the partial restore
        shutil.rmtree(data, ignore_errors=True)
        stash.rename(data)
    _restore_data_dvc(root, record["data_dvc"])
    return f"rolled back an interrupted `data checkout` of {record['version']}: data/ and {DVC_FILE} are as before it"


def interrupted_change(root: Path) -> dict | None:
    """The journal of a change that was killed (or is running now), as recorded; None when there is none."""
    journal = _journal_path(root)
    try:
        return json.loads(journal.read_text()) if journal.is_file() else None
    except (OSError, ValueError) as exc:
        return {"unreadable": str(journal), "error": repr(exc)}


def finish_interrupted_change(root: Path, log=print) -> str | None:
    """Roll back (or finish) a `data add` or `data checkout` that was killed; returns what was done.
    Call with the data lock held (``data_lock`` does)."""
    root = Path(root)
    journal = _journal_path(root)
    if not journal.is_file():
        return None
    try:
        record = json.loads(journal.read_text())
        done = _finish_add(root, record, log) if record["operation"] == "add" else _finish_checkout(root, record)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # unreadable, or data/ cannot be written
        raise VersioningError(
            f"an interrupted data change ({journal}) could not be finished ({exc!r}); check data/ and {DVC_FILE}, then delete the journal"
        ) from exc
    journal.unlink()
    log(done)
    return done


@contextlib.contextmanager
def _journal(root: Path, record: dict) -> Iterator[Callable[[], None]]:
    """The journal of one change for the block's duration; yields the call that marks its point of no
    return (an add's push, a checkout's restore)."""
    from finsent.files import write_json

    journal = _journal_path(root)
    write_json(journal, {**record, "done": False})

    def mark_done() -> None:
        write_json(journal, {**record, "done": True})

    try:
        yield mark_done
    finally:  # done or rolled back in this process: nothing is left for the next command
        journal.unlink(missing_ok=True)


def add_batch(root: Path, p: DataParams, batch_csv: Path, name: str, log=print, git_commit: bool = True) -> DataVersion:
    """Place an already validated batch under data/batches and version it. On any failure data/ and
    data.dvc go back to exactly what they were before (not to git's HEAD: after a training run
    data.dvc is usually newer than the last commit), so no half-added batch remains. A failure that is
    not finsent's own (a full disk, a read-only folder, DVC) is a ``VersioningError`` saying so."""
    root = Path(root)
    target = root / p.data_dir / p.batches_dir / f"{name}.csv"
    if target.exists():
        raise VersioningError(f"a batch named {name!r} is already versioned at {target}")
    dvc_path = root / DVC_FILE
    previous = dvc_path.read_bytes() if dvc_path.is_file() else None
    # The journal outlives the rollback below: a kill during it is finished by the next command.
    record = {"operation": "add", "batch": target.relative_to(root).as_posix(), "data_dvc": _text(previous), "git_commit": git_commit}
    with _journal(root, record) as mark_pushed:
        copied = False
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            copied = True  # from here on a partial copy may exist: it goes on failure
            shutil.copy2(batch_csv, target)
            return add_and_push(root, p, message=f"add batch {name}", log=log, git_commit=git_commit, on_pushed=mark_pushed)
        except BaseException as exc:
            if copied:
                target.unlink(missing_ok=True)
            if previous is not None and dvc_path.read_bytes() != previous:
                dvc_path.write_bytes(previous)
            if isinstance(exc, FinsentError) or not isinstance(exc, Exception):
                raise
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
            raise VersioningError(f"batch {name!r} could not be versioned ({reason}); data/ and {DVC_FILE} are as they were") from exc


class DataLockBusy(VersioningError):
    """Another command holds the data lock."""


@contextlib.contextmanager
def data_lock(root: Path, timeout_s: float = 600, log=print):
    """One change of the data version at a time in a project: two at once would each put back, on
    failure, the data.dvc they read before the other's change, and so undo it. Whoever takes the lock
    first finishes a data change that was killed (``finish_interrupted_change``)."""
    from filelock import FileLock, Timeout

    if not (Path(root) / ".dvc").is_dir():
        raise VersioningError(f"{root} is not a DVC repository (no .dvc folder): restore it from git, or run `dvc init`")
    path = Path(root) / ".dvc" / "tmp" / "finsent-data.lock"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(path), timeout=timeout_s)
        lock.acquire()
    except Timeout as exc:
        raise DataLockBusy(f"another command has been changing the data version for over {timeout_s:.0f} s ({path})") from exc
    except OSError as exc:
        raise VersioningError(f"cannot take the data lock {path}: {exc.strerror or exc}") from exc
    try:
        finish_interrupted_change(root, log)
        yield
    finally:
        lock.release()


def finish_interrupted_change_if_idle(root: Path, log=print) -> None:
    """``finish_interrupted_change`` for commands that read the data without the lock (training): done
    when no command holds the lock (one that does may be the change itself, still running)."""
    if not _journal_path(root).is_file():
        return
    with contextlib.suppress(DataLockBusy), data_lock(root, timeout_s=0, log=log):
        pass


def _text(data: bytes | None) -> str | None:
    return data.decode() if data is not None else None


def unversioned_files(root: Path, p: DataParams) -> list[str]:
    """What under data/ differs from the recorded version ([] when data/ is in sync): files added or
    removed by name, else the whole folder."""
    root = Path(root)
    if is_in_sync(root):
        return []
    data = root / p.data_dir
    recorded = recorded_files(root) or {}
    present = {f.relative_to(data).as_posix() for f in data.rglob("*") if f.is_file()}
    named = [f"{name} (not versioned)" for name in sorted(present - set(recorded))]
    named += [f"{name} (missing)" for name in sorted(set(recorded) - present)]
    return named or [f"{p.data_dir}/ (files changed)"]


MD5_DIR = re.compile(r"[0-9a-f]{32}\.dir")


def recorded_files(root: Path) -> dict[str, str] | None:
    """The files of the recorded version (path under data/ -> md5), from its manifest in the local DVC
    cache; None when the manifest is not there (a fresh clone before the data is restored)."""
    md5 = recorded_md5(root)
    if md5 is None:
        return None
    with _repo(root) as repo:
        manifest = Path(repo.cache.local.oid_to_path(md5))
    if not manifest.is_file():
        return None
    return {entry["relpath"]: entry["md5"] for entry in json.loads(manifest.read_text())}


def checkout_version(root: Path, p: DataParams, dvc_md5: str, log=print) -> DataVersion:
    """Restore data/ to the folder hash ``dvc_md5`` (from a run's lineage), from cache or remote.

    Nothing is touched until it is safe: data/ must hold no unversioned work (it would be lost), and
    the version is fetched into the local cache first, so a version that exists nowhere fails with
    data/ and data.dvc as they were. data.dvc is then rewritten to point at that version, and data/ is
    checked out from the cache; if that fails, the previous data/ and data.dvc are put back (and if it
    is killed, the next command that takes the data lock puts them back)."""
    root = Path(root)
    md5 = dvc_md5.removesuffix(".dir").lower() + ".dir"
    if not MD5_DIR.fullmatch(md5):
        raise VersioningError(f"{dvc_md5!r} is not a data version (a 32-digit DVC folder hash, from `finsent data status` or lineage)")
    with data_lock(root, log=log):
        _checkout(root, p, md5, log)
    log(f"data/ restored to version {md5}")
    return current_version(root)


def _checkout(root: Path, p: DataParams, md5: str, log) -> None:
    data = root / p.data_dir
    dvc_path = root / DVC_FILE
    backup = dvc_path.read_bytes() if dvc_path.exists() else None
    if backup is not None and data.is_dir() and not is_in_sync(root):
        raise VersioningError(
            f"{data} holds changes that are not versioned; version them (`finsent data add`, or `finsent train`) "
            "or move them out of data/ first: a checkout would overwrite them. Nothing was changed."
        )
    stash = data.with_name(f".{data.name}.before-checkout")  # the old data/, until the checkout is complete
    shutil.rmtree(stash, ignore_errors=True)
    had_data = data.exists()
    record = {
        "operation": "checkout",
        "version": md5,
        "data_dir": p.data_dir,
        "stash": stash.relative_to(root).as_posix() if had_data else None,
        "data_dvc": _text(backup),
    }
    with _journal(root, record) as mark_restored:
        dvc_path.write_text(yaml.safe_dump({"outs": [{"md5": md5, "path": p.data_dir, "hash": "md5"}]}, sort_keys=False))
        stashed = False
        try:
            with _repo(root) as repo:
                try:
                    repo.fetch(targets=[DVC_FILE], remote=p.dvc_remote)
                except Exception as exc:  # noqa: BLE001 - an unreachable remote or a missing version alike
                    log(f"dvc fetch: {type(exc).__name__}: {exc}")
                if not Path(repo.cache.local.oid_to_path(md5)).is_file() or _missing_from_cache(repo):
                    raise VersioningError(
                        f"data version {md5} is in no DVC cache or reachable remote (remote {p.dvc_remote or '(default)'}); nothing was changed"
                    )
                if had_data:
                    data.rename(stash)
                    stashed = True
                repo.checkout(targets=[DVC_FILE], force=True)
                if _changes(repo):
                    raise VersioningError(f"data version {md5} could not be fully restored; nothing was changed")
        except BaseException as exc:
            if stashed:
                shutil.rmtree(data, ignore_errors=True)
                stash.rename(data)
            if backup is not None:
                dvc_path.write_bytes(backup)
            if isinstance(exc, VersioningError) or not isinstance(exc, Exception):
                raise
            raise VersioningError(f"data version {md5} could not be restored ({type(exc).__name__}: {exc}); nothing was changed") from exc
        mark_restored()
        if had_data:
            shutil.rmtree(stash, ignore_errors=True)


def _missing_from_cache(repo) -> bool:
    """True when the local cache lacks some file of what data.dvc records."""
    status = repo.status(targets=[DVC_FILE])
    return any(
        isinstance(outs, dict) and "not in cache" in outs.values()
        for entries in status.values()
        for entry in entries
        if isinstance(entry, dict)
        for outs in entry.values()
    )


def quarantine(src: Path, quarantine_dir: Path, report_json: str) -> Path:
    """Keep a rejected batch, and why, outside the versioned data (whole, or not at all)."""
    stamp = None
    try:
        quarantine_dir.mkdir(parents=True, exist_ok=True)
        stamp = Path(tempfile.mkdtemp(prefix=f"{src.stem}-", dir=quarantine_dir))
        kept = stamp / src.name
        shutil.copy2(src, kept)
        (stamp / "validation_report.json").write_text(report_json)
    except OSError as exc:
        if stamp is not None:
            shutil.rmtree(stamp, ignore_errors=True)
        raise VersioningError(f"{src.name} failed validation, and cannot be kept in {quarantine_dir} ({exc.strerror or exc})") from exc
    return kept
