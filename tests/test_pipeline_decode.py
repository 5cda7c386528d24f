"""Decoding hand-made chains: ends, wrong calls, junk, the count prior, anchors."""

import numpy as np
import pytest

from helpers.oracles import END_LEVELS, one_hot
from spinefm.data.classes import (
    BACKGROUND,
    BOTTOM_END,
    TOP_END,
    VERTEBRA,
    class_names,
    end_calls,
    level_classes,
    levels_between_ends,
)
from spinefm.data.level_rows import level_map_names
from spinefm.data.levels import level_range
from spinefm.pipeline import ChainRecord, ChainView, DecodeConfig, decode_chain
from spinefm.pipeline.core.chain_gaps import gap_ratios
from spinefm.pipeline.core.decode import l6_rate_from_counts

CLASSES = class_names(END_LEVELS)  # background, vertebra, top_end, bottom_end
AP = ChainView.of("T1", "L5", "T1", "L5", "top")
CERVICAL = ChainView.of("C2", None, "C2", "S1", "top")
LUMBAR = ChainView.of(None, "S1", "C2", "S1", "bottom")


def chain(calls, confidence=0.9):
    return np.array([one_hot(CLASSES, call, confidence) for call in calls]).reshape(-1, len(CLASSES))


def decode(calls, view, support=None, config=None, confidence=0.9):
    support = np.zeros(len(calls)) if support is None else np.asarray(support, dtype=float)
    return decode_chain(ChainRecord(chain(calls, confidence), CLASSES, support, view), config or DecodeConfig())


def ap_calls():
    """T1..L5 as a good classifier calls them."""
    return [TOP_END] + [VERTEBRA] * 15 + [BOTTOM_END]


def test_a_clean_chain_is_its_range():
    decoded = decode(ap_calls(), AP)
    assert decoded.levels == level_range("T1", "L5") and all(decoded.kept)


@pytest.mark.parametrize(
    "index, wrong", [(13, BOTTOM_END), (2, TOP_END), (8, BACKGROUND), (15, BACKGROUND), (1, BOTTOM_END)]
)
def test_one_wrong_call_changes_no_level(index, wrong):
    """An early end, a background call in the middle or next to an end: the chain outvotes it."""
    calls = ap_calls()
    calls[index] = wrong
    decoded = decode(calls, AP)
    assert decoded.levels == level_range("T1", "L5") and all(decoded.kept)


def test_positions_beyond_the_ends_are_dropped_and_counting_holds():
    """Walked past both ends: two cervical vertebrae above T1 (called vertebra, no detection there)
    and the sacrum below L5 (background); the detector found most of the range."""
    calls = [VERTEBRA, VERTEBRA] + ap_calls() + [BACKGROUND, BACKGROUND]
    support = [0.0, 0.0] + [0.9] * 17 + [0.0, 0.0]
    support[5] = support[12] = 0.0  # two vertebrae the detector missed
    decoded = decode(calls, AP, support)
    assert decoded.kept == [False, False] + [True] * 17 + [False, False]
    assert decoded.levels[2:19] == level_range("T1", "L5")


def test_an_early_end_call_with_vertebrae_below_it():
    """The classifier calls L3 `bottom_end` and the real L5 only `vertebra`; the detector saw L4 and
    L5, and the count from T1 puts the end at the right place."""
    calls = ap_calls()
    calls[14], calls[16] = BOTTOM_END, VERTEBRA
    support = [0.9] * 17
    decoded = decode(calls + [BACKGROUND], AP, support + [0.0])
    assert decoded.levels[:17] == level_range("T1", "L5") and decoded.kept == [True] * 17 + [False]


def test_junk_inside_the_chain_keeps_the_level():
    """A step that landed between two vertebrae (background, no detection) is junk: the count goes on."""
    calls = ap_calls()
    calls.insert(9, BACKGROUND)
    support = [0.9] * 18
    support[9] = 0.0
    decoded = decode(calls, AP, support)
    assert decoded.levels[9] is None and not decoded.kept[9]
    assert [lv for lv in decoded.levels if lv] == level_range("T1", "L5")


def test_without_end_evidence_counting_starts_at_the_anchor():
    assert decode([VERTEBRA] * 4, CERVICAL).levels == ["C2", "C3", "C4", "C5"]
    assert decode([VERTEBRA] * 3, LUMBAR).levels == ["L4", "L5", "S1"]
    assert decode([VERTEBRA] * 5, AP).levels == ["T1", "T2", "T3", "T4", "T5"]


