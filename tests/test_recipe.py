"""One recipe for `yoloattn train` and `yoloattn compare`, printed by both --help texts."""

from __future__ import annotations

import yaml

from yoloattn import recipe
from yoloattn.cli import main
from yoloattn.compare import RECIPE, CompareSettings


def test_compare_runs_use_the_recipe_object():
    assert RECIPE is recipe.RECIPE
    assert CompareSettings().recipe == recipe.RECIPE
    assert CompareSettings().train_args(0).items() >= recipe.HYPERPARAMETERS.items()


def test_help_prints_the_recipe(capsys):
    for command, text in (("train", recipe.describe(recipe.HYPERPARAMETERS)),
                          ("compare", recipe.describe(recipe.RECIPE))):
        try:
            main([command, "--help"])
        except SystemExit:
            pass
        assert text in capsys.readouterr().out, command


def test_train_starts_from_the_recipe_and_key_value_overrides_it(tmp_path, monkeypatch, capsys):
    from ultralytics import YOLO

    monkeypatch.chdir(tmp_path)
    seen = {}

    def fake_train(self, **kwargs):  # what `yoloattn train` hands Ultralytics
        seen.update(kwargs)
        self.trainer = type("T", (), {"save_dir": tmp_path})()

    monkeypatch.setattr(YOLO, "train", fake_train)
    assert main(["train", "yolov8n", "data=embedded:tiny", "epochs=1", "lr0=0.02"]) == 0
    capsys.readouterr()
    assert seen["optimizer"] == "SGD" and seen["cls"] == 1.0 and seen["warmup_epochs"] == 0.5 and seen["batch"] == 8
    assert seen["lr0"] == 0.02  # the user's value wins
    assert "optimizer" not in yaml.safe_dump(recipe.COMPARE_RUN)  # mechanics are compare's own
