"""Grading a final answer against ground truth, with math-verify (extraction: cotgen.answers)."""

from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass
from functools import lru_cache

from cotgen.answers import closing_brace, extract_answer, last_box

# math-verify bounds each parse/verify call with SIGALRM; a pathological expression
# (a huge power, a deep nesting) otherwise hangs sympy.
TIMEOUT_SECONDS = 5


@dataclass(frozen=True)
class Grade:
    """The grader's verdict on one text."""

    correct: bool | None  # None: the text states no final answer, or there is no gold
    answer: str | None  # the extracted final answer, as written; None when there is none


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


@lru_cache(maxsize=4096)
def _parse(answer: str, timeout: int | None) -> tuple:
    """math-verify's parse of one wrapped answer; () when it fails or times out.

    Cached: during a search the same gold is compared with every terminal node.
    """
    mv = _math_verify()
    try:
        return tuple(mv.parse(_wrap(answer), parsing_timeout=timeout))
    except (Exception, mv.errors.TimeoutException):
        return ()


def _plain(answer: str) -> str:
    """A last-resort textual form for answers math-verify cannot parse."""
    answer = re.sub(r"\\text\{([^{}]*)\}", r"\1", answer)
    return re.sub(r"[\s$]|\\[,;!: ]", "", answer).lower()


def grade(text: str, gold: str | None, *, timeout: int | None = TIMEOUT_SECONDS) -> Grade:
    """Grade the final answer stated in `text` against `gold`.

    `correct` is None when the text states no final answer or `gold` is None; a
    timeout or an error inside math-verify counts as wrong (the answer is kept).
    math-verify's SIGALRM timeout only works in the main thread, so elsewhere the
    comparison runs without one; call from the main thread (or a process pool) when
    the answers are untrusted and long.
    """
    answer = extract_answer(text)
    gold = normalize_gold(gold)
    if answer is None or gold is None:
        return Grade(correct=None, answer=answer)
    if threading.current_thread() is not threading.main_thread():
        timeout = None
    gold_parsed = _parse(gold, timeout)
    answer_parsed = _parse(answer, timeout)
    if not gold_parsed or not answer_parsed:
        # Never str() a parsed object (it can hang): compare the written forms instead.
        return Grade(correct=_plain(gold) == _plain(answer), answer=answer)
    mv = _math_verify()
    try:
        ok = mv.verify(list(gold_parsed), list(answer_parsed), timeout_seconds=timeout)
    except (Exception, mv.errors.TimeoutException):
        ok = False
    return Grade(correct=bool(ok), answer=answer)


def grader_id() -> str:
    """What grades answers, as published in exports' `verified_by`: 'math-verify==X.Y.Z'."""
    from importlib import metadata

    try:
        return f"math-verify=={metadata.version('math-verify')}"
    except metadata.PackageNotFoundError:
        return "math-verify"
