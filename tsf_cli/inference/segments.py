"""The segment rule of ``tsf timeline``: classified windows in, segments that tile the whole video out.

1. Order. Windows are taken by their centre (start + end) / 2, then by start, then as given.
2. Vote. Each window votes for its top-1 label, or for "uncertain" when that label's probability is below
   ``min_probability`` (or it has no prediction). Two labels tied exactly for top-1: the one that sorts first.
3. Smooth. Each window takes the most common vote among the ``smooth`` windows centred on it (an odd number; cut short
   at the ends of the video, not padded). A tie goes to the window's own vote if it is among the tied, else to the
   tied vote nearest the window, and at equal distance to the earlier one. Uncertain is a vote like any label.
4. Merge. Consecutive windows with the same decision form one run.
5. Place. The boundary between two runs is the midpoint between the centres of the last window of one and the first
   of the next; the first run starts at 0 and the last ends at the video's end (or the last window's end, if later:
   container durations can be short by a frame). A run of zero length (windows with equal centres) is dropped and its
   neighbours merged where they agree.
6. Score. A segment's confidence is the mean over its windows of its label's probability (0 in a window whose top-k
   lacks it); an uncertain segment's, the mean of its windows' top-1 probabilities.

So the segments tile [0, end] with no gap or overlap, neighbours always differ, and every instant goes to the nearest
window centre: windows that overlap (hop < window) and windows with gaps between them (hop > window) follow one rule,
a gap being split between its neighbours. A flicker of up to (smooth - 1) / 2 windows is voted away, and as the vote
is centred it does not move a real change: taking each window's label to stand for its centre, a boundary is off by
at most hop / 2.

Why a vote and not a moving average of probabilities: averaging across a change of label halves both labels, so with
a high ``min_probability`` every change would grow an uncertain sliver that the model never saw; a vote keeps
``min_probability`` meaning exactly "the window's top-1 probability", needs only the top-1, and lets one doubtful window
inside a confident stretch pass. The price: a vote ignores how confident the votes are.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..results import Prediction, Segment

DEFAULT_MIN_PROBABILITY = 0.5  # "more likely than all the other labels together", whatever the model
DEFAULT_SMOOTH = 1  # no vote: with a majority of 3, windows a hop apart vote away events about two windows long


@dataclass(frozen=True)
class ScoredWindow:
    """What the rule reads of one window: its span and its top-k, most probable first."""

    start: float
    end: float
    predictions: tuple[Prediction, ...]

    @property
    def centre(self) -> float:
        return (self.start + self.end) / 2


@dataclass(frozen=True)
class Decision:
    """What the rule made of one window: its label after smoothing (None: uncertain), and the window's probability
    of that label (of its top-1 when uncertain)."""

    label: str | None
    probability: float


def check_rule(min_probability: float, smooth: int) -> None:
    if not 0.0 <= min_probability <= 1.0:
        raise ValueError(f"min probability must be between 0 and 1, got {min_probability}")
    if smooth < 1 or smooth % 2 == 0:
        raise ValueError(f"smooth must be an odd number of windows (1: no smoothing), got {smooth}")


def segment_windows(
    windows: Sequence[ScoredWindow], *, duration: float, min_probability: float, smooth: int
) -> tuple[list[int], list[Decision], list[Segment]]:
    """The whole rule: the order of the windows (indices into ``windows``), their decisions in that order, and the
    segments tiling [0, max(duration, the last window's end)]."""
    check_rule(min_probability, smooth)
    if not math.isfinite(duration) or duration < 0:
        raise ValueError(f"duration must be a finite number of seconds >= 0, got {duration}")
    order = sorted(range(len(windows)), key=lambda i: (windows[i].centre, windows[i].start))
    ordered = [windows[i] for i in order]
    if not ordered:  # nothing was classified: the whole video is uncertain
        return [], [], [Segment(None, 0.0, duration, 0.0)]
    end_of_video = max(duration, max(w.end for w in ordered))
    decisions = _decide(ordered, min_probability, smooth)
    runs = _runs([d.label for d in decisions])

    def bounds(k: int) -> tuple[float, float]:
        start = 0.0 if k == 0 else (ordered[runs[k - 1][2]].centre + ordered[runs[k][1]].centre) / 2
        end = end_of_video if k == len(runs) - 1 else (ordered[runs[k][2]].centre + ordered[runs[k + 1][1]].centre) / 2
        return start, end

    # Zero-length runs come only from windows with equal centres: give their windows to a neighbour and merge again.
    while len(runs) > 1 and (empty := next((k for k in range(len(runs)) if _empty(bounds(k))), None)) is not None:
        target = empty - 1 if empty > 0 else 1
        runs[target][1] = min(runs[target][1], runs[empty][1])
        runs[target][2] = max(runs[target][2], runs[empty][2])
        del runs[empty]
        runs = _merge_equal(runs)

    probabilities = [{p.label: p.probability for p in w.predictions} for w in ordered]
    segments = []
    for k, (label, first, last) in enumerate(runs):
        members = range(first, last + 1)
        if label is None:
            confidence = sum(decisions[i].probability for i in members) / len(members)
        else:  # looked up in every window of the run, whatever its own decision was before a merge
            confidence = sum(probabilities[i].get(label, 0.0) for i in members) / len(members)
        segments.append(Segment(label, *bounds(k), confidence))
    return order, decisions, segments


def _empty(bounds: tuple[float, float]) -> bool:
    return bounds[1] <= bounds[0]


def own_vote(window: ScoredWindow, min_probability: float) -> str | None:
    """Step 2: the window's top-1 label, or None (uncertain) below ``min_probability`` or without a prediction."""
    if not window.predictions:
        return None
    top = min(window.predictions, key=lambda p: (-p.probability, p.label))
    return top.label if top.probability >= min_probability else None


def majority(votes: Sequence[str | None], centre: int) -> str | None:
    """Step 3 for one window: the most common of ``votes``; ties as the module says."""
    counts: dict[str | None, int] = {}
    for vote in votes:
        counts[vote] = counts.get(vote, 0) + 1
    most = max(counts.values())
    tied = [vote for vote, n in counts.items() if n == most]
    if len(tied) == 1:
        return tied[0]
    if votes[centre] in tied:
        return votes[centre]
    nearest_first = sorted(range(len(votes)), key=lambda j: (abs(j - centre), j))
    return next(votes[j] for j in nearest_first if votes[j] in tied)


def _decide(ordered: Sequence[ScoredWindow], min_probability: float, smooth: int) -> list[Decision]:
    radius = (smooth - 1) // 2
    votes = [own_vote(w, min_probability) for w in ordered]
    decisions = []
    for i, window in enumerate(ordered):
        low, high = max(0, i - radius), min(len(ordered), i + radius + 1)
        label = majority(votes[low:high], i - low)
        probabilities = {p.label: p.probability for p in window.predictions}
        if label is None:
            decisions.append(Decision(None, max(probabilities.values(), default=0.0)))
        else:
            decisions.append(Decision(label, probabilities.get(label, 0.0)))
    return decisions


def _runs(labels: Sequence[str | None]) -> list[list]:
    """Step 4: runs of equal decisions, as [label, first window, last window]."""
    runs: list[list] = []
    for i, label in enumerate(labels):
        if runs and runs[-1][0] == label:
            runs[-1][2] = i
        else:
            runs.append([label, i, i])
    return runs


def _merge_equal(runs: list[list]) -> list[list]:
    merged: list[list] = []
    for run in runs:
        if merged and merged[-1][0] == run[0]:
            merged[-1][2] = run[2]
        else:
            merged.append(run)
    return merged
