"""EventBridge schedule expressions on a clock the caller controls.

moto never fires schedules, so the embedded stack keeps its own clock and, when the caller
advances it, invokes each ``Schedule`` event's function once per firing time crossed. AWS's
``cron()`` has six fields and its own day-of-week numbering (1 = SUN) and ``?``, which no
common Python cron library follows exactly; the subset used here is parsed by hand.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from alertprod.errors import ConfigError

__all__ = ["Schedule", "parse_schedule", "scheduled_event"]

_MONTHS = {m: i for i, m in enumerate(
    ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"], 1)}
_DAYS = {d: i for i, d in enumerate(["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"], 1)}
_RATE_RE = re.compile(r"^rate\(\s*(\d+)\s+(minute|minutes|hour|hours|day|days)\s*\)$")
_CRON_RE = re.compile(r"^cron\((.*)\)$")
_UNITS = {"minute": 60, "hour": 3600, "day": 86400}


def _field(text: str, low: int, high: int, names: dict[str, int] | None = None) -> frozenset[int]:
    """The values of one cron field: ``*``, ``?``, ``a``, ``a-b``, ``*/n``, ``a/n``, ``a-b/n``, lists."""
    values: set[int] = set()
    for part in text.split(","):
        step, has_step = 1, "/" in part
        if has_step:
            part, step_text = part.split("/", 1)
            step = int(step_text)
        if part in ("*", "?"):
            start, stop = low, high
        else:
            bounds = [names.get(p.upper(), None) if names and not p.isdigit() else int(p)
                      for p in part.split("-", 1)]
            if any(b is None for b in bounds):
                raise ConfigError(f"cron field {text!r}: unsupported value {part!r}")
            start = bounds[0]
            stop = bounds[-1] if len(bounds) == 2 or not has_step else high
        if not (low <= start <= high and low <= stop <= high) or step < 1:
            raise ConfigError(f"cron field {text!r} is outside {low}..{high}")
        values.update(range(start, stop + 1, step))
    return frozenset(values)


class Schedule(NamedTuple):
    """A parsed schedule expression."""

    expression: str
    period: timedelta | None  #: for ``rate()``
    minutes: frozenset[int] = frozenset()
    hours: frozenset[int] = frozenset()
    days_of_month: frozenset[int] = frozenset()
    months: frozenset[int] = frozenset()
    days_of_week: frozenset[int] = frozenset()  #: 1 = Sunday, as AWS counts
    years: frozenset[int] | None = None

    def fire_times(self, after: datetime, until: datetime, *, anchor: datetime) -> list[datetime]:
        """Firing times ``t`` with ``after < t <= until`` (UTC), in order.

        ``anchor`` is when the schedule was created; ``rate()`` fires at ``anchor + k * period``.
        """
        if until <= after:
            return []
        if self.period is not None:
            k = max(1, int((after - anchor) / self.period) + 1)
            times = []
            while (t := anchor + k * self.period) <= until:
                if t > after:
                    times.append(t)
                k += 1
            return times
        times = []
        day: date = after.astimezone(UTC).date()
        while day <= until.astimezone(UTC).date():
            aws_dow = day.isoweekday() % 7 + 1  # Python: Mon=1..Sun=7; AWS: Sun=1..Sat=7
            if (day.month in self.months and day.day in self.days_of_month
                    and aws_dow in self.days_of_week
                    and (self.years is None or day.year in self.years)):
                for h in sorted(self.hours):
                    for m in sorted(self.minutes):
                        t = datetime(day.year, day.month, day.day, h, m, tzinfo=UTC)
                        if after < t <= until:
                            times.append(t)
            day += timedelta(days=1)
        return times


def parse_schedule(expression: str) -> Schedule:
    """Parse ``rate(N unit)`` or a six-field AWS ``cron(min hour dom month dow year)``.

    Raises
    ------
    ConfigError
        For other forms, and for the cron features ``L``, ``W`` and ``#``, which are not emulated.
    """
    text = str(expression).strip()
    if m := _RATE_RE.match(text):
        n, unit = int(m.group(1)), m.group(2).rstrip("s")
        if n < 1:
            raise ConfigError(f"schedule {expression!r}: rate must be positive")
        return Schedule(text, timedelta(seconds=n * _UNITS[unit]))
    m = _CRON_RE.match(text)
    if not m:
        raise ConfigError(f"schedule {expression!r} is neither rate(...) nor cron(...)")
    fields = m.group(1).split()
    if len(fields) != 6:
        raise ConfigError(f"schedule {expression!r}: AWS cron takes 6 fields, got {len(fields)}")
    if any(c in f for f in fields for c in "LW#"):
        raise ConfigError(f"schedule {expression!r}: L, W and # are not emulated locally")
    minute, hour, dom, month, dow, year = fields
    return Schedule(
        text,
        None,
        minutes=_field(minute, 0, 59),
        hours=_field(hour, 0, 23),
        days_of_month=_field(dom, 1, 31),
        months=_field(month, 1, 12, _MONTHS),
        days_of_week=_field(dow, 1, 7, _DAYS),
        years=None if year in ("*", "?") else _field(year, 1970, 2199),
    )


def scheduled_event(rule_arn: str, when: datetime, *, account: str, region: str) -> dict[str, Any]:
    """The event EventBridge delivers to a function for one firing of a scheduled rule."""
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }
