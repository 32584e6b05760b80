"""Quota units and the agent config's serialised form."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from common.domain import AgentConfig, KnowledgeSettings, ModelTarget, to_micros, units_for_price

UNIT = Decimal("0.01")
prices = st.decimals(min_value=Decimal("0.001"), max_value=Decimal("100"), places=6)


def test_a_standard_agent_costs_exactly_one_unit() -> None:
    assert units_for_price(Decimal("0.01"), UNIT) == 1


@given(prices)
def test_units_never_undercharge_below_one_unit_or_by_more_than_half_a_unit(price: Decimal) -> None:
    units = units_for_price(price, UNIT)
    assert units >= 1
    assert abs(units * UNIT - price) <= UNIT / 2 or units == 1


@given(prices, prices)
def test_units_are_monotonic_in_price(a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    assert units_for_price(low, UNIT) <= units_for_price(high, UNIT)


def test_half_units_round_up() -> None:
    assert units_for_price(Decimal("0.015"), UNIT) == 2
    assert units_for_price(Decimal("0.025"), UNIT) == 3


@pytest.mark.parametrize("bad", [Decimal(0), Decimal("-1")])
def test_non_positive_prices_are_refused(bad: Decimal) -> None:
    with pytest.raises(ValueError, match="positive"):
        units_for_price(bad, UNIT)


def test_micros_are_exact_and_refuse_sub_micro_amounts() -> None:
    assert to_micros(Decimal("1.234567")) == 1_234_567
    with pytest.raises(ValueError, match="precision"):
        to_micros(Decimal("0.0000001"))


@given(
    st.text(),
    st.sampled_from(["openai", "anthropic", "google"]),
    st.one_of(st.none(), st.floats(min_value=0, max_value=2)),
    st.lists(st.text(min_size=1, max_size=8), max_size=3),
)
def test_agent_config_json_round_trip(
    prompt: str, provider: str, temperature: float | None, file_ids: list[str]
) -> None:
    config = AgentConfig(
        system_prompt=prompt,
        provider=provider,
        model="m",
        temperature=temperature,
        knowledge=KnowledgeSettings(enabled=True, file_ids=tuple(file_ids)),
        fallbacks=(ModelTarget("anthropic", "claude"),),
    )
    assert AgentConfig.from_json(config.to_json()) == config


def test_a_config_from_a_newer_control_plane_still_loads() -> None:
    """During a rolling deploy the control plane may write a field an older gateway does not
    know yet (as `prompt_cache` once was): it is ignored, the rest is served."""
    config = AgentConfig(system_prompt="p", provider="openai", model="m", prompt_cache=True)
    data = orjson.loads(config.to_json())
    data["a_later_setting"] = {"x": 1}
    data["knowledge"]["a_later_knob"] = 3
    assert AgentConfig.from_json(orjson.dumps(data)) == config
    # A config written before prompt_cache existed reads as off.
    del data["prompt_cache"]
    assert AgentConfig.from_json(orjson.dumps(data)).prompt_cache is False
