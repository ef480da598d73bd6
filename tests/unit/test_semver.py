"""Version constraints over tags and chart versions, as npm and Helm read them."""

from __future__ import annotations

import itertools

import pytest

from appflow.errors import ConfigError
from appflow.model.semver import (
    Version,
    highest_match,
    parse_constraint,
    parse_version,
    sort_versions,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1.2.3", Version(1, 2, 3)),
        ("v1.2.3", Version(1, 2, 3)),
        ("V0.0.1", Version(0, 0, 1)),
        ("1.2", Version(1, 2, 0)),
        ("2", Version(2, 0, 0)),
        ("1.0.0-rc.1", Version(1, 0, 0, ("rc", 1))),
        ("1.0.0-alpha-1.x+build.5", Version(1, 0, 0, ("alpha-1", "x"))),
    ],
)
def test_parse_version(text: str, expected: Version) -> None:
    assert parse_version(text) == expected


@pytest.mark.parametrize("text", ["latest", "release-1.2", "1.2.3.4", "01.2.3", "v", "1.2.3-", ""])
def test_non_versions_are_not_parsed(text: str) -> None:
    assert parse_version(text) is None


def test_version_parse_raises_a_config_error() -> None:
    with pytest.raises(ConfigError, match="'main' is not a semantic version"):
        Version.parse("main")


def test_precedence_follows_semver_2() -> None:
    ordered = [
        "1.0.0-alpha",
        "1.0.0-alpha.1",
        "1.0.0-alpha.beta",
        "1.0.0-beta",
        "1.0.0-beta.2",
        "1.0.0-beta.11",
        "1.0.0-rc.1",
        "1.0.0",
        "1.0.1",
        "1.1.0",
        "2.0.0",
        "10.0.0",
    ]
    versions = [Version.parse(t) for t in ordered]
    for low, high in itertools.pairwise(versions):
        assert low < high, (low, high)
        assert high > low
    assert Version.parse("1.0.0+a") == Version.parse("1.0.0+b")
    assert str(Version.parse("v1.0.0-rc.1+b.7")) == "1.0.0-rc.1+b.7"