def test_the_end_call_places_the_count():
    """Cervical: C2 found second (the skull base above it called background)."""
    decoded = decode([BACKGROUND, TOP_END, VERTEBRA, VERTEBRA], CERVICAL)
    assert decoded.levels == [None, "C2", "C3", "C4"] and decoded.kept == [False, True, True, True]
    lumbar = decode([VERTEBRA] * 6 + [BOTTOM_END, BACKGROUND], LUMBAR)
    assert lumbar.levels == ["T12", "L1", "L2", "L3", "L4", "L5", "S1", None]


def test_the_count_prior_decides_l6():
    """A lumbar chain T12..S1 of 8 vertebrae: with an L6 in most training films it is read T12..S1
    through L6; with none, as T11..S1."""
    calls = [VERTEBRA] * 7 + [BOTTOM_END]
    assert decode(calls, ChainView.of(None, "S1", "C2", "S1", "bottom", l6_rate=0.9)).levels == [
        "T12",
        "L1",
        "L2",
        "L3",
        "L4",
        "L5",
        "L6",
        "S1",
    ]
    assert decode(calls, ChainView.of(None, "S1", "C2", "S1", "bottom", l6_rate=0.0)).levels == level_range("T11", "S1")


def test_l6_rate_from_the_training_counts():
    assert l6_rate_from_counts({"7": 30, "8": 10}, "T12", "S1", 0.05) == 0.25  # T12..S1: 7 levels, 8 with L6
    assert l6_rate_from_counts({17: 481}, "T1", "L5", 0.05) == 0.05  # the range does not span L5..S1
    assert l6_rate_from_counts({}, "T12", "S1", 0.05) == 0.05
    levels = level_range("T12", "S1", include_optional=True)
    assert levels_between_ends(levels, "lateral_lumbar", {"lateral_lumbar": {"top": "T12", "bottom": "S1"}}) == 8
    assert levels_between_ends(levels, "lateral_lumbar", END_LEVELS) is None  # no top end in this view


def test_without_any_level_to_count_from_nothing_is_labelled():
    decoded = decode([VERTEBRA] * 3, ChainView.of(None, None, None, None))
    assert decoded.levels == [None] * 3 and decoded.kept == [False] * 3
    assert decode([], AP).levels == []


def test_an_unclassified_position_takes_its_neighbours_word():
    probabilities = chain(ap_calls())
    probabilities[8] = np.nan  # a seed the classifier was not asked about
    decoded = decode_chain(ChainRecord(probabilities, CLASSES, np.zeros(17), AP), DecodeConfig())
    assert decoded.levels == level_range("T1", "L5")


def test_a_classifier_without_end_classes_leaves_the_landmarks_to_the_count():
    classes = class_names({})
    probabilities = np.stack([one_hot(classes, VERTEBRA)] * 17)
    decoded = decode_chain(ChainRecord(probabilities, classes, np.zeros(17), AP), DecodeConfig())
    assert decoded.levels == level_range("T1", "L5")


def test_the_training_class_prior_is_divided_out():
    """A classifier trained on the natural frequencies (ends rare) gives the real L5 only 0.3 of
    `bottom_end`: divided by its training prior that marks the end, and a film cut off at T5 counts
    up from it; the decoder reads the probabilities as if every class had been drawn equally often."""
    prior = np.array([0.3, 0.6, 0.05, 0.05])
    probabilities = chain([VERTEBRA] * 13 + [BACKGROUND])
    probabilities[12] = [0.05, 0.65, 0.0, 0.3]  # L5
    decoded = decode_chain(ChainRecord(probabilities, CLASSES, np.zeros(14), AP, prior), DecodeConfig())
    assert decoded.levels == level_range("T5", "L5") + [None]
    equal = probabilities / prior
    equal /= equal.sum(axis=1, keepdims=True)
    assert decode_chain(ChainRecord(equal, CLASSES, np.zeros(14), AP), DecodeConfig()).log_likelihood == pytest.approx(
        decoded.log_likelihood
    )


