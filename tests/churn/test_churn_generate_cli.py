"""`customer360 generate kkbox`: the driver mix of the simulated world, chosen by name."""

from __future__ import annotations

import json

from click.testing import CliRunner

from customer360.churn.generator import DRIVER_MIXES
from customer360.cli import main


def test_the_driver_mix_is_chosen_by_name_and_recorded_beside_the_truth(tmp_path, monkeypatch):
    monkeypatch.setenv("C360_HOME", str(tmp_path))
    args = ["generate", "kkbox", "--members", "300", "--seed", "5", "--truth", "--layout", "v1"]
    result = CliRunner().invoke(main, [*args, "--drivers", "engagement"])
    assert result.exit_code == 0, result.output
    truth = json.loads((tmp_path / "truth" / "kkbox" / "truth.json").read_text())
    assert truth["drivers"]["fading"] == DRIVER_MIXES["engagement"].fading == 4.0
    assert truth["layout"] == "v1" and truth["seed"] == 5
    assert (tmp_path / "landing" / "kkbox" / "train.csv").is_file()


def test_an_unknown_driver_mix_is_refused_with_the_choices(tmp_path, monkeypatch):
    monkeypatch.setenv("C360_HOME", str(tmp_path))
    result = CliRunner().invoke(main, ["generate", "kkbox", "--drivers", "loyal"])
    assert result.exit_code == 2
    assert "'loyal' is not a driver mix" in result.output
    assert "billing, default, engagement" in result.output
    assert not (tmp_path / "landing" / "kkbox").exists()
