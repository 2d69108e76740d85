import numpy as np
import pytest
import torch
from PIL import Image

from catneuron.data.inputs import as_batch
from catneuron.errors import DataError


def _image(seed: int = 0, h: int = 12, w: int = 16) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_every_accepted_form_gives_the_same_batch(tmp_path):
    a, b = _image(0), _image(1)
    Image.fromarray(a).save(tmp_path / "a.png")
    want = as_batch([a, b], 8)
    assert want.shape == (2, 8, 8, 3) and want.dtype == np.uint8
    np.testing.assert_array_equal(as_batch(a, 8), want[:1])                       # one array
    np.testing.assert_array_equal(as_batch(np.stack([a, b]), 8), want)            # an (N, H, W, C) batch
    np.testing.assert_array_equal(as_batch(str(tmp_path / "a.png"), 8), want[:1])  # a path, alone
    np.testing.assert_array_equal(as_batch([tmp_path / "a.png", Image.fromarray(b)], 8), want)
    as_tensor = torch.from_numpy(np.stack([a, b])).permute(0, 3, 1, 2)           # torchvision's layout
    np.testing.assert_array_equal(as_batch(as_tensor, 8), want)
    np.testing.assert_array_equal(as_batch(as_tensor.float() / 255, 8), want)     # ToTensor's [0, 1]
    np.testing.assert_array_equal(as_batch(as_tensor[0], 8), want[:1])            # one (C, H, W) tensor
    assert as_batch([], 8).shape == (0, 8, 8, 3)


def test_grey_and_alpha_images_take_the_requested_channels():
    grey = _image()[:, :, 0]
    assert as_batch(grey, 8).shape == (1, 8, 8, 3)
    np.testing.assert_array_equal(as_batch(grey[:, :, None], 8, channels=1), as_batch(grey, 8, channels=1))
    rgba = np.concatenate([_image(), np.full((12, 16, 1), 255, np.uint8)], 2)
    np.testing.assert_array_equal(as_batch(rgba, 8), as_batch(_image(), 8))


@pytest.mark.parametrize("images, message", [
    (np.full((8, 8, 3), 2.0), r"image 0: float values from 2 to 2; expected \[0, 1\]"),
    (np.full((8, 8, 3), np.nan), "image 0: float values from nan"),
    (np.full((8, 8, 3), -3, np.int64), "image 0: int64 values from -3 to -3; expected uint8"),
    (np.zeros((8, 8, 5), np.uint8), r"images: shape \(8, 8, 5\); expected one image or a batch"),
    (np.zeros((2, 3, 8, 8), np.uint8), r"image 0: an array of shape \(3, 8, 8\); expected \(H, W\)"),
    ([torch.zeros(2, 3, 8, 8)], r"image 0: a tensor of shape \(2, 3, 8, 8\); expected \(C, H, W\)"),
    ([3], "image 0: type int; expected an image path"),
])
def test_what_cannot_be_an_image_is_one_line(images, message):
    with pytest.raises(DataError, match=message):
        as_batch(images, 8)


def test_paths_that_are_not_image_files(tmp_path):
    with pytest.raises(DataError, match="a folder; pass its image files"):
        as_batch(str(tmp_path), 8)
    with pytest.raises(DataError, match="no such image file"):
        as_batch(tmp_path / "missing.jpg", 8)