def test_gap_ratios_against_the_local_spacing():
    centroids = np.array([[0, 0], [0, 10], [0, 20], [0, 40], [0, 50], [np.nan, np.nan], [0, 70]], float)
    ratios = gap_ratios(centroids)
    assert np.isnan(ratios[0]) and np.isnan(ratios[5]) and np.isnan(ratios[6])
    assert ratios[1] == pytest.approx(10 / 10) and ratios[3] == pytest.approx(
        20 / 10
    )  # medians of 10, 10, 20 / 10, 10, 10
    over_one = gap_ratios(centroids, span=2)  # from two positions back, over the gaps outside that span
    assert np.isnan(over_one[1]) and over_one[3] == pytest.approx(30 / 10) and over_one[2] == pytest.approx(20 / 15)


def evenly_spaced(count, gap_after=None):
    """Centroids one spacing apart down the image, with two spacings after position `gap_after`."""
    steps = np.ones(count)
    if gap_after is not None:
        steps[gap_after + 1] = 2.0
    return np.stack([np.zeros(count), 30.0 * np.cumsum(steps)], axis=1)


def test_a_step_over_one_vertebra_skips_one_level_and_no_more():
    """T1..L5 walked with T8 stepped over (16 positions, a double gap before T9): the levels below the
    gap stay right, with L5 at the bottom end; without a skip, every level below it shifts up one."""
    calls = ap_calls()
    del calls[7]
    support = np.full(16, 0.9)
    record = ChainRecord(chain(calls), CLASSES, support, AP, None, evenly_spaced(16, gap_after=6))
    decoded = decode_chain(record, DecodeConfig())
    assert decoded.levels == [lv for lv in level_range("T1", "L5") if lv != "T8"] and all(decoded.kept)
    rigid = decode_chain(record, DecodeConfig(skip_probability=0.0))
    assert rigid.levels != decoded.levels


def test_a_wide_gap_past_the_end_buys_no_skip():
    """A clean T1..L5 chain, then one more position 2.5 spacings below L5 (the walk overshot). The
    wide gap makes a level right after L5 unlikely; it must not reward a step over a vertebra there
    (L4 -> L6, out of the range), which would shift every level up by one."""
    for beyond in ([BACKGROUND], [VERTEBRA], [BACKGROUND, BACKGROUND]):
        calls = ap_calls() + beyond
        centroids = evenly_spaced(len(calls))
        centroids[17:] += [0.0, 45.0]
        decoded = decode_chain(
            ChainRecord(chain(calls), CLASSES, np.full(len(calls), 0.9), AP, None, centroids), DecodeConfig()
        )
        assert decoded.levels[:17] == level_range("T1", "L5") and decoded.kept == [True] * 17 + [False] * len(beyond)


def test_the_gap_over_a_dropped_position_counts():
    """A film cut off at L3 (no bottom end): T10's patch called background, no detection there, so
    that dropping it as junk is as likely as keeping it. Dropped, the gap from T9 to T11 is two
    spacings, so the levels below stay right either way (the gap over junk once counted for nothing,
    and T11..L3 read T10..L2)."""
    levels = level_range("T1", "L3")
    calls = [TOP_END] + [VERTEBRA] * (len(levels) - 1)
    calls[9] = BACKGROUND
    support = np.full(len(levels), 0.9)
    support[9] = 0.0
    record = ChainRecord(chain(calls, confidence=0.95), CLASSES, support, AP, None, evenly_spaced(len(levels)))
    decoded = decode_chain(record, DecodeConfig())
    assert [lv for i, lv in enumerate(decoded.levels) if i != 9] == [lv for lv in levels if lv != "T10"]
    assert decoded.levels[9] in ("T10", None)


def test_a_second_position_on_one_vertebra_shifts_no_label():
    """The walk segmented T8 twice, the second position 0.3 spacings below the first, both called
    vertebra, with or without a detection there: one of the two is T8, the other dropped, and every
    other level stays. (The unbounded gap ratio paid a skip at such a short gap too.)"""
    calls = ap_calls()
    calls.insert(8, VERTEBRA)
    centroids = evenly_spaced(17)
    centroids = np.insert(centroids, 8, centroids[7] + [0.0, 9.0], axis=0)
    on = [*level_range("T1", "T8"), "T8", *level_range("T9", "L5")]  # the vertebra under each position
    for support_there in (0.0, 0.9):
        support = np.full(18, 0.9)
        support[8] = support_there
        decoded = decode_chain(ChainRecord(chain(calls), CLASSES, support, AP, None, centroids), DecodeConfig())
        kept = [i for i, k in enumerate(decoded.kept) if k]
        assert [decoded.levels[i] for i in kept] == level_range("T1", "L5")
        assert all(decoded.levels[i] == on[i] for i in kept)


