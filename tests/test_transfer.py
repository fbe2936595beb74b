"""transfer_weights: every base tensor with a home in a variant arrives bit-identical, whatever the indices.

The expected homes come from an alignment written independently of the one in transfer.py: the YAML
rows of base and variant, without their ``from`` column, compared with difflib; equal rows pair one to
one, a replaced block pairs with the block it replaced.
"""

from __future__ import annotations

import contextlib
import dataclasses
import difflib
import io
import json
from pathlib import Path

import pytest
import torch
import yaml

import yoloattn
from yoloattn import zoo
from yoloattn.cli import main
from yoloattn.compare.models import load_model_dict
from yoloattn.integration.transfer import WeightsError, transfer_weights

# every zoo placement of each family, with one module that changes a block and one that is inserted
CASES = [("yolov8n", "iRMB", rule) for rule in ("csp", "sppf", "head", "csp@16,32")] + \
        [("yolov9t", "iRMB", rule) for rule in ("csp", "sppf", "head")] + \
        [("yolo11n", module, rule) for module in ("MLLA", "MQA") for rule in ("csp", "psa", "sppf", "head")]

# The tutorials' style: C2f_iRMB at P5 and an iRMB row after SPPF, every later `from` shifted by hand.
TUTORIAL = """
nc: 80
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]]
  - [-1, 1, Conv, [128, 3, 2]]
  - [-1, 3, C2f, [128, True]]
  - [-1, 1, Conv, [256, 3, 2]]
  - [-1, 6, C2f, [256, True]]
  - [-1, 1, Conv, [512, 3, 2]]
  - [-1, 6, C2f, [512, True]]
  - [-1, 1, Conv, [1024, 3, 2]]
  - [-1, 3, C2f_iRMB, [1024, True]]
  - [-1, 1, SPPF, [1024, 5]]
  - [-1, 1, iRMB, [1024]]
head:
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 6], 1, Concat, [1]]
  - [-1, 3, C2f, [512]]
  - [-1, 1, nn.Upsample, [None, 2, "nearest"]]
  - [[-1, 4], 1, Concat, [1]]
  - [-1, 3, C2f, [256]]
  - [-1, 1, Conv, [256, 3, 2]]
  - [[-1, 13], 1, Concat, [1]]
  - [-1, 3, C2f, [512]]
  - [-1, 1, Conv, [512, 3, 2]]
  - [[-1, 10], 1, Concat, [1]]
  - [-1, 3, C2f, [1024]]
  - [[16, 19, 22], 1, Detect, [nc]]
"""


def build(yaml_text: str, path: Path, nc: int = 80):
    from ultralytics.nn.tasks import DetectionModel

    path.write_text(yaml_text)
    torch.manual_seed(1)  # other weights than the base's
    return DetectionModel(str(path), nc=nc, verbose=False)


def randomised_base(name: str, nc: int = 80):
    """A base model whose every tensor (BatchNorm buffers included) holds random values."""
    from ultralytics.nn.tasks import DetectionModel

    torch.manual_seed(0)
    model = DetectionModel(f"{name}.yaml", nc=nc, verbose=False)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.rand_like(tensor) + 0.5)
    return model


def expected_homes(base_yaml: dict, variant_yaml: dict) -> list[tuple[int, int]]:
    """(base row, variant row) pairs by difflib over the rows without ``from``."""
    rows = lambda d: [json.dumps(r[1:]) for r in [*d["backbone"], *d["head"]]]  # noqa: E731
    b, v = rows(base_yaml), rows(variant_yaml)
    pairs = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=b, b=v, autojunk=False).get_opcodes():
        if tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1):
            pairs += list(zip(range(i1, i2), range(j1, j2)))
    return pairs


def check_bit_identical(base, variant, pairs) -> int:
    """Every base tensor of a paired layer that fits its variant twin was copied exactly; returns their count."""
    bs, vs = base.state_dict(), variant.state_dict()
    copied = 0
    for i, j in pairs:
        for key, tensor in bs.items():
            if not key.startswith(f"model.{i}."):
                continue
            twin = f"model.{j}." + key.split(".", 2)[2]
            if twin in vs and vs[twin].shape == tensor.shape:
                assert torch.equal(vs[twin], tensor.to(vs[twin].dtype)), (key, twin)
                copied += 1
    return copied


