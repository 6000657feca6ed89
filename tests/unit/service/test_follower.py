"""The champion follower swaps in a new version once it has loaded, keeps the old one serving when a
version cannot be loaded or the registry cannot be read, and does not retry a broken version forever."""

from __future__ import annotations

from finsent.service.follower import ChampionFollower


class FakeChampion:  # the follower only reads .version; loading a real model is the integration test's part
    def __init__(self, version: str) -> None:
        self.version = version
        self.name = "m"


class Registry:
    def __init__(self) -> None:
        self.alias: str | None = None
        self.broken: set[str] = set()
        self.down = False
        self.loads: list[str] = []

    def champion_version(self) -> str | None:
        if self.down:
            raise ConnectionError("registry unreachable")
        return self.alias

    def load(self, version: str):
        self.loads.append(version)
        if version in self.broken:
            raise FileNotFoundError(f"version {version}: weights missing")
        return FakeChampion(version)


def follower(registry: Registry, **callbacks) -> ChampionFollower:
    return ChampionFollower(registry.champion_version, registry.load, poll_s=60, **callbacks)


def test_no_champion_then_a_promotion_then_a_rollback():
    registry, swaps = Registry(), []
    f = follower(registry, on_swap=lambda loaded: swaps.append(loaded.version))
    assert not f.check() and f.current is None and "no champion" in f.load_error
    registry.alias = "1"
    assert f.check() and f.current.version == "1" and f.load_error is None
    assert not f.check()  # unchanged: nothing loaded again
    registry.alias = "2"
    assert f.check() and f.current.version == "2"
    registry.alias = "1"  # a rollback is just another move of the alias
    assert f.check() and f.current.version == "1"
    assert swaps == ["1", "2", "1"] and registry.loads == ["1", "2", "1"]


def test_a_version_that_cannot_load_leaves_the_old_one_serving_and_is_not_retried_until_the_alias_moves():
    registry, failures = Registry(), []
    f = follower(registry, on_load_failure=lambda version, error: failures.append(version))
    registry.alias = "1"
    f.check()
    registry.alias, registry.broken = "2", {"2"}
    assert not f.check()
    assert f.current.version == "1" and f.wanted == "2"
    assert "version 2 could not be loaded" in f.load_error and "weights missing" in f.load_error
    f.check()
    f.check()
    assert registry.loads == ["1", "2"] and failures == ["2"]  # broken once, tried once
    registry.alias = "3"
    assert f.check() and f.current.version == "3" and f.load_error is None
    registry.alias = "1"  # the alias returns to the serving version's predecessor: fine
    assert f.check() and f.current.version == "1"


def test_a_registry_that_is_down_keeps_the_model_serving_and_says_so():
    registry, errors = Registry(), []
    f = follower(registry, on_poll_error=errors.append)
    registry.alias = "1"
    f.check()
    registry.down = True
    assert not f.check()
    assert f.current.version == "1" and "registry unreachable" in f.poll_error and len(errors) == 1
    registry.down = False
    f.check()
    assert f.poll_error is None


def test_the_poll_loop_checks_at_start_and_stops():
    registry = Registry()
    registry.alias = "4"
    f = ChampionFollower(registry.champion_version, registry.load, poll_s=0.05)
    f.start()
    assert f.wait_first_check(10)
    f.stop(timeout_s=5)
    assert f.current.version == "4"
