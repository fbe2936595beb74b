"""The installed environment is the one the project needs (see constraints.txt)."""

import torch


def test_torchvision_nms_runs():
    # The machine-local torch==2.13.0+cpu wheel breaks PyPI's torchvision at import; the pinned pair must not.
    import torchvision

    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 11.0, 11.0], [50.0, 50.0, 60.0, 60.0]])
    scores = torch.tensor([0.9, 0.8, 0.7])
    keep = torchvision.ops.nms(boxes, scores, iou_threshold=0.5)
    assert keep.tolist() == [0, 2]


def test_torch_is_not_the_local_cpu_wheel():
    import torchvision

    assert not torch.__version__.endswith("+cpu"), torch.__version__
    assert torch.__version__.split("+")[0] == "2.12.1" and torchvision.__version__.split("+")[0] == "0.27.1"


def test_ultralytics_runs_offline():
    import os

    assert os.environ["YOLO_OFFLINE"] == "1"
    from ultralytics.utils import ONLINE

    assert ONLINE is False


def test_python_floor_is_derived_from_the_pins():
    """pyproject's requires-python is the highest Requires-Python of the pinned packages (numpy, scipy, ...):
    a lower floor promises Pythons on which `make` cannot install the pinned set."""
    import re
    from importlib.metadata import PackageNotFoundError, metadata
    from pathlib import Path

    from packaging.specifiers import SpecifierSet

    root = Path(__file__).resolve().parents[1]
    pins = [line.split("==")[0].strip() for line in (root / "constraints.txt").read_text().splitlines()
            if "==" in line and not line.lstrip().startswith("#")]
    minors = [f"3.{m}" for m in range(6, 20)]
    floors = {}
    for name in pins:
        try:
            spec = SpecifierSet(metadata(name).get("Requires-Python") or "")
        except PackageNotFoundError:
            continue
        floors[name] = next(v for v in minors if spec.contains(f"{v}.0"))
    floor = max(floors.values(), key=lambda v: tuple(map(int, v.split("."))))
    declared = re.search(r'^requires-python = ">=([0-9.]+)"', (root / "pyproject.toml").read_text(), re.M).group(1)
    assert declared == floor, (declared, {k: v for k, v in floors.items() if v == floor})
    assert f"Python ≥ {floor}" in (root / "README.md").read_text()


def test_cpu_isa_names_the_highest_vector_isa_and_bf16(monkeypatch):
    """Every latency record names the ISA; bf16 is named because OpenVINO infers in bf16 by default on such CPUs."""
    from yoloattn import machine

    cases = {"fpu sse4_2 avx avx2": "AVX2", "avx2 avx512f avx512_vnni": "AVX-512",
             "avx2 avx512f avx512_bf16": "AVX-512 BF16", "avx512f avx512_bf16 amx_tile amx_bf16": "AMX BF16",
             "fp asimd": "NEON"}
    for flags, isa in cases.items():
        monkeypatch.setattr(machine, "_cpuinfo", lambda flags=flags: {"model name": "Test CPU", "flags": flags})
        machine.cpu_isa.cache_clear()
        machine.cpu_model.cache_clear()
        assert machine.cpu_isa() == isa, flags
        assert machine.cpu_summary(1).startswith(f"Test CPU, {isa}, ") and machine.cpu_summary(1).endswith(
            ", 1 thread")
    monkeypatch.undo()
    machine.cpu_isa.cache_clear()
    machine.cpu_model.cache_clear()
    assert machine.cpu_isa() != "unknown ISA" and machine.cpu_model() != "Test CPU"  # the real machine again
