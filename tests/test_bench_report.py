"""bench/report.py: how a run's rounds become a ratio and a verdict."""

import pytest

from bench.report import round_ratios, transparent_hugepages, verdict


@pytest.mark.parametrize(
    ("ratios", "expected"),
    [
        ([0.90, 0.88, 0.95], "met"),
        ([0.60, 0.65, 0.69], "MISSED"),
        ([0.73, 0.95, 0.84], "MISSED, but met in 1 of 3 rounds"),
        ([0.84, 0.86, 0.90], "met, but MISSED in 1 of 3 rounds"),
        ([0.85], "met"),  # the target itself is met
    ],
)
def test_verdict_says_when_rounds_disagree(ratios, expected):
    assert verdict(ratios, 0.85) == expected


def test_round_ratios_pair_each_round_with_its_own_floor():
    results = {
        "floor_write": [{"rps": 100.0}, {"rps": 200.0}],
        "refresh": [{"rps": 70.0}, {"rps": 120.0}],
    }
    assert round_ratios(results, [], "refresh", 2) == [0.7, 0.6]


def test_login_ratio_is_against_cores_over_each_rounds_hash_time():
    results = {"login": [{"rps": 80.0}, {"rps": 90.0}]}
    assert round_ratios(results, [0.02, 0.025], "login", 2) == pytest.approx([0.8, 1.125])


def test_a_workload_without_its_floor_has_no_ratio():
    assert round_ratios({"me": [{"rps": 10.0}]}, [], "me", 2) == []


@pytest.mark.parametrize(
    ("text", "mode"),
    [
        ("always [madvise] never\n", "madvise"),
        ("[always] madvise never\n", "always"),
        ("garbage\n", None),
    ],
)
def test_the_huge_page_mode_is_the_bracketed_one(tmp_path, text, mode):
    setting = tmp_path / "enabled"
    setting.write_text(text)
    assert transparent_hugepages(setting) == mode


def test_no_huge_page_mode_without_the_setting(tmp_path):
    assert transparent_hugepages(tmp_path / "missing") is None
