import copy
import logging
import pickle
from collections.abc import Callable

import pytest

from control_plane.secrets.secret import Secret

VALUE = "sk-proj-abcdefghijklmnopqrstuvwxyz"


def test_reveal_returns_the_value() -> None:
    assert Secret(VALUE).reveal() == VALUE


@pytest.mark.parametrize(
    "render",
    [
        repr,
        str,
        lambda s: f"{s}",
        lambda s: f"{s!r}",
        lambda s: "%r" % s,  # noqa: UP031 - %-formatting is exactly what is under test
        lambda s: "%s" % s,  # noqa: UP031
    ],
)
def test_renderings_are_masked(render: Callable[[Secret], str]) -> None:
    assert render(Secret(VALUE)) == "Secret('***')"


def test_containers_and_logs_are_masked(caplog: pytest.LogCaptureFixture) -> None:
    secret = Secret(VALUE)
    with caplog.at_level(logging.INFO):
        logging.getLogger("test").info("key %s in %r", secret, {"key": secret})
    assert "abcdef" not in caplog.text
    assert "abcdef" not in repr([secret, (secret,)])


def test_format_spec_is_refused_rather_than_revealing() -> None:
    with pytest.raises(TypeError):
        f"{Secret(VALUE):>40}"


def test_equality_by_value() -> None:
    assert Secret(VALUE) == Secret(VALUE)
    assert Secret(VALUE) != Secret(VALUE + "x")
    assert Secret("ünïcode\ud800") == Secret("ünïcode\ud800")
    assert Secret(VALUE) != VALUE


def test_unhashable() -> None:
    with pytest.raises(TypeError):
        hash(Secret(VALUE))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_cannot_be_pickled(protocol: int) -> None:
    with pytest.raises(TypeError, match="cannot be pickled") as info:
        pickle.dumps(Secret(VALUE), protocol=protocol)
    assert VALUE not in str(info.value)


def test_copies_share_the_immutable_instance() -> None:
    secret = Secret(VALUE)
    assert copy.copy(secret) is secret
    assert copy.deepcopy({"k": secret})["k"] is secret


def test_immutable() -> None:
    secret = Secret(VALUE)
    with pytest.raises(AttributeError):
        secret._value = "other"
    with pytest.raises(AttributeError):
        del secret._value
    assert secret.reveal() == VALUE


def test_no_instance_dict_to_leak_through_vars() -> None:
    with pytest.raises(TypeError):
        vars(Secret(VALUE))


def test_rejects_non_str_without_echoing_it() -> None:
    with pytest.raises(TypeError) as info:
        Secret(b"sk-bytes-value")  # type: ignore[arg-type]
    assert "sk-bytes-value" not in str(info.value)
