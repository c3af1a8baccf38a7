"""BERT's uncased tokenizer written out: normalize, pre-tokenize, WordPiece; and head+tail truncation.

Introduced in notebook 02. `wordpiece_tokenize(text, vocab)` returns exactly what the fast (Rust)
`BertTokenizer.tokenize(text)` returns for an uncased BERT vocabulary; the notebook and
tests/test_tokenization.py check that on every review of the cpu profile and on adversarial inputs.
One known limit: Python 3.11's `unicodedata` knows Unicode 14, the Rust tokenizer a newer version,
so a code point assigned only after Unicode 14 (U+2B81F, for one) is deleted here as "unassigned"
but kept there. No review of the cpu profile's 11,000 contains one.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Mapping

UNK, CONTINUATION = "[UNK]", "##"
MAX_CHARS_PER_WORD = 100  # longer words become [UNK] without trying WordPiece
CJK_RANGES = [  # the CJK ideograph blocks BERT isolates as one-character words
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
]
WHITESPACE = set("\t\n\r \u00a0\u1680\u2028\u2029\u202f\u205f\u3000") | {chr(c) for c in range(0x2000, 0x200B)}


def is_control(char: str) -> bool:
    """Return True for characters BERT deletes: control, format, private-use and unassigned ones."""
    return char not in "\t\n\r" and unicodedata.category(char) in ("Cc", "Cf", "Cs", "Co", "Cn")


def is_cjk(char: str) -> bool:
    """Return True for a CJK ideograph."""
    return any(low <= ord(char) <= high for low, high in CJK_RANGES)


def is_punctuation(char: str) -> bool:
    """Return True for ASCII symbols such as $ + < ` and for any Unicode punctuation."""
    return char in string.punctuation or unicodedata.category(char).startswith("P")


def normalize(text: str) -> str:
    """Clean, isolate CJK characters, strip accents and lower-case, in the fast tokenizer's order."""
    text = "".join(" " if c in WHITESPACE else c for c in text if c not in "\x00\ufffd" and not is_control(c))
    text = "".join(f" {c} " if is_cjk(c) else c for c in text)
    text = "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")
    return "".join(c.lower() for c in text)  # character by character, as Rust's char::to_lowercase


def pre_tokenize(text: str) -> list[str]:
    """Split on whitespace and make every punctuation character a word of its own."""
    words, current = [], []
    for char in text:
        if char in WHITESPACE or is_punctuation(char):
            if current:
                words.append("".join(current))
                current = []
            if char not in WHITESPACE:
                words.append(char)
        else:
            current.append(char)
    if current:
        words.append("".join(current))
    return words


def wordpiece(word: str, vocab: Mapping[str, int]) -> list[str]:
    """Split one word greedily into the longest vocabulary pieces, left to right; [UNK] if impossible."""
    if len(word) > MAX_CHARS_PER_WORD:
        return [UNK]
    pieces, start = [], 0
    while start < len(word):
        for end in range(len(word), start, -1):
            piece = word[start:end] if start == 0 else CONTINUATION + word[start:end]
            if piece in vocab:
                pieces.append(piece)
                start = end
                break
        else:  # no prefix of the rest is in the vocabulary
            return [UNK]
    return pieces


def wordpiece_tokenize(text: str, vocab: Mapping[str, int]) -> list[str]:
    """Return the WordPiece tokens of `text`, equal to the fast uncased BertTokenizer's `tokenize`."""
    return [piece for word in pre_tokenize(normalize(text)) for piece in wordpiece(word, vocab)]


def head_tail(ids: list[int], max_tokens: int, head: int) -> list[int]:
    """Keep the first `head` and the last `max_tokens - head` ids of a sequence longer than `max_tokens`."""
    if len(ids) <= max_tokens:
        return ids
    tail = max_tokens - head
    return ids[:head] + (ids[-tail:] if tail else [])


def encode_head_tail(tokenizer, texts: list[str], max_length: int, head: int) -> list[list[int]]:
    """Tokenize texts and truncate each to `max_length` ids, [CLS] and [SEP] included, keeping head+tail.

    A review is text: "[SEP]" or "[MASK]" typed in it are read as the characters they are, not as
    the special tokens (which a user could otherwise slip into the model's input).
    """
    content = tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    return [[cls, *head_tail(ids, max_length - 2, head), sep] for ids in content]


def windows(ids: list[int], max_tokens: int) -> list[list[int]]:
    """Cut a sequence into the fewest windows of `max_tokens` ids that cover it, evenly spaced (so they overlap).

    A sequence of at most `max_tokens` ids is one window; every other window is full length.
    """
    count = max(1, -(-len(ids) // max_tokens))  # ceil(len / max_tokens)
    if count == 1:
        return [ids]
    last = len(ids) - max_tokens  # the start of the final window
    return [ids[start:start + max_tokens] for start in (round(i * last / (count - 1)) for i in range(count))]


def encode_windows(tokenizer, texts: list[str], max_length: int) -> list[list[list[int]]]:
    """Tokenize texts into windows of `max_length` ids, [CLS] and [SEP] included, that together read every token."""
    content = tokenizer(texts, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    return [[[cls, *window, sep] for window in windows(ids, max_length - 2)] for ids in content]
