"""The catalog's pure logic: --set parsing, questions, values validation, version resolution."""

from __future__ import annotations

from typing import Any

import pytest

from appflow.errors import ConfigError
from appflow.model.catalog import (
    CHART_DEFAULT,
    FROM_SET,
    CatalogEntry,
    ChartSource,
    index_document,
    index_from_data,
    index_to_data,
    layer_origins,
    parse_index,
    parse_set,
    question_defaults,
    questions_to_schema,
    resolve_version,
    shown,
    validate_values,
)
from appflow.model.codec import from_json, to_json
from appflow.model.records import TargetChoice
from appflow.model.values import merge_values

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "persistence": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "enabled": {"type": "boolean"},
                "size": {"type": "string", "pattern": "^[0-9]+(Mi|Gi)$"},
            },
            "required": ["size"],
        },
        "replicas": {"type": "integer", "minimum": 1},
        "service": {"type": "object", "properties": {"type": {"enum": ["ClusterIP", "NodePort"]}}},
    },
}
CHART = {"persistence": {"enabled": False, "size": "1Gi"}, "replicas": 1}


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        (["a=b"], {"a": "b"}),
        (["a.b.c=1"], {"a": {"b": {"c": 1}}}),
        (["a=1,b=2"], {"a": 1, "b": 2}),
        (["on=true,off=FALSE"], {"on": True, "off": False}),
        (["n=null"], {"n": None}),
        (
            ["zero=0,octal=007,neg=-3,float=1.5"],
            {"zero": 0, "octal": "007", "neg": -3, "float": "1.5"},
        ),
        (["list[1]=x"], {"list": [None, "x"]}),
        (["list[0].name=a,list[0].port=80"], {"list": [{"name": "a", "port": 80}]}),
        (["tags={a,b,3}"], {"tags": ["a", "b", 3]}),
        (["empty={}"], {"empty": []}),
        ([r"a\.b=c\,d"], {"a.b": "c,d"}),
        (["url=http://x/?a=b"], {"url": "http://x/?a=b"}),
        (["a.b=1", "a.c=2"], {"a": {"b": 1, "c": 2}}),
        (["a=1", "a=2"], {"a": 2}),
    ],
)
def test_parse_set_follows_helm(items: list[str], expected: dict[str, Any]) -> None:
    assert parse_set(items) == expected


def test_parse_set_string_keeps_strings() -> None:
    assert parse_set(["a=true,b=12"], strings=True) == {"a": "true", "b": "12"}


@pytest.mark.parametrize("item", ["novalue", "a..b=1", "a=1,,b=2", "[0]=x"])
def test_parse_set_refuses_malformed(item: str) -> None:
    with pytest.raises(ConfigError, match="--set"):
        parse_set([item])


def _origins(user: dict[str, Any], origin: str = FROM_SET) -> dict[Any, str]:
    return layer_origins((CHART, CHART_DEFAULT), (user, origin))


def test_pattern_violation_names_path_value_pattern_and_origin() -> None:
    user = parse_set(["persistence.size=10X"])
    messages = validate_values(merge_values(CHART, user), SCHEMA, origins=_origins(user))
    assert messages == ["persistence.size: '10X' does not match '^[0-9]+(Mi|Gi)$' (from --set)"]


def test_unknown_key_lists_the_allowed_keys() -> None:
    user = parse_set(["persistence.sise=2Gi"])
    messages = validate_values(merge_values(CHART, user), SCHEMA, origins=_origins(user))
    assert messages == [
        "persistence.sise: unknown key; allowed keys at persistence: enabled, size (from --set)"
    ]


def test_origin_of_a_values_file_and_of_a_chart_default() -> None:
    user = {"replicas": 0}
    origins = layer_origins((CHART, CHART_DEFAULT), (user, "from --values site.yaml"))
    messages = validate_values(
        merge_values(CHART, user, {"persistence": {"size": "big"}}),
        SCHEMA,
        origins=origins,
    )
    assert "replicas: 0 is less than the minimum of 1 (from --values site.yaml)" in messages
    # size was not given by the user here: its origin is the chart default layer.
    assert any(m.startswith("persistence.size: 'big'") and CHART_DEFAULT in m for m in messages)


def test_a_list_from_set_replaces_origins_below_it() -> None:
    origins = layer_origins(({"a": {"b": 1}}, CHART_DEFAULT), ({"a": [1]}, FROM_SET))
    assert ("a", "b") not in origins
    assert origins[("a",)] == FROM_SET


def test_valid_values_give_no_messages() -> None:
    user = parse_set(["persistence.size=2Gi,service.type=NodePort"])
    assert validate_values(merge_values(CHART, user), SCHEMA, origins=_origins(user)) == []


def test_draft7_schema_is_honoured() -> None:
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "properties": {"port": {"type": "integer", "maximum": 65535}},
    }
    assert validate_values({"port": 70000}, schema, origins={}) == [
        "port: 70000 is greater than the maximum of 65535 (chart default)"
    ]


def test_an_invalid_schema_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a valid JSON Schema"):
        validate_values({}, {"type": "no-such-type"}, origins={})