def test_an_even_chain_never_skips_and_an_unknown_gap_needs_the_evidence():
    """Evenly spaced, a clean chain decodes as before. Without centroids a skip has its prior alone,
    which does not outweigh counting from the anchor: the chain with T8 missing reads T1..L4."""
    decoded = decode_chain(
        ChainRecord(chain(ap_calls()), CLASSES, np.full(17, 0.9), AP, None, evenly_spaced(17)), DecodeConfig()
    )
    assert decoded.levels == level_range("T1", "L5")
    calls = ap_calls()
    del calls[7]
    blind = decode_chain(ChainRecord(chain(calls), CLASSES, np.full(16, 0.9), AP), DecodeConfig())
    assert blind.levels == level_range("T1", "L4")


LEVEL_CLASSES = level_classes("C2", "S1", END_LEVELS)  # background, C1..L5, S1


def level_chain(levels, wrong=None, confidence=0.5):
    """Each position's own level at `confidence`, a quarter of the rest on each neighbour (a patch
    classifier is most often one level off), the remainder spread; wrong: {index: class called}."""
    rows = []
    for index, level in enumerate(levels):
        called = (wrong or {}).get(index, level)
        row = np.full(len(LEVEL_CLASSES), 0.0)
        row[LEVEL_CLASSES.index(called)] = confidence
        if called != BACKGROUND:
            for neighbour in (LEVEL_CLASSES.index(called) - 1, LEVEL_CLASSES.index(called) + 1):
                if 1 <= neighbour < len(LEVEL_CLASSES):
                    row[neighbour] = (1.0 - confidence) / 4
        row += (1.0 - row.sum()) / len(row)
        rows.append(row)
    return np.stack(rows)


def test_level_evidence_outvotes_wrong_end_calls():
    """Walked from C7 to S1 with a wrong call at both ends (T1 called C7, L5 called S1): every other
    position says its level, so the chain is T1..L5 with C7 and S1 dropped, without the detector."""
    levels = ["C7", *level_range("T1", "L5"), "S1"]
    probabilities = level_chain(levels, wrong={1: "C7", 17: "S1"})
    decoded = decode_chain(ChainRecord(probabilities, LEVEL_CLASSES, np.zeros(len(levels)), AP), DecodeConfig())
    assert decoded.levels[1:18] == level_range("T1", "L5") and decoded.kept == [False] + [True] * 17 + [False]


def test_a_film_walked_past_c7_is_counted_from_its_bottom():
    """AASCE's classes (C7..S1): the walk went one past C7, and the classifier counts the top from the
    film's edge, one level off (C6, which has no class, called C7; C7 called T1; T1 called T2); the
    middle says little, L5 and S1 are called right. C6 reads C7's evidence as much as the outside
    row's, so the top costs the right path little and the bottom decides."""
    classes = [BACKGROUND, "C7", *level_range("T1", "L5"), "S1"]
    truth = ["C6", "C7", *level_range("T1", "L5"), "S1"]
    called = ["C7", "T1", "T2", *truth[3:]]
    probabilities = np.stack([one_hot(classes, call, 0.1 if 3 <= i < 19 else 0.9) for i, call in enumerate(called)])
    support = np.array([0.0, 0.0] + [0.9] * 17 + [0.0])
    decoded = decode_chain(ChainRecord(probabilities, classes, support, AP), DecodeConfig())
    assert decoded.levels == truth and decoded.kept == [False, False] + [True] * 17 + [False]


def test_level_evidence_labels_a_film_cut_off_at_both_ends():
    """T3..L2 with no end in sight: end classes could only count from the anchor (T1), level
    evidence names each position; the same chain with end classes is labelled from T1."""
    levels = level_range("T3", "L2")
    decoded = decode_chain(ChainRecord(level_chain(levels), LEVEL_CLASSES, np.zeros(len(levels)), AP), DecodeConfig())
    assert decoded.levels == levels and all(decoded.kept)
    assert decode([VERTEBRA] * len(levels), AP).levels == level_range("T1", "T12")


