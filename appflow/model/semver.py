"""Semantic versions and version constraints, for git tags and chart versions.

Pure: no I/O. Constraints follow npm's node-semver and Helm's Masterminds/semver,
which agree on the common forms:

- comparisons ``>=1.2``, ``>1.2.3``, ``<=2``, ``<2``, ``=1.4.0``, ``!=1.3.1``;
- AND by spaces or commas (``>=1.2 <2``, ``>=1.2, <2``), OR by ``||``;
- wildcards ``1.x``, ``2.*``, ``*``; a partial version is a wildcard (``1.2`` is
  ``1.2.x``);
- ``~1.4`` (patch updates: ``>=1.4.0 <1.5.0``; ``~1`` is ``>=1.0.0 <2.0.0``);
- ``^1.2`` (no change of the left-most non-zero part: ``^0.2.3`` is ``<0.3.0``);
- hyphen ranges ``1.2 - 1.4``.

A pre-release version (``1.3.0-rc.1``) matches only if a comparison in the same AND
group names a pre-release of the same ``major.minor.patch``, as in npm: ``>=1.2``
never picks a release candidate, ``>=1.3.0-rc.0`` may pick ``1.3.0-rc.1``.

Tags and versions may start with ``v`` (``v1.2.3``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from appflow.errors import ConfigError, Where

Identifier = int | str

_VERSION = re.compile(
    r"""^[vV]?
    (?P<major>0|[1-9]\d*)
    (?:\.(?P<minor>0|[1-9]\d*)
      (?:\.(?P<patch>0|[1-9]\d*))?
    )?
    (?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?
    (?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?
    $""",
    re.VERBOSE,
)

# A version inside a constraint: parts may be missing or wildcards.
_PARTIAL = re.compile(
    r"""^[vV]?
    (?P<major>\d+|[xX*])
    (?:\.(?P<minor>\d+|[xX*])
      (?:\.(?P<patch>\d+|[xX*]))?
    )?
    (?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?
    (?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?
    $""",
    re.VERBOSE,
)

_OPERATOR = re.compile(r"^(?P<op>>=|<=|!=|==|=|>|<|~>|~|\^)?\s*(?P<rest>.*)$")


@dataclass(frozen=True)
class Version:
    """A semantic version; ordered by SemVer 2.0 precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    prerelease: tuple[Identifier, ...] = ()
    build: tuple[str, ...] = field(default=(), compare=False)

    @classmethod
    def parse(cls, text: str) -> Version:
        """Parse ``1.2.3``, ``v1.2.3-rc.1+build``; ``1.2`` and ``1`` mean ``.0`` for the rest."""
        version = parse_version(text)
        if version is None:
            raise ConfigError(
                f"{text!r} is not a semantic version",
                hint="write it as MAJOR.MINOR.PATCH, e.g. 1.4.2 or v1.4.2-rc.1",
            )
        return version

    @property
    def core(self) -> tuple[int, int, int]:
        return (self.major, self.minor, self.patch)

    @property
    def is_prerelease(self) -> bool:
        return bool(self.prerelease)

    def _key(self) -> tuple[int, int, int, int, tuple[tuple[int, int, str], ...]]:
        # A release sorts after all of its pre-releases; numeric identifiers sort
        # before alphanumeric ones and compare as numbers (SemVer 2.0, item 11).
        pre = tuple((0, i, "") if isinstance(i, int) else (1, 0, i) for i in self.prerelease)
        return (self.major, self.minor, self.patch, 0 if self.prerelease else 1, pre)

    def __lt__(self, other: Version) -> bool:
        return self._key() < other._key()

    def __le__(self, other: Version) -> bool:
        return self._key() <= other._key()

    def __gt__(self, other: Version) -> bool:
        return self._key() > other._key()

    def __ge__(self, other: Version) -> bool:
        return self._key() >= other._key()

    def __str__(self) -> str:
        text = f"{self.major}.{self.minor}.{self.patch}"
        if self.prerelease:
            text += "-" + ".".join(str(i) for i in self.prerelease)
        if self.build:
            text += "+" + ".".join(self.build)
        return text


def parse_version(text: str) -> Version | None:
    """The version a tag or chart version names, or None if it names none."""
    match = _VERSION.match(text.strip())
    if not match:
        return None
    return Version(
        int(match.group("major")),
        int(match.group("minor") or 0),
        int(match.group("patch") or 0),
        _prerelease(match.group("pre")),
        tuple(match.group("build").split(".")) if match.group("build") else (),
    )


def _prerelease(text: str | None) -> tuple[Identifier, ...]:
    if not text:
        return ()
    return tuple(int(p) if p.isdigit() else p for p in text.split("."))


Op = Literal["<", "<=", ">", ">=", "=", "!="]


@dataclass(frozen=True)
class Comparator:
    """One comparison of a version with a bound: ``>= 1.2.0``."""

    op: Op
    bound: Version

    def allows(self, version: Version) -> bool:
        match self.op:
            case "<":
                return version < self.bound
            case "<=":
                return version <= self.bound
            case ">":
                return version > self.bound
            case ">=":
                return version >= self.bound
            case "=":
                return version == self.bound
            case "!=":
                return version != self.bound


@dataclass(frozen=True)
class Excluded:
    """``!=1.2``: the version is outside ``[low, high)``."""

    low: Version
    high: Version | None

    def allows(self, version: Version) -> bool:
        return version < self.low or (self.high is not None and version >= self.high)


Term = Comparator | Excluded


@dataclass(frozen=True)
class Constraint:
    """A parsed version constraint: OR over groups, AND within a group."""

    text: str
    groups: tuple[tuple[Term, ...], ...]

    @classmethod
    def parse(cls, text: str) -> Constraint:
        return parse_constraint(text)

    def allows(self, version: Version) -> bool:
        return any(_group_allows(group, version) for group in self.groups)

    def __str__(self) -> str:
        return self.text


def _group_allows(group: tuple[Term, ...], version: Version) -> bool:
    if not all(term.allows(version) for term in group):
        return False
    if not version.is_prerelease:
        return True
    # npm's rule: a pre-release is a candidate only when the constraint itself
    # names a pre-release of the same major.minor.patch.
    return any(
        isinstance(term, Comparator)
        and term.bound.is_prerelease
        and term.bound.core == version.core
        for term in group
    )


def parse_constraint(text: str) -> Constraint:
    """Parse a constraint such as ``>=1.2 <2``, ``1.x || ^3.1``, ``~1.4``; raise ConfigError."""
    source = text.strip()
    if not source:
        raise _invalid(text, "it is empty")
    groups: list[tuple[Term, ...]] = []
    for alternative in source.split("||"):
        groups.append(_parse_group(text, alternative))
    return Constraint(source, tuple(groups))


def _parse_group(text: str, alternative: str) -> tuple[Term, ...]:
    # Operators may be separated from their version by spaces ('>= 1.2'); join them
    # first, then split on spaces and commas.
    joined = re.sub(r"(>=|<=|!=|==|~>|[<>=~^])\s+", r"\1", alternative.strip())
    tokens = [t for t in re.split(r"[\s,]+", joined) if t]
    if not tokens:
        raise _invalid(text, "an alternative between '||' is empty")
    terms: list[Term] = []
    i = 0
    while i < len(tokens):
        if i + 2 < len(tokens) and tokens[i + 1] == "-":
            terms.extend(_hyphen(text, tokens[i], tokens[i + 2]))
            i += 3
            continue
        terms.extend(_parse_term(text, tokens[i]))
        i += 1
    return tuple(terms)


@dataclass(frozen=True)
class _Partial:
    major: int | None
    minor: int | None
    patch: int | None
    prerelease: tuple[Identifier, ...]

    def low(self) -> Version:
        return Version(self.major or 0, self.minor or 0, self.patch or 0, self.prerelease)

    def high(self) -> Version | None:
        """The first version above this wildcard range, or None for '*'."""
        if self.major is None:
            return None
        if self.minor is None:
            return Version(self.major + 1, 0, 0)
        if self.patch is None:
            return Version(self.major, self.minor + 1, 0)
        return None

    @property
    def exact(self) -> bool:
        return self.patch is not None


def _partial(text: str, token: str) -> _Partial:
    match = _PARTIAL.match(token)
    if not match:
        raise _invalid(text, f"{token!r} is not a version")
    parts: list[int | None] = []
    wild = False
    for name in ("major", "minor", "patch"):
        value = match.group(name)
        # Everything after a wildcard is a wildcard too: '1.x.3' means '1.x'.
        if value is None or value in ("x", "X", "*") or wild:
            wild = True
            parts.append(None)
        else:
            parts.append(int(value))
    pre = _prerelease(match.group("pre"))
    if pre and parts[2] is None:
        raise _invalid(text, f"{token!r} names a pre-release of an incomplete version")
    return _Partial(parts[0], parts[1], parts[2], pre)


def _parse_term(text: str, token: str) -> list[Term]:
    match = _OPERATOR.match(token)
    assert match is not None  # the pattern accepts any string
    op, rest = match.group("op") or "", match.group("rest")
    if not rest:
        raise _invalid(text, f"{token!r} has an operator but no version")
    p = _partial(text, rest)
    low, high = p.low(), p.high()
    if op in ("", "=", "=="):
        if p.exact:
            return [Comparator("=", low)]
        return _range(low, high)
    if op == "!=":
        return [Comparator("!=", low)] if p.exact else [Excluded(low, high)]
    if op == ">":
        if p.exact:
            return [Comparator(">", low)]
        # '>1.2' means above every 1.2.x; '>*' matches nothing.
        return [Comparator(">=", high)] if high else [Comparator("<", Version(0, 0, 0))]
    if op == ">=":
        return [Comparator(">=", low)]
    if op == "<":
        return [Comparator("<", low)]
    if op == "<=":
        if p.exact:
            return [Comparator("<=", low)]
        return [Comparator("<", high)] if high else [Comparator(">=", Version(0, 0, 0))]
    if op in ("~", "~>"):
        if p.major is None:
            return [Comparator(">=", Version(0, 0, 0))]
        if p.minor is None:
            return _range(low, Version(p.major + 1, 0, 0))
        return _range(low, Version(p.major, p.minor + 1, 0))
    # '^': allow changes that keep the left-most non-zero part.
    if p.major is None:
        return [Comparator(">=", Version(0, 0, 0))]
    if p.major > 0 or p.minor is None:
        return _range(low, Version(p.major + 1, 0, 0))
    if p.minor > 0 or p.patch is None:
        return _range(low, Version(0, p.minor + 1, 0))
    return _range(low, Version(0, 0, p.patch + 1))


def _range(low: Version, high: Version | None) -> list[Term]:
    terms: list[Term] = [Comparator(">=", low)]
    if high is not None:
        terms.append(Comparator("<", high))
    return terms


def _hyphen(text: str, first: str, last: str) -> list[Term]:
    low = _partial(text, first).low()
    upper = _partial(text, last)
    high = upper.high()
    if upper.exact or upper.major is None:
        terms: list[Term] = [Comparator(">=", low)]
        if upper.major is not None:
            terms.append(Comparator("<=", upper.low()))
        return terms
    return _range(low, high)


def _invalid(text: str, why: str) -> ConfigError:
    return ConfigError(
        f"invalid version constraint {text!r}: {why}",
        where=Where(field="version"),
        hint="examples: '>=1.2 <2', '1.x', '~1.4', '^1.2', '1.2 - 1.4', '1.x || 2.x'",
    )


def highest_match(constraint: Constraint | str, names: Iterable[str]) -> tuple[str, Version] | None:
    """The name (tag, chart version) with the highest version the constraint allows.

    Names that are not versions are skipped. When two names give one version
    (``v1.2.0`` and ``1.2.0``) the one that sorts first wins, so the choice is stable.
    """
    parsed = parse_constraint(constraint) if isinstance(constraint, str) else constraint
    best: tuple[str, Version] | None = None
    for name in sorted(names):
        version = parse_version(name)
        if version is None or not parsed.allows(version):
            continue
        if best is None or version > best[1]:
            best = (name, version)
    return best


def sort_versions(names: Iterable[str]) -> list[str]:
    """The names that are versions, highest first."""
    versioned = [(v, n) for n in names if (v := parse_version(n)) is not None]
    versioned.sort(key=lambda pair: (pair[0]._key(), pair[1]), reverse=True)
    return [n for _, n in versioned]