@pytest.mark.parametrize("base_name,module,rule", CASES, ids=[f"{b}-{m}-{r}" for b, m, r in CASES])
def test_every_zoo_placement_gets_every_base_tensor_with_a_home(base_name, module, rule, tmp_path):
    base_dict, _, _ = load_model_dict(base_name)
    variant_dict = zoo.make_variant(base_dict, module, rule)
    variant = build(zoo.render(variant_dict, "test"), tmp_path / f"{base_name}-x.yaml")
    base = randomised_base(base_name)
    report = transfer_weights(variant, base)
    copied = check_bit_identical(base, variant, expected_homes(base_dict, variant_dict))
    assert report.transferred == copied and report.total == len(variant.state_dict())
    assert report.stock <= report.transferred
    if "csp" not in rule and rule != "psa":  # an inserted layer: every base tensor has a home
        assert report.transferred == report.base_total and not report.unmatched_base
    assert str(report).startswith(f"transferred {copied}/{report.total} variant tensors")
    assert "classes" not in str(report) and "share little" not in str(report)


def test_the_issue_counts_for_yolov8n_and_irmb(tmp_path):
    base_dict, _, _ = load_model_dict("yolov8n")
    base = randomised_base("yolov8n")
    counts = {}
    for rule in ("sppf", "head", "csp"):
        variant = build(zoo.render(zoo.make_variant(base_dict, "iRMB", rule), "t"), tmp_path / f"yolov8n-{rule}.yaml")
        report = transfer_weights(variant, base)
        counts[rule] = (report.stock, report.transferred, report.total)
    assert counts == {"sppf": (162, 355, 369), "head": (270, 355, 383), "csp": (343, 343, 357)}


def test_a_hand_written_tutorial_yaml_is_aligned_by_structure(tmp_path):
    variant = build(TUTORIAL, tmp_path / "yolov8n-tutorial.yaml")
    base = randomised_base("yolov8n")
    report = transfer_weights(variant, base)
    base_dict, _, _ = load_model_dict("yolov8n")
    copied = check_bit_identical(base, variant, expected_homes(base_dict, yaml.safe_load(TUTORIAL)))
    assert report.transferred == copied and report.fresh_layers == (10,)  # the inserted iRMB
    assert report.unmatched_base and all(k.startswith("model.8.") for k in report.unmatched_base)  # C2f's bottlenecks
    assert report.stock < 200 < report.transferred


def test_another_class_count_leaves_the_classification_branch_at_init(tmp_path):
    base = randomised_base("yolov8n", nc=80)
    variant = build(zoo.render(zoo.make_variant(load_model_dict("yolov8n")[0], "iRMB", "sppf"), "t"),
                    tmp_path / "yolov8n-v.yaml", nc=5)
    report = transfer_weights(variant, base)
    # YOLOv8's classification branch is max(ch, min(nc, 100)) wide: at 5 classes it starts at init, all else arrives
    assert report.unmatched_base and all(k.startswith("model.22.cv3.") for k in report.unmatched_base)
    assert report.transferred == report.base_total - len(report.unmatched_base)
    assert "the checkpoint has 80 classes and the model 5" in str(report)


def test_unrelated_models_match_little_and_raise_nothing():
    from ultralytics.nn.tasks import DetectionModel

    report = transfer_weights(DetectionModel("yolo11n.yaml", verbose=False), randomised_base("yolov8n"))
    assert report.transferred < report.total / 2 and "the two models share little" in str(report)


