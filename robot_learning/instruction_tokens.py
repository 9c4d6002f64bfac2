"""Instruction tokenizers: bytes (from scratch) or a Hugging Face ``tokenizer.json``, numpy only.

Both turn a batch of instructions into ``(ids [B, max_tokens], mask [B, max_tokens])`` int64
numpy arrays, padded on the right, and need neither torch nor a network: exported bundles ship
the tokenizer's JSON (:meth:`to_dict`) and tokenize with numpy (and the ``tokenizers`` package
for Hugging Face vocabularies). An instruction that does not fit in ``max_tokens`` is an error
naming its length, never silently cut: a cut instruction can lose the word that names the goal.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robot_learning.language import InstructionError, check_instruction

#: byte tokenizer: 0 = padding, 1 = start, 2..257 = byte value + 2
BYTE_PAD, BYTE_BOS, BYTE_OFFSET = 0, 1, 2
BYTE_VOCAB = 256 + BYTE_OFFSET


class ByteTokenizer:
    """UTF-8 bytes as tokens (plus a start token): any text, no vocabulary to learn or ship."""

    kind = "bytes"
    vocab_size = BYTE_VOCAB

    def __init__(self, max_tokens: int) -> None:
        self.max_tokens = int(max_tokens)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Instructions -> (ids, mask), each ``[len(texts), max_tokens]`` int64."""
        rows = []
        for text in texts:
            data = check_instruction(text).encode("utf-8")
            rows.append([BYTE_BOS, *(b + BYTE_OFFSET for b in data)])
        return _pad(rows, self.max_tokens, BYTE_PAD, texts)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_tokens": self.max_tokens}


class HFTokenizer:
    """A Hugging Face fast tokenizer (``tokenizer.json``, e.g. MiniLM's WordPiece), through the
    ``tokenizers`` package (no ``transformers``, no torch)."""

    kind = "huggingface"

    def __init__(self, tokenizer_json: str, max_tokens: int) -> None:
        try:
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - tokenizers ships with the vla extra
            raise ImportError(
                "this VLA's instructions use a Hugging Face tokenizer: pip install tokenizers "
                "(or pip install -e '.[vla]')"
            ) from exc
        self.json = tokenizer_json
        self._tok = Tokenizer.from_str(tokenizer_json)
        self._tok.no_truncation()
        self._tok.no_padding()
        self.max_tokens = int(max_tokens)
        self.vocab_size = int(self._tok.get_vocab_size(with_added_tokens=True))
        self.pad_id = int(self._tok.token_to_id("[PAD]") or 0)

    @classmethod
    def from_folder(cls, folder: str | Path, max_tokens: int) -> HFTokenizer:
        """The ``tokenizer.json`` of a local Hugging Face model folder."""
        path = Path(folder) / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"{folder} has no tokenizer.json: point text_model_path at a Hugging Face model "
                "folder saved with a fast tokenizer (tokenizer.save_pretrained(folder))"
            )
        return cls(path.read_text(), max_tokens)

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Instructions -> (ids, mask), each ``[len(texts), max_tokens]`` int64 (special tokens
        such as ``[CLS]``/``[SEP]`` included, as the text model was trained with them)."""
        clean = [check_instruction(t) for t in texts]
        rows = [enc.ids for enc in self._tok.encode_batch(clean)]
        return _pad(rows, self.max_tokens, self.pad_id, clean)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_tokens": self.max_tokens, "tokenizer_json": self.json}


def _pad(
    rows: list[list[int]], max_tokens: int, pad: int, texts: Sequence[str]
) -> tuple[np.ndarray, np.ndarray]:
    ids = np.full((len(rows), max_tokens), pad, dtype=np.int64)
    mask = np.zeros((len(rows), max_tokens), dtype=np.int64)
    for i, row in enumerate(rows):
        if len(row) > max_tokens:
            raise InstructionError(
                f"the instruction {texts[i]!r} is {len(row)} tokens long; this policy reads at most "
                f"{max_tokens} (policy.max_tokens): shorten it, or train with a larger max_tokens"
            )
        ids[i, : len(row)] = row
        mask[i, : len(row)] = 1
    return ids, mask


def tokenizer_from_dict(data: dict[str, Any]) -> ByteTokenizer | HFTokenizer:
    """Rebuild a tokenizer from :meth:`to_dict` (a bundle's ``tokenizer.json`` entry)."""
    kind = data.get("kind")
    if kind == ByteTokenizer.kind:
        return ByteTokenizer(data["max_tokens"])
    if kind == HFTokenizer.kind:
        return HFTokenizer(data["tokenizer_json"], data["max_tokens"])
    raise InstructionError(
        f"unknown tokenizer kind {kind!r}; this version reads {ByteTokenizer.kind!r} and "
        f"{HFTokenizer.kind!r} (was the bundle written by a newer robot-learning?)"
    )


def load_tokenizer(path: str | Path) -> ByteTokenizer | HFTokenizer:
    """A tokenizer saved as JSON by :func:`save_tokenizer`."""
    return tokenizer_from_dict(json.loads(Path(path).read_text()))


def save_tokenizer(tokenizer: ByteTokenizer | HFTokenizer, path: str | Path) -> None:
    """Write ``tokenizer`` as JSON (what a bundle ships next to its graphs)."""
    Path(path).write_text(json.dumps(tokenizer.to_dict()))
