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
        ("half a crore", 5_000_000),
        ("3 laakh", 300_000),
        ("20 hajaar", 20_000),
        ("paintalis hazaar", 45_000),
        ("unnis hazaar", 19_000),
        ("dus hazaar", 10_000),
        ("sath hazaar", 60_000),
        ("ek lakh pachees", 125_000),  # the spoken "1 lakh 25" = 1,25,000
        ("one lakh fifty", 150_000),
        ("1 crore 20", 12_000_000),
        ("to point five lakh", 250_000),  # ASR "to" for two before a decimal
        ("one point two lakh", 120_000),
        ("to and a half lakh", 250_000),
        ("won lakh", 100_000),
        ("rupees 800", 800),
        ("2000 per month", 2_000),  # not a year: a per-month amount
        ("3 lakh to 4 lakh", 400_000),
        ("2 lakh se 2.5 lakh", 250_000),
        ("between 80 thousand and 1 lakh", 100_000),
        ("ek lakh ya dedh lakh", 150_000),
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
        "my number is 9876543210",  # a phone number
        "call me on 98201 23456",  # one group of a digit string
        "pin code is 411038",
        "flat number 1204",
        "we moved here in 2015",
        "10k customers hain",  # a scaled count
        "we have 2 lakh followers",
        "10 hazaar sq ft ka godown",
        "1000 litre ki tanki",
        "we currently pay 3000 a month",  # a running spend
        "pichle saal 6 hazaar diye the",
        "my current emi is 14000",
        "i earn about 60 thousand",
        "kiraya 15 hazaar hai",
        "credit limit 1 lakh ho to chalega",
        "the other company quoted 1.5 lakh",  # a price found elsewhere
        "amazon pe 9000 ka mil raha hai",
        "30 hazaar discount do",
        "so the total is 1.8 lakh",
        "four lakh is to much",  # ASR "to" for too
        "5000 ka cashback mila tha",
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


def test_a_budget_cue_beats_a_running_spend() -> None:
    text = "we currently pay 3000 a month but can spend 5000"
    assert extract_budget(normalize(text).numeric) == 5_000
    assert extract_budget(normalize("bill 6 hazaar aata hai, budget 2 lakh hai").numeric) == (
        200_000)


def test_a_number_after_a_scale_that_counts_something_is_not_its_rest() -> None:
    """"2 lakh 10 din mein": the 10 counts days, not thousands."""
    numeric = normalize("budget 2 lakh 10 din mein chahiye").numeric
    assert [a.rupees for a in find_amounts(numeric)] == [200_000]


def test_an_amount_stated_in_qualification_is_a_fact_not_a_price_question() -> None:
    got = analyze("around 9 thousand a month for the health premium", Stage.QUALIFICATION)
    assert (got.intent, got.slots.get("budget_inr")) == ("other", 9_000)
    got = analyze("my current premium is 22 thousand a year", Stage.QUALIFICATION)
    assert got.intent == "other"
    assert "budget_inr" not in got.slots
    asked = analyze("premium kitna hoga 1 crore cover ka", Stage.QUALIFICATION)
    assert asked.intent == "ask_price"
