"""``budget_inr``: every Indian money form, and the amounts that are not a budget."""

from __future__ import annotations

import pytest

from dialogue import analyze
from dialogue.analysis.lexicon import normalize
from dialogue.analysis.money import extract_budget, find_amounts
from dialogue.model import Stage


@pytest.mark.parametrize(
    ("text", "rupees"),
    [
        ("5 lakh", 500_000),
        ("2.5 crore", 25_000_000),
        ("50k", 50_000),
        ("50 k", 50_000),
        ("₹40,000", 40_000),
        ("₹2,80,000", 280_000),
        ("Rs. 15,000", 15_000),
        ("rs 7500", 7_500),
        ("forty thousand", 40_000),
        ("thirty five thousand", 35_000),
        ("dedh lakh", 150_000),
        ("dhai lakh", 250_000),
        ("saadhe chaar lakh", 450_000),
        ("sawa do lakh", 225_000),
        ("15 hazaar", 15_000),
        ("nabbe hazaar", 90_000),
        ("pachas hazaar", 50_000),
        ("1 lakh 20 thousand", 120_000),
        ("ek lakh bees hazaar", 120_000),
        ("2 lack", 200_000),
        ("3 lacs", 300_000),
        ("do crore", 20_000_000),
        ("two and a half lakh", 250_000),
        ("a lakh", 100_000),
        ("60000 rupees", 60_000),
        ("12 lakhs", 1_200_000),
        ("40 to 50 thousand", 50_000),  # a range counts as its upper bound
        ("4-5 lakh", 500_000),
        ("sawa lakh", 125_000),
        ("paune lakh", 75_000),
        ("one and a half lakh", 150_000),
        ("twelve hundred", 1_200),
        ("paanch sau", 500),
        ("2 thousand 5 hundred", 2_500),
    ],
)
def test_money_forms(text: str, rupees: int) -> None:
    assert [a.rupees for a in find_amounts(normalize(text).numeric)] == [rupees]
    assert extract_budget(normalize(f"my budget is {text}").numeric) == rupees


@pytest.mark.parametrize(
    "text",
    [
        "we have 50 employees",
        "roof is about 1000 square feet",
        "we need 1500 licenses",
        "we have a 10 kw load",
        "hamare paas 3 shops hain",
        "we started in 2019",
        "call me at 5:30",
        "2 lakh? that's too much",  # a price quoted back
        "you said 3.5 lakh na that is out of budget",
        "itna mehenga 80 hazaar",
        "we process 4000 orders a month",  # a count: any plural noun
        "five hundred employees",
        "paanch lakh tak ka loan chahiye",  # the loan itself, whatever the cue
        "i want a loan of 12 lakh",
        "salary is only 40 thousand",
        "turnover 3 crore ke aas paas hai",
    ],
)
def test_not_a_budget(text: str) -> None:
    assert extract_budget(normalize(text).numeric) is None


def test_a_price_question_is_not_a_budget() -> None:
    assert extract_budget(normalize("is it 5000 per month").numeric, asks_price=True) is None
    got = analyze("emi kitna hoga 5 lakh ke loan pe", Stage.PRESENTATION)
    assert got.intent == "ask_price"
    assert "budget_inr" not in got.slots


def test_own_budget_beats_quoted_price() -> None:
    text = "my budget is only 1 lakh, your price is 2 lakh"
    assert extract_budget(normalize(text).numeric) == 100_000
    assert extract_budget(normalize("aapka 3 lakh hai, mera budget 2 lakh hai").numeric) == 200_000


def test_per_month_amount_kept_as_spoken() -> None:
    got = analyze("15 hazaar mahine ka de sakta hoon", Stage.QUALIFICATION)
    assert got.slots["budget_inr"] == 15_000
    assert "has_budget" in got.buying_signals


def test_no_budget_from_do_not_call_turn() -> None:
    got = analyze("i paid 50000 already, stop calling me")
    assert got.intent == "do_not_call"
    assert "budget_inr" not in got.slots


def test_our_limit_is_a_budget() -> None:
    assert extract_budget(normalize("45k is our limit").numeric) == 45_000
