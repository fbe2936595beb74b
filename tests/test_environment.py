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
