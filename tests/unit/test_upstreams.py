import pytest
from keyway.v1 import providers_pb2 as pb

from control_plane.domain import formats
from control_plane.domain.errors import InvalidArgument, Violations
from control_plane.domain.upstreams import base_url_problem, check_custom_provider

OK = None
PRIVATE = "private or loopback"
HTTPS = "must use https"
EXTRAS = "credentials, a query or a fragment"
NOT_URL = "absolute http(s) URL"


@pytest.mark.parametrize(
    ("url", "allow_private", "problem"),
    [
        ("https://api.openai.com/v1", False, OK),
        ("https://api.openai.com/v1", True, OK),
        ("https://llm.example.com:8443/openai/v1/", False, OK),
        ("https://8.8.8.8/v1", False, OK),
        ("https://[2001:4860:4860::8888]/v1", False, OK),
        ("HTTPS://API.EXAMPLE.COM/v1", False, OK),
        ("http://api.openai.com/v1", False, HTTPS),
        ("http://api.openai.com/v1", True, HTTPS),
        ("http://8.8.8.8/v1", True, HTTPS),
        ("http://localhost:8080/v1", False, PRIVATE),
        ("https://localhost/v1", False, PRIVATE),
        ("http://LOCALHOST/v1", False, PRIVATE),
        ("http://ollama.localhost/v1", False, PRIVATE),
        ("http://127.0.0.1:11434/v1", False, PRIVATE),
        ("http://127.8.9.10/v1", False, PRIVATE),
        ("http://[::1]:8000/v1", False, PRIVATE),
        ("http://10.0.0.5/v1", False, PRIVATE),
        ("http://172.16.3.4/v1", False, PRIVATE),
        ("http://192.168.1.10/v1", False, PRIVATE),
        ("https://192.168.1.10/v1", False, PRIVATE),
        ("http://169.254.169.254/latest", False, PRIVATE),
        ("http://[fe80::1]/v1", False, PRIVATE),
        ("http://[fd00::1]/v1", False, PRIVATE),
        ("http://0.0.0.0/v1", False, PRIVATE),
        ("http://[::ffff:127.0.0.1]/v1", False, PRIVATE),
        ("http://localhost:8080/v1", True, OK),
        ("http://127.0.0.1:11434/v1", True, OK),
        ("http://[::1]:8000/v1", True, OK),
        ("http://10.0.0.5/v1", True, OK),
        ("https://192.168.1.10/v1", True, OK),
        ("https://user:pass@api.example.com/v1", False, EXTRAS),
        ("https://user@api.example.com/v1", False, EXTRAS),
        ("https://api.example.com/v1?key=x", False, EXTRAS),
        ("https://api.example.com/v1#frag", False, EXTRAS),
        ("http://user:pass@127.0.0.1/v1", True, EXTRAS),
        ("api.openai.com/v1", False, NOT_URL),
        ("not a url", False, NOT_URL),
        ("ftp://api.example.com/", False, NOT_URL),
        ("file:///etc/passwd", True, NOT_URL),
        ("https://", False, NOT_URL),
        ("https:///v1", False, NOT_URL),
        ("//api.example.com/v1", False, NOT_URL),
        ("https://[::1/v1", True, NOT_URL),
        ("https://api.example.com:99999/v1", False, NOT_URL),
        ("https://api.example.com:port/v1", False, NOT_URL),
        ("", False, "is required"),
        ("https://example.com/" + "a" * 2048, False, "at most 2048"),
    ],
)
def test_base_url_problem(url: str, allow_private: bool, problem: str | None) -> None:
    found = base_url_problem(url, allow_private=allow_private)
    if problem is None:
        assert found is None
    else:
        assert found is not None
        assert problem in found


def _provider(**overrides: object) -> pb.CustomProvider:
    fields: dict[str, object] = {
        "provider_id": "x-acme-llm",
        "name": "Acme",
        "base_url": "https://llm.acme.example/v1",
        "formats": [pb.API_FORMAT_OPENAI],
        "models": [pb.ProviderModel(id="acme-1"), pb.ProviderModel(id="acme-2", upstream_id="x")],
    }
    fields.update(overrides)
    return pb.CustomProvider(**fields)  # type: ignore[arg-type]


def _fields(
    cp: pb.CustomProvider, *, allow_private: bool = False, creating: bool = True
) -> list[str]:
    v = Violations()
    check_custom_provider(v, cp, allow_private=allow_private, creating=creating)
    try:
        v.raise_if_any()
    except InvalidArgument as err:
        return [x.field for x in err.violations]
    return []


