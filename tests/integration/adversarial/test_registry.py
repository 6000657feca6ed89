"""The registry commands (and the commands that read the registry: predict, score, drift, checkout) on
unknown and malformed versions, an unknown alias, no champion, a champion moved by hand, versions whose
files are gone and tracking stores that are down. The champion never moves on a failure, and no decision
is recorded for it. Cases of tests/integration/test_cli_registry.py are not repeated."""

from __future__ import annotations

import pytest

from testkit import registry_synthetic as rs
from testkit.adversarial import Cli
from testkit.local_services import free_port as closed_port  # a port nothing listens on

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("version", ["99", "0", "-1", "1.5", "1e3", "", "1; DROP TABLE model_versions", "champion"])
def test_lineage_of_a_version_that_does_not_exist_is_named(shared_cli, version):
    shared_cli.fails("registry", "lineage", version, says="has no version")


@pytest.mark.parametrize("version", ["99", "latest", "2.0", "-2"])
def test_promote_of_a_version_that_does_not_exist_moves_nothing(cli, version):
    cli.fails("registry", "promote", version, "--reason", "operator test", says="has no version")


@pytest.mark.parametrize("reason", ["", "   ", "\t\n"], ids=["empty", "spaces", "whitespace"])
def test_promote_without_a_reason_is_refused(cli, reason):
    cli.fails("registry", "promote", "1", "--reason", reason, says="needs a reason")


def test_rollback_with_a_single_champion_has_nowhere_to_go(cli):
    cli.fails("registry", "rollback", says="no previous champion")


def test_history_limit_below_one_is_refused(shared_cli):
    shared_cli.fails("registry", "history", "--limit", "-3", says="limit must be >= 1")


def test_checkout_of_a_model_version_that_does_not_exist_changes_no_data(shared_cli):
    shared_cli.fails("data", "checkout", "99", says="has no version '99'")


@pytest.mark.parametrize("command", [["predict", "Acme beats estimates"], ["score", "NEWS"]], ids=["predict", "score"])
def test_an_alias_nobody_holds_is_named(shared_cli, news, command):
    file = str(news(10))
    shared_cli.fails(*[file if a == "NEWS" else a for a in command], "--alias", "nosuch", says="alias 'nosuch'")


def test_another_model_name_has_no_versions_to_promote(shared_cli):
    shared_cli.fails("--set", "register.model_name=other-model", "registry", "promote", "1", "--reason", "x", says="has no version")


# --- no champion: the alias was removed by hand ----------------------------------------------------------


@pytest.fixture
def no_champion(trained, capsys) -> Cli:
    rs.client_for(trained).delete_registered_model_alias(rs.MODEL, "champion")
    return Cli(trained, capsys)


@pytest.mark.parametrize(
    "command, says",
    [
        (["predict", "Acme beats estimates"], "alias 'champion'"),
        (["score", "NEWS"], "alias 'champion'"),
        (["monitor", "drift", "NEWS"], "alias 'champion'"),
        (["monitor", "run", "--no-retrain", "NEWS"], "alias 'champion'"),
        (["registry", "rollback"], "no champion to roll back"),
    ],
    ids=["predict", "score", "drift", "monitor-run", "rollback"],
)
def test_no_champion_is_named_and_nothing_is_scored(no_champion, news, command, says):
    file = str(news(10))
    no_champion.fails(*[file if a == "NEWS" else a for a in command], says=says)


# --- two champions in turn: 2 now, 1 before ----------------------------------------------------------------


@pytest.fixture
def two(promoted, capsys) -> Cli:
    return Cli(promoted, capsys)


def test_rollback_when_the_champion_was_moved_by_hand_is_refused(two):
    rs.client_for(two.project).set_registered_model_alias(rs.MODEL, "champion", "1")  # outside finsent
    two.fails("registry", "rollback", says="not set by a recorded decision")


def test_rollback_to_a_version_whose_files_are_gone_keeps_the_champion(two):
    rs.delete_model_files(two.project, "1")
    two.fails("registry", "rollback", says=("version 1", "missing"))


def test_promote_of_a_version_whose_files_are_gone_keeps_the_champion(two):
    rs.delete_model_files(two.project, "1")
    two.fails("registry", "promote", "1", "--reason", "bring it back", says=("version 1", "missing"))


@pytest.mark.parametrize("command", [["predict", "Acme beats"], ["score", "NEWS"]], ids=["predict", "score"])
def test_a_champion_whose_files_are_gone_is_named(two, news, command):
    rs.delete_model_files(two.project, "2")
    two.fails(*[str(news(10)) if a == "NEWS" else a for a in command], says="finsent-sentiment")


def test_a_second_rollback_has_nowhere_to_go(two):
    assert two.ok("registry", "rollback")["champion_after"] == "1"
    two.fails("registry", "rollback", says="no previous champion")


# --- tracking stores that are down ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["registry", "show"], ["registry", "promote", "1", "--reason", "x"], ["predict", "Acme beats"], ["data", "checkout", "1"]],
    ids=["show", "promote", "predict", "checkout"],
)
def test_an_mlflow_server_that_is_down_is_named(shared_cli, command):
    url = f"http://127.0.0.1:{closed_port()}"
    shared_cli.fails("--set", f"register.tracking_uri={url}", *command, says=("unreachable", url))


def test_mlflow_tracking_uri_from_the_environment_that_is_down_is_named(shared_cli, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    shared_cli.fails("registry", "history", says=("unreachable", url))


def test_an_unreachable_postgresql_tracking_store_is_named_without_its_password(shared_cli):
    url = f"postgresql+psycopg2://finsent:hunter2@127.0.0.1:{closed_port()}/mlflow"
    message = shared_cli.fails("--set", f"register.tracking_uri={url}", "registry", "show", says="unreachable")
    assert "hunter2" not in message


def test_an_unreachable_promotion_lock_database_keeps_the_champion(cli):
    url = f"postgresql+psycopg2://finsent:hunter2@127.0.0.1:{closed_port()}/locks"
    message = cli.fails("--set", f"register.lock_url={url}", "registry", "promote", "1", "--reason", "x", says="promotion-lock")
    assert "hunter2" not in message
