"""The install form built from a chart's values.schema.json and questions.yaml, and what a
submitted form means (appflow.server.ui.forms)."""

from __future__ import annotations

from typing import Any

from appflow.server.ui.forms import field_for, form_fields, groups, parse

SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["mqtt", "service"],
    "properties": {
        "mqtt": {
            "type": "object",
            "required": ["port"],
            "properties": {"port": {"type": "integer", "minimum": 1024, "description": "Port."}},
        },
        "service": {
            "type": "object",
            "properties": {
                "type": {"enum": ["ClusterIP", "NodePort"]},
                "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
            },
        },
        "persistence": {
            "type": "object",
            "properties": {"enabled": {"type": "boolean"}, "size": {"type": "string"}},
        },
        "tolerations": {"type": "array", "items": {"$ref": "#/$defs/toleration"}},
        "cpu": {"type": ["string", "integer", "number"]},
        "image": {"$ref": "#/$defs/image"},
    },
    "$defs": {
        "toleration": {"type": "object"},
        "image": {"type": "object", "properties": {"tag": {"type": "string"}}},
    },
}
QUESTIONS = [
    {
        "variable": "persistence.enabled",
        "label": "Keep data",
        "type": "boolean",
        "group": "Storage",
    },
    {
        "variable": "persistence.size",
        "label": "Size",
        "type": "string",
        "group": "Storage",
        "required": True,
        "show_if": "persistence.enabled=true",
    },
]
DEFAULTS = {
    "mqtt": {"port": 1883},
    "service": {"type": "ClusterIP", "annotations": {}},
    "persistence": {"enabled": False, "size": "1Gi"},
    "tolerations": [],
    "cpu": "100m",
    "image": {"tag": ""},
}


def fields() -> list[Any]:
    return form_fields(SCHEMA, QUESTIONS, DEFAULTS)


def test_questions_come_first_then_every_leaf_of_the_schema_once() -> None:
    found = {f.dotted: f for f in fields()}
    assert [f.dotted for f in fields()][:2] == ["persistence.enabled", "persistence.size"]
    assert sorted(found) == sorted(
        [
            "persistence.enabled",
            "persistence.size",
            "mqtt.port",
            "service.type",
            "service.annotations",
            "tolerations",
            "cpu",
            "image.tag",
        ]
    )
    assert found["persistence.size"].show_if == "persistence.enabled=true"
    assert found["persistence.size"].label == "Size"
    assert found["persistence.size"].group == "Storage"
    assert found["mqtt.port"].kind == "integer"
    assert found["mqtt.port"].required
    assert found["mqtt.port"].group == "mqtt"
    assert found["mqtt.port"].default == 1883
    assert found["service.type"].kind == "enum"
    assert found["service.type"].choices() == [
        ('"ClusterIP"', "ClusterIP"),
        ('"NodePort"', "NodePort"),
    ]
    assert found["service.annotations"].kind == "yaml"
    assert found["tolerations"].kind == "yaml"
    assert found["tolerations"].group == "General"
    assert found["cpu"].kind == "string", "a quantity stays text"
    assert found["image.tag"].kind == "string", "a $ref is followed"
    assert [g for g, _ in groups(fields())] == ["Storage", "mqtt", "service", "General", "image"]


def test_a_submission_keeps_only_what_differs_from_the_defaults() -> None:
    form = {
        "v:/persistence/enabled": "true",
        "v:/persistence/size": "1Gi",
        "v:/mqtt/port": "1884",
        "v:/service/type": '"NodePort"',
        "v:/service/annotations": "team: edge\n",
        "v:/tolerations": "[]",
        "v:/cpu": "100m",
        "v:/image/tag": "",
    }
    submitted = parse(fields(), form)
    assert submitted.errors == {}
    assert submitted.values == {
        "persistence": {"enabled": True},
        "mqtt": {"port": 1884},
        "service": {"type": "NodePort", "annotations": {"team": "edge"}},
    }


def test_an_unchecked_box_is_off_and_an_empty_number_is_not_set() -> None:
    defaults = {**DEFAULTS, "persistence": {"enabled": True, "size": "1Gi"}}
    submitted = parse(form_fields(SCHEMA, QUESTIONS, defaults), {"v:/mqtt/port": " "})
    assert submitted.values == {"persistence": {"enabled": False}}


def test_unreadable_values_are_named_by_field() -> None:
    submitted = parse(fields(), {"v:/mqtt/port": "eighty", "v:/service/annotations": "a: [1"})
    assert submitted.errors == {
        "v:/mqtt/port": "mqtt.port: 'eighty' is not an integer",
        "v:/service/annotations": "service.annotations: not valid YAML or JSON (line 1)",
    }


def test_a_problem_lands_on_the_field_that_holds_its_value() -> None:
    all_fields = fields()
    assert field_for(all_fields, ("mqtt", "port")).dotted == "mqtt.port"  # type: ignore[union-attr]
    assert field_for(all_fields, ("service", "annotations", "team")).dotted == "service.annotations"  # type: ignore[union-attr]
    assert field_for(all_fields, ("tolerations", 0, "key")).dotted == "tolerations"  # type: ignore[union-attr]
    assert field_for(all_fields, ("mqtt",)).dotted == "mqtt.port"  # type: ignore[union-attr]
    assert field_for(all_fields, ()) is None
    assert field_for(all_fields, ("nothing",)) is None


def test_field_names_are_json_pointers() -> None:
    odd = form_fields(
        {
            "type": "object",
            "properties": {"a/b": {"type": "object", "properties": {"c~d": {"type": "string"}}}},
        },
        [],
        {},
    )
    assert odd[0].name == "v:/a~1b/c~0d"
