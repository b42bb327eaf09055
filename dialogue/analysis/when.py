"""Time slots: ``callback_at`` (when to call back) and ``timeline`` (when to buy).

``callback_at`` runs on the ``numeric`` normal form and resolves against the
call's ``now`` in Asia/Kolkata; the result is tz-aware (Asia/Kolkata). Rules,
first match wins:

* **Duration** — "in 20 minutes", "after 2 hours", "aadhe ghante baad" (0.5 h),
  "dedh ghante" (1.5 h), "after too hours" (ASR): ``now + duration``, rounded
  down to the minute.
* **Day** — an explicit date ("3rd december", "5 december", "december 5",
  "28 tarikh", "on the 15th"; a date already past this year/month means next
  year/month);
  "day after tomorrow"/parso = +2 days; tomorrow/kal = +1 (across month and
  year ends); today/aaj/tonight = today; a weekday (English or Hindi:
  somvaar, mangalvaar, …) = the next such day *strictly after* today ("next
  monday" reads the same); "next week"/"agle hafte" = next Monday.
* **Time of day** — an explicit clock time wins: "9 am", "10 pm", "5:30",
  "4 30", "raat ko 9 baje", "6 baje ke baad"/"after 6" (= 6 o'clock),
  "saadhe paanch baje" (5:30), "at for" (ASR: 4). The hour is read through the
  part of day when one is said (morning → a.m.; afternoon, evening, night →
  p.m.), else a bare 1–7 is p.m. and 8–12 is a.m. (12 = noon). Without a clock
  time: morning/subah 10:00, afternoon/dopahar 14:00, evening/shaam 18:00,
  night/raat/tonight 20:00; a day with no time at all is 10:00.
* **Time without a day** is today, or tomorrow when that time has already
  passed ("call me at 2" said at 15:30 → tomorrow 14:00).
* Nothing resolvable ("call me later", "thodi der baad", "later today") → None.

``timeline`` runs on the ``plain`` form and only reads buying-plan phrases
(callers saying when they will buy); callback phrases are never a timeline —
the caller of ``extract_timeline`` skips it for callback turns. A period phrase
is not a timeline when it is ruled out ("not this year"), dates something done
("we opened the branch this month", "is mahine kharcha ho gaya": a past-tense
verb within 25 characters), or is the period a budget covers ("3 lakh is the
budget for this year": money before it and no buying verb in the turn).
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo

from dialogue.model import Timeline

__all__ = ["IST", "extract_callback_at", "extract_timeline"]

IST: Final = ZoneInfo("Asia/Kolkata")

_MONTHS: Final[dict[str, int]] = {
    "january": 1, "jan": 1, "february": 2, "feb": 2, "march": 3, "april": 4, "apr": 4,
    "may": 5, "june": 6, "july": 7, "august": 8, "aug": 8, "september": 9, "sept": 9,
    "sep": 9, "october": 10, "oct": 10, "november": 11, "nov": 11, "december": 12, "dec": 12,
}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WEEKDAYS: Final[dict[str, int]] = {
    **dict.fromkeys(["monday", "mon", "somvar", "somvaar", "somwar", "somwaar"], 0),
    **dict.fromkeys(["tuesday", "tues", "mangalvar", "mangalvaar", "mangalwar"], 1),
    **dict.fromkeys(["wednesday", "wed", "budhvar", "budhvaar", "budhwar", "budhwaar"], 2),
    **dict.fromkeys(
        ["thursday", "thurs", "guruvar", "guruvaar", "guruwar", "veervar", "veervaar",
         "brihaspativar"], 3),
    **dict.fromkeys(["friday", "fri", "shukravar", "shukravaar", "shukrawar"], 4),
    **dict.fromkeys(["saturday", "shanivar", "shanivaar", "shaniwar", "shaniwaar"], 5),
    **dict.fromkeys(["sunday", "ravivar", "ravivaar", "itvaar", "itwar", "itwaar", "etwar"], 6),
}
_WEEKDAY_RE = "|".join(sorted(_WEEKDAYS, key=len, reverse=True))
_PARTS: Final[dict[str, str]] = {
    **dict.fromkeys(["morning", "subah", "subha", "savere", "sawere"], "morning"),
    **dict.fromkeys(["afternoon", "dopahar", "dopehar", "dophar", "dopaher", "noon"],
                    "afternoon"),
    **dict.fromkeys(["evening", "shaam", "sham", "evng", "eve"], "evening"),
    **dict.fromkeys(["night", "raat", "rat", "tonight"], "night"),
}
_PART_RE = "|".join(sorted(_PARTS, key=len, reverse=True))
_PART_DEFAULT: Final[dict[str, int]] = {"morning": 10, "afternoon": 14, "evening": 18,
                                        "night": 20}
_DAY_DEFAULT: Final = time(10, 0)

_DURATION: Final = re.compile(
    r"\b(?:in|after|within)?\s*(?P<n>\d+(?:\.\d+)?)\s*"
    r"(?P<unit>minutes?|mins?|min|hours?|hrs?|ghante|ghanta|ghanton)\b"
    r"(?!\s+(?:ruko|rukiye|hold|wait))"
)
_DATE_DAY_MONTH: Final = re.compile(
    r"\b(?P<d>\d{1,2})\s*(?:st|nd|rd|th)?\s*(?:of\s+)?(?P<mon>" + _MONTH_RE + r")\b"
)
_DATE_MONTH_DAY: Final = re.compile(
    r"\b(?P<mon>" + _MONTH_RE + r")\s+(?P<d>\d{1,2})(?:\s*(?:st|nd|rd|th))?\b(?!\s*(?:baje|pm|am))"
)
_DATE_TARIKH: Final = re.compile(
    r"\b(?P<d>\d{1,2})\s*(?:st|nd|rd|th)?\s*(?:tarikh|tareekh|taarikh|date)\b"
)
# "on the 15th": a day of the month with no month named.
_DATE_ORDINAL: Final = re.compile(r"\b(?P<d>\d{1,2})(?:st|nd|rd|th)\b")
_PLUS2: Final = re.compile(r"\b(?:day after tomorrow|day after tmrw|parso|parson|parsoon)\b")
_PLUS1: Final = re.compile(
    r"\b(?:tomorrow|tomorow|tommorow|tommorrow|tomoro|tomorro|tommoro|tmrw|tmrow|tmr|kal|kaal)\b"
)
_TODAY: Final = re.compile(r"\b(?:today|aaj|tonight)\b")
_NEXT_WEEK: Final = re.compile(
    r"\b(?:next (?:week|weak)|agle (?:hafte|week|saptah)|agle hafta|next hafte)\b"
)
_WEEKDAY: Final = re.compile(r"\b(?P<wd>" + _WEEKDAY_RE + r")\b")
_PART: Final = re.compile(r"\b(?P<part>" + _PART_RE + r")\b")

_H = r"(?P<h>\d{1,2}(?:\.\d+)?)"
_M = r"(?P<m>[0-5]\d)"
_CLOCKS: Final = (
    re.compile(r"\b" + _H + r"(?:(?::|\.|\s+)" + _M + r")?\s*(?P<ap>am|pm|a m|p m)\b"),
    re.compile(r"\b(?P<h>\d{1,2}):" + _M + r"\b"),
    re.compile(r"\b" + _H + r"\s*(?:baje|bje|bajkar|oclock|o clock)\b"),
    re.compile(
        r"\b(?:at|after|around|by|till|before)\s+" + _H + r"(?:\s+" + _M + r")?\b"
        r"(?!\s*(?:st|nd|rd|th|tarikh|" + _MONTH_RE + r")\b)"
    ),
    re.compile(
        r"\b(?:" + _PART_RE + r"|tomorrow|kal|parso|today|aaj|" + _WEEKDAY_RE + r")\s+"
        + _H + r"(?:\s+" + _M + r")?\b(?!\s*(?:st|nd|rd|th|tarikh|" + _MONTH_RE + r")\b)"
    ),
)


def _duration(numeric: str) -> timedelta | None:
    m = _DURATION.search(numeric)
    if m is None:
        return None
    n = float(m["n"])
    return timedelta(minutes=n) if m["unit"].startswith("m") else timedelta(hours=n)


def _day(numeric: str, today: date) -> tuple[date | None, bool]:
    """The day named in the text, and whether it was "next week"."""
    for pattern in (_DATE_DAY_MONTH, _DATE_MONTH_DAY):
        m = pattern.search(numeric)
        if m is not None:
            month, day = _MONTHS[m["mon"]], int(m["d"])
            for year in (today.year, today.year + 1):
                try:
                    candidate = date(year, month, day)
                except ValueError:
                    break
                if candidate >= today:
                    return candidate, False
    m = _DATE_TARIKH.search(numeric) or _DATE_ORDINAL.search(numeric)
    if m is not None:
        day = int(m["d"])
        first = today.replace(day=1)
        for months_ahead in (0, 1, 2):
            month_index = first.month - 1 + months_ahead
            year, month = first.year + month_index // 12, month_index % 12 + 1
            try:
                candidate = date(year, month, day)
            except ValueError:
                continue
            if candidate >= today:
                return candidate, False
    if _PLUS2.search(numeric):
        return today + timedelta(days=2), False
    if _PLUS1.search(numeric):
        return today + timedelta(days=1), False
    if _NEXT_WEEK.search(numeric):
        return today + timedelta(days=7 - today.weekday()), True
    m = _WEEKDAY.search(numeric)
    if m is not None:
        ahead = (_WEEKDAYS[m["wd"]] - today.weekday()) % 7 or 7
        return today + timedelta(days=ahead), False
    if _TODAY.search(numeric):
        return today, False
    return None, False


def _clock(numeric: str, part: str | None) -> time | None:
    for pattern in _CLOCKS:
        m = pattern.search(numeric)
        if m is None:
            continue
        hour_f = float(m["h"])
        hour, minute = int(hour_f), round((hour_f - int(hour_f)) * 60)
        groups = m.groupdict()
        if groups.get("m"):
            minute = int(groups["m"])
        ap = groups.get("ap")
        if hour > 23 or minute > 59:
            continue
        if ap:
            hour = hour % 12 + (12 if ap.replace(" ", "") == "pm" else 0)
        elif hour <= 12:
            if part == "morning":
                pass
            elif part in {"afternoon", "evening", "night"}:
                hour = hour + 12 if hour < 12 else hour
            elif 1 <= hour <= 7:
                hour += 12
        return time(hour, minute)
    return None


def extract_callback_at(numeric: str, now: datetime) -> datetime | None:
    """When the caller asked to be called back, or None (module docstring)."""
    local_now = now.astimezone(IST)
    duration = _duration(numeric)
    if duration is not None:
        return (local_now + duration).replace(second=0, microsecond=0)
    today = local_now.date()
    day, _ = _day(numeric, today)
    part_match = _PART.search(numeric)
    part = _PARTS[part_match["part"]] if part_match else None
    clock = _clock(numeric, part)
    at = clock or (time(_PART_DEFAULT[part]) if part else None)
    if day is not None:
        if day == today and at is None:
            return None  # "later today": no time to hold on to
        return datetime.combine(day, at or _DAY_DEFAULT, IST)
    if at is None:
        return None
    resolved = datetime.combine(today, at, IST)
    if resolved <= local_now:
        resolved += timedelta(days=1)
    return resolved


_MONTH_WORD = r"(?:month|mnth|moth|mahina|mahine|mahiney)"
_TIMELINES: Final = (
    (Timeline.NO_PLAN, re.compile(
        r"\b(?:no (?:fixed |particular |such )?(?:plans?|timeline|time ?frame|date)"
        r"|(?:koi|kuch) plan nahi|just (?:exploring|looking|checking|browsing)"
        r"|(?:sirf|bas|abhi) dekh rahe|(?:not|havent|have not|nahi) decided (?:yet|when)"
        r"|decide nahi kiya (?:kab|ki kab)|kab lenge (?:pata nahi|decide nahi)"
        r"|nothing planned|not planned yet|(?:kuch|koi) socha nahi|just comparing)\b")),
    (Timeline.IMMEDIATE, re.compile(
        r"\b(?:immediately|right away|asap|as soon as possible|abhi chahiye|abhi ke abhi|jaldi se"
        r"|jald se jald|turant|urgently|urgent|today itself|aaj hi|jitn[ai] jaldi|jaldi chahiye"
        r"|fauran|foran|fouran|(?:close|finali[sz]e|do|start|install|book|deliver)"
        r" (?:it |this |the deal )?today)\b")),
    (Timeline.THIS_WEEK, re.compile(
        r"\b(?:this (?:week|weak)|is hafte|iss hafte|isi hafte|is (?:week|weak)|iss week|isi week"
        r"|within (?:a|this|1|the) week|this weekend|by the weekend|hafte ke andar)\b")),
    (Timeline.NEXT_QUARTER, re.compile(
        r"\b(?:next (?:quarter|quater|qtr)|agle (?:quarter|quater)|agla quarter"
        r"|coming quarter)\b")),
    (Timeline.THIS_QUARTER, re.compile(
        r"\b(?:this quarter|is quarter|iss quarter|isi quarter|before the quarter ends"
        r"|quarter end (?:tak|se pehle|ke pehle)|(?:before|by) (?:the )?quarter end"
        r"|current quarter|(?:by|before) the end of (?:this|the) quarter)\b")),
    (Timeline.NEXT_MONTH, re.compile(
        r"\b(?:next " + _MONTH_WORD + r"|nxt month|agle (?:mahine|month|mahina)"
        r"|aane wal[ea] (?:mahine|mahina|month)|coming month)\b")),
    (Timeline.THIS_MONTH, re.compile(
        r"\b(?:this month|is mahine|iss mahine|isi mahine|is month|within a month"
        r"|month end (?:tak|se pehle)|(?:by|before) (?:the )?month end|before the month ends"
        r"|(?:by|before) the end of (?:this|the) month|mahine ke (?:end|aakhir|ant) tak)\b")),
    (Timeline.THIS_YEAR, re.compile(
        r"\b(?:this year|is saal|iss saal|by year end|by the end of the year|saal ke end tak"
        r"|year end tak|saal ke andar|saal khatam hone se pehle|within (?:this|the) year"
        r"|before (?:the )?year end)\b")),
)


# "not this year", "this year nahi": a phrase the caller rules out.
_NEGATED: Final = re.compile(r"\bnot\s+$")
_NEGATED_AFTER: Final = re.compile(r"\s+nahi\b")
# "I just started the business this month", "is mahine kharcha ho gaya": the
# period of something done, not of a purchase to come.
_PAST: Final = re.compile(
    r"\b(?:started|joined|moved|opened|bought|purchased|took|renewed|spent|paid|shifted"
    r"|launched|had|was|were|did|ho gaya|ho gayi|ho gaye|hua|hui|kar liya|le liya|liya"
    r"|lagwaya|kharida|khareeda)\b"
)
_PAST_WINDOW: Final = 25
# "2 lakh is our budget for this year": the period a budget covers.
_MONEY_WORD: Final = re.compile(
    r"(?:\b(?:budget|lakhs?|laakhs?|lacs?|lacks?|crores?|thousand|hazaa?r|hajaa?r|k|rupees)\b"
    r"|₹)"
)
_BUYING: Final = re.compile(
    r"\b(?:buy|by|purchase|install|lena|lenge|le lenge|kharid\w*|lagwa\w*|karwa\w*|want|chahiye"
    r"|need|plan\w*|finali[sz]e|karna|karenge|start|go ahead|decide|shift)\b"
)


def _about_purchase(plain: str, start: int, end: int) -> bool:
    """Whether the phrase at ``start:end`` times a purchase to come (see above)."""
    if _PAST.search(plain, max(0, start - _PAST_WINDOW), min(len(plain), end + _PAST_WINDOW)):
        return False
    return not (_MONEY_WORD.search(plain, 0, start) and not _BUYING.search(plain))


def extract_timeline(plain: str) -> Timeline | None:
    """When the caller plans to buy, from a buying-plan phrase, or None."""
    for timeline, pattern in _TIMELINES:
        m = pattern.search(plain)
        if (m is not None and not _NEGATED.search(plain, 0, m.start())
                and not _NEGATED_AFTER.match(plain, m.end())
                and (timeline is Timeline.NO_PLAN or _about_purchase(plain, m.start(), m.end()))):
            return timeline
    return None
