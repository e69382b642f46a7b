"""The segment rule (``tsf_cli.inference.segments``) on made-up windows, and where windows go over a video."""

from __future__ import annotations

import random

import pytest

from tsf_cli.inference.segments import ScoredWindow, majority, segment_windows
from tsf_cli.inference.windows import place_windows
from tsf_cli.results import Prediction, Segment


def scored(start, end, *top) -> ScoredWindow:
    return ScoredWindow(start, end, tuple(Prediction(label, i, p) for i, (label, p) in enumerate(top)))


def wins(labels, *, window=2.0, hop=1.0, p=0.9, other=None) -> list[ScoredWindow]:
    """One window per entry, starting at 0, hop, 2 hop...: a label (at ``p``, ``other`` taking the rest) or a top-k."""
    out = []
    for i, item in enumerate(labels):
        top = item if isinstance(item, list) else [(item, p)] + ([(other, round(1 - p, 6))] if other else [])
        out.append(scored(i * hop, i * hop + window, *top))
    return out


def seg(windows, duration, *, min_probability=0.0, smooth=3) -> list[Segment]:
    return segment_windows(windows, duration=duration, min_probability=min_probability, smooth=smooth)[2]


def spans(segments) -> list[tuple]:
    return [(s.label, s.start, s.end) for s in segments]


def check_tiling(segments, duration):
    assert segments[0].start == 0.0
    assert segments[-1].end == pytest.approx(duration)
    for a, b in zip(segments, segments[1:], strict=False):
        assert a.end == b.start and a.start < a.end
        assert a.label != b.label


def test_one_label_is_one_segment_over_the_whole_video():
    assert seg(wins(["walk"] * 5), 6.0, smooth=1) == [Segment("walk", 0.0, 6.0, pytest.approx(0.9))]


def test_the_boundary_is_halfway_between_window_centres_when_windows_overlap():
    # window 2, hop 1: centres 1, 2, 3, 4, 5; the change between the windows centred at 2 and 3 -> 2.5
    segments = seg(wins(["a", "a", "b", "b", "b"]), 6.0, smooth=1)
    assert spans(segments) == [("a", 0.0, 2.5), ("b", 2.5, 6.0)]
    check_tiling(segments, 6.0)


def test_a_gap_between_windows_is_split_between_its_neighbours():
    # window 1, hop 4: [0, 1] [4, 5] [8, 9], centres 0.5, 4.5, 8.5; the unseen gaps split at 2.5 and 6.5
    segments = seg(wins(["a", "b", "a"], window=1.0, hop=4.0), 10.0, smooth=1)
    assert spans(segments) == [("a", 0.0, 2.5), ("b", 2.5, 6.5), ("a", 6.5, 10.0)]


def test_the_last_segment_ends_at_the_video_s_end_or_the_last_window_s_if_later():
    windows = wins(["a", "a"])  # the last window ends at 3
    assert seg(windows, 10.0)[-1].end == 10.0
    assert seg(windows, 2.9)[-1].end == 3.0  # a container duration short by a frame


def test_a_change_of_label_makes_no_uncertain_sliver():
    # Both labels at 0.7 in their own windows: a moving average over 3 windows would dip to (0.7 + 0.7 + 0.05) / 3
    # at the change, under 0.5; a vote does not.
    labels = [[("a", 0.7), ("b", 0.05)]] * 5 + [[("b", 0.7), ("a", 0.05)]] * 5
    assert [(s.label, s.start) for s in seg(wins(labels), 11.0, smooth=3, min_probability=0.5)] == [
        ("a", 0.0),
        ("b", 5.5),
    ]


def test_one_doubtful_window_in_a_confident_stretch_does_not_break_it():
    windows = [scored(i, i + 2.0, ("a", p)) for i, p in enumerate([0.9, 0.9, 0.9, 0.3, 0.9, 0.9, 0.9])]
    segments = seg(windows, 9.0, smooth=3, min_probability=0.5)
    assert [s.label for s in segments] == ["a"] and segments[0].confidence == pytest.approx((0.9 * 6 + 0.3) / 7)
    assert [s.label for s in seg(windows, 9.0, smooth=1, min_probability=0.5)] == ["a", None, "a"]


def test_ties_go_to_the_window_s_own_vote_then_the_nearest_then_the_earlier():
    assert majority(["a", "b", "c"], 1) == "b"  # all tied: the window's own
    assert majority(["a", "a", "c", "b", "b"], 2) == "a"  # a and b tied, as near: the earlier
    assert majority(["a", "b", "c", "b", "a"], 2) == "b"  # a and b tied, b nearer
    assert majority(["a", "b"], 0) == "a" and majority(["a", "b"], 1) == "b"  # cut short at the ends
    assert majority([None, None, "a"], 2) is None  # uncertain is a vote like any label


