"""A secret string that does not leak through repr, str, logs or pickles."""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

_MASKED = "Secret('***')"


class Secret:
    """Wraps a secret `str`; `reveal()` is the only way to read it."""

    __slots__ = ("_value",)
    _value: str

    # Equal secrets must not be findable through hashing (dict keys, sets, caches).
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError(f"Secret wraps a str, not {type(value).__name__}")
        object.__setattr__(self, "_value", value)

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return _MASKED

    def __str__(self) -> str:
        return _MASKED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        # Constant time, so comparing against a stored secret does not time-leak its prefix;
        # surrogatepass because compare_digest only takes ASCII str, and any str must compare.
        return hmac.compare_digest(
            self._value.encode("utf-8", "surrogatepass"),
            other._value.encode("utf-8", "surrogatepass"),
        )

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise AttributeError("Secret is immutable")

    def __delattr__(self, name: str) -> NoReturn:
        raise AttributeError("Secret is immutable")

    # Immutable, so copies can share the instance; this also keeps copy/deepcopy working
    # although pickling (which copy would otherwise fall back to) is refused below.
    def __copy__(self) -> Secret:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self

    def __reduce__(self) -> NoReturn:
        # A pickled Secret would land in caches, queues or crash dumps in the clear.
        raise TypeError("Secret cannot be pickled")
