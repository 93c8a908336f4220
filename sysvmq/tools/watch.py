"""``sysvmq watch``: the depth of queues, sampled each interval. On a terminal, a live view
(messages, bytes, a fill bar of the capacity, a sparkline of the last minute); elsewhere, one
plain line per queue per refresh."""

import collections
import errno
import functools
import math
import os
import time
from typing import Callable, Deque, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

from sysvmq.errors import PermissionDeniedError, QueueNotFoundError, QueueRemovedError, SysVMQError
from sysvmq.queue import MessageQueue
from sysvmq.stats import QueueStats, queues
from sysvmq.tools.output import escape
from sysvmq.tools.parsing import OK, PRIVATE_KEY, UsageError
from sysvmq.tools.terminal import Events, Screen, output_fd

__all__ = ["Row", "Target", "sample", "plain_lines", "screen_lines", "sparkline", "fill_bar", "run"]

WINDOW = 60.0
"""Seconds of history the sparkline shows."""


class Target(NamedTuple):
    """A queue named on the command line: by key, or by msqid."""

    by_id: bool
    value: int


class Row(NamedTuple):
    """One queue at one refresh: its stats, or why there are none ("absent", "denied", an errno name)."""

    key: Optional[int]
    id: Optional[int]
    stats: Optional[QueueStats]
    status: str


def targets_from(keys: Sequence[int], ids: Sequence[int]) -> List[Target]:
    """The named queues in the order given, each once; key 0 (IPC_PRIVATE) is refused."""
    if 0 in keys:
        raise UsageError(PRIVATE_KEY)
    named = [Target(False, key) for key in keys] + [Target(True, msqid) for msqid in ids]
    return list(dict.fromkeys(named))


def _problem(target: Target) -> Row:
    """Why a named queue is missing from the kernel's listing."""
    key, msqid = (None, target.value) if target.by_id else (target.value, None)
    try:
        mq = MessageQueue.from_id(target.value) if target.by_id else MessageQueue(target.value)
        try:
            return Row(mq.key, mq.id, mq.stats(), "ok")
        finally:
            mq.close()
    except (QueueNotFoundError, QueueRemovedError):
        return Row(key, msqid, None, "absent")
    except PermissionDeniedError:
        return Row(key, msqid, None, "denied")
    except SysVMQError as e:
        return Row(key, msqid, None, errno.errorcode.get(e.errno or 0, "error"))


def sample(targets: Sequence[Target]) -> List[Row]:
    """Every queue (no targets) or the named ones, now: one listing of the kernel's queues,
    and a look at each named queue it does not hold."""
    listed = queues()
    if not targets:
        return [Row(q.key, q.id, q, "ok") for q in listed]
    by_key = {q.key: q for q in listed if q.key}
    by_id = {q.id: q for q in listed}
    rows = []
    for target in targets:
        found = (by_id if target.by_id else by_key).get(target.value)
        rows.append(Row(found.key, found.id, found, "ok") if found else _problem(target))
    return rows


History = Dict[int, Deque[Tuple[float, int]]]
"""Per msqid, (monotonic time, messages waiting) over the last WINDOW seconds."""


def remember(history: History, rows: Iterable[Row], now: float) -> None:
    """Add each queue's depth to its history (by msqid); forget samples older than the
    window, and queues that are gone."""
    seen = set()
    for row in rows:
        if row.stats is not None:
            seen.add(row.stats.id)
            samples = history.setdefault(row.stats.id, collections.deque())
            samples.append((now, row.stats.count))
            while samples[0][0] < now - WINDOW:
                samples.popleft()
    for gone in set(history) - seen:
        del history[gone]


class Glyphs(NamedTuple):
    levels: str
    full: str
    empty: str


UNICODE = Glyphs("▁▂▃▄▅▆▇█", "█", "·")
ASCII = Glyphs("_.-=+*#@", "#", ".")


def glyphs_for(encoding: Optional[str]) -> Glyphs:
    """Block characters where the terminal's encoding has them, ASCII elsewhere."""
    try:
        (UNICODE.levels + UNICODE.empty).encode(encoding or "ascii")
        return UNICODE
    except (UnicodeError, LookupError):
        return ASCII


