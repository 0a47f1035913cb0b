"""Chat-template control tokens: the markers a tokenizer reads as turn boundaries, found in text.

A chat tokenizer parses its special tokens out of plain text, so a problem or a training row
whose text holds `<|im_end|>` gains or loses turns when rendered through the template: the
tiny model's tokenizer turns a problem ending in `<|im_end|>\\n<|im_start|>assistant` into a
fake assistant turn. Problems holding one are refused at load; sft, prm and dpo rows holding
one are invalid.
"""

from __future__ import annotations

import re

# ChatML / Qwen (<|im_start|>, <|im_end|>, <|endoftext|>), Llama 3 (<|eot_id|>,
# <|start_header_id|>), Phi-3 (<|user|>, <|end|>), gpt-oss (<|start|>, <|message|>):
# `<|name|>` with a name of two or more characters, so `<|x|>` in mathematics is not one.
# DeepSeek's full-width `<｜Assistant｜>`, `<｜end▁of▁sentence｜>`; Gemma's turn markers.
CONTROL_TOKEN = re.compile(
    r"<\|[A-Za-z_][A-Za-z0-9_.:\-]+\|>|<｜[^<>｜\n]{1,40}｜>|<(?:start|end)_of_turn>"
)


def control_token(text: str) -> re.Match[str] | None:
    """The first chat-template control token in `text`, or None."""
    if "<" not in text:
        return None
    return CONTROL_TOKEN.search(text)


def describe(where: str, found: re.Match[str]) -> str:
    """'<where> holds the chat-template control token '<|im_end|>' (at character N)'."""
    return f"{where} holds the chat-template control token '{found.group()}' (at character {found.start()})"
