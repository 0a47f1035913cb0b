"""Grading a final answer against ground truth, with math-verify (extraction: cotgen.answers)."""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from cotgen.answers import closing_brace, extract_answer, last_box, written_form

# math-verify bounds each parse/verify call with SIGALRM; a pathological expression
# (a huge power, a deep nesting) otherwise hangs sympy.
TIMEOUT_SECONDS = 5

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grade:
    """The grader's verdict on one text."""

    correct: bool | None  # None: the text states no final answer, or there is no gold
    answer: str | None  # the extracted final answer, as written; None when there is none
    reason: str | None = None  # why an answer was graded wrong without a comparison (a timeout)


_THOUSANDS = re.compile(r"^[-+]?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def normalize_gold(gold: str | None) -> str | None:
    """The bare gold answer: GSM8K's `... #### 1,000` -> `1000`; a boxed solution -> its box."""
    if gold is None:
        return None
    gold = gold.strip()
    if "####" in gold:
        gold = gold.rsplit("####", 1)[1].strip()
    else:
        gold = last_box(gold) or gold
    if _THOUSANDS.match(gold):
        gold = gold.replace(",", "")
    return gold or None


# -- comparison ----------------------------------------------------------------------


def _wrap(answer: str) -> str:
    """`answer` in a form math-verify reads as one LaTeX answer."""
    if _THOUSANDS.match(answer):
        # "1,000" inside a box could read as the set {1, 0}; it is a number.
        answer = answer.replace(",", "")
    if closing_brace("{" + answer + "}", 0) == len(answer) + 1:
        return "\\boxed{" + answer + "}"
    return "$" + answer + "$"


def _math_verify():
    import math_verify

    # With the timeout off (outside the main thread) math-verify warns once per process;
    # the grader knows and says so in grade()'s docstring.
    logging.getLogger("math_verify").setLevel(logging.ERROR)
    return math_verify


# What _parse returns for an answer whose parse ran out of time (cached like a result).
_TIMED_OUT = ("timed out",)


@lru_cache(maxsize=4096)
def _parse(answer: str, timeout: int | None) -> tuple:
    """math-verify's parse of one wrapped answer; () when it fails, _TIMED_OUT when it times out.

    Cached: during a search the same gold is compared with every terminal node.
    """
    mv = _math_verify()
    try:
        return tuple(mv.parse(_wrap(answer), parsing_timeout=timeout))
    except mv.errors.TimeoutException:
        return _TIMED_OUT
    except Exception:
        return ()


def grade(text: str, gold: str | None, *, timeout: int | None = TIMEOUT_SECONDS) -> Grade:
    """Grade the final answer stated in `text` against `gold`.

    `correct` is None when the text states no final answer or `gold` is None; an error
    inside math-verify counts as wrong (the answer is kept), and so does an answer that
    takes too long, with `reason` saying so.

    The time bound holds in every thread: a plain number is compared here (it cannot hang);
    anything else goes to a grading process of its own, which math-verify's SIGALRM bounds
    (its main thread) and which is killed when an answer takes longer than the parses and
    the comparison together may (math-verify's alarm cannot stop a long C call, such as a
    huge power). `timeout=None` grades here, unbounded.
    """
    answer = extract_answer(text)
    gold = normalize_gold(gold)
    if answer is None or gold is None:
        return Grade(correct=None, answer=answer)
    if timeout is None:
        return compare(answer, gold, None)
    if _NUMBER.match(answer) and _NUMBER.match(gold):
        on_main = threading.current_thread() is threading.main_thread()
        return compare(answer, gold, timeout if on_main else None)
    result = _grading_process().compare(answer, gold, timeout)
    if result.reason is not None:
        log.warning("graded wrong: %s (answer %.80r)", result.reason, answer)
    return result


# A plain decimal number, which math-verify parses in microseconds whatever it holds.
_NUMBER = re.compile(r"[-+]?\d{1,40}(?:\.\d{1,40})?\Z")


def compare(answer: str, gold: str, timeout: int | None) -> Grade:
    """`answer` against `gold` (both extracted and normalized), in this process. A wrong
    verdict reached by running out of time says so in `reason` (math-verify catches its own
    timeouts and returns "no match", so the clock tells)."""
    start = time.monotonic()
    result = _compare(answer, gold, timeout)
    if timeout and result.correct is False and result.reason is None and time.monotonic() - start >= timeout:
        return Grade(correct=False, answer=answer, reason=f"grading ran into its {timeout} s time limit")
    return result


def _compare(answer: str, gold: str, timeout: int | None) -> Grade:
    gold_parsed = _parse(gold, timeout)
    answer_parsed = _parse(answer, timeout)
    if gold_parsed is _TIMED_OUT or answer_parsed is _TIMED_OUT:
        which = "the gold answer" if gold_parsed is _TIMED_OUT else "the answer"
        return Grade(correct=False, answer=answer, reason=f"parsing {which} took over {timeout} s")
    if not gold_parsed or not answer_parsed:
        # Never str() a parsed object (it can hang): compare the written forms instead.
        return Grade(correct=written_form(gold) == written_form(answer), answer=answer)
    mv = _math_verify()
    try:
        ok = mv.verify(list(gold_parsed), list(answer_parsed), timeout_seconds=timeout)
    except mv.errors.TimeoutException:
        return Grade(correct=False, answer=answer, reason=f"comparing with the gold answer took over {timeout} s")
    except Exception:
        ok = False
    return Grade(correct=bool(ok), answer=answer)


def grader_id() -> str:
    """What grades answers, as published in exports' `verified_by`: 'math-verify==X.Y.Z'."""
    from importlib import metadata

    try:
        return f"math-verify=={metadata.version('math-verify')}"
    except metadata.PackageNotFoundError:
        return "math-verify"


# -- the grading process --------------------------------------------------------------


class GradingProcess:
    """A child process (`python -m cotgen.verify`) that compares answers, one at a time,
    as JSON lines. An answer that takes longer than `hard_limit(timeout)` has the child
    killed (a new one starts for the next answer) and is graded wrong, with its reason."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._cache: dict[tuple[str, str, int], Grade] = {}

    @staticmethod
    def hard_limit(timeout: int) -> float:
        # Two parses and one comparison, each bounded by `timeout` inside the child.
        return 3 * timeout + 5

    def compare(self, answer: str, gold: str, timeout: int) -> Grade:
        key = (answer, gold, timeout)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
            result = self._ask(answer, gold, timeout)
            if len(self._cache) >= 4096:
                self._cache.clear()
            self._cache[key] = result
            return result

    def _ask(self, answer: str, gold: str, timeout: int) -> Grade:
        proc = self._proc if self._proc is not None and self._proc.poll() is None else self._start()
        limit = self.hard_limit(timeout)
        ready: list = []
        try:
            proc.stdin.write(json.dumps([answer, gold, timeout]) + "\n")
            proc.stdin.flush()
            ready, _, _ = select.select([proc.stdout], [], [], limit)
            line = proc.stdout.readline() if ready else ""
        except OSError:  # the child died between poll() and the write (OOM, a kill)
            line, ready = "", [proc.stdout]
        except BaseException:
            # Ctrl-C mid-question: the child's answer would be read as the next question's
            self.close()
            raise
        if not line:
            self.close()
            why = f"grading took over {limit:g} s" if not ready else "the grading process died"
            return Grade(correct=False, answer=answer, reason=why)
        correct, reason = json.loads(line)
        return Grade(correct=correct, answer=answer, reason=reason)

    def _start(self) -> subprocess.Popen:
        # The child imports cotgen from where this process did, whatever its PYTHONPATH.
        root = str(Path(__file__).resolve().parents[1])
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (root, os.environ.get("PYTHONPATH")) if p)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "cotgen.verify"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, text=True, encoding="utf-8", env=env, start_new_session=True,
        )
        return self._proc

    def close(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            proc.kill()
            proc.wait()
            for stream in (proc.stdin, proc.stdout):
                try:
                    stream.close()
                except OSError:
                    pass


_PROCESS: GradingProcess | None = None
_PROCESS_LOCK = threading.Lock()


def _grading_process() -> GradingProcess:
    global _PROCESS
    with _PROCESS_LOCK:
        if _PROCESS is None:
            _PROCESS = GradingProcess()
            atexit.register(_PROCESS.close)  # a child busy on a long answer would outlive us
        return _PROCESS


def _serve() -> None:
    """The child's loop: [answer, gold, timeout] in, [correct, reason] out, until stdin closes."""
    for line in sys.stdin:
        answer, gold, timeout = json.loads(line)
        result = compare(answer, gold, timeout)
        sys.stdout.write(json.dumps([result.correct, result.reason]) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    _serve()