def sparkline(samples: Iterable[Tuple[float, int]], width: int, now: float, glyphs: Glyphs = UNICODE) -> str:
    """The last WINDOW seconds before `now` in `width` columns, each the highest depth of its
    slice of time (the one before it where no sample fell in it; blank before the first):
    the lowest glyph for an empty queue, the highest for the peak of the window."""
    step = WINDOW / width if width > 0 else WINDOW
    columns: List[Optional[int]] = [None] * max(width, 0)
    for when, depth in samples:
        column = min(width - 1, math.floor((when - (now - WINDOW)) / step))
        if column >= 0:
            previous = columns[column]
            columns[column] = depth if previous is None else max(previous, depth)
    last: Optional[int] = None
    for column, found in enumerate(columns):
        if found is None and last is not None:
            columns[column] = last
        last = columns[column]
    peak = max((level for level in columns if level is not None), default=0)
    top = len(glyphs.levels) - 1
    return "".join(
        " " if depth is None else glyphs.levels[math.ceil(depth * top / peak) if peak else 0] for depth in columns
    )


def fill_bar(used: int, capacity: int, width: int, glyphs: Glyphs = UNICODE) -> str:
    """`[████····]  50%`: `used` bytes of `capacity`, the bar `width` cells wide."""
    share = min(1.0, used / capacity) if capacity > 0 else 1.0
    cells = round(share * width)
    if used and not cells:
        cells = 1  # a queue holding anything never looks empty
    percent = "<1%" if used and share < 0.01 else f"{share * 100:3.0f}%"
    return f"[{glyphs.full * cells}{glyphs.empty * (width - cells)}] {percent}"


