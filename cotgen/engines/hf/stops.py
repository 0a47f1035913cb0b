"""Stop-string matching on token streams: the check as each token arrives, and the cut."""

from __future__ import annotations

from collections.abc import Callable


class StopStrings:
    """Stop strings over one tokenizer's `decode` (token ids -> text, no clean-up).

    `stopped(tokens, stops)` runs after every token, so it first asks whether the newest
    token's own text could end a stop string before decoding a tail; `cut` trims a finished
    sequence at its first stop string.
    """

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self.decode = decode
        self._pieces: dict[int, str] = {}  # token id -> its text alone

    def stopped(self, tokens: list[int], stops: tuple[str, ...]) -> bool:
        """True when a stop string ends within the newest token. A stop string ends in the
        last token's text, unless that token is a partial UTF-8 character."""
        token = tokens[-1]
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self.decode([token])
        if not any(s[-1] in piece or s[-1] == " " for s in stops) and "\ufffd" not in piece:
            return False
        window = max(len(s) for s in stops) + 3
        tail = self.decode(tokens[-window:])
        return any(s in tail for s in stops)

    def cut(self, tokens: list[int], stops: tuple[str, ...]) -> tuple[str, list[int], bool]:
        """(text cut at the first stop string, the tokens wholly before the cut, whether a
        stop string was found)."""
        text = self.decode(tokens)
        cuts = [text.find(s) for s in stops if s in text]
        if not cuts:
            return text, tokens, False
        cut = min(cuts)
        text = text[:cut]
        # The token that reached into the stop string is not part of the completion. The
        # row stopped the step the stop string appeared, so the walk back is a few tokens.
        k = len(tokens)
        while k > 0:
            head = self.decode(tokens[:k])
            if len(head) <= cut and text.startswith(head):
                break
            k -= 1
        return text, tokens[:k], True
