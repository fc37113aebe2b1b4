import pytest

from data_plane.routing.outcome import OutcomeKind, classify, connect_error, timeout

K = OutcomeKind


@pytest.mark.parametrize(
    ("status", "kind", "reason"),
    [
        (200, K.SUCCESS, "Served"),
        (201, K.SUCCESS, "Served"),
        (204, K.SUCCESS, "Served"),
        (401, K.AUTH, "Provider returns an auth error"),
        (403, K.AUTH, "Provider returns an auth error"),
        (429, K.RATE_LIMITED, "Rate limited by provider"),
        (408, K.RETRYABLE, "Provider timed out the request"),
        (500, K.RETRYABLE, "Provider server error"),
        (502, K.RETRYABLE, "Provider server error"),
        (503, K.RETRYABLE, "Provider server error"),
        (504, K.RETRYABLE, "Provider server error"),
        (529, K.RETRYABLE, "Provider server error"),
        (400, K.FAIL_FAST, "Provider rejected the request"),
        (404, K.FAIL_FAST, "Provider rejected the request"),
        (409, K.FAIL_FAST, "Provider rejected the request"),
        (413, K.FAIL_FAST, "Provider rejected the request"),
        (422, K.FAIL_FAST, "Provider rejected the request"),
        (499, K.FAIL_FAST, "Provider rejected the request"),
        (101, K.RETRYABLE, "Provider returned an unexpected status"),
        (302, K.RETRYABLE, "Provider returned an unexpected status"),
        (304, K.RETRYABLE, "Provider returned an unexpected status"),
        (600, K.RETRYABLE, "Provider returned an unexpected status"),
        (0, K.RETRYABLE, "Provider returned an unexpected status"),
        (-404, K.RETRYABLE, "Provider returned an unexpected status"),
    ],
)
def test_status_table(status: int, kind: OutcomeKind, reason: str) -> None:
    outcome = classify(status, {})
    assert (outcome.kind, outcome.status, outcome.reason) == (kind, status, reason)
    assert outcome.retry_after is None


def test_connect_error_and_timeout_have_no_status() -> None:
    assert (connect_error().kind, connect_error().status) == (K.CONNECT_ERROR, None)
    assert connect_error().reason == "Could not connect to provider"
    assert (timeout().kind, timeout().status) == (K.TIMEOUT, None)
    assert timeout().reason == "Provider did not answer in time"


def test_success_ignores_rate_limit_headers() -> None:
    headers = {"retry-after": "5", "x-ratelimit-reset-requests": "1s"}
    assert classify(200, headers).retry_after is None


@pytest.mark.parametrize("name", ["Retry-After", "retry-after", "RETRY-AFTER"])
def test_retry_after_seconds_any_case(name: str) -> None:
    assert classify(429, {name: "7"}).retry_after == 7.0


def test_retry_after_is_read_on_server_errors_too() -> None:
    assert classify(503, {"Retry-After": "3"}).retry_after == 3.0


@pytest.mark.parametrize(("value", "seconds"), [("0", 0.0), (" 12 ", 12.0), ("1.5", 1.5)])
def test_retry_after_values(value: str, seconds: float) -> None:
    assert classify(429, {"Retry-After": value}).retry_after == seconds


@pytest.mark.parametrize(
    "value",
    ["", "soon", "-1", "nan", "inf", "1e3", "1_0", "Wed, 21 Oct 2015 07:28:00 GMT", "9" * 400],
)
def test_unusable_retry_after_is_none(value: str) -> None:
    assert classify(429, {"Retry-After": value}).retry_after is None


def test_retry_after_ms_wins_over_retry_after() -> None:
    headers = {"Retry-After": "30", "Retry-After-Ms": "1500", "x-ratelimit-reset-tokens": "1m"}
    assert classify(429, headers).retry_after == pytest.approx(1.5)


def test_invalid_retry_after_ms_falls_back_to_retry_after() -> None:
    assert classify(429, {"retry-after-ms": "x", "retry-after": "4"}).retry_after == 4.0


def test_retry_after_wins_over_resets() -> None:
    headers = {"retry-after": "2", "x-ratelimit-reset-requests": "6m0s"}
    assert classify(429, headers).retry_after == 2.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("1s", 1.0),
        ("6m0s", 360.0),
        ("20ms", 0.02),
        ("1h2m3.5s", 3723.5),
        ("2m59.56s", 179.56),
        ("1.5m", 90.0),
        ("500us", 0.0005),
        ("250µs", 0.00025),
        ("0s", 0.0),
        ("3", 3.0),
        (" 7s ", 7.0),
    ],
)
def test_ratelimit_reset_durations(value: str, seconds: float) -> None:
    outcome = classify(429, {"X-RateLimit-Reset-Requests": value})
    assert outcome.retry_after == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "s", "1x", "1s2", "m1s", "-1s", "1 s", "1.s", "1e3s"])
def test_unparsable_reset_is_ignored(value: str) -> None:
    assert classify(429, {"x-ratelimit-reset-tokens": value}).retry_after is None


def test_largest_reset_wins() -> None:
    headers = {"x-ratelimit-reset-requests": "20ms", "x-ratelimit-reset-tokens": "6m0s"}
    assert classify(429, headers).retry_after == 360.0