def plain_lines(rows: Sequence[Row], when: float) -> List[str]:
    """One line per queue: `TIME key=0x... id=N count=N bytes=N max_bytes=N status=ok`,
    `-` for what is not known (status absent, denied, or an errno name)."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(when))
    lines = []
    for row in rows:
        key = "-" if row.key is None else f"{row.key:#010x}"
        msqid = "-" if row.id is None else str(row.id)
        s = row.stats
        counts = (s.count, s.bytes, s.max_bytes) if s else ("-", "-", "-")
        lines.append(
            f"{stamp} key={key} id={msqid} count={counts[0]} bytes={counts[1]} max_bytes={counts[2]}"
            f" status={escape(row.status.encode())}"
        )
    return lines


_PROBLEMS = {"absent": "no such queue", "denied": "permission denied"}

SPARK_MIN = 8
"""Columns below which a sparkline says nothing: left out."""


def _number_columns(rows: Sequence[Row]) -> List[str]:
    """The header and a line per queue of the KEY, ID, MESSAGES, BYTES and CAPACITY columns,
    aligned (the key to the left, the numbers to the right)."""
    table = [["KEY", "ID", "MESSAGES", "BYTES", "CAPACITY"]]
    for row in rows:
        key = "-" if row.key is None else f"{row.key:#010x}"
        msqid = "-" if row.id is None else str(row.id)
        s = row.stats
        table.append([key, msqid, *([str(s.count), str(s.bytes), str(s.max_bytes)] if s else ["", "", ""])])
    widths = [max(len(cells[i]) for cells in table) for i in range(5)]
    return [
        "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        for cells in table
    ]


class Gauges(NamedTuple):
    """What follows the numbers of a queue with stats: a fill bar `bar` cells wide (0: none),
    then a sparkline `spark` columns wide (less than SPARK_MIN: none)."""

    bar: int
    spark: int
    glyphs: Glyphs

    @classmethod
    def fitting(cls, room: int, interval: float, glyphs: Glyphs) -> "Gauges":
        """The widest that fit in `room` columns."""
        bar = min(20, max(5, room // 3)) if room >= 16 else 0
        # A column a refresh or more wide: no slice of time without a sample in it.
        spark = min(room - bar - 9 - 8, round(WINDOW / interval)) if bar else 0
        return cls(bar, spark, glyphs)

    def header(self) -> str:
        text = "  " + "FILL".ljust(self.bar + 7) if self.bar else ""
        return text + "  MESSAGES, LAST MINUTE" if self.spark >= SPARK_MIN else text

    def of(self, row: Row, history: History, now: float) -> str:
        """The gauges of `row` at monotonic `now`, or why it has no stats."""
        s = row.stats
        if s is None:
            return "  " + escape(_PROBLEMS.get(row.status, row.status).encode())
        if not self.bar:
            return ""
        text = "  " + fill_bar(s.bytes, s.max_bytes, self.bar, self.glyphs)
        if self.spark < SPARK_MIN:
            return text
        samples = history.get(s.id, ())
        peak = max((depth for _, depth in samples), default=0)
        return text + "  " + sparkline(samples, self.spark, now, self.glyphs) + f" max {peak}"


def _fit(lines: List[str], rows: int, height: int) -> List[str]:
    """`lines` (a title, a header, `rows` queues) cut to `height`: the queues cut are counted
    on the last line, and the title and the header go first."""
    if len(lines) <= height:
        return lines
    hidden = rows - max(height - 3, 0)
    if hidden > 0:
        return [*lines[: height - 1], f"... {hidden} more queue(s): enlarge the terminal or name fewer"]
    return lines[:height]


def screen_lines(
    rows: Sequence[Row],
    history: History,
    size: Tuple[int, int],
    interval: float,
    when: Tuple[float, float],
    glyphs: Glyphs,
) -> List[str]:
    """The live view for a terminal of `size` (columns, lines) at `when` (wall clock,
    monotonic): a title, a header, a row per queue, each cut to the width; rows that do not
    fit are counted on the last line."""
    columns, height = max(size[0] - 1, 1), max(size[1], 1)  # never the last column: no wrap
    title = f"sysvmq watch  {len(rows)} queue(s)  every {interval:g} s  {time.strftime('%H:%M:%S', time.localtime(when[0]))}  q or Ctrl-C: quit"
    numbers = _number_columns(rows)
    gauges = Gauges.fitting(columns - len(numbers[0]) - 2, interval, glyphs)
    lines = [title, numbers[0] + gauges.header()]
    if not rows:
        lines.append("(no queues)")
    lines.extend(text + gauges.of(row, history, when[1]) for row, text in zip(rows, numbers[1:]))
    return [line[:columns] for line in _fit(lines, len(rows), height)]


def run(targets: Sequence[Target], interval: float, count: Optional[int], plain: bool) -> int:
    """Sample and show until `count` refreshes, `q`, or a stop signal (status 128 + signal)."""
    fd, encoding = output_fd()
    live = not plain and os.isatty(fd) and os.environ.get("TERM", "dumb") not in ("", "dumb")
    glyphs = glyphs_for(encoding)
    history: History = {}
    with Events(keys=live) as events, Screen(fd, live, encoding) as screen:
        refreshes = 0
        rows: List[Row] = []
        due = time.monotonic()
        while True:
            now = (time.time(), time.monotonic())
            rows = sample(targets)
            remember(history, rows, now[1])
            if live:
                screen.draw(screen_lines(rows, history, screen.size(), interval, now, glyphs))
            else:
                screen.write_lines(plain_lines(rows, now[0]))
            refreshes += 1
            if count is not None and refreshes >= count:
                return OK

            redraw = functools.partial(_redraw, screen, rows, history, interval, now, glyphs) if live else None
            status, due = _between_refreshes(events, screen, due + interval, interval, redraw)
            if status is not None:
                return status


def _redraw(
    screen: Screen, rows: List[Row], history: History, interval: float, now: Tuple[float, float], glyphs: Glyphs
) -> None:
    screen.resume()
    screen.draw(screen_lines(rows, history, screen.size(), interval, now, glyphs))


def _between_refreshes(
    events: Events, screen: Screen, due: float, interval: float, redraw: Optional[Callable[[], None]]
) -> Tuple[Optional[int], float]:
    """Until the refresh `due`, answering keys and signals: the status to end with (None: go
    on), and when the refresh after is due."""
    while True:
        left = due - time.monotonic()
        if left <= 0:
            return None, (time.monotonic() if left < -interval else due)  # late: no burst to catch up
        happened = events.wait(left)
        if happened.stop:
            return 128 + happened.stop, due
        if happened.quit:
            return OK, due
        if happened.suspend:
            screen.suspend()
            events.stop_self()
        if happened.redraw and redraw is not None:
            redraw()
