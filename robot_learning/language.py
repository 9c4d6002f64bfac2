"""Language instructions: paraphrase sets per goal, per-episode choice, validation, batch keys.

Every task carries its instructions as :class:`Instructions` (paraphrases used for collection
and training, and paraphrases held out for evaluation), one set per *goal*. Most tasks have one
goal; a shared-scene task (``lift_color``: "lift the red cube" vs "lift the blue cube") has
several, and only the instruction tells which one an episode asks for.

At every reset a task picks its goal and the episode's instruction from a generator of its own
(seeded from the reset seed), so the objects' random stream is the same with or without
language and old datasets replay unchanged. ``task.instruction="..."`` fixes the text (the goal
then follows from it); ``task.paraphrases=train|heldout|all|canonical`` chooses the pool.

Datasets store the instruction as LeRobot's per-frame ``task`` string; in observation dicts and
batches it travels under :data:`TASK_KEY` (a string per sample), and language policies turn it
into token ids (:data:`TOKENS_KEY`, :data:`TOKEN_MASK_KEY`), which is what exported graphs take.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

#: batch / observation key of the instruction string (LeRobot's name for it)
TASK_KEY = "task"
#: token ids [B, L] (int64) and their attention mask [B, L] (int64, 1 = real token)
TOKENS_KEY = "observation.language.tokens"
TOKEN_MASK_KEY = "observation.language.attention_mask"
#: longest instruction accepted (characters); tokenizers cap tokens separately
MAX_INSTRUCTION_CHARS = 256
#: where each episode's instruction comes from (``task.paraphrases``)
PARAPHRASE_POOLS = ("train", "heldout", "all", "canonical")
#: mixed into the reset seed so the language generator never shares the objects' stream
_LANGUAGE_STREAM = 0x1A46


class InstructionError(ValueError):
    """An instruction that cannot be used (empty, too long, names no goal of the task, ...)."""


def check_instruction(text: object, max_chars: int = MAX_INSTRUCTION_CHARS) -> str:
    """``text`` stripped, or :class:`InstructionError` naming what is wrong with it."""
    if not isinstance(text, str):
        raise InstructionError(f"an instruction must be a string, got {type(text).__name__}")
    stripped = " ".join(text.split())
    if not stripped:
        raise InstructionError(
            'the instruction is empty; give the task in words, e.g. instruction="lift the red cube"'
        )
    if len(stripped) > max_chars:
        raise InstructionError(
            f"the instruction has {len(stripped)} characters, more than the {max_chars} allowed: "
            f"{stripped[:60]!r}...; shorten it"
        )
    return stripped


@dataclass(frozen=True)
class Instructions:
    """Paraphrases of one goal: ``train`` for collection and training (the first is the
    canonical one), ``heldout`` only for evaluation."""

    train: tuple[str, ...]
    heldout: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.train:
            raise ValueError("Instructions need at least one training paraphrase")
        for text in (*self.train, *self.heldout):
            check_instruction(text)
        overlap = set(self.train) & set(self.heldout)
        if overlap:
            raise ValueError(f"paraphrases {sorted(overlap)} are both training and held out")

    def pool(self, name: str) -> tuple[str, ...]:
        """The paraphrases of ``task.paraphrases=name`` (heldout falls back to train when none)."""
        if name == "train":
            return self.train
        if name == "heldout":
            return self.heldout or self.train
        if name == "all":
            return (*self.train, *self.heldout)
        if name == "canonical":
            return self.train[:1]
        raise InstructionError(f"task.paraphrases={name!r} is not one of {PARAPHRASE_POOLS}")

    @property
    def all(self) -> tuple[str, ...]:
        return (*self.train, *self.heldout)


def language_rng(seed: int | None, previous: np.random.Generator | None) -> np.random.Generator:
    """The generator of an episode's goal and instruction: fresh from ``seed`` when the reset is
    seeded, else the previous one continued (or fresh entropy for the very first reset)."""
    if seed is not None:
        return np.random.default_rng([int(seed), _LANGUAGE_STREAM])
    return previous if previous is not None else np.random.default_rng()


def choose_instruction(
    goals: Mapping[str, Instructions], pool: str, rng: np.random.Generator
) -> tuple[str, str]:
    """(goal, instruction) drawn uniformly: the goal first (sorted names), then a paraphrase."""
    names = sorted(goals)
    goal = names[int(rng.integers(len(names)))] if len(names) > 1 else names[0]
    texts = goals[goal].pool(pool)
    return goal, texts[int(rng.integers(len(texts)))]


def goal_of(goals: Mapping[str, Instructions], text: str, keywords: Mapping[str, str]) -> str:
    """The goal an instruction asks for: a known paraphrase's goal, else the one goal whose
    keyword (``keywords[goal]``) appears in it as a word; anything else is an error."""
    text = check_instruction(text)
    if len(goals) == 1:
        return next(iter(goals))
    for goal, ins in goals.items():
        if text in ins.all:
            return goal
    words = set(text.lower().replace(",", " ").replace(".", " ").split())
    hits = [goal for goal, word in keywords.items() if word.lower() in words]
    if len(hits) != 1:
        examples = "; ".join(f"{g}: {goals[g].train[0]!r}" for g in sorted(goals))
        raise InstructionError(
            f"the instruction {text!r} "
            + ("names no goal" if not hits else f"names several goals ({', '.join(hits)})")
            + f" of this task; say which one, e.g. {examples}"
        )
    return hits[0]
