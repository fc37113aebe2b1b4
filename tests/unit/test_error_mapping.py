import grpc
import pytest
from google.protobuf.message import Message
from google.rpc import code_pb2, error_details_pb2, status_pb2

from control_plane.api.errors import DOMAIN, internal_status, to_status, trailing_metadata
from control_plane.domain import errors, quotas
from control_plane.domain.errors import FieldViolation, Violations


def _details(status: status_pb2.Status) -> list[Message]:
    out: list[Message] = []
    for packed in status.details:
        for cls in (
            error_details_pb2.ErrorInfo,
            error_details_pb2.BadRequest,
            error_details_pb2.PreconditionFailure,
            error_details_pb2.QuotaFailure,
        ):
            if packed.Is(cls.DESCRIPTOR):
                message = cls()
                packed.Unpack(message)
                out.append(message)
                break
        else:
            raise AssertionError(f"unexpected detail {packed.type_url}")
    return out


class _Sub(errors.FailedPrecondition):
    pass


@pytest.mark.parametrize(
    ("error", "code", "reason"),
    [
        (errors.InvalidArgument("bad"), grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"),
        (errors.NotFound("gone"), grpc.StatusCode.NOT_FOUND, "NOT_FOUND"),
        (errors.AlreadyExists("dup"), grpc.StatusCode.ALREADY_EXISTS, "ALREADY_EXISTS"),
        (
            errors.FailedPrecondition("in use"),
            grpc.StatusCode.FAILED_PRECONDITION,
            "FAILED_PRECONDITION",
        ),
        (errors.Aborted("stale"), grpc.StatusCode.ABORTED, "ETAG_MISMATCH"),
        (errors.Unauthenticated("who"), grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED"),
        (errors.PermissionDenied("no"), grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED"),
        (errors.DomainError("boom"), grpc.StatusCode.INTERNAL, "INTERNAL"),
        (_Sub("subclass"), grpc.StatusCode.FAILED_PRECONDITION, "FAILED_PRECONDITION"),
        (
            errors.NotFound("gone", reason="PROVIDER_KEY_NOT_FOUND"),
            grpc.StatusCode.NOT_FOUND,
            "PROVIDER_KEY_NOT_FOUND",
        ),
    ],
)
def test_code_message_and_error_info(
    error: errors.DomainError, code: grpc.StatusCode, reason: str
) -> None:
    mapped, status = to_status(error)
    assert mapped == code
    assert status.code == code.value[0]
    assert status.message == error.message
    assert _details(status) == [error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN)]
    assert DOMAIN == "keyway.dev"


def test_every_domain_error_subclass_is_mapped_explicitly() -> None:
    for cls in errors.DomainError.__subclasses__():
        code, _ = to_status(cls("x"))
        assert code != grpc.StatusCode.INTERNAL, cls


def test_a_quota_names_itself_its_limit_and_its_flag() -> None:
    error = quotas.exceeded("provider_keys", 3, "accounts/acct_1", "account acct_1 has 3 keys")
    code, status = to_status(error)
    assert code == grpc.StatusCode.RESOURCE_EXHAUSTED
    info, failure = _details(status)
    assert info == error_details_pb2.ErrorInfo(
        reason="QUOTA_EXCEEDED",
        domain=DOMAIN,
        metadata={"quota": "provider_keys", "limit": "3", "flag": "--max-provider-keys"},
    )
    assert isinstance(failure, error_details_pb2.QuotaFailure)
    [violation] = failure.violations
    assert violation.subject == "accounts/acct_1"
    assert "--max-provider-keys" in status.message
    assert "provider_keys" in status.message


def test_invalid_argument_carries_bad_request_field_violations() -> None:
    error = errors.InvalidArgument(
        "invalid",
        [
            FieldViolation("router.rules[0].provider", "unknown provider 'x'"),
            FieldViolation("name", "is required"),
        ],
    )
    code, status = to_status(error)
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    info, bad = _details(status)
    assert info == error_details_pb2.ErrorInfo(reason="INVALID_ARGUMENT", domain=DOMAIN)
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert [(v.field, v.description) for v in bad.field_violations] == [
        ("router.rules[0].provider", "unknown provider 'x'"),
        ("name", "is required"),
    ]


def test_field_helper_builds_one_violation() -> None:
    error = errors.InvalidArgument.field("page_size", "must not be negative")
    assert error.message == "page_size: must not be negative"
    _, status = to_status(error)
    _, bad = _details(status)
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert [v.field for v in bad.field_violations] == ["page_size"]


def test_failed_precondition_carries_subjects() -> None:
    error = errors.FailedPrecondition(
        "provider key pk_1 is used by akc_a, akc_b", ["akc_a", "akc_b"], reason="KEY_IN_USE"
    )
    code, status = to_status(error)
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    info, failure = _details(status)
    assert info == error_details_pb2.ErrorInfo(reason="KEY_IN_USE", domain=DOMAIN)
    assert isinstance(failure, error_details_pb2.PreconditionFailure)
    assert [(v.type, v.subject) for v in failure.violations] == [
        ("KEY_IN_USE", "akc_a"),
        ("KEY_IN_USE", "akc_b"),
    ]
    assert all(v.description == error.message for v in failure.violations)


@pytest.mark.parametrize(
    "error",
    [errors.InvalidArgument("no violations"), errors.FailedPrecondition("no subjects")],
)
def test_empty_extras_add_no_detail(error: errors.DomainError) -> None:
    _, status = to_status(error)
    assert len(status.details) == 1


def test_internal_status_hides_the_cause() -> None:
    code, status = internal_status("req-123")
    assert code == grpc.StatusCode.INTERNAL
    assert status.code == code_pb2.INTERNAL
    assert "req-123" in status.message
    assert _details(status) == [error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN)]


def test_trailing_metadata_carries_the_serialised_status() -> None:
    _, status = to_status(errors.InvalidArgument.field("name", "is required"))
    ((key, value),) = trailing_metadata(status)
    assert key == "grpc-status-details-bin"
    assert status_pb2.Status.FromString(value) == status


# --- Violations -------------------------------------------------------------------------


def test_no_violations_raises_nothing() -> None:
    v = Violations()
    assert not v
    v.raise_if_any()


def test_one_violation_message() -> None:
    v = Violations()
    v.add("name", "is required")
    assert v
    with pytest.raises(errors.InvalidArgument) as caught:
        v.raise_if_any("invalid provider key")
    assert caught.value.message == "invalid provider key: name: is required"
    assert str(caught.value) == caught.value.message
    assert caught.value.violations == (FieldViolation("name", "is required"),)
    assert caught.value.reason == "INVALID_ARGUMENT"


@pytest.mark.parametrize(("count", "suffix"), [(2, " (and 1 more)"), (5, " (and 4 more)")])
def test_several_violations_summarise_the_first_and_count_the_rest(count: int, suffix: str) -> None:
    v = Violations()
    for i in range(count):
        v.add(f"f{i}", f"problem {i}")
    with pytest.raises(errors.InvalidArgument) as caught:
        v.raise_if_any(reason="CONFIG_INVALID")
    assert caught.value.message == "invalid request: f0: problem 0" + suffix
    assert [x.field for x in caught.value.violations] == [f"f{i}" for i in range(count)]
    assert caught.value.reason == "CONFIG_INVALID"


def test_a_status_stays_far_below_the_clients_metadata_cap() -> None:
    """Clients refuse trailers past 8 KiB: the caller would get a transport error
    instead of the answer. Quoted input, long lists and non-ASCII text are all cut."""
    quoted = "ü" * 10_000
    error = errors.InvalidArgument(
        f"bad {quoted}",
        [FieldViolation(f"router.rules[{i}].{quoted}", quoted) for i in range(10_000)],
    )
    _, status = to_status(error)
    assert len(status.SerializeToString()) < 4096
    assert len(status.message.encode()) <= 300
    assert status.message.endswith("…")
    (_, bad) = _details(status)
    assert isinstance(bad, error_details_pb2.BadRequest)
    assert len(bad.field_violations) == 10
    blocked = errors.FailedPrecondition(quoted, [f"ak_{i:016d}" for i in range(10_000)])
    _, status = to_status(blocked)
    assert len(status.SerializeToString()) < 4096
