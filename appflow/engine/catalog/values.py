"""Install values: gathered in layers, checked against the chart's schema on every target.

Layers, lowest first: chart defaults < the entry's defaults (questions.yaml) < the
previous install's values (upgrades) < --values files < --set < --set-string < the
dashboard's form. The record keeps every layer but the chart's defaults; SOPS-encrypted
values files are kept as ciphertext and applied over them per cluster. The merged
values are validated per target cluster (cluster templating and keys can make them
differ), before any cluster is touched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from appflow.engine.secrets import split_encrypted
from appflow.errors import ConfigError, Where
from appflow.model.appdef import EncryptedValues, JsonPath
from appflow.model.catalog import (
    CHART_DEFAULT,
    ENTRY_DEFAULT,
    FROM_FORM,
    FROM_SET,
    PREVIOUS,
    CatalogEntry,
    layer_origins,
    parse_set,
    question_defaults,
    questions_to_schema,
    value_problems,
)
from appflow.model.records import ClusterRecord
from appflow.model.semver import parse_version
from appflow.model.values import has_templates, merge_values, render_templated_values
from appflow.sources import catalog as source


class ValuesRejected(ConfigError):
    """The install's values break the chart's schema; nothing was changed."""

    def __init__(self, app: str, problems: Sequence[tuple[JsonPath, str]]) -> None:
        self.problems = list(problems)
        """Each message with the path of the value it is about (() for the whole install)."""
        self.messages = [m for _, m in self.problems]
        text = "\n".join(f"  - {m}" for m in self.messages)
        super().__init__(
            f"values rejected before any cluster was touched:\n{text}", where=Where(app=app)
        )


@dataclass(frozen=True, kw_only=True)
class ValuesInput:
    """The values a user gives an install or upgrade."""

    files: tuple[Path, ...] = ()
    set_values: tuple[str, ...] = ()
    set_strings: tuple[str, ...] = ()
    previous: Mapping[str, Any] | None = None
    """An upgrade's earlier values (reused unless --reset-values)."""
    previous_encrypted: tuple[EncryptedValues, ...] = ()
    """An upgrade's earlier SOPS-encrypted values files, as ciphertext."""
    form: Mapping[str, Any] | None = None
    """Values as data, from the dashboard's install form; they win over everything else."""


@dataclass(frozen=True, kw_only=True)
class Values:
    user: dict[str, Any]
    """What the record keeps: entry defaults < previous < files < --set (no chart defaults)."""
    chart: dict[str, Any]
    origins: dict[Any, str] = field(default_factory=dict)
    encrypted: tuple[EncryptedValues, ...] = ()
    """SOPS-encrypted values files, as ciphertext: applied over ``user`` for each cluster."""


def gather_values(entry: CatalogEntry, chart_dir: Path, given: ValuesInput) -> Values:
    layers: list[tuple[Mapping[str, Any], str]] = [
        (question_defaults(entry.questions), ENTRY_DEFAULT)
    ]
    if given.previous:
        layers.append((given.previous, PREVIOUS))
    plain_files, encrypted = split_encrypted(given.files)
    layers.extend(source.file_values(plain_files))
    if given.set_values:
        layers.append((parse_set(given.set_values), FROM_SET))
    if given.set_strings:
        layers.append((parse_set(given.set_strings, strings=True), "from --set-string"))
    if given.form:
        layers.append((given.form, FROM_FORM))
    chart = source.chart_values(chart_dir)
    return Values(
        user=merge_values(*(values for values, _ in layers)),
        chart=chart,
        origins=layer_origins((chart, CHART_DEFAULT), *layers),
        encrypted=(*given.previous_encrypted, *encrypted),
    )


def values_schema(entry: CatalogEntry, chart_dir: Path) -> dict[str, Any] | None:
    """The entry's values.schema.json, else the chart's own; with questions.yaml's rules added."""
    base = dict(entry.schema) if entry.schema is not None else source.chart_schema(chart_dir)
    if not entry.questions:
        return base
    asked = questions_to_schema(entry.questions)
    if base is None:
        return asked
    # Both must hold; the values schema keeps its own draft, questions are 2020-12.
    return {**base, "allOf": [*cast(list[Any], base.get("allOf") or []), {"allOf": asked["allOf"]}]}


def check_values(
    entry: CatalogEntry,
    chart_dir: Path,
    values: Values,
    targets: Sequence[ClusterRecord],
) -> list[str]:
    """Every schema violation of VALUES, per target (cluster templating differs per target)."""
    return [m for _, m in value_problems_on(entry, chart_dir, values, targets)]


def value_problems_on(
    entry: CatalogEntry,
    chart_dir: Path,
    values: Values,
    targets: Sequence[ClusterRecord],
) -> list[tuple[JsonPath, str]]:
    """As ``check_values``, each message with the path of the value it is about."""
    schema = values_schema(entry, chart_dir)
    problems: list[tuple[JsonPath, str]] = []
    if entry.min_kube_version:
        floor = parse_version(entry.min_kube_version)
        for cluster in targets:
            have = parse_version(cluster.k8s_version or "")
            if floor is not None and have is not None and have.core < floor.core:
                problems.append(
                    (
                        (),
                        f"cluster {cluster.name} runs Kubernetes {cluster.k8s_version}; "
                        f"{entry.name} needs {entry.min_kube_version} or newer",
                    )
                )
    if schema is None:
        return problems
    merged = merge_values(values.chart, values.user)
    per_cluster: dict[str, list[tuple[JsonPath, str]]] = {}
    if has_templates(values.user):
        for cluster in targets:
            rendered = render_templated_values(
                merged, cluster_name=cluster.name, cluster_labels=cluster.labels
            )
            per_cluster[cluster.name] = value_problems(rendered, schema, origins=values.origins)
    else:
        found = value_problems(merged, schema, origins=values.origins)
        per_cluster = {c.name: found for c in targets} or {"": found}
    distinct = {tuple(v) for v in per_cluster.values()}
    if len(distinct) <= 1:
        problems.extend(next(iter(per_cluster.values()), []))
    else:
        for target, found in sorted(per_cluster.items()):
            problems.extend((path, f"on cluster {target}: {m}") for path, m in found)
    return problems
