"""The placement programme on hand-made alignments, and the spacing around markers."""

import numpy as np

from nmt.text.placement import Marker, alignment_matrix, place, render


def test_markers_go_where_the_aligned_words_went() -> None:
    # Source "a <b> b c </b> d": slots 0 (a), 1 (b c), 2 (d). Target: d' a' b' c' (d moved first).
    slots = [0, 1, 1, 2]
    alignment = alignment_matrix([(3, 0), (0, 1), (1, 2), (2, 3)], ["▁w"] * 4, 4, 4)
    # d' cannot come first and stay in slot 2 (markers keep their order): the best is to give up
    # d' and keep "b' c'" inside the tags.
    assert place(slots, 2, alignment) == [2, 4]


def test_positions_never_decrease_whatever_the_alignment() -> None:
    rng = np.random.default_rng(0)
    for _ in range(50):
        num_src, num_tgt, num_markers = rng.integers(1, 8, size=3)
        slots = sorted(rng.integers(0, num_markers + 1, size=num_src).tolist())
        alignment = rng.random((num_tgt, num_src))
        positions = place(slots, int(num_markers), alignment)
        assert len(positions) == num_markers
        assert positions == sorted(positions) and positions[0] >= 0 and positions[-1] <= num_tgt


def test_the_best_total_is_found() -> None:
    # Brute force over every monotone placement of 2 markers among 5 target words.
    rng = np.random.default_rng(1)
    slots = [0, 1, 1, 2, 2, 2]
    alignment = rng.random((5, 6))
    gain = np.stack(
        [alignment[:, [i for i, s in enumerate(slots) if s == k]].sum(1) for k in range(3)], 1
    )

    def total(p: list[int]) -> float:
        bounds = [0, *p, 5]
        return sum(gain[j, k] for k in range(3) for j in range(bounds[k], bounds[k + 1]))

    best = max(([a, b] for a in range(6) for b in range(a, 6)), key=total)
    assert np.isclose(total(place(slots, 2, alignment)), total(best), atol=1e-2)


def test_spacing_follows_the_source() -> None:
    bold, end = Marker("<b>", True, False), Marker("</b>", False, True)
    assert render(["das", "grosse", "Haus"], [bold, end], [1, 2]) == "das <b>grosse</b> Haus"
    placeholder = Marker("%s", True, True)
    assert render(["Datei", ",", "bitte"], [placeholder], [1]) == "Datei %s, bitte"
    assert render(["(siehe", "oben)"], [placeholder], [0]) == "%s (siehe oben)"
