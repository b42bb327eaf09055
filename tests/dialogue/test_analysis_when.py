"""``callback_at`` and ``timeline``: every time rule of issue 5, with exact datetimes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dialogue import analyze
from dialogue.analysis.lexicon import normalize
from dialogue.analysis.when import extract_callback_at, extract_timeline
from dialogue.model import Intent, Timeline

IST = ZoneInfo("Asia/Kolkata")
TUE = datetime(2026, 11, 24, 15, 30, tzinfo=IST)  # a Tuesday afternoon
NYE = datetime(2026, 12, 31, 11, 0, tzinfo=IST)  # Thursday, last day of the year


def at(day: str, clock: str) -> datetime:
    return datetime.fromisoformat(f"{day}T{clock}:00").replace(tzinfo=IST)


def callback(text: str, now: datetime = TUE) -> datetime | None:
    return extract_callback_at(normalize(text).numeric, now)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # parts of the day
        ("call me in the evening", at("2026-11-24", "18:00")),
        ("shaam ko call karna", at("2026-11-24", "18:00")),
        ("kal subah call karo", at("2026-11-25", "10:00")),
        ("kal dopahar mein call kijiye", at("2026-11-25", "14:00")),
        ("call me tonight", at("2026-11-24", "20:00")),
        ("aaj raat call karna", at("2026-11-24", "20:00")),
        # an explicit clock time overrides the part of the day
        ("raat ko 9 baje call karna", at("2026-11-24", "21:00")),
        ("kal subah 8 baje call karna", at("2026-11-25", "08:00")),
        ("kal shaam 7 baje phone karna", at("2026-11-25", "19:00")),
        ("kal dopahar 12 baje call karna", at("2026-11-25", "12:00")),
        ("call me tomorrow at 9 am", at("2026-11-25", "09:00")),
        ("call me at 10 pm", at("2026-11-24", "22:00")),
        # bare hours: 1-7 p.m., 8-12 a.m.
        ("call me at 5", at("2026-11-24", "17:00")),
        ("call me at 7", at("2026-11-24", "19:00")),
        ("kal 11 baje call karna", at("2026-11-25", "11:00")),
        ("kal 8 baje call karna", at("2026-11-25", "08:00")),
        ("kal 12 baje call karna", at("2026-11-25", "12:00")),
        ("call me at 5:30", at("2026-11-24", "17:30")),
        ("saadhe paanch baje call karna", at("2026-11-24", "17:30")),
        ("call me at four thirty", at("2026-11-24", "16:30")),
        ("kal teen baje call karna", at("2026-11-25", "15:00")),
        # "after 6" is 6 o'clock
        ("call me after 6", at("2026-11-24", "18:00")),
        ("6 baje ke baad call karo", at("2026-11-24", "18:00")),
        # a time already past today means tomorrow
        ("call me at 2", at("2026-11-25", "14:00")),
        # days
        ("call me tomorrow", at("2026-11-25", "10:00")),
        ("parso call karna", at("2026-11-26", "10:00")),
        ("call me day after tomorrow night", at("2026-11-26", "20:00")),
        ("call me on friday", at("2026-11-27", "10:00")),
        ("shanivaar ko call kijiye", at("2026-11-28", "10:00")),
        ("somvaar ko phone karo", at("2026-11-30", "10:00")),
        ("saturday afternoon call karna", at("2026-11-28", "14:00")),
        ("next week call karo", at("2026-11-30", "10:00")),
        ("agle hafte call karna", at("2026-11-30", "10:00")),
        # explicit dates
        ("call me on 3rd december at 11", at("2026-12-03", "11:00")),
        ("5 december ko call karna", at("2026-12-05", "10:00")),
        ("december 5 at 4 pm", at("2026-12-05", "16:00")),
        ("28 tarikh ko call karna", at("2026-11-28", "10:00")),
        ("10 tarikh ko call karna", at("2026-12-10", "10:00")),  # the 10th has passed
        ("call me on 1st january", at("2027-01-01", "10:00")),
        # ASR forms
        ("call me at for", at("2026-11-24", "16:00")),
        ("call me tomorrow at too", at("2026-11-25", "14:00")),
    ],
)
def test_time_rules(text: str, expected: datetime) -> None:
    got = callback(text)
    assert got == expected
    assert got is not None
    assert got.tzinfo == IST


@pytest.mark.parametrize(
    ("text", "minutes"),
    [
        ("call me in 20 minutes", 20),
        ("call me after 2 hours", 120),
        ("call me after too hours", 120),
        ("aadhe ghante baad call karo", 30),
        ("dedh ghante baad call karna", 90),
        ("ek ghante baad call karna", 60),
        ("10 min baad call karo", 10),
        ("call me in half an hour", 30),
        ("call me after an hour", 60),
    ],
)
def test_durations_round_down_to_the_minute(text: str, minutes: int) -> None:
    now = datetime(2026, 11, 24, 15, 30, 45, 123456, tzinfo=IST)
    assert callback(text, now) == datetime(2026, 11, 24, 15, 30, tzinfo=IST) + timedelta(
        minutes=minutes
    )


def test_kal_across_the_year_end() -> None:
    assert callback("kal call karo", NYE) == at("2027-01-01", "10:00")
    assert callback("call me tomorrow evening", NYE) == at("2027-01-01", "18:00")
    assert callback("parso call kar lena", NYE) == at("2027-01-02", "10:00")
    assert callback("call me next week", NYE) == at("2027-01-04", "10:00")


def test_kal_across_a_month_end() -> None:
    now = datetime(2026, 2, 28, 12, 0, tzinfo=IST)
    assert callback("kal call karna", now) == at("2026-03-01", "10:00")


@pytest.mark.parametrize(
    ("weekday", "expected_day"),
    [
        ("monday", "2026-11-30"),
        ("tuesday", "2026-12-01"),  # today is Tuesday: strictly after today
        ("wednesday", "2026-11-25"),
        ("sunday", "2026-11-29"),
    ],
)
def test_weekday_is_strictly_after_today(weekday: str, expected_day: str) -> None:
    assert callback(f"call me on {weekday}") == at(expected_day, "10:00")


def test_now_in_another_zone_is_converted_to_kolkata() -> None:
    now_utc = TUE.astimezone(UTC)
    got = callback("call me tomorrow", now_utc)
    assert got == at("2026-11-25", "10:00")
    assert got is not None
    assert got.tzinfo == IST
    # 20:00 UTC is already the next day in India.
    late = datetime(2026, 11, 24, 20, 0, tzinfo=UTC)
    assert callback("kal call karna", late) == at("2026-11-26", "10:00")


@pytest.mark.parametrize(
    "text", ["call me later", "baad mein call karo", "thodi der baad phone karna",
             "call me later today"],
)
def test_no_time_means_no_callback_at(text: str) -> None:
    got = analyze(text, None, TUE)
    assert got.intent is Intent.CALLBACK_REQUEST
    assert "callback_at" not in got.slots


def test_without_now_no_callback_at_is_resolved() -> None:
    got = analyze("kal shaam 7 baje call karna")
    assert got.intent is Intent.CALLBACK_REQUEST
    assert "callback_at" not in got.slots
    assert got.confidence <= 0.6
    resolved = analyze("kal shaam 7 baje call karna", None, TUE)
    assert resolved.slots["callback_at"] == at("2026-11-25", "19:00")
    assert resolved.confidence > got.confidence


def test_callback_phrases_are_not_a_timeline() -> None:
    got = analyze("call me next month", None, TUE)
    assert "timeline" not in got.slots


@pytest.mark.parametrize(
    ("text", "timeline"),
    [
        ("we need it immediately", Timeline.IMMEDIATE),
        ("asap chahiye", Timeline.IMMEDIATE),
        ("is hafte mein chahiye", Timeline.THIS_WEEK),
        ("is mahine mein hi lena hai", Timeline.THIS_MONTH),
        ("next month lena hai", Timeline.NEXT_MONTH),
        ("agle mahine purchase karenge", Timeline.NEXT_MONTH),
        ("this quarter we will decide", Timeline.THIS_QUARTER),
        ("agle quarter mein plan hai", Timeline.NEXT_QUARTER),
        ("is saal ke end tak lena hai", Timeline.THIS_YEAR),
        ("just exploring, no plan as such", Timeline.NO_PLAN),
        ("maybe next year not this year", None),
        ("we have 50 employees", None),
        ("jitni jaldi ho sake", Timeline.IMMEDIATE),
        ("fauran lagwana hai", Timeline.IMMEDIATE),
        ("isi hafte final karenge", Timeline.THIS_WEEK),
        ("by the weekend we want it", Timeline.THIS_WEEK),
        ("before the month ends", Timeline.THIS_MONTH),
        ("mahine ke aakhir tak", Timeline.THIS_MONTH),
        ("aane wale mahine mein", Timeline.NEXT_MONTH),
        ("next mnth", Timeline.NEXT_MONTH),
        ("next quater", Timeline.NEXT_QUARTER),
        ("by the end of this quarter", Timeline.THIS_QUARTER),
        ("saal khatam hone se pehle", Timeline.THIS_YEAR),
        ("nothing planned yet", Timeline.NO_PLAN),
        ("no fixed time frame", Timeline.NO_PLAN),
        # not a buying plan: something done, or the period a budget covers
        ("we opened the branch this month", None),
        ("is saal bahut kharcha ho gaya", None),
        ("3 lakh is the budget for this year", None),
        ("5 lakh budget hai aur is saal lena hai", Timeline.THIS_YEAR),
    ],
)
def test_timeline(text: str, timeline: Timeline | None) -> None:
    assert extract_timeline(normalize(text).plain) == timeline


@given(
    now=st.datetimes(
        min_value=datetime(2020, 1, 1), max_value=datetime(2035, 12, 31), timezones=st.just(IST)
    ),
    phrase=st.sampled_from([
        "kal call karo", "call me at 5", "call me in 20 minutes", "call me on monday",
        "parso shaam ko call karna", "call me next week", "call me at 2", "raat ko 9 baje call",
        "call me on 3rd december at 11", "15 tarikh ko call karna", "call me in the morning",
    ]),
)
def test_callback_is_never_in_the_past(now: datetime, phrase: str) -> None:
    got = callback(phrase, now)
    assert got is not None
    assert got.tzinfo == IST
    assert got >= now.replace(second=0, microsecond=0)
    assert got - now <= timedelta(days=400)