def test_a_flicker_of_up_to_half_the_vote_is_voted_away_and_a_longer_one_kept():
    for smooth, longest in [(3, 1), (5, 2), (7, 3)]:
        for n in (longest, longest + 1):
            labels = ["a"] * 8 + ["b"] * n + ["a"] * 8
            got = [s.label for s in seg(wins(labels), 30.0, smooth=smooth)]
            assert got == (["a"] if n == longest else ["a", "b", "a"]), (smooth, n)


def test_smoothing_does_not_move_a_real_change():
    labels = [[("a", 0.9), ("b", 0.1)]] * 5 + [[("b", 0.9), ("a", 0.1)]] * 5
    assert [(s.label, s.start) for s in seg(wins(labels), 11.0, smooth=5)] == [("a", 0.0), ("b", 5.5)]


def test_below_min_probability_a_stretch_is_uncertain_not_guessed():
    windows = [scored(i, i + 2.0, top) for i, top in enumerate([("a", 0.9)] * 3 + [("b", 0.3)] * 3 + [("a", 0.9)] * 3)]
    segments = seg(windows, 10.0, smooth=1, min_probability=0.5)
    assert [s.label for s in segments] == ["a", None, "a"]
    assert segments[1].uncertain and segments[1].text == "uncertain"
    assert segments[1].confidence == pytest.approx(0.3)  # an uncertain segment's: its windows' top-1
    assert (segments[1].start, segments[1].end) == (3.5, 6.5)


def test_a_label_missing_from_a_window_s_top_k_counts_zero_in_the_confidence():
    windows = [scored(0, 2, ("a", 0.8)), scored(1, 3, ("b", 0.6)), scored(2, 4, ("a", 0.8))]
    (segment,) = seg(windows, 4.0, smooth=3)  # the middle window is voted to a, though a is not in its top-k
    assert segment.label == "a" and segment.confidence == pytest.approx((0.8 + 0.0 + 0.8) / 3)


def test_the_result_does_not_depend_on_the_order_windows_come_in():
    rng = random.Random(1)
    windows = wins([rng.choice("ab") for _ in range(40)], other="c", p=0.6)
    shuffled = windows[:]
    rng.shuffle(shuffled)
    assert seg(windows, 41.0) == seg(shuffled, 41.0)
    order, _, _ = segment_windows(shuffled, duration=41.0, min_probability=0, smooth=3)
    assert [shuffled[i] for i in order] == windows


def test_an_exact_tie_for_top_1_goes_to_the_label_that_sorts_first():
    assert seg(wins([[("b", 0.5), ("a", 0.5)]]), 2.0, smooth=1)[0].label == "a"


def test_no_windows_is_one_uncertain_segment():
    assert seg([], 5.0) == [Segment(None, 0.0, 5.0, 0.0)]


def test_a_window_without_predictions_is_uncertain_even_at_min_probability_0():
    windows = [scored(0, 2), scored(1, 3, ("a", 0.9))]
    assert [s.label for s in seg(windows, 3.0, smooth=1, min_probability=0.0)] == [None, "a"]


def test_windows_with_equal_centres_never_make_a_segment_of_no_length():
    # [5, 9] and [6, 8] share the centre 7
    windows = [scored(0, 4, ("a", 0.9)), scored(5, 9, ("a", 0.9)), scored(6, 8, ("b", 0.9)), scored(7, 11, ("a", 0.9))]
    check_tiling(seg(windows, 11.0, smooth=1), 11.0)


@pytest.mark.parametrize("window, hop", [(2, 1), (2, 2), (2, 3), (8, 0.5), (1, 10), (3, 0.7)])
def test_segments_tile_the_video_whatever_the_window_and_hop(window, hop):
    rng = random.Random(window * 100 + hop)
    for duration in (0.5, 7.3, 30.0):
        windows = [
            scored(a, b, (rng.choice("xyz"), 0.4 + 0.6 * rng.random())) for a, b in place_windows(duration, window, hop)
        ]
        for smooth in (1, 3, 5):
            check_tiling(seg(windows, duration, smooth=smooth, min_probability=0.5), duration)


def test_windows_start_every_hop_and_one_more_ends_at_the_video_s_end():
    assert place_windows(10, 4, 2) == [(0, 4), (2, 6), (4, 8), (6, 10)]
    assert place_windows(9, 4, 2) == [(0, 4), (2, 6), (4, 8), (5, 9)]  # the tail seen by a window ending at 9
    assert place_windows(3, 4, 2) == [(0.0, 3)]  # shorter than one window: one window over all of it
    assert place_windows(10, 1, 4) == [(0, 1), (4, 5), (8, 9)]  # gaps: windows are not stretched to cover them


@pytest.mark.parametrize("bad", [dict(smooth=2), dict(smooth=0), dict(min_probability=1.5), dict(min_probability=-0.1)])
def test_settings_out_of_range_are_value_errors(bad):
    with pytest.raises(ValueError):
        seg(wins(["a"]), 2.0, **{"smooth": 3, "min_probability": 0.0, **bad})
