"""Where each model looks: EigenCAM heatmaps of a base model and its attention variants, side by side.

EigenCAM (Muhammad & Yeasin, "Eigen-CAM: Class Activation Map using Principal Components", IJCNN 2020,
arXiv:2008.00299) projects a layer's activations on their first principal component: no gradients and
no class target, so it suits a detector whose outputs are not one logit per class. The computation is
the ``grad-cam`` package's (``pytorch_grad_cam.EigenCAM``, Gildenblat et al.); this module picks the
layer, letterboxes the images and lays out the panel.

- ``changed_layers``: the layer the attention module changed, in the base and in the variant.
- ``eigencam``: (B, H, W) heatmaps in [0, 1] of one layer of an Ultralytics ``DetectionModel``.
- ``heatmap_panel``: one PNG, rows = images, columns = models, each cell the image with its heatmap.

The sign of a principal component is arbitrary and EigenCAM keeps the positive side, so a map can show
the background instead of the objects; compare where maps are sharp, not which side lights up.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from ..errors import YoloattnError
from ..yaml_model import Row

PAD = 114  # Ultralytics' letterbox gray
CELL_INCHES = 2.4  # each panel cell; the PNG is cols x rows cells at DPI
DPI = 100


def changed_layers(base_layers: list, variant_layers: list) -> tuple[int, int]:
    """(base index, variant index) of the first row where two models' row lists differ.

    Rows are ``yaml_model.rows(d)`` of each model dict (Ultralytics' ``[from, repeats, module, args]``
    lists work too). When the variant has more rows (a layer inserted at ``i``) the answer is
    ``(i - 1, i)``: the base's view is the map the new module reads.
    When the counts match (a block replaced in place at ``i``) it is ``(i, i)``. ValueError
    (``YoloattnError``) when the lists are identical or the variant has fewer rows.
    """
    base_layers, variant_layers = [Row(*r) for r in base_layers], [Row(*r) for r in variant_layers]
    first = next((i for i, (a, b) in enumerate(zip(base_layers, variant_layers)) if a != b), None)
    if len(variant_layers) > len(base_layers):
        i = len(base_layers) if first is None else first  # rows appended at the end differ at len(base)
        return i - 1, i
    if len(variant_layers) < len(base_layers):
        raise YoloattnError(f"the variant has fewer layers ({len(variant_layers)}) than the base "
                            f"({len(base_layers)}); expected a layer inserted or a block replaced")
    if first is None:
        raise YoloattnError("the base and variant layer lists are identical: no layer changed")
    return first, first


def letterbox_images(paths: list[Path], imgsz: int) -> tuple[torch.Tensor, list[np.ndarray]]:
    """Images resized to fit ``imgsz`` keeping aspect ratio and padded centered with gray 114.

    Returns the (B, 3, imgsz, imgsz) float tensor in [0, 1] RGB the models read and the same pixels as
    float32 (imgsz, imgsz, 3) RGB arrays in [0, 1] for the overlays. YoloattnError when ``paths`` is empty.
    """
    from PIL import Image

    if not paths:
        raise YoloattnError("no images to draw heatmaps on; pass at least one image path")
    arrays = []
    for path in paths:
        with Image.open(path) as im:
            im = im.convert("RGB")
            r = imgsz / max(im.size)
            w, h = max(1, round(im.width * r)), max(1, round(im.height * r))
            canvas = Image.new("RGB", (imgsz, imgsz), (PAD, PAD, PAD))
            canvas.paste(im.resize((w, h), Image.BILINEAR), ((imgsz - w) // 2, (imgsz - h) // 2))
        arrays.append(np.asarray(canvas, dtype=np.float32) / 255.0)
    tensor = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()
    return tensor, arrays


def _check_layer(model: torch.nn.Module, layer: int) -> torch.nn.Module:
    layers = model.model
    n = len(layers)
    if not isinstance(layer, int) or not 0 <= layer < n - 1:
        # the last layer is the Detect head: its output is a tuple of predictions, not a feature map
        raise YoloattnError(f"layer {layer} is out of range: the model has {n} layers, heatmaps need a "
                            f"feature layer 0..{n - 2} (layer {n - 1} is the {type(layers[-1]).__name__} head)")
    return layers[layer]


def eigencam(model: torch.nn.Module, layer: int, images: torch.Tensor) -> np.ndarray:
    """EigenCAM heatmaps, float32 (B, H, W) in [0, 1], of layer ``layer`` of a ``DetectionModel``.

    ``images``: (B, 3, H, W) in [0, 1] (``letterbox_images``). ``model.model[layer]`` is hooked; the
    maps are upsampled to (H, W) and min-max scaled per image by grad-cam. Runs in eval mode under
    ``torch.no_grad`` (EigenCAM needs no gradients, and BatchNorm statistics must not move); every
    submodule's training flag is restored afterwards. YoloattnError for a layer out of range.
    """
    from pytorch_grad_cam import EigenCAM

    target = _check_layer(model, layer)
    flags = {m: m.training for m in model.modules()}  # not one model.train(flag): frozen parts may differ
    p = next(model.parameters())
    cam = EigenCAM(model, [target])  # its constructor puts the model in eval mode
    try:
        with torch.no_grad():
            # targets=[] rather than None: with None BaseCAM takes np.argmax of the model's output as
            # class labels, which fails on the (predictions, extras) tuple a DetectionModel returns in
            # eval mode; EigenCAM ignores targets, so an empty list skips that step with no wrapper.
            maps = cam(input_tensor=images.to(p.device, p.dtype), targets=[])
    finally:
        cam.activations_and_grads.release()  # not `with cam`: its __exit__ swallows IndexError
        for m, training in flags.items():
            m.training = training
    return np.nan_to_num(np.clip(maps, 0.0, 1.0)).astype(np.float32)


def heatmap_panel(columns: list[tuple[str, torch.nn.Module, int]], images: list[Path], imgsz: int, path: Path) -> Path:
    """Write a PNG of EigenCAM overlays: one row per image, one column per (title, model, layer).

    ``columns``, e.g. ``[("yolov8n (layer 9)", base, 9), ("iRMB@sppf (layer 10)", variant, 10)]``
    (``changed_layers`` gives the indices). Each cell is ``CELL_INCHES`` square at ``DPI``; titles on the
    first row, image file names on the first column. YoloattnError for no columns, no images or a layer
    out of range (checked for every column before any model runs). Returns ``path``.
    """
    from pytorch_grad_cam.utils.image import show_cam_on_image

    from .plots import pyplot

    if not columns:
        raise YoloattnError("no models to draw heatmaps for; pass at least one (title, model, layer) column")
    for title, model, layer in columns:
        try:
            _check_layer(model, layer)
        except YoloattnError as error:
            raise YoloattnError(f"{title}: {error}") from None
    tensor, arrays = letterbox_images(list(images), imgsz)
    maps = [eigencam(model, layer, tensor) for _, model, layer in columns]

    plt = pyplot()
    rows, cols = len(arrays), len(columns)
    fig, axes = plt.subplots(rows, cols, figsize=(CELL_INCHES * cols, CELL_INCHES * rows), squeeze=False)
    for r, rgb in enumerate(arrays):
        for c, (title, _, _) in enumerate(columns):
            ax = axes[r][c]
            ax.imshow(show_cam_on_image(rgb, maps[c][r], use_rgb=True))
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(title, fontsize=8)
            if c == 0:
                ax.set_ylabel(Path(images[r]).name, fontsize=7)
    fig.tight_layout()  # keeps the figure size, so the PNG is exactly cols x rows cells
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return Path(path)
