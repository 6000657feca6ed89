"""Commands racing each other, each in its own process: the same file scored twice at once, two batches
added at once (also under the same name), two rollbacks at once. Every process ends with exit code 0 or
one clean error line, and the result is what one-after-the-other would give: rows stored once, every
batch reported added is in the recorded data version, one rollback."""

from __future__ import annotations

import json

import pytest

from finsent.data.versioning import is_in_sync, recorded_files
from testkit.adversarial import Snapshot, Spawned, one_error

pytestmark = pytest.mark.integration


def together(project, logs, *commands: list[str]) -> list[tuple[int, str, str]]:
    """Start every command at once; wait for all of them."""
    started = [Spawned(project, *cmd, logs=logs, tag=f"cmd{i}") for i, cmd in enumerate(commands)]
    return [s.wait(timeout_s=300) for s in started]


def test_the_same_file_scored_twice_at_once_is_stored_once(trained, news, tmp_path):
    file = news(300)
    before = Snapshot.take(trained)
    results = together(trained, tmp_path / "logs", ["score", str(file)], ["score", str(file)])
    assert [code for code, _, _ in results] == [0, 0], [err[-2000:] for _, _, err in results]
    statuses = sorted(json.loads(out)["status"] for _, out, _ in results)
    assert statuses == ["already_scored", "scored"]
    after = Snapshot.take(trained)
    assert after.rows() == before.rows() + 300 and after.rows("batches") == before.rows("batches") + 1
    assert before.diff(after, ignore=("store",)) == {}


@pytest.mark.slow  # the same batch added twice at once (below) covers the race in the fast run
def test_two_batches_added_at_once_are_both_versioned(untrained, batch, tmp_path):
    a, b = batch("alpha"), batch("beta")
    results = together(untrained, tmp_path / "logs", ["data", "add", str(a)], ["data", "add", str(b)])
    for code, _, err in results:
        assert code == 0, err[-3000:]
    versioned = recorded_files(untrained)
    assert {"batches/alpha.csv", "batches/beta.csv"} <= set(versioned)  # neither add undid the other
    assert is_in_sync(untrained)


def test_the_same_batch_added_twice_at_once_is_added_once(untrained, batch, tmp_path):
    a = batch("same")
    results = together(untrained, tmp_path / "logs", ["data", "add", str(a)], ["data", "add", str(a)])
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], [err[-2000:] for _, _, err in results]
    loser = next(err for code, _, err in results if code == 2)
    one_error(loser, says="already versioned")
    assert "batches/same.csv" in recorded_files(untrained)  # the loser's clean-up did not delete the winner's batch
    assert (untrained / "data" / "batches" / "same.csv").is_file() and is_in_sync(untrained)


@pytest.mark.slow  # beyond the list; the promotion lock has its own test (test_promotion_concurrency)
def test_two_rollbacks_at_once_roll_back_once(promoted, tmp_path):
    before = Snapshot.take(promoted)
    assert before.champion == "2"
    results = together(promoted, tmp_path / "logs", ["registry", "rollback"], ["registry", "rollback"])
    codes = sorted(code for code, _, _ in results)
    assert codes == [0, 2], [err[-2000:] for _, _, err in results]
    one_error(next(err for code, _, err in results if code == 2), says="no previous champion")
    after = Snapshot.take(promoted)
    assert after.champion == "1" and after.registry[3] == before.registry[3] + 1  # one decision recorded