def test_invalid_reset_does_not_hide_the_valid_one() -> None:
    headers = {"x-ratelimit-reset-requests": "bogus", "x-ratelimit-reset-tokens": "2s"}
    assert classify(429, headers).retry_after == 2.0


def test_invalid_retry_after_falls_back_to_resets() -> None:
    headers = {"retry-after": "later", "x-ratelimit-reset-tokens": "2s"}
    assert classify(429, headers).retry_after == 2.0


# --- HTTP dates and Anthropic's reset times ---------------------------------------------

NOW = 1_792_567_680.0  # 2026-10-21T07:28:00Z
DATE = "Wed, 21 Oct 2026 07:28:00 GMT"


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("Wed, 21 Oct 2026 07:28:30 GMT", 30.0),
        ("Wednesday, 21-Oct-26 07:29:00 GMT", 60.0),  # RFC 850
        ("Wed Oct 21 07:28:05 2026", 5.0),  # asctime, GMT by definition
        ("Wed, 21 Oct 2026 07:27:00 GMT", 0.0),  # already past: usable now
        ("Wed, 21 Oct 2036 07:28:00 GMT", 24 * 3600.0),  # absurd: clamped to a day
    ],
)
def test_retry_after_as_an_http_date(value: str, seconds: float) -> None:
    assert classify(429, {"Retry-After": value}, NOW).retry_after == pytest.approx(seconds)


def test_an_http_date_counts_from_the_responses_own_date() -> None:
    # The provider's clock is 10 s behind ours: its date says 20 s from *its* now.
    headers = {
        "Date": "Wed, 21 Oct 2026 07:27:50 GMT",
        "Retry-After": "Wed, 21 Oct 2026 07:28:10 GMT",
    }
    assert classify(429, headers, NOW).retry_after == pytest.approx(20.0)
    # Without our clock, the Date header alone is enough.
    assert classify(429, headers).retry_after == pytest.approx(20.0)


@pytest.mark.parametrize("value", ["Wed, 32 Oct 2026 07:28:00 GMT", "tomorrow", "Wed, 21 Oct"])
def test_an_unparsable_date_is_ignored(value: str) -> None:
    assert classify(429, {"Retry-After": value}, NOW).retry_after is None


ANTHROPIC_429 = {
    "date": DATE,
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": "2026-10-21T07:28:01Z",
    "anthropic-ratelimit-tokens-remaining": "0",
    "anthropic-ratelimit-tokens-reset": "2026-10-21T07:28:40Z",
    "anthropic-ratelimit-input-tokens-remaining": "0",
    "anthropic-ratelimit-input-tokens-reset": "2026-10-21T07:28:25.5Z",
    "anthropic-ratelimit-output-tokens-remaining": "12000",
    "anthropic-ratelimit-output-tokens-reset": "2026-10-21T07:29:00Z",
}


def test_anthropic_resets_hold_until_the_last_exhausted_budget_resets() -> None:
    # Tokens and input tokens are used up; requests and output tokens are not the reason.
    assert classify(429, ANTHROPIC_429, NOW).retry_after == pytest.approx(40.0)


def test_anthropic_resets_without_remaining_counts_all_count() -> None:
    headers = {
        "anthropic-ratelimit-requests-reset": "2026-10-21T07:28:03Z",
        "anthropic-ratelimit-output-tokens-reset": "2026-10-21T07:28:09+00:00",
    }
    assert classify(429, headers, NOW).retry_after == pytest.approx(9.0)


def test_anthropic_reset_with_an_offset_and_in_the_past() -> None:
    assert classify(
        429, {"anthropic-ratelimit-tokens-reset": "2026-10-21T09:28:12+02:00"}, NOW
    ).retry_after == pytest.approx(12.0)
    assert classify(
        429, {"anthropic-ratelimit-tokens-reset": "2026-10-21T07:00:00Z"}, NOW
    ).retry_after == pytest.approx(0.0)


@pytest.mark.parametrize("value", ["", "soon", "2026-10-21T07:28:12", "2026-13-01T00:00:00Z"])
def test_unusable_anthropic_resets_are_ignored(value: str) -> None:
    # A time without an offset could be any zone, so it is not guessed.
    assert classify(429, {"anthropic-ratelimit-requests-reset": value}, NOW).retry_after is None


def test_anthropic_resets_need_a_clock() -> None:
    headers = {"anthropic-ratelimit-requests-reset": "2026-10-21T07:28:12Z"}
    assert classify(429, headers).retry_after is None


def test_retry_after_still_wins_over_anthropic_resets() -> None:
    assert classify(429, {**ANTHROPIC_429, "retry-after": "3"}, NOW).retry_after == 3.0


def test_openai_resets_of_budgets_with_room_left_do_not_count() -> None:
    headers = {
        "x-ratelimit-remaining-requests": "0",
        "x-ratelimit-reset-requests": "2s",
        "x-ratelimit-remaining-tokens": "149000",
        "x-ratelimit-reset-tokens": "6m0s",
    }
    assert classify(429, headers).retry_after == 2.0


def test_a_huge_but_finite_retry_after_is_clamped() -> None:
    assert classify(429, {"retry-after": "9" * 300}).retry_after == 24 * 3600.0
