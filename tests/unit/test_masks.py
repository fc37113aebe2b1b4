import pytest
from keyway.v1 import access_key_configurations_pb2 as pb

from control_plane.domain.errors import InvalidArgument
from control_plane.domain.masks import merge, resolve

UPDATABLE = frozenset({"name", "description", "metadata", "access", "router"})


@pytest.mark.parametrize(
    ("resource", "expected"),
    [
        (pb.AccessKeyConfiguration(name="n"), {"name"}),
        (pb.AccessKeyConfiguration(name="n", description="d"), {"name", "description"}),
        (pb.AccessKeyConfiguration(access=pb.Access()), {"access"}),
        (
            pb.AccessKeyConfiguration(metadata="m", router=pb.Router(), id="akc_x", etag="e"),
            {"metadata", "router"},
        ),
    ],
)
def test_empty_mask_means_the_updatable_fields_that_are_set(
    resource: pb.AccessKeyConfiguration, expected: set[str]
) -> None:
    assert resolve(resource, [], UPDATABLE) == expected


@pytest.mark.parametrize(
    "resource",
    [
        pb.AccessKeyConfiguration(),
        pb.AccessKeyConfiguration(id="akc_x", etag="e", access_key_count=3),
    ],
)
def test_empty_mask_with_no_updatable_field_set_is_an_error(
    resource: pb.AccessKeyConfiguration,
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        resolve(resource, [], UPDATABLE)
    assert [v.field for v in caught.value.violations] == ["update_mask"]


@pytest.mark.parametrize("paths", [["*"], ["name", "*"]])
def test_star_means_every_updatable_field(paths: list[str]) -> None:
    # Even unset ones, so a full replace can clear values.
    assert resolve(pb.AccessKeyConfiguration(), paths, UPDATABLE) == UPDATABLE


def test_explicit_paths_are_used_as_given_even_if_unset() -> None:
    resource = pb.AccessKeyConfiguration(name="n")
    assert resolve(resource, ["description", "router"], UPDATABLE) == {"description", "router"}


@pytest.mark.parametrize(
    ("paths", "bad_fields"),
    [
        (["id"], ["update_mask.paths[0]"]),
        (["name", "etag"], ["update_mask.paths[1]"]),
        (
            ["create_time", "name", "access_key_count"],
            ["update_mask.paths[0]", "update_mask.paths[2]"],
        ),
        (["Name"], ["update_mask.paths[0]"]),
        (["router.rules"], ["update_mask.paths[0]"]),
    ],
)
def test_unknown_paths_are_violations_with_their_index(
    paths: list[str], bad_fields: list[str]
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        resolve(pb.AccessKeyConfiguration(name="n"), paths, UPDATABLE)
    assert [v.field for v in caught.value.violations] == bad_fields
    assert "updatable fields: access, description, metadata, name, router" in (
        caught.value.violations[0].description
    )


def test_field_prefix_is_configurable() -> None:
    with pytest.raises(InvalidArgument) as caught:
        resolve(pb.AccessKeyConfiguration(), ["bogus"], UPDATABLE, field="mask")
    assert [v.field for v in caught.value.violations] == ["mask.paths[0]"]


def test_merge_takes_only_the_named_fields_and_leaves_both_inputs_alone() -> None:
    current = pb.AccessKeyConfiguration(
        id="akc_x",
        name="old",
        description="kept",
        access=pb.Access(providers=pb.AllowList(allow=["openai"])),
        router=pb.Router(rules=[pb.RouterRule(provider="openai")]),
    )
    update = pb.AccessKeyConfiguration(name="new", description="ignored")
    merged = merge(current, update, ["name", "access", "router"])
    assert merged.name == "new"
    assert merged.description == "kept"
    assert merged.id == "akc_x"
    # A message field the update does not set is cleared: the mask asked for it.
    assert not merged.HasField("access")
    assert not merged.router.rules
    assert current.name == "old"
    assert current.HasField("access")
    assert update.description == "ignored"


def test_merge_replaces_repeated_fields_and_copies_messages_whole() -> None:
    current = pb.Router(rules=[pb.RouterRule(provider="a"), pb.RouterRule(provider="b")])
    update = pb.Router(rules=[pb.RouterRule(provider="c")])
    assert [r.provider for r in merge(current, update, ["rules"]).rules] == ["c"]
    config = pb.AccessKeyConfiguration(limits=pb.Limits(concurrency=3))
    limits = pb.AccessKeyConfiguration(limits=pb.Limits(requests_per_minute=9))
    merged = merge(config, limits, ["limits"])
    assert merged.limits.requests_per_minute == 9
    assert not merged.limits.HasField("concurrency")
