"""Inventory ids round-trip every object Kubernetes can name, and read the ids of older stores.

The strategies follow Kubernetes' own naming rules (k8s.io/apimachinery validation):
namespaces are DNS-1123 labels; most names are DNS-1123 subdomains, but RBAC objects take
any path segment (no '/' or '%', not '.' or '..'), so ':' '_' ' ' and non-ASCII are legal;
API groups are DNS-1123 subdomains (or empty for the core group); a kind may mix case but
must otherwise be a DNS-1035 label.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from appflow.model.inventory import Inventory, InventoryEntry, entries_from_lines
from appflow.model.objects import ObjectRef

_ALNUM = "abcdefghijklmnopqrstuvwxyz0123456789"

dns_label = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?\Z")
dns_subdomain = (
    st.lists(dns_label, min_size=1, max_size=4).map(".".join).filter(lambda s: len(s) <= 253)
)
path_segment = st.text(min_size=1, max_size=60).filter(
    lambda s: "/" not in s and "%" not in s and s not in (".", "..")
)
kind = st.from_regex(r"\A[a-zA-Z]([-a-zA-Z0-9]{0,30}[a-zA-Z0-9])?\Z")
namespace = st.one_of(st.just(""), dns_label)
group = st.one_of(st.just(""), dns_subdomain)
name = st.one_of(dns_subdomain, path_segment)


@st.composite
def legal_refs(draw: st.DrawFn) -> ObjectRef:
    return ObjectRef(group=draw(group), kind=draw(kind), namespace=draw(namespace), name=draw(name))


def legacy_id(ref: ObjectRef) -> str:
    """What appflow wrote before ids were escaped (Flux's form, unescaped)."""
    return f"{ref.namespace}_{ref.name}_{ref.group}_{ref.kind}"


@given(legal_refs())
@example(ObjectRef("rbac.authorization.k8s.io", "Role", "shop", "read_only"))
@example(ObjectRef("rbac.authorization.k8s.io", "ClusterRole", "", "system:edge_reader"))
@example(ObjectRef("example.com", "Widget", "shop", "_"))
@example(ObjectRef("example.com", "Widget", "shop", "__a__"))
def test_every_legal_object_round_trips(ref: ObjectRef) -> None:
    encoded = ref.encode()
    assert ObjectRef.decode(encoded) == ref
    # Exactly three separators: no field can leak into another.
    assert encoded.count("_") == 3


@given(legal_refs())
@example(ObjectRef("rbac.authorization.k8s.io", "RoleBinding", "shop", "a_b_c"))
@example(ObjectRef("", "ConfigMap", "", "x"))
def test_ids_written_before_escaping_read_back(ref: ObjectRef) -> None:
    # The migration of stored inventories rests on this: every legal object's old id is
    # read back as that object, so re-encoding it is exact.
    assert ObjectRef.decode(legacy_id(ref)) == ref


@given(legal_refs())
def test_names_without_underscores_keep_their_id(ref: ObjectRef) -> None:
    # Inventories of ordinary names are unchanged by the new encoding (and match Flux's).
    if "_" not in ref.name:
        assert ref.encode() == legacy_id(ref)


@given(st.text(), st.text(), st.text(), st.text())
@example("%", "%25", "_", "%5F")
def test_any_text_round_trips(group: str, kind: str, ns: str, name: str) -> None:
    ref = ObjectRef(group=group, kind=kind, namespace=ns, name=name)
    assert ObjectRef.decode(ref.encode()) == ref


@given(legal_refs(), legal_refs())
def test_different_objects_never_share_an_id(a: ObjectRef, b: ObjectRef) -> None:
    assert (a.encode() == b.encode()) == (a == b)


@given(st.lists(st.tuples(legal_refs(), st.sampled_from(["v1", "apps/v1", "example.com/v1"]))))
def test_inventories_round_trip_through_the_configmap_and_the_store(
    items: list[tuple[ObjectRef, str]],
) -> None:
    inventory = Inventory("web", tuple(InventoryEntry(ref, v) for ref, v in items))
    assert Inventory.from_data("web", inventory.to_data()) == inventory
    lines = [e.to_line() for e in inventory.entries]
    assert Inventory("web", entries_from_lines("web", lines)) == inventory


@pytest.mark.parametrize("text", ["a_b_c", "ns_na%ZZme_g_K", "ns_na%5me_g_K", "n%25s_a_b_c_d_e"])
def test_bad_escapes_and_short_ids_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not an inventory id"):
        ObjectRef.decode(text)


def test_configmaps_of_the_first_format_are_read() -> None:
    # Written by appflow before escaping: a Role whose name holds '_'.
    data = {
        "format": "1",
        "entries": '[\n{"id": "shop_read_only_rbac.authorization.k8s.io_Role", '
        '"v": "rbac.authorization.k8s.io/v1"}\n]\n',
    }
    [entry] = Inventory.from_data("web", data).entries
    assert entry.ref == ObjectRef("rbac.authorization.k8s.io", "Role", "shop", "read_only")
