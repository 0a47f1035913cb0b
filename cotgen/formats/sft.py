"""The sft format: one chat conversation per tree (TRL's conversational `messages`)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from cotgen.answers import extract_answer
from cotgen.formats.base import (
    ExportRefused,
    Finding,
    control_token_findings,
    refuse_control_tokens,
    stated_problem,
)
from cotgen.formats.marco import marco_record
from cotgen.formats.paths import told_path
from cotgen.formats.provenance import Row
from cotgen.tree import Node, Tree

REASONING_TAGS = ("think", "thought", "none")
ROLES = ("system", "user", "assistant")
# The system prompt the search's policy uses by default (cotgen/prompts/system.txt), so the
# model is trained on the prompt it reasons under.
DEFAULT_SYSTEM_PROMPT = (Path(__file__).parents[1] / "prompts" / "system.txt").read_text(encoding="utf-8").removesuffix("\n")
SEPARATOR = "\n\n"  # between reasoning steps: the policy stops a step at a blank line
THINK_TAGS = ("<think>", "</think>")


@dataclass(frozen=True)
class SFTFormat:
    """system (optional), user = the problem, assistant = reasoning then answer.

    The reasoning is the best correct path (paths.best_correct_path, refined steps
    replaced), or with `journey` the path told through its mistakes (paths.journey_path:
    refuted branch, critic, reflection sentence, refine). Node texts are stripped and
    joined by a blank line. For "think" and "none" the answer is the text of the path's
    conclusion node, which then leaves the reasoning; when the path ends at a step that
    states the answer itself, that step stays in the reasoning and the answer is
    "The final answer is $\\boxed{X}$." (X from answers.extract_answer). "thought" is
    exactly the marco format's response (Output = the final answer alone).
    """

    name: ClassVar[str] = "sft"
    file_kind: ClassVar[str] = "parquet"
    columns: ClassVar[tuple[str, ...]] = ("messages",)

    system_prompt: str = DEFAULT_SYSTEM_PROMPT  # Qwen2.5-Math's CoT system prompt; "" = no system message
    # How the assistant wraps its reasoning: "think" = <think>..</think> then the answer,
    # as current reasoning models; "thought" = Marco-o1's <Thought>..</Thought><Output>..</Output>;
    # "none" = the reasoning steps then the answer, as plain paragraphs.
    reasoning_tags: str = "think"
    journey: bool = False  # walk refuted branches, critic and reflection before the correct path
    max_journey_branches: int = 1  # refuted branches a journey may walk (with journey only)

    def __post_init__(self) -> None:
        if not isinstance(self.system_prompt, str):
            raise ValueError(f"system_prompt must be a string, not {self.system_prompt!r}")
        if self.reasoning_tags not in REASONING_TAGS:
            raise ValueError(
                f"reasoning_tags must be one of {', '.join(REASONING_TAGS)}, not {self.reasoning_tags!r}"
            )
        if not isinstance(self.journey, bool):
            raise ValueError(f"journey must be true or false, not {self.journey!r}")
        if isinstance(self.max_journey_branches, bool) or not isinstance(self.max_journey_branches, int):
            raise ValueError(f"max_journey_branches must be an integer, not {self.max_journey_branches!r}")
        if self.max_journey_branches < 1:
            raise ValueError(f"max_journey_branches must be at least 1, not {self.max_journey_branches}")

    def export(self, tree: Tree) -> Iterator[dict[str, Any]]:
        problem = stated_problem(tree)
        messages = [{"role": "system", "content": self.system_prompt}] if self.system_prompt else []
        messages.append({"role": "user", "content": problem})
        content, nodes = self._assistant(tree)
        messages.append({"role": "assistant", "content": content})
        refuse_control_tokens({f"messages[{i}]": m["content"] for i, m in enumerate(messages)})
        yield Row({"messages": messages}, nodes)

    def _assistant(self, tree: Tree) -> tuple[str, list[Node]]:
        """The assistant's message and the nodes it tells."""
        if self.reasoning_tags == "thought":
            # Exactly the marco format's response, so the two exports teach the same text.
            record, nodes = marco_record(tree, journey=self.journey, max_journey_branches=self.max_journey_branches)
            return record["response"], nodes
        _, body = told_path(tree, self.journey, self.max_journey_branches)
        if not body:
            raise ExportRefused("no correct root-to-leaf path")
        reasoning, answer = _reasoning_and_answer(body)
        if not answer:
            raise ExportRefused(f"node {body[-1].id} ({body[-1].kind}) has no text to answer with")
        if self.reasoning_tags == "none":
            return SEPARATOR.join(text for text in (reasoning, answer) if text), body
        for tag in THINK_TAGS:
            if tag in reasoning or tag in answer:
                raise ExportRefused(f"a node's text contains {tag}")
        return f"<think>\n{reasoning}\n</think>\n\n{answer}", body

    def check(self, row: dict[str, Any]) -> list[Finding]:
        messages = row.get("messages")
        if not isinstance(messages, (list, tuple)):
            kind = "missing" if messages is None else type(messages).__name__
            return [Finding("error", f"messages must be a list of {{role, content}}, not {kind}")]
        if not messages:
            return [Finding("error", "messages is empty: a conversation needs a user and an assistant message")]
        out: list[Finding] = []
        roles: list[str | None] = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                out.append(Finding("error", f"messages[{i}] must be a {{role, content}} object"))
                roles.append(None)
                continue
            role, content = message.get("role"), message.get("content")
            roles.append(role)
            if role not in ROLES:
                out.append(Finding("error", f"messages[{i}]: role {role!r} is not one of {', '.join(ROLES)}"))
            elif role == "system" and i != 0:
                out.append(Finding("error", f"messages[{i}]: a system message may only come first"))
            if not isinstance(content, str):
                out.append(Finding("error", f"messages[{i}]: content must be a string"))
            elif not content.strip():
                out.append(Finding("error", f"messages[{i}]: content is empty"))
            else:
                out.extend(control_token_findings(content, f"messages[{i}]"))
                if role == "assistant":
                    out.extend(_unbalanced_tags(i, content))
        if "user" not in roles:
            out.append(Finding("error", "messages has no user message"))
        if roles and roles[-1] in ROLES and roles[-1] != "assistant":
            out.append(Finding("error", "the last message must be the assistant's"))
        return out

    @staticmethod
    def arrow_schema():  # -> pyarrow.Schema
        """Column types of an sft shard: TRL's conversational format."""
        import pyarrow as pa

        message = pa.struct([("role", pa.string()), ("content", pa.string())])
        return pa.schema([("messages", pa.list_(message))])


def _reasoning_and_answer(steps: Sequence[Node]) -> tuple[str, str]:
    """Split a solution into reasoning text and answer text (see SFTFormat)."""
    last = steps[-1]
    if last.kind == "conclusion":
        return _join(steps[:-1]), last.text.strip()
    answer = extract_answer(last.text)
    if answer is None:
        return _join(steps[:-1]), last.text.strip()
    return _join(steps), f"The final answer is $\\boxed{{{answer}}}$."


def _join(steps: Sequence[Node]) -> str:
    return SEPARATOR.join(t for t in (n.text.strip() for n in steps) if t)


def _unbalanced_tags(i: int, content: str) -> list[Finding]:
    """Reasoning tags opened and never closed: the sign of a truncated response."""
    out = []
    for open_tag, close_tag in (("<think>", "</think>"), ("<Thought>", "</Thought>"), ("<Output>", "</Output>")):
        if content.count(open_tag) != content.count(close_tag):
            out.append(Finding("warning", f"messages[{i}]: {open_tag} and {close_tag} do not pair up"))
    return out