@pytest.mark.parametrize("view, levels", [(CERVICAL, level_range("C2", "C7")), (LUMBAR, level_range("T11", "S1"))])
def test_level_evidence_in_the_other_views(view, levels):
    probabilities = level_chain(["C1", *levels] if view is CERVICAL else [*levels, BACKGROUND])
    decoded = decode_chain(
        ChainRecord(probabilities, LEVEL_CLASSES, np.zeros(len(probabilities)), view), DecodeConfig()
    )
    assert [lv for lv, kept in zip(decoded.levels, decoded.kept) if kept] == levels


def test_end_calls_of_level_classes_are_the_levels_at_and_past_each_landmark():
    assert end_calls(LEVEL_CLASSES, "T1", "L5") == {"top": {"C1", *level_range("C2", "T1")}, "bottom": {"L5", "S1"}}
    assert end_calls(LEVEL_CLASSES, None, "S1") == {"top": set(), "bottom": {"S1"}}
    assert end_calls(CLASSES, None, "S1") == {"top": {TOP_END}, "bottom": {BOTTOM_END}}  # as they always were


MAP_NAMES = level_map_names("T1", "L5", {"ap": {"top": "T1", "bottom": "L5"}})  # above, C7..S1, below


def level_map_at(names, confidence=0.6):
    """The level map read at each position: its own name at `confidence`, a fifth of the rest on each
    neighbouring name (rows near a boundary), the remainder spread."""
    rows = []
    for name in names:
        row = np.zeros(len(MAP_NAMES))
        row[MAP_NAMES.index(name)] = confidence
        for neighbour in (MAP_NAMES.index(name) - 1, MAP_NAMES.index(name) + 1):
            if 0 <= neighbour < len(MAP_NAMES):
                row[neighbour] = (1.0 - confidence) / 5
        rows.append(row + (1.0 - row.sum()) / len(row))
    return np.stack(rows)


def test_the_level_map_outvotes_a_classifier_one_level_off_at_the_top():
    """AASCE's classes: the classifier calls C7, T1 and T2 one level low with confidence (it counts
    from the film's edge), says little in the middle and nothing of the bottom (the film ends at
    L5). Alone it follows the top (C7..T2 named T1..T3, T3 dropped to make up); the level map, which
    sees the whole film, names each row."""
    classes = [BACKGROUND, "C7", *level_range("T1", "L5"), "S1"]
    truth = ["C7", *level_range("T1", "L5")]
    called = ["T1", "T2", "T3", *truth[3:]]
    probabilities = np.stack([one_hot(classes, call, 0.9 if i < 3 else 0.1) for i, call in enumerate(called)])
    support = np.full(len(truth), 0.9)
    alone = decode_chain(ChainRecord(probabilities, classes, support, AP), DecodeConfig())
    assert alone.levels[:4] == ["T1", "T2", "T3", None]
    record = ChainRecord(probabilities, classes, support, AP, level_map=level_map_at(truth), level_names=MAP_NAMES)
    decoded = decode_chain(record, DecodeConfig())
    assert decoded.levels == truth and decoded.kept == [False] + [True] * 17
    assert decode_chain(record, DecodeConfig(level_map_weight=0.0)).levels == alone.levels


def test_junk_between_vertebrae_keeps_its_level_under_the_level_map():
    """A position on the disc between T6 and T7 (background, no detection) reads the level map's
    T6 / T7 boundary; it stays junk and shifts nothing below it."""
    classes = [BACKGROUND, "C7", *level_range("T1", "L5"), "S1"]
    truth = level_range("T1", "L5")
    calls = [*truth[:6], BACKGROUND, *truth[6:]]
    probabilities = np.stack([one_hot(classes, call, 0.6) for call in calls])
    support = np.array([0.9] * 6 + [0.0] + [0.9] * 11)
    rows = level_map_at([*truth[:6], "T6", *truth[6:]])
    rows[6] = (rows[5] + rows[7]) / 2
    record = ChainRecord(probabilities, classes, support, AP, level_map=rows, level_names=MAP_NAMES)
    decoded = decode_chain(record, DecodeConfig())
    assert decoded.levels == [*truth[:6], None, *truth[6:]] and sum(decoded.kept) == 17