QUESTIONS: list[dict[str, Any]] = [
    {"variable": "persistence.enabled", "type": "boolean", "default": False},
    {
        "variable": "persistence.size",
        "type": "string",
        "default": "1Gi",
        "required": True,
        "show_if": "persistence.enabled=true",
    },
    {"variable": "auth.secret", "type": "string", "required": True, "default": ""},
    {"variable": "service.type", "type": "enum", "options": ["ClusterIP", "NodePort"]},
    {"variable": "replicas", "type": "int", "min": 1, "max": 3, "default": 1},
    {
        "variable": "tls.enabled",
        "type": "boolean",
        "show_subquestion_if": True,
        "subquestions": [{"variable": "tls.secret", "type": "string", "required": True}],
    },
]


def test_questions_become_a_schema() -> None:
    schema = questions_to_schema(QUESTIONS)
    ok = {"auth": {"secret": "s"}, "replicas": 2, "service": {"type": "NodePort"}}
    assert validate_values(ok, schema, origins={}) == []
    bad = {"auth": {"secret": ""}, "replicas": 5, "service": {"type": "LB"}}
    messages = validate_values(bad, schema, origins={})
    assert "auth.secret: '' should be non-empty (chart default)" in messages
    assert "replicas: 5 is greater than the maximum of 3 (chart default)" in messages
    assert any(m.startswith("service.type: 'LB' is not one of") for m in messages)


def test_show_if_makes_required_conditional() -> None:
    schema = questions_to_schema(QUESTIONS)
    base = {"auth": {"secret": "s"}}
    assert (
        validate_values({**base, "persistence": {"enabled": False, "size": ""}}, schema, origins={})
        == []
    )
    messages = validate_values(
        {**base, "persistence": {"enabled": True, "size": ""}}, schema, origins={}
    )
    assert messages == ["persistence.size: '' should be non-empty (chart default)"]


def test_subquestions_are_required_only_when_their_parent_matches() -> None:
    schema = questions_to_schema(QUESTIONS)
    base = {"auth": {"secret": "s"}}
    assert validate_values({**base, "tls": {"enabled": False}}, schema, origins={}) == []
    assert validate_values({**base, "tls": {"enabled": True}}, schema, origins={}) == [
        "tls.secret: is required but not set"
    ]


def test_question_defaults_and_visibility() -> None:
    defaults = question_defaults(QUESTIONS)
    assert defaults["persistence"] == {"enabled": False, "size": "1Gi"}
    assert defaults["replicas"] == 1
    assert not shown(QUESTIONS[1], defaults)
    assert shown(QUESTIONS[1], {"persistence": {"enabled": True}})


def test_resolve_picks_the_highest_allowed_version() -> None:
    versions = ["1.0.0", "1.2.0", "1.10.1", "2.0.0", "2.1.0-rc.1"]
    assert resolve_version(["2.x"], versions, chart="c") == "2.0.0"
    assert resolve_version([">=1.2 <2"], versions, chart="c") == "1.10.1"
    assert resolve_version(["^1.0.0", "~1.2"], versions, chart="c") == "1.2.0"
    assert resolve_version([], versions, chart="c") == "2.0.0"


def test_resolve_names_the_versions_that_exist() -> None:
    with pytest.raises(ConfigError) as caught:
        resolve_version(["3.x"], ["1.0.0", "2.0.0"], chart="mosquitto")
    assert "no version of chart mosquitto matches '3.x'" in str(caught.value)
    assert "versions that exist: 2.0.0, 1.0.0" in str(caught.value)


def test_entry_latest_respects_its_constraints() -> None:
    entry = CatalogEntry(
        name="x",
        display_name="X",
        description="d",
        chart=ChartSource(repo="https://r", name="x", version="<1.5"),
        version="^1.0.0",
        versions=("2.0.0", "1.6.0", "1.4.0", "0.9.0"),
    )
    assert entry.latest == "1.4.0"
    assert entry.matches(search="X")
    assert not entry.matches(category="database")


def test_index_round_trip_and_order() -> None:
    document = {
        "apiVersion": "v1",
        "entries": {
            "web": [
                {
                    "name": "web",
                    "version": "1.0.0",
                    "urls": ["web-1.0.0.tgz"],
                    "digest": "aa",
                    "created": "t1",
                },
                {
                    "name": "web",
                    "version": "1.10.0",
                    "urls": ["web-1.10.0.tgz"],
                    "digest": "bb",
                    "created": "t2",
                },
            ]
        },
    }
    index = parse_index(document, source="index.yaml")
    assert [v.version for v in index["web"]] == ["1.10.0", "1.0.0"]
    assert index_from_data(index_to_data(index)) == index
    again = parse_index(index_document(index["web"], generated="now"), source="generated")
    assert again == index


@pytest.mark.parametrize(
    "document",
    [
        None,
        "text",
        {"entries": []},
        {"entries": {"web": {"version": "1"}}},
        {"entries": {"web": [{}]}},
    ],
)
def test_a_malformed_index_is_refused(document: Any) -> None:
    with pytest.raises(ConfigError):
        parse_index(document, source="index.yaml")


def test_target_choice_needs_exactly_one() -> None:
    with pytest.raises(ConfigError, match="exactly one"):
        TargetChoice().check()
    with pytest.raises(ConfigError, match="exactly one"):
        TargetChoice(clusters=("a",), all=True).check()
    choice = TargetChoice(selector="site=berlin")
    choice.check()
    assert from_json(TargetChoice, to_json(choice)) == choice