def test_missing_or_foreign_weights_give_one_line(tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    model = DetectionModel("yolov8n.yaml", verbose=False)
    with pytest.raises(WeightsError, match="weights file not found: .*missing.pt"):
        transfer_weights(model, tmp_path / "missing.pt")
    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(WeightsError, match=r"junk.pt is not an Ultralytics checkpoint") as err:
        transfer_weights(model, junk)
    assert "\n" not in str(err.value)


@pytest.fixture(scope="module")
def base_checkpoint(tmp_path_factory, tiny_data):
    """yolov8n trained for one tiny epoch: a real Ultralytics checkpoint with the tiny preset's 5 classes."""
    out = tmp_path_factory.mktemp("base")
    data = tiny_data
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["train", "yolov8n.yaml", f"data={data}", "epochs=1", "imgsz=64", f"project={out}",
                     "name=base", "plots=False", "val=False"]) == 0
    return out / "base" / "weights" / "last.pt"


@pytest.mark.slow
def test_train_pretrained_uses_the_transfer_and_compare_weights_writes_the_columns(base_checkpoint, tmp_path, capsys):
    variant = tmp_path / "yolov8n-irmb-sppf.yaml"
    variant.write_text(zoo.render(zoo.make_variant(load_model_dict("yolov8n")[0], "iRMB", "sppf"), "t"))
    assert main(["train", str(variant), "data=embedded:tiny", "epochs=1", "imgsz=64", f"pretrained={base_checkpoint}",
                 "--dry-run"]) == 0
    assert "transferred 355/369 variant tensors" in capsys.readouterr().out
    out = tmp_path / "cmp"
    assert main(["compare", "--preset", "tiny", "--base", "yolov8n", "--modules", "irmb", "--where", "sppf",
                 "--epochs", "1", "--seeds", "1", "--imgsz", "64", "--weights", str(base_checkpoint),
                 "--freeze", "13", "--out", str(out)]) == 0
    stdout = capsys.readouterr().out
    import csv

    rows = {r["model"]: r for r in csv.DictReader(open(out / "results.csv"))}
    assert (rows["yolov8n"]["transferred"], rows["yolov8n"]["total_tensors"]) == ("355", "355")
    assert (rows["yolov8n-irmb-sppf"]["transferred"], rows["yolov8n-irmb-sppf"]["total_tensors"]) == ("355", "369")
    assert "yolov8n-irmb-sppf: 355/369 tensors from the checkpoint, 100.0% of its tensors kept" in stdout
    assert "the first 13 base layers frozen" in (out / "report.md").read_text()
    args = yaml.safe_load(next((out / "runs").glob("yolov8n-irmb-sppf-s0-*/train/args.yaml")).read_text())
    assert args["freeze"] == [*range(10), 13] and args["pretrained"] == str(base_checkpoint.resolve())
    assert main(["compare", "--preset", "tiny", "--weights", str(tmp_path / "nope.pt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--weights: weights file not found" in err[0]


def test_freeze_follows_the_base_layers_into_every_variant(tmp_path):
    from yoloattn.compare import CompareSettings, resolve
    from yoloattn.compare.plan import plan_models, plan_runs, plan_variants, prepare_data

    settings = CompareSettings(preset="tiny", base="yolov8n", modules=("iRMB",), where=("csp", "sppf", "head"),
                               epochs=1, seeds=1, imgsz=64, threads_per_run=1, freeze=10, out=str(tmp_path))
    data = prepare_data(settings, tmp_path)
    resolved = resolve(dataclasses.replace(settings, weights=None, freeze=None))  # no checkpoint needed to plan
    models = plan_models(resolved, plan_variants(resolved))
    frozen = {run.model.label: dict(run.extra_args)["freeze"] for run in plan_runs(settings, models, data, tmp_path)}
    assert frozen["yolov8n"] == tuple(range(10))
    assert frozen["yolov8n-irmb-sppf"] == tuple(range(10))  # the iRMB row 10 is new: trainable
    assert frozen["yolov8n-irmb-head"] == tuple(range(10))  # inserted after the neck: nothing shifts here
    csp = frozen["yolov8n-irmb-csp"]  # C2f_iRMB at 8: only the parts that came from the base C2f
    assert csp[:8] == tuple(range(8)) and csp[-1] == 9  # iRMB replaced the bottlenecks (8.m): trainable
    assert set(csp[8:-1]) == {"8.cv1.conv", "8.cv1.bn", "8.cv2.conv", "8.cv2.bn"}
    later = dataclasses.replace(settings, freeze=13)  # past SPPF: the sppf variant's indices shift by one
    frozen = {run.model.label: dict(run.extra_args)["freeze"] for run in plan_runs(later, models, data, tmp_path)}
    # base 12 (the first neck C2f) is the variant's 13; base 10 and 11 (Upsample, Concat) hold nothing to freeze
    assert frozen["yolov8n-irmb-sppf"] == (*range(10), 13) and frozen["yolov8n"] == tuple(range(13))


@pytest.mark.bridge
def test_python_route_transfers_on_every_supported_ultralytics(tmp_path, tiny_data):
    """YOLO(variant).train(pretrained=PATH, trainer=yoloattn.DetectionTrainer): 8.4 passes the file's model,
    8.3 its own index-keyed load of it; both end with the structural transfer."""
    from ultralytics import YOLO

    from yoloattn.integration.locations import pin_output_dirs

    pin_output_dirs(tmp_path)
    data = tiny_data
    base = YOLO("yolov8n.yaml")
    base.train(data=str(data), epochs=1, imgsz=64, trainer=yoloattn.DetectionTrainer, val=False, plots=False,
               project=str(tmp_path), name="base", workers=0)
    path = tmp_path / "yolov8n-irmb-sppf.yaml"
    path.write_text(zoo.render(zoo.make_variant(load_model_dict("yolov8n")[0], "iRMB", "sppf"), "t"))
    variant = YOLO(str(path))
    variant.train(data=str(data), epochs=1, imgsz=64, pretrained=str(base.trainer.last), val=False, plots=False,
                  trainer=yoloattn.DetectionTrainer, project=str(tmp_path), name="variant", workers=0)
    report = variant.trainer.transfer_report
    assert (report.transferred, report.total) == (355, 369)


def _variant_yaml(tmp_path: Path, module: str = "iRMB", rule: str = "sppf", nc: int = 80) -> Path:
    path = tmp_path / f"yolov8n-{module.lower()}-{rule}.yaml"
    variant = zoo.make_variant(load_model_dict("yolov8n")[0], module, rule)
    path.write_text(zoo.render({**variant, "nc": nc}, "t"))
    return path


def test_extends_finds_a_variants_base_by_structure_alone(tmp_path):
    """What `bench` uses for its × base column when a file's name does not say its base."""
    from ultralytics.nn.tasks import DetectionModel

    from yoloattn.integration.transfer import extends

    others = {name: DetectionModel(f"{name}.yaml", verbose=False) for name in ("yolov8n", "yolov8s", "yolo11n")}
    for _, module, rule in [c for c in CASES if c[0] == "yolov8n"]:
        variant = build(zoo.render(zoo.make_variant(load_model_dict("yolov8n")[0], module, rule), "t"),
                        tmp_path / f"mine-{rule}.yaml")
        assert extends(variant, others["yolov8n"]), rule
        assert not extends(variant, others["yolov8s"]) and not extends(variant, others["yolo11n"]), rule
    assert extends(build(TUTORIAL, tmp_path / "hand-written.yaml"), others["yolov8n"])
    assert not extends(others["yolov8n"], others["yolov8n"])  # the same model is not a variant of itself


def test_load_decides_by_architecture_and_yoloattn_layers(tmp_path):
    """``BaseModel.load`` aligns by structure only for a yoloattn model and a checkpoint of another architecture."""
    from ultralytics.nn.tasks import DetectionModel

    from yoloattn.integration.load import needs_transfer

    variant = DetectionModel(str(_variant_yaml(tmp_path)), verbose=False)
    stock, other_stock = DetectionModel("yolov8n.yaml", verbose=False), DetectionModel("yolo11n.yaml", verbose=False)
    assert needs_transfer(variant, stock) and needs_transfer(variant, {"model": stock, "ema": None})
    assert not needs_transfer(variant, DetectionModel(str(_variant_yaml(tmp_path)), nc=3, verbose=False))
    assert not needs_transfer(stock, other_stock)  # stock models load as in Ultralytics
    assert not needs_transfer(variant, torch.nn.Linear(2, 2))  # no YAML: Ultralytics decides


def test_a_yaml_built_model_takes_the_checkpoints_classes_unless_the_user_chose_its_own(tmp_path):
    from ultralytics.nn.tasks import DetectionModel

    from yoloattn.integration.load import adopt_classes

    source = DetectionModel("yolov8n.yaml", nc=3, verbose=False)
    source.names = {0: "cat", 1: "dog", 2: "bird"}
    model = DetectionModel(str(_variant_yaml(tmp_path)), verbose=False)
    head = model.model[-1]
    assert "3 classes" in adopt_classes(model, source)
    assert model.yaml["nc"] == model.model[-1].nc == 3 and model.names == source.names and model.model[-1] is not head
    assert adopt_classes(model, source) is None  # already the checkpoint's
    chosen = DetectionModel(str(_variant_yaml(tmp_path)), verbose=False)
    chosen.names = {i: f"class{i}" for i in range(80)}  # names the user set: the model keeps its 80 classes
    assert adopt_classes(chosen, source) is None and chosen.yaml["nc"] == 80


@pytest.mark.bridge
def test_the_tutorials_load_route_fine_tunes_from_every_transferred_tensor(tmp_path, tiny_data):
    """``YOLO(variant).load(ckpt).train(...)`` with the stock trainer: one step at learning rate 0 keeps every
    parameter where the load put it, so each base parameter with a home (by the independent alignment) must be
    in the trained model bit-identical; Ultralytics' index-keyed load would leave the neck and head random."""
    import logging

    from ultralytics import YOLO

    from yoloattn.integration.locations import pin_output_dirs

    pin_output_dirs(tmp_path)
    nc = len(yaml.safe_load(Path(tiny_data).read_text())["names"])
    base = randomised_base("yolov8n", nc=nc)
    checkpoint = tmp_path / "base.pt"
    torch.save({"model": base, "train_args": {}}, checkpoint)
    variant_yaml = _variant_yaml(tmp_path)  # 80 classes, as shipped: the load takes the checkpoint's 5
    logged = []
    handler = logging.Handler()
    handler.emit = lambda record: logged.append(record.getMessage())
    logging.getLogger("ultralytics").addHandler(handler)
    try:
        model = YOLO(str(variant_yaml)).load(str(checkpoint))
        model.train(data=str(tiny_data), epochs=1, imgsz=64, batch=16, optimizer="SGD", lr0=0.0, warmup_bias_lr=0.0,
                    val=False, plots=False, workers=0, amp=False, project=str(tmp_path), name="ft")
    finally:
        logging.getLogger("ultralytics").removeHandler(handler)
    assert any(m.startswith(f"yoloattn: the model takes the checkpoint's {nc} classes and their names (its YAML has 80)"
                            "; transferred 355/369 variant tensors") and "index-keyed load would copy 162" in m
               for m in logged), logged
    trained = dict(model.trainer.model.named_parameters())
    base_params = dict(base.named_parameters())
    checked = 0
    for i, j in expected_homes(load_model_dict("yolov8n")[0], yaml.safe_load(variant_yaml.read_text())):
        for key, tensor in base_params.items():
            twin = f"model.{j}." + key.split(".", 2)[2]
            if key.startswith(f"model.{i}.") and twin in trained and trained[twin].shape == tensor.shape:
                assert torch.equal(trained[twin].detach(), tensor), (key, twin)
                checked += 1
    assert checked == len(base_params)  # every base parameter found its home and kept it through the step
    head = [k for k, t in trained.items() if k.startswith(("model.23.cv2.", "model.23.cv3.")) and t.ndim == 4]
    assert len(head) == 18 and all(torch.equal(trained[k].detach(), base_params[k.replace("23", "22", 1)])
                                   for k in head)  # the Detect head behind the inserted row: all the checkpoint's


def test_freeze_needs_weights():
    from yoloattn.compare import CompareError, CompareSettings
    from yoloattn.compare import resolve

    with pytest.raises(CompareError, match="--freeze needs --weights BASE.pt"):
        resolve(CompareSettings(preset="tiny", freeze=3))