def test_valid_custom_provider() -> None:
    assert _fields(_provider()) == []
    assert _fields(_provider(formats=[pb.API_FORMAT_ANTHROPIC, pb.API_FORMAT_OPENAI])) == []
    assert _fields(_provider(models=[])) == []
    assert _fields(_provider(provider_id="x-a")) == []
    assert _fields(_provider(provider_id="x-" + "a" * 61)) == []
    assert _fields(_provider(base_url="http://10.1.2.3:8000/v1"), allow_private=True) == []


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"provider_id": ""}, ["provider_id"]),
        ({"provider_id": "openai"}, ["provider_id"]),
        ({"provider_id": "anthropic"}, ["provider_id"]),
        ({"provider_id": "x-Acme"}, ["provider_id"]),
        ({"provider_id": "x--acme"}, ["provider_id"]),
        ({"provider_id": "x-acme_llm"}, ["provider_id"]),
        ({"provider_id": "x-acme/llm"}, ["provider_id"]),
        ({"provider_id": "x-acme:llm"}, ["provider_id"]),
        ({"provider_id": "x-" + "a" * 62}, ["provider_id"]),
        # Outside the custom namespace: could be taken by a future catalog release.
        ({"provider_id": "acme"}, ["provider_id"]),
        ({"provider_id": "cerebras"}, ["provider_id"]),
        ({"provider_id": "x"}, ["provider_id"]),
        ({"provider_id": "xacme"}, ["provider_id"]),
        ({"name": ""}, ["name"]),
        ({"name": "   "}, ["name"]),
        ({"name": "n" * 256}, ["name"]),
        ({"description": "d" * 256}, ["description"]),
        ({"metadata": "m" * 4097}, ["metadata"]),
        ({"base_url": ""}, ["base_url"]),
        ({"base_url": "http://llm.acme.example/v1"}, ["base_url"]),
        ({"base_url": "http://127.0.0.1:8000/v1"}, ["base_url"]),
        ({"formats": []}, ["formats"]),
        ({"formats": [pb.API_FORMAT_UNSPECIFIED]}, ["formats[0]"]),
        ({"formats": [pb.API_FORMAT_OPENAI, 7]}, ["formats[1]"]),
        ({"formats": [pb.API_FORMAT_OPENAI, pb.API_FORMAT_OPENAI]}, ["formats"]),
        ({"auth_style": 9}, ["auth_style"]),
        ({"models": [pb.ProviderModel(id="")]}, ["models[0].id"]),
        ({"models": [pb.ProviderModel(id="a b")]}, ["models[0].id"]),
        ({"models": [pb.ProviderModel(id="m" * 256)]}, ["models[0].id"]),
        ({"models": [pb.ProviderModel(id="m", upstream_id="u" * 256)]}, ["models[0].upstream_id"]),
        (
            {
                "models": [
                    pb.ProviderModel(id="a"),
                    pb.ProviderModel(id="b"),
                    pb.ProviderModel(id="A"),
                ]
            },
            ["models[2].id"],
        ),
    ],
)
def test_custom_provider_violations(overrides: dict[str, object], fields: list[str]) -> None:
    assert _fields(_provider(**overrides)) == fields


def test_built_in_clash_is_named() -> None:
    v = Violations()
    check_custom_provider(v, _provider(provider_id="openai"), allow_private=False, creating=True)
    with pytest.raises(InvalidArgument) as caught:
        v.raise_if_any()
    assert "'openai' is a built-in provider" in caught.value.violations[0].description


def test_provider_id_is_only_checked_on_create() -> None:
    assert _fields(_provider(provider_id="openai"), creating=False) == []
    assert _fields(_provider(provider_id=""), creating=False) == []


def test_violations_are_reported_together() -> None:
    cp = _provider(provider_id="groq", name="", base_url="ftp://x", formats=[])
    assert _fields(cp) == ["name", "provider_id", "base_url", "formats"]


@pytest.mark.parametrize(
    ("formats_", "auth_style", "expected"),
    [
        ([pb.API_FORMAT_OPENAI], pb.AUTH_STYLE_UNSPECIFIED, pb.AUTH_STYLE_BEARER),
        ([pb.API_FORMAT_ANTHROPIC], pb.AUTH_STYLE_UNSPECIFIED, pb.AUTH_STYLE_X_API_KEY),
        (
            [pb.API_FORMAT_ANTHROPIC, pb.API_FORMAT_OPENAI],
            pb.AUTH_STYLE_UNSPECIFIED,
            pb.AUTH_STYLE_X_API_KEY,
        ),
        (
            [pb.API_FORMAT_OPENAI, pb.API_FORMAT_ANTHROPIC],
            pb.AUTH_STYLE_UNSPECIFIED,
            pb.AUTH_STYLE_BEARER,
        ),
        ([], pb.AUTH_STYLE_UNSPECIFIED, pb.AUTH_STYLE_BEARER),
        ([pb.API_FORMAT_ANTHROPIC], pb.AUTH_STYLE_BEARER, pb.AUTH_STYLE_BEARER),
        ([pb.API_FORMAT_OPENAI], pb.AUTH_STYLE_X_API_KEY, pb.AUTH_STYLE_X_API_KEY),
    ],
)
def test_effective_auth_style(formats_: list[int], auth_style: int, expected: int) -> None:
    # The contract's numbers, as a custom provider is written, through the one translation.
    spoken = [formats.from_api_format(f) for f in formats_]
    style = formats.from_api_auth_style(auth_style)
    effective = formats.effective_auth_style(style, spoken)
    assert formats.to_api_auth_style(effective) == expected
