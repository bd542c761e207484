"""The one capacity formula, pinned to Cinder's documented numbers and keyword rules."""

from __future__ import annotations

import pytest

from stackcore.volume.placement import capacity
from stackcore.volume.placement.capacity import Pool


def test_thin_example_from_cinder() -> None:
    pool = Pool(total_capacity_gb=100, free_capacity_gb=90, reserved_percentage=10,
                provisioned_capacity_gb=500, thin_provisioning_support=True,
                max_over_subscription_ratio=20.0)
    f = capacity.factors(pool, thin=True)
    assert f is not None
    assert f.total_available == 1800
    assert f.virtual_free == 1300
    assert capacity.fits(pool, 1300, thin=True)[0]
    ok, why = capacity.fits(pool, 1301, thin=True)
    assert not ok and "1301" in why and "1300.00" in why


def test_thick_uses_min_of_unreserved_minus_provisioned_and_raw_free() -> None:
    pool = Pool(total_capacity_gb=100, free_capacity_gb=40, reserved_percentage=10,
                provisioned_capacity_gb=60, thick_provisioning_support=True)
    f = capacity.factors(pool, thin=False)
    assert f is not None and f.virtual_free == 30
    assert capacity.fits(pool, 30, thin=False)[0]
    assert not capacity.fits(pool, 31, thin=False)[0]


def test_thin_request_on_thick_only_pool_is_thick() -> None:
    pool = Pool(total_capacity_gb=100, free_capacity_gb=100, provisioned_capacity_gb=0,
                thick_provisioning_support=True, max_over_subscription_ratio=20.0)
    assert capacity.max_over_subscription_ratio(pool) == 1.0
    assert not capacity.fits(pool, 101, thin=True)[0]


def test_provisioned_defaults_to_allocated() -> None:
    pool = Pool(total_capacity_gb=10, free_capacity_gb=10, allocated_capacity_gb=8,
                thin_provisioning_support=True, max_over_subscription_ratio=1.0)
    assert capacity.headroom(pool, thin=True) == 2


@pytest.mark.parametrize("keyword", ["infinite", "unknown"])
def test_free_keyword_always_fits_and_weighs_lowest(keyword: str) -> None:
    pool = Pool(total_capacity_gb=100, free_capacity_gb=keyword, reserved_percentage=50,
                thin_provisioning_support=True, max_over_subscription_ratio=20.0)
    assert capacity.fits(pool, 10**6, thin=True)[0]
    assert capacity.headroom(pool, thin=True) is None
    assert capacity.weight(pool, thin=True) == -1
    assert capacity.max_over_subscription_ratio(pool) == 1.0


@pytest.mark.parametrize("keyword", ["infinite", "unknown"])
def test_total_keyword_fits_only_without_reserve(keyword: str) -> None:
    free = Pool(total_capacity_gb=keyword, free_capacity_gb=keyword, reserved_percentage=0)
    assert capacity.fits(free, 10**6, thin=False)[0]
    reserved = Pool(total_capacity_gb=keyword, free_capacity_gb=5, reserved_percentage=1)
    ok, why = capacity.fits(reserved, 1, thin=False)
    assert not ok and keyword in why


def test_auto_ratio() -> None:
    pool = Pool(total_capacity_gb=100, free_capacity_gb=60, provisioned_capacity_gb=82,
                thin_provisioning_support=True, max_over_subscription_ratio="auto")
    assert capacity.max_over_subscription_ratio(pool) == pytest.approx(1 + 82 / 41)
    empty = Pool(total_capacity_gb=100, free_capacity_gb=100, provisioned_capacity_gb=0,
                 thin_provisioning_support=True, max_over_subscription_ratio="auto")
    assert capacity.max_over_subscription_ratio(empty) == 20.0


def test_zero_total_refuses() -> None:
    pool = Pool(total_capacity_gb=0, free_capacity_gb=0, thick_provisioning_support=True)
    assert not capacity.fits(pool, 1, thin=False)[0]


def test_weigher_and_filter_agree() -> None:
    pools = [Pool(total_capacity_gb=t, free_capacity_gb=f, provisioned_capacity_gb=p,
                  thin_provisioning_support=True, max_over_subscription_ratio=2.0)
             for t, f, p in [(100, 50, 150), (100, 90, 20), (50, 50, 0)]]
    for pool in pools:
        room = capacity.headroom(pool, thin=True)
        assert room == capacity.weight(pool, thin=True)
        assert capacity.fits(pool, room, thin=True)[0]
        assert not capacity.fits(pool, room + 1, thin=True)[0]
