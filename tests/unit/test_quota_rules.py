"""Quota rules decided from counts a store (or a request) gives them."""

from __future__ import annotations

import pytest

from control_plane.domain import quotas
from control_plane.domain.errors import ResourceExhausted

SMALL = quotas.Quotas(provider_keys=2, models_per_provider=3)


def test_one_more_resource_is_refused_at_the_limit() -> None:
    quotas.check_count(SMALL, "provider_keys", "acct_1", 1)
    with pytest.raises(ResourceExhausted) as caught:
        quotas.check_count(SMALL, "provider_keys", "acct_1", 2)
    assert (caught.value.quota, caught.value.limit) == ("provider_keys", 2)
    assert caught.value.subject == "accounts/acct_1"
    assert "--max-provider-keys" in caught.value.message


def test_a_custom_provider_may_list_up_to_the_model_limit() -> None:
    quotas.check_models(SMALL, "x-acme", 3)
    with pytest.raises(ResourceExhausted) as caught:
        quotas.check_models(SMALL, "x-acme", 4)
    assert (caught.value.quota, caught.value.limit) == ("models_per_provider", 3)
    assert caught.value.subject == "customProviders/x-acme"
    assert "lists 4 models" in caught.value.message


def test_shrinking_is_always_allowed_and_growth_is_checked_against_both_budgets() -> None:
    budget = quotas.Quotas(account_snapshot_bytes=100, snapshot_bytes=150)
    quotas.check_size(budget, "acct_1", 500, 400, 10_000)
    quotas.check_size(budget, "acct_1", 10, 100, 150)
    with pytest.raises(ResourceExhausted, match="account_snapshot_bytes"):
        quotas.check_size(budget, "acct_1", 10, 101, 120)
    with pytest.raises(ResourceExhausted, match="quota snapshot_bytes"):
        quotas.check_size(budget, "acct_1", 10, 90, 151)
