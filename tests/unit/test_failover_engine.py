"""The failover engine driven directly, with a fake clock value passed into every call."""

from collections.abc import Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from data_plane.routing.cooldowns import Cooldowns
from data_plane.routing.engine import (
    Attempt,
    AttemptRecord,
    Candidate,
    Decision,
    Exhausted,
    Failover,
    Wait,
)
from data_plane.routing.outcome import (
    Outcome,
    OutcomeKind,
    classify,
    connect_error,
    timeout,
)
from data_plane.routing.policy import FailoverPolicy

GPT = Candidate("openai", "gpt-4o", "gpt-4o-2024-08-06", ("pk_1", "pk_2"))
MINI = Candidate("openai", "gpt-4o-mini", "gpt-4o-mini", ("pk_3",))
CLAUDE = Candidate("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", ("pk_a",))
POLICY = FailoverPolicy()


def engine(
    *candidates: Candidate,
    policy: FailoverPolicy = POLICY,
    cooldowns: Cooldowns | None = None,
    start: float = 0.0,
) -> Failover:
    return Failover(candidates, policy, Cooldowns() if cooldowns is None else cooldowns, start)


def attempt(failover: Failover, now: float) -> Attempt:
    step = failover.next_attempt(now)
    assert isinstance(step, Attempt), step
    return step


def exhausted(failover: Failover, now: float) -> Exhausted:
    step = failover.next_attempt(now)
    assert isinstance(step, Exhausted), step
    return step


def status(code: int, headers: Mapping[str, str] | None = None) -> Outcome:
    return classify(code, headers or {})


def fail(failover: Failover, now: float, outcome: Outcome) -> Attempt:
    """Makes the next attempt, records `outcome` for it, and expects the engine to go on."""
    step = attempt(failover, now)
    assert failover.record(step, outcome, now) is Decision.CONTINUE
    return step


# --- One row of the README's failover rules each ---


def test_2xx_is_served() -> None:
    failover = engine(GPT)
    first = attempt(failover, 0.0)
    assert (first.candidate_index, first.candidate, first.key_id) == (0, GPT, "pk_1")
    assert first.timeout == 60.0
    assert failover.record(first, status(200), 1.0) is Decision.SERVE
    assert failover.attempts == (AttemptRecord("openai", "gpt-4o", "pk_1", 200, "Served"),)
    with pytest.raises(RuntimeError, match="already answered"):
        failover.next_attempt(1.0)


@pytest.mark.parametrize("code", [401, 403])
def test_auth_error_moves_to_next_key_and_holds_the_key(code: int) -> None:
    cooldowns = Cooldowns()
    failover = engine(GPT, cooldowns=cooldowns)
    fail(failover, 5.0, status(code))
    assert attempt(failover, 6.0).key_id == "pk_2"
    assert cooldowns.held_until("pk_1") == 65.0
    assert failover.attempts[0] == AttemptRecord(
        "openai", "gpt-4o", "pk_1", code, "Provider returns an auth error"
    )


def test_auth_cooldown_is_configurable() -> None:
    cooldowns = Cooldowns()
    failover = engine(GPT, cooldowns=cooldowns, policy=FailoverPolicy(auth_cooldown=5.0))
    fail(failover, 1.0, status(401))
    assert cooldowns.held_until("pk_1") == 6.0


