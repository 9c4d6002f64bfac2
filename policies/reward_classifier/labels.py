"""Labels, held-out split and threshold selection of the success classifier (numpy only).

Everything here is a pure function of the dataset's ``next.success`` column, the episode lengths
and the config, so the training loop's two hooks (before the first step, after the last one)
compute the same labels and the same split independently, and a resumed run trains on the
same frames.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)


def frame_labels(success: np.ndarray, lengths: np.ndarray, frames_after: bool) -> np.ndarray:
    """Per-frame binary labels ``[N]`` from the recorded success flags.

    Args:
        success: ``next.success`` of every frame, ``[N]`` or ``[N, 1]`` (bool or 0/1).
        lengths: frames per episode (``sum(lengths) == N``), episodes back to back.
        frames_after: every frame after an episode's first success counts as a success too
            (success as an absorbing state); False keeps each frame's own flag.
    """
    flags = np.asarray(success).reshape(len(success), -1)[:, 0].astype(bool)
    lengths = np.asarray(lengths, dtype=np.int64)
    assert flags.shape == (int(lengths.sum()),), (flags.shape, int(lengths.sum()))
    if not frames_after:
        return flags
    episode = np.repeat(np.arange(len(lengths)), lengths)
    per_episode = np.bincount(episode, weights=flags, minlength=len(lengths)).astype(np.int64)
    before = np.cumsum(per_episode) - per_episode  # successes in earlier episodes
    # a frame is positive once its own episode's running count of successes is > 0
    return np.cumsum(flags) - before[episode] > 0


def episode_has_positive(labels: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``[E]`` bool: whether each episode has at least one positive frame."""
    episode = np.repeat(np.arange(len(lengths)), lengths)
    return np.bincount(episode, weights=labels.astype(np.float64), minlength=len(lengths)) > 0


def split_episodes(
    positive_episodes: np.ndarray, val_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(training episodes, held-out episodes), stratified by whether an episode has a success.

    ``round(val_fraction * n)`` episodes of each group are held out (seeded), but at least one
    successful episode is held out and at least one kept for training, so that both the loss
    and the threshold selection see positives. Raises ``ValueError`` with the fix when the
    dataset has fewer than two successful episodes.
    """
    positive_episodes = np.asarray(positive_episodes, dtype=bool)
    pos = np.flatnonzero(positive_episodes)
    neg = np.flatnonzero(~positive_episodes)
    if len(pos) < 2:
        raise ValueError(
            f"only {len(pos)} episode(s) have a success frame: the classifier needs at least two, "
            "one to train on and one held out to pick its threshold; record more successful "
            "episodes (collect, or teleop with the success button)"
        )
    rng = np.random.default_rng([seed, len(positive_episodes)])
    n_pos = min(len(pos) - 1, max(1, round(val_fraction * len(pos))))
    n_neg = min(len(neg), round(val_fraction * len(neg)))
    held = np.concatenate([rng.permutation(pos)[:n_pos], rng.permutation(neg)[:n_neg]])
    held = np.sort(held)
    train = np.setdiff1d(np.arange(len(positive_episodes)), held)
    return train, held


def episode_frames(episodes: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Global frame indices of ``episodes`` (sorted), episodes back to back."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    if not len(episodes):
        return np.zeros(0, dtype=np.int64)
    return np.concatenate([np.arange(starts[e], starts[e] + lengths[e]) for e in episodes])


@dataclass
class ThresholdChoice:
    """A decision threshold and what it achieves on the frames it was picked on."""

    threshold: float
    """Success when ``probability >= threshold``."""
    precision: float
    recall: float
    f1: float
    accuracy: float
    n_pos: int
    n_neg: int
    average_precision: float
    """Area under the precision-recall curve (threshold-free ranking quality)."""
    rule: str
    """How the threshold was chosen: ``max_f1`` or ``min_precision=<p>``."""


def binary_metrics(probs: np.ndarray, labels: np.ndarray, threshold: float) -> dict[str, float]:
    """Precision, recall, F1 and accuracy of ``probs >= threshold`` against ``labels``.

    Precision of a threshold that predicts no success is 1 by convention (no false success).
    """
    pred = np.asarray(probs) >= threshold
    labels = np.asarray(labels, dtype=bool)
    tp = int(np.sum(pred & labels))
    fp = int(np.sum(pred & ~labels))
    fn = int(np.sum(~pred & labels))
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "accuracy": float(np.mean(pred == labels)) if len(labels) else 0.0,
    }


def pick_threshold(
    probs: np.ndarray, labels: np.ndarray, min_precision: float | None = None
) -> ThresholdChoice:
    """The decision threshold on held-out frames.

    Default (``min_precision=None``): the threshold of maximum F1. With ``min_precision=p``:
    the threshold of maximum recall among those whose precision is >= p (a false success ends
    an RL episode with a reward the policy did not earn, which it then learns to exploit, so
    a reward model may prefer missing a few successes); when no threshold reaches p, the one
    of highest precision is used and a warning is logged. Candidates lie halfway between
    consecutive distinct scores, so the threshold does not sit on a training-set value.
    """
    probs = np.asarray(probs, dtype=np.float64).reshape(-1)
    labels = np.asarray(labels, dtype=bool).reshape(-1)
    n_pos = int(labels.sum())
    if n_pos == 0 or n_pos == len(labels):
        raise ValueError(
            f"threshold selection needs positive and negative frames; got {n_pos} of {len(labels)}"
        )
    order = np.argsort(-probs, kind="stable")
    scores, hits = probs[order], labels[order]
    # predicting the top k as successes, for every k at a boundary between distinct scores
    last = np.flatnonzero(np.r_[scores[1:] < scores[:-1], True])  # index of the k-th score
    tp = np.cumsum(hits)[last]
    k = last + 1
    precision, recall = tp / k, tp / n_pos
    f1 = np.where(tp > 0, 2 * precision * recall / np.maximum(precision + recall, 1e-12), 0.0)
    if min_precision is None:
        best, rule = int(np.argmax(f1)), "max_f1"
    else:
        rule = f"min_precision={min_precision:g}"
        ok = np.flatnonzero(precision >= min_precision)
        if len(ok):
            best = int(ok[np.argmax(recall[ok])])
        else:
            best = int(np.lexsort((-recall, -precision))[0])
            log.warning(
                "no threshold reaches precision %.3f on the held-out frames (best %.3f); using it",
                min_precision,
                precision[best],
            )
    below = scores[last[best] + 1] if last[best] + 1 < len(scores) else 0.0
    threshold = float((scores[last[best]] + below) / 2)
    got = binary_metrics(probs, labels, threshold)  # measured, not taken from the sweep
    return ThresholdChoice(
        threshold=threshold,
        **got,
        n_pos=n_pos,
        n_neg=len(labels) - n_pos,
        average_precision=float(np.sum(np.diff(np.r_[0.0, recall]) * precision)),
        rule=rule,
    )