@pytest.mark.parametrize(
    ("constraint", "allowed", "refused"),
    [
        (">=1.2 <2", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0"]),
        (">=1.2, <2", ["1.2.0", "1.9.9"], ["1.1.9", "2.0.0"]),
        (">= 1.2 < 2", ["1.2.0"], ["2.0.0"]),
        (">1.2", ["1.3.0"], ["1.2.0", "1.2.9"]),
        (">1.2.3", ["1.2.4"], ["1.2.3"]),
        ("<=1.2", ["1.2.9", "1.0.0"], ["1.3.0"]),
        ("<=1.2.3", ["1.2.3"], ["1.2.4"]),
        ("<1.2", ["1.1.9"], ["1.2.0"]),
        ("=1.4.0", ["1.4.0"], ["1.4.1"]),
        ("1.4.0", ["1.4.0"], ["1.4.1"]),
        ("!=1.3.1", ["1.3.0", "1.3.2"], ["1.3.1"]),
        (">=1 !=1.3", ["1.2.9", "1.4.0"], ["1.3.0", "1.3.7"]),
        ("1.x", ["1.0.0", "1.99.0"], ["0.9.0", "2.0.0"]),
        ("2.*", ["2.0.0", "2.5.1"], ["1.9.9", "3.0.0"]),
        ("1.2.x", ["1.2.0", "1.2.9"], ["1.3.0"]),
        ("1.2", ["1.2.0", "1.2.9"], ["1.3.0"]),
        ("*", ["0.0.1", "9.9.9"], []),
        ("~1.4", ["1.4.0", "1.4.9"], ["1.5.0", "1.3.9"]),
        ("~1.4.2", ["1.4.2", "1.4.9"], ["1.4.1", "1.5.0"]),
        ("~1", ["1.0.0", "1.9.0"], ["2.0.0"]),
        ("~>1.4", ["1.4.3"], ["1.5.0"]),
        ("^1.2", ["1.2.0", "1.99.0"], ["1.1.0", "2.0.0"]),
        ("^1.2.3", ["1.2.3", "1.9.0"], ["1.2.2", "2.0.0"]),
        ("^0.2.3", ["0.2.3", "0.2.9"], ["0.3.0", "0.2.2"]),
        ("^0.0.3", ["0.0.3"], ["0.0.4", "0.0.2"]),
        ("^0", ["0.0.1", "0.9.0"], ["1.0.0"]),
        ("^1.x", ["1.0.0", "1.5.0"], ["2.0.0"]),
        ("1.2 - 1.4", ["1.2.0", "1.4.9"], ["1.1.9", "1.5.0"]),
        ("1.2.3 - 2.3.4", ["1.2.3", "2.3.4"], ["1.2.2", "2.3.5"]),
        ("1.x || >=3.1 <3.2", ["1.5.0", "3.1.4"], ["2.0.0", "3.2.0"]),
        ("v1.x", ["1.2.0"], ["2.0.0"]),
    ],
)
def test_constraints(constraint: str, allowed: list[str], refused: list[str]) -> None:
    parsed = parse_constraint(constraint)
    for text in allowed:
        assert parsed.allows(Version.parse(text)), f"{constraint} should allow {text}"
    for text in refused:
        assert not parsed.allows(Version.parse(text)), f"{constraint} should refuse {text}"


@pytest.mark.parametrize(
    ("constraint", "allowed", "refused"),
    [
        (">=1.2", [], ["1.3.0-rc.1", "2.0.0-alpha"]),
        ("1.x", [], ["1.3.0-rc.1"]),
        (">=1.3.0-rc.0", ["1.3.0-rc.1", "1.3.0", "1.4.0"], ["1.4.0-rc.1", "1.3.0-alpha"]),
        ("^1.2.3-beta.2", ["1.2.3-beta.4", "1.2.3"], ["1.2.3-beta.1", "1.2.4-beta.1"]),
        # The pre-release must be named in the same alternative.
        ("1.x || >=3.0.0-rc.1", ["3.0.0-rc.2"], ["1.5.0-rc.1"]),
    ],
)
def test_prereleases_only_when_named(
    constraint: str, allowed: list[str], refused: list[str]
) -> None:
    parsed = parse_constraint(constraint)
    for text in allowed:
        assert parsed.allows(Version.parse(text)), f"{constraint} should allow {text}"
    for text in refused:
        assert not parsed.allows(Version.parse(text)), f"{constraint} should refuse {text}"


@pytest.mark.parametrize(
    ("constraint", "why"),
    [
        ("", "empty"),
        ("   ", "empty"),
        (">=", "no version"),
        ("banana", "'banana' is not a version"),
        (">=1.2 ||", "empty"),
        ("1.x-rc.1", "pre-release of an incomplete version"),
        ("=> 1.2", "not a version"),
    ],
)
def test_invalid_constraints_say_why(constraint: str, why: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_constraint(constraint)
    assert why in str(caught.value)
    assert "examples:" in str(caught.value)
    assert caught.value.where.field == "version"


def test_highest_match_picks_the_highest_allowed_tag() -> None:
    tags = ["v1.0.0", "v1.2.0", "v1.10.1", "v2.0.0", "v1.11.0-rc.1", "latest", "release"]
    assert highest_match(">=1.2 <2", tags) == ("v1.10.1", Version(1, 10, 1))
    assert highest_match("~1.2", tags) == ("v1.2.0", Version(1, 2, 0))
    assert highest_match("*", tags) == ("v2.0.0", Version(2, 0, 0))
    assert highest_match(">=3", tags) is None


def test_highest_match_is_stable_when_two_tags_name_one_version() -> None:
    assert highest_match("1.x", ["v1.2.0", "1.2.0"]) == ("1.2.0", Version(1, 2, 0))
    assert highest_match("1.x", ["1.2.0", "v1.2.0"]) == ("1.2.0", Version(1, 2, 0))


def test_sort_versions_skips_other_names() -> None:
    assert sort_versions(["v1.0.0", "main", "v1.10.0", "v1.9.0", "1.0.0-rc.1"]) == [
        "v1.10.0",
        "v1.9.0",
        "v1.0.0",
        "1.0.0-rc.1",
    ]