@pytest.mark.parametrize(
    ("headers", "held_for"),
    [
        ({"Retry-After": "7"}, 7.0),
        ({"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        ({"x-ratelimit-reset-requests": "20s", "x-ratelimit-reset-tokens": "1m0s"}, 60.0),
        ({}, 10.0),
    ],
)
def test_rate_limit_moves_to_next_key_and_holds_until_reset(
    headers: Mapping[str, str], held_for: float
) -> None:
    cooldowns = Cooldowns()
    failover = engine(GPT, cooldowns=cooldowns)
    fail(failover, 2.0, status(429, headers))
    assert attempt(failover, 2.5).key_id == "pk_2"
    assert cooldowns.held_until("pk_1") == pytest.approx(2.0 + held_for)


@pytest.mark.parametrize(
    "outcome",
    [status(408), status(500), status(502), status(503), connect_error(), timeout()],
    ids=["408", "500", "502", "503", "connect", "timeout"],
)
def test_transient_failure_moves_to_next_key_without_hold(outcome: Outcome) -> None:
    cooldowns = Cooldowns()
    failover = engine(GPT, cooldowns=cooldowns)
    fail(failover, 0.0, outcome)
    assert attempt(failover, 1.0).key_id == "pk_2"
    assert cooldowns.held_until("pk_1") is None
    assert failover.attempts[0].status == outcome.status
    assert failover.attempts[0].reason == outcome.reason


@pytest.mark.parametrize("code", [400, 404, 413, 422])
def test_other_4xx_fails_fast(code: int) -> None:
    cooldowns = Cooldowns()
    failover = engine(GPT, MINI, cooldowns=cooldowns)
    first = attempt(failover, 0.0)
    assert failover.record(first, status(code), 0.5) is Decision.FAIL_FAST
    assert len(failover.attempts) == 1
    assert cooldowns.held_until("pk_1") is None
    with pytest.raises(RuntimeError, match="already answered"):
        failover.next_attempt(0.5)


# --- Ordering ---


def test_keys_exhausted_for_a_candidate_move_to_the_next_candidate() -> None:
    failover = engine(GPT, MINI, CLAUDE)
    fail(failover, 0.0, status(500))
    fail(failover, 0.0, status(500))
    step = fail(failover, 0.0, status(503))
    assert (step.candidate_index, step.candidate, step.key_id) == (1, MINI, "pk_3")
    assert attempt(failover, 0.0).candidate == CLAUDE


def test_key_held_by_an_earlier_request_is_tried_last_across_candidates() -> None:
    cooldowns = Cooldowns()
    first = engine(GPT, CLAUDE, cooldowns=cooldowns, start=0.0)
    fail(first, 0.0, status(401))  # pk_1 is now held until 60
    assert first.record(attempt(first, 0.1), status(200), 0.2) is Decision.SERVE

    second = engine(GPT, CLAUDE, cooldowns=cooldowns, start=10.0)
    assert fail(second, 10.0, status(500)).key_id == "pk_2"
    assert fail(second, 10.5, status(500)).key_id == "pk_a"  # another candidate goes first
    last = attempt(second, 11.0)
    assert (last.candidate, last.key_id) == (GPT, "pk_1")  # the held key, as a last resort


def test_held_keys_keep_their_own_order() -> None:
    cooldowns = Cooldowns()
    cooldowns.hold("pk_1", 100.0)
    cooldowns.hold("pk_2", 20.0)
    cooldowns.hold("pk_3", 50.0)
    failover = engine(GPT, MINI, cooldowns=cooldowns)
    assert [fail(failover, 1.0, status(500)).key_id for _ in range(3)] == ["pk_1", "pk_2", "pk_3"]


def test_hold_expiry_restores_the_normal_order() -> None:
    cooldowns = Cooldowns()
    cooldowns.hold("pk_1", 60.0)
    assert attempt(engine(GPT, cooldowns=cooldowns, start=59.0), 59.0).key_id == "pk_2"
    assert attempt(engine(GPT, cooldowns=cooldowns, start=60.0), 60.0).key_id == "pk_1"


def test_a_held_key_that_succeeds_is_released() -> None:
    cooldowns = Cooldowns()
    cooldowns.hold("pk_3", 60.0)
    failover = engine(MINI, cooldowns=cooldowns)
    assert failover.record(attempt(failover, 1.0), status(200), 1.5) is Decision.SERVE
    assert not cooldowns.is_held("pk_3", 1.5)


def test_the_same_model_and_key_is_never_tried_twice() -> None:
    alias = Candidate("openai", "my-alias", GPT.upstream_model, ("pk_2", "pk_9"))
    failover = engine(GPT, alias)
    tried = [fail(failover, 0.0, status(500)).key_id for _ in range(3)]
    assert tried == ["pk_1", "pk_2", "pk_9"]
    assert exhausted(failover, 0.0).code == "all_attempts_failed"


def test_the_same_key_may_serve_another_model() -> None:
    other = Candidate("openai", "gpt-4.1", "gpt-4.1", ("pk_1",))
    failover = engine(GPT, other)
    steps = [fail(failover, 0.0, status(500)) for _ in range(3)]
    tried = [(step.candidate.model, step.key_id) for step in steps]
    assert tried == [("gpt-4o", "pk_1"), ("gpt-4o", "pk_2"), ("gpt-4.1", "pk_1")]


# --- Bounds and final results ---


def test_attempt_cap() -> None:
    many = Candidate("openai", "gpt-4o", "gpt-4o", tuple(f"pk_{n}" for n in range(8)))
    failover = engine(many, policy=FailoverPolicy(max_attempts=3))
    for _ in range(3):
        fail(failover, 0.0, status(500))
    result = exhausted(failover, 0.0)
    assert (result.status, result.code) == (502, "all_attempts_failed")
    assert result.message == (
        "3 attempts, all failed: openai/gpt-4o with pk_0: 500 Provider server error; "
        "openai/gpt-4o with pk_1: 500 Provider server error; "
        "openai/gpt-4o with pk_2: 500 Provider server error"
    )
    assert [r.key_id for r in result.attempts] == ["pk_0", "pk_1", "pk_2"]


def test_attempt_timeout_never_passes_the_total_deadline() -> None:
    failover = engine(GPT, MINI, start=100.0)
    first = attempt(failover, 100.0)
    assert first.timeout == 60.0
    failover.record(first, timeout(), 160.0)
    second = attempt(failover, 160.0)
    assert second.timeout == 60.0
    failover.record(second, status(500), 205.0)
    assert attempt(failover, 205.0).timeout == pytest.approx(15.0)


def test_total_deadline_gives_504() -> None:
    failover = engine(GPT, MINI, start=0.0)
    fail(failover, 0.0, timeout())
    fail(failover, 60.0, timeout())
    result = exhausted(failover, 120.0)
    assert (result.status, result.code) == (504, "deadline_exceeded")
    assert result.message == (
        "total deadline of 120s exceeded after 2 attempts: "
        "openai/gpt-4o with pk_1: Provider did not answer in time; "
        "openai/gpt-4o with pk_2: Provider did not answer in time"
    )
    assert len(result.attempts) == 2


def test_every_attempt_rate_limited_gives_429_with_when_to_retry() -> None:
    failover = engine(GPT, MINI)
    fail(failover, 0.0, status(429, {"retry-after": "30"}))
    fail(failover, 1.0, status(429))  # default hold: free at 11
    fail(failover, 2.0, status(429, {"retry-after": "60"}))
    result = exhausted(failover, 3.0)
    assert (result.status, result.code) == (429, "all_rate_limited")
    assert result.message.startswith(
        "3 attempts, all rate limited: openai/gpt-4o with pk_1: 429 Rate limited by provider; "
    )
    assert result.retry_after == pytest.approx(8.0)


def test_deadline_passed_before_any_attempt_gives_504() -> None:
    result = exhausted(engine(GPT, start=0.0), 120.0)
    assert (result.status, result.code, result.attempts) == (504, "deadline_exceeded", ())
    assert result.message == "total deadline of 120s exceeded after 0 attempts"


def test_rate_limited_until_the_deadline_is_still_429() -> None:
    failover = engine(GPT, policy=FailoverPolicy(total_deadline=10.0))
    fail(failover, 0.0, status(429, {"retry-after": "60"}))
    assert exhausted(failover, 10.0).status == 429


def test_mixed_failures_give_502() -> None:
    failover = engine(GPT, MINI)
    fail(failover, 0.0, status(429, {"retry-after": "30"}))
    fail(failover, 0.0, status(401))
    fail(failover, 0.0, connect_error())
    result = exhausted(failover, 0.0)
    assert (result.status, result.code, result.retry_after) == (502, "all_attempts_failed", None)
    assert [(r.key_id, r.status) for r in result.attempts] == [
        ("pk_1", 429),
        ("pk_2", 401),
        ("pk_3", None),
    ]


def test_no_keys_anywhere_gives_502_naming_the_providers() -> None:
    bare = [
        Candidate("openai", "gpt-4o", "gpt-4o", ()),
        Candidate("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", ()),
        Candidate("openai", "gpt-4o-mini", "gpt-4o-mini", ()),
    ]
    result = exhausted(engine(*bare), 0.0)
    assert (result.status, result.code, result.attempts) == (502, "no_provider_key", ())
    assert result.message == "no provider key for openai, anthropic"


def test_candidates_without_keys_are_skipped() -> None:
    bare = Candidate("anthropic", "claude-sonnet-4-5", "claude-sonnet-4-5", ())
    assert attempt(engine(bare, MINI), 0.0).candidate == MINI


# --- The one bounded wait-and-retry ---


def test_short_retry_after_on_the_last_option_waits_once_then_retries() -> None:
    failover = engine(MINI)
    fail(failover, 1.0, status(429, {"retry-after": "2"}))
    assert failover.next_attempt(1.5) == Wait(1.5)
    retry = attempt(failover, 3.0)
    assert (retry.candidate, retry.key_id) == (MINI, "pk_3")
    assert failover.record(retry, status(429, {"retry-after": "1"}), 3.2) is Decision.CONTINUE
    result = exhausted(failover, 3.2)  # no second wait
    assert (result.status, len(result.attempts)) == (429, 2)


def test_the_retry_after_the_wait_can_be_served() -> None:
    failover = engine(MINI)
    fail(failover, 0.0, status(429, {"retry-after-ms": "800"}))
    assert failover.next_attempt(0.0) == Wait(0.8)
    assert failover.record(attempt(failover, 0.8), status(200), 1.0) is Decision.SERVE


def test_wait_of_exactly_the_limit_is_allowed() -> None:
    failover = engine(MINI)
    fail(failover, 0.0, status(429, {"retry-after": "5"}))
    assert failover.next_attempt(0.0) == Wait(5.0)


@pytest.mark.parametrize(
    "headers",
    [{"retry-after": "5.5"}, {}, {"retry-after": "soon"}],
    ids=["too-long", "unknown", "unparsable"],
)
def test_no_wait_without_a_short_known_retry_after(headers: Mapping[str, str]) -> None:
    failover = engine(MINI)
    fail(failover, 0.0, status(429, headers))
    assert exhausted(failover, 0.0).status == 429


def test_no_wait_when_it_does_not_fit_the_deadline() -> None:
    failover = engine(MINI, policy=FailoverPolicy(total_deadline=10.0))
    fail(failover, 8.0, status(429, {"retry-after": "2"}))  # free at 10 = the deadline
    assert exhausted(failover, 8.0).code == "all_rate_limited"


def test_max_retry_wait_is_configurable() -> None:
    failover = engine(MINI, policy=FailoverPolicy(max_retry_wait=0.0))
    fail(failover, 0.0, status(429, {"retry-after": "1"}))
    assert exhausted(failover, 0.0).status == 429


def test_no_wait_while_other_keys_are_untried() -> None:
    failover = engine(GPT)
    fail(failover, 0.0, status(429, {"retry-after": "1"}))
    assert attempt(failover, 0.0).key_id == "pk_2"


def test_held_keys_are_tried_before_waiting() -> None:
    cooldowns = Cooldowns()
    cooldowns.hold("pk_2", 30.0)
    failover = engine(GPT, cooldowns=cooldowns)
    fail(failover, 0.0, status(429, {"retry-after": "1"}))
    assert attempt(failover, 0.0).key_id == "pk_2"


def test_wait_targets_the_soonest_free_key_even_after_other_failures() -> None:
    failover = engine(GPT, MINI)
    fail(failover, 0.0, status(429, {"retry-after": "4"}))
    fail(failover, 1.0, status(429, {"retry-after": "1"}))  # pk_2 free at 2
    fail(failover, 1.5, status(500))
    assert failover.next_attempt(1.5) == Wait(0.5)
    assert attempt(failover, 2.0).key_id == "pk_2"


def test_wait_never_exceeds_the_limit_through_rounding() -> None:
    start = 3.094187035055241  # start + 5.0 - start rounds to 5.000000000000001
    failover = engine(MINI, start=start)
    fail(failover, start, status(429, {"retry-after": "5"}))
    assert failover.next_attempt(start) == Wait(5.0)


def test_wait_already_over_is_zero() -> None:
    failover = engine(MINI)
    fail(failover, 0.0, status(429, {"retry-after": "1"}))
    assert failover.next_attempt(3.0) == Wait(0.0)


def test_no_wait_when_the_attempt_cap_is_reached() -> None:
    failover = engine(MINI, policy=FailoverPolicy(max_attempts=1))
    fail(failover, 0.0, status(429, {"retry-after": "1"}))
    assert exhausted(failover, 0.0).status == 429


# --- Misuse and configuration ---


def test_next_attempt_requires_the_outstanding_attempt_recorded() -> None:
    failover = engine(GPT)
    attempt(failover, 0.0)
    with pytest.raises(RuntimeError, match="outstanding"):
        failover.next_attempt(0.0)


def test_record_refuses_an_attempt_it_did_not_hand_out() -> None:
    failover = engine(GPT)
    step = attempt(failover, 0.0)
    with pytest.raises(RuntimeError, match="outstanding"):
        failover.record(Attempt(0, GPT, "pk_2", step.timeout), status(200), 0.0)
    failover.record(step, status(500), 0.0)
    with pytest.raises(RuntimeError, match="outstanding"):
        failover.record(step, status(500), 0.0)


def test_candidates_are_required() -> None:
    with pytest.raises(ValueError, match="candidate"):
        Failover([], POLICY, Cooldowns(), 0.0)


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"attempt_timeout": 0.0},
        {"total_deadline": -1.0},
        {"total_deadline": float("nan")},
        {"auth_cooldown": -1.0},
        {"rate_limit_default": -0.1},
        {"max_retry_wait": float("nan")},
    ],
)
def test_policy_refuses_nonsense(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        FailoverPolicy(**bad)  # type: ignore[arg-type]


def test_policy_defaults_match_the_product() -> None:
    assert FailoverPolicy() == FailoverPolicy(
        max_attempts=10,
        attempt_timeout=60.0,
        total_deadline=120.0,
        auth_cooldown=60.0,
        rate_limit_default=10.0,
        max_retry_wait=5.0,
    )


# --- Properties over random candidates, cooldowns and upstream behaviour ---

KEYS = [f"pk_{n}" for n in range(6)]
candidates_strategy = st.lists(
    st.builds(
        Candidate,
        provider=st.sampled_from(["openai", "anthropic"]),
        model=st.sampled_from(["m0", "m1", "m2"]),
        upstream_model=st.sampled_from(["u0", "u1"]),
        keys=st.lists(st.sampled_from(KEYS), max_size=4, unique=True).map(tuple),
    ),
    min_size=1,
    max_size=4,
)
# Each bound is either its default or anything in range.
policy_strategy = st.builds(
    FailoverPolicy,
    max_attempts=st.one_of(st.just(10), st.integers(1, 10)),
    attempt_timeout=st.one_of(st.just(60.0), st.floats(0.5, 60.0)),
    total_deadline=st.one_of(st.just(120.0), st.floats(1.0, 120.0)),
    auth_cooldown=st.one_of(st.just(60.0), st.floats(0.0, 60.0)),
    rate_limit_default=st.one_of(st.just(10.0), st.floats(0.0, 10.0)),
    max_retry_wait=st.one_of(st.just(5.0), st.floats(0.0, 5.0)),
)
# Hypothesis favours the first entries: rate limits with short waits come first and success last,
# so that runs often reach the wait-and-retry, the end of the candidate list and the deadline.
outcome_strategy = st.sampled_from(
    [
        *(status(429, {"retry-after": after}) for after in ["0.5", "2.5", "0", "5", "6", "30"]),
        status(429),
        status(503),
        timeout(),
        connect_error(),
        status(401),
        status(408),
        status(400),
        status(200),
    ]
)
# Share of its timeout an attempt lasts; whole timeouts make the total deadline reachable.
elapsed_strategy = st.one_of(st.sampled_from([0.0, 0.5, 1.0]), st.floats(0.0, 1.0))


def untried_in_order(
    candidates: Sequence[Candidate], tried: set[tuple[str, str, str]]
) -> list[tuple[int, str]]:
    return [
        (index, key)
        for index, candidate in enumerate(candidates)
        for key in candidate.keys
        if (candidate.provider, candidate.upstream_model, key) not in tried
    ]


@settings(max_examples=400, deadline=None)
@given(
    candidates=candidates_strategy,
    policy=policy_strategy,
    holds=st.dictionaries(st.sampled_from(KEYS), st.floats(0.0, 200.0)),
    data=st.data(),
)
def test_engine_properties(
    candidates: list[Candidate],
    policy: FailoverPolicy,
    holds: dict[str, float],
    data: st.DataObject,
) -> None:
    cooldowns = Cooldowns()
    for key, until in holds.items():
        cooldowns.hold(key, until)
    start = now = data.draw(st.floats(0.0, 100.0), label="start")
    deadline = start + policy.total_deadline
    failover = Failover(candidates, policy, cooldowns, start)

    tried: set[tuple[str, str, str]] = set()
    short_rate_limited: set[tuple[str, str, str]] = set()
    outcomes: list[Outcome] = []
    waits = repeats = 0
    after_wait = False
    result: Exhausted | Decision | None = None

    # Each step is an attempt or the one wait, so this bound is never reached by a correct engine.
    for _ in range(policy.max_attempts + 2):
        step = failover.next_attempt(now)
        if isinstance(step, Exhausted):
            result = step
            break
        if isinstance(step, Wait):
            assert waits == 0
            assert not after_wait
            assert 0.0 <= step.seconds <= policy.max_retry_wait
            assert now + step.seconds < deadline
            waits, after_wait = 1, True
            now += step.seconds
            continue

        assert len(outcomes) < policy.max_attempts
        assert 0.0 < step.timeout <= deadline - now
        assert step.timeout <= policy.attempt_timeout
        candidate = candidates[step.candidate_index]
        assert step.candidate == candidate
        assert step.key_id in candidate.keys
        identity = (candidate.provider, candidate.upstream_model, step.key_id)
        if identity in tried:
            # Only the retry after the wait, of a key the provider said would free up shortly.
            assert after_wait
            assert repeats == 0
            assert identity in short_rate_limited
            repeats += 1
        else:
            # The first untried key not held back, else the first untried held-back one.
            options = untried_in_order(candidates, tried)
            free = [(i, k) for i, k in options if not cooldowns.is_held(k, now)]
            assert (step.candidate_index, step.key_id) == (free or options)[0]
        tried.add(identity)
        after_wait = False

        outcome = data.draw(outcome_strategy, label="outcome")
        now += data.draw(elapsed_strategy, label="elapsed share") * step.timeout
        decision = failover.record(step, outcome, now)
        outcomes.append(outcome)
        after = outcome.retry_after
        short = after is not None and after <= policy.max_retry_wait
        if outcome.kind is OutcomeKind.RATE_LIMITED and short:
            short_rate_limited.add(identity)
        expected = {
            OutcomeKind.SUCCESS: Decision.SERVE,
            OutcomeKind.FAIL_FAST: Decision.FAIL_FAST,
        }.get(outcome.kind, Decision.CONTINUE)
        assert decision is expected
        if decision is not Decision.CONTINUE:
            result = decision
            break

    assert result is not None, "the engine did not terminate"
    assert len(outcomes) <= policy.max_attempts
    assert [(r.status, r.reason) for r in failover.attempts] == [
        (o.status, o.reason) for o in outcomes
    ]
    if not isinstance(result, Exhausted):
        return
    assert result.attempts == failover.attempts
    kinds = {o.kind for o in outcomes}
    assert not kinds & {OutcomeKind.SUCCESS, OutcomeKind.FAIL_FAST}
    if not any(c.keys for c in candidates):
        assert (result.status, result.code, result.attempts) == (502, "no_provider_key", ())
    elif outcomes and kinds == {OutcomeKind.RATE_LIMITED}:
        assert (result.status, result.code) == (429, "all_rate_limited")
        assert result.retry_after is not None
        assert result.retry_after >= 0.0
    elif now >= deadline:
        assert (result.status, result.code) == (504, "deadline_exceeded")
    else:
        assert (result.status, result.code) == (502, "all_attempts_failed")
        assert len(outcomes) == policy.max_attempts or not untried_in_order(candidates, tried)
