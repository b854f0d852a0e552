"""Fashion-MNIST (Zalando, MIT licence): clothes in MNIST's format, the non-digits "unsure" is
measured on. Only the tests and benchmarks use it, so it lives here rather than in the package:
found, downloaded and verified the way `mnist_cnn.data` finds MNIST.
"""

import os
from pathlib import Path

import numpy as np

from mnist_cnn import data
from mnist_cnn.data import DataError

# Same file names as MNIST, other content.
FASHION_SHA256: dict[str, str] = {
    "train-images-idx3-ubyte": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
    "train-labels-idx1-ubyte": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
    "t10k-images-idx3-ubyte": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
    "t10k-labels-idx1-ubyte": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
}
FASHION_MIRRORS: tuple[str, ...] = (
    "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
    "https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/",
)
FASHION_SYSTEM = Path("/usr/share/datasets/fashion-mnist")  # Debian's dataset-fashion-mnist


def fashion_dir(download_if_missing: bool = True, timeout: float = 30.0) -> Path:
    """The Fashion-MNIST folder, found as MNIST is: $FASHION_MNIST_DATA_DIR, the user cache,
    Debian's package (dataset-fashion-mnist), else a checksummed download into the cache
    from $FASHION_MNIST_MIRRORS or FASHION_MIRRORS."""
    env = os.environ.get("FASHION_MNIST_DATA_DIR")
    cache = data.cache_dir().parent / "fashion-mnist"
    hint = (
        "To work offline, copy Fashion-MNIST's four .gz files into a folder and set "
        f"FASHION_MNIST_DATA_DIR to it, or put them in {cache} (Debian, Ubuntu: apt-get install "
        "dataset-fashion-mnist)."
    )
    if env:
        chosen = Path(env).expanduser()
        missing = [b for b in FASHION_SHA256 if data.find_file(chosen, b) is None]
        if missing:
            raise DataError(f"FASHION_MNIST_DATA_DIR={chosen} lacks {missing[0]}[.gz]. {hint}")
        return chosen
    for folder in (cache, FASHION_SYSTEM):
        if all(data.find_file(folder, b) for b in FASHION_SHA256):
            return folder
    if not download_if_missing:
        raise DataError(f"Fashion-MNIST is not in {cache} or {FASHION_SYSTEM}. {hint}")
    env_mirrors = os.environ.get("FASHION_MNIST_MIRRORS", "")
    mirrors = data._resolve_mirrors(
        env_mirrors.split(",") if env_mirrors.strip() else FASHION_MIRRORS
    )
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(f"cannot create {cache} ({err.strerror or err}). {hint}") from None
    for base, expected in FASHION_SHA256.items():
        if data.find_file(cache, base) is None:
            data._fetch(base, cache, mirrors, timeout, progress=True, expected=expected, hint=hint)
    return cache


def load_fashion(split: str = "test", limit: int | None = None) -> np.ndarray:
    """Fashion-MNIST images of one split ("train" or "test"), float32 (N, 28, 28, 1), 0..255,
    verified by sha256: what a model should answer "unsure" to."""
    base = f"{'t10k' if split == 'test' else 'train'}-images-idx3-ubyte"
    folder = fashion_dir()
    path = data.find_file(folder, base)
    if path is None:
        raise DataError(f"Fashion-MNIST file {folder / base}[.gz] disappeared while loading.")
    images = data.read_idx(path, FASHION_SHA256[base])[:limit]
    return images.astype(np.float32)[..., np.newaxis]
