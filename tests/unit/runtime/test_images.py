"""Image discovery and decoding: every unreadable file gets a reason, every readable one BGR."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from centernet.errors import ImageReadError
from centernet.runtime.images import collect_image_paths, read_image, to_bgr8
from tests.helpers import write_bad_and_odd_images


def test_read_image_reasons(tmp_path, photo_paths):
    cases = write_bad_and_odd_images(tmp_path, photo_paths[0])
    for name, error in cases.items():
        if error is None:
            image = read_image(tmp_path / name)
            assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3, name
        else:
            with pytest.raises(ImageReadError, match=error) as info:
                read_image(tmp_path / name)
            assert info.value.path == str(tmp_path / name)


def test_conversions_keep_content(tmp_path):
    deep = np.full((4, 4, 3), 0x8000, np.uint16)
    cv2.imwrite(str(tmp_path / "d.png"), deep)
    assert np.all(read_image(tmp_path / "d.png") == 128)
    cv2.imwrite(str(tmp_path / "g.png"), np.full((3, 3), 77, np.uint8))
    assert np.all(read_image(tmp_path / "g.png") == 77)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0] = 9  # blue channel
    cv2.imwrite(str(tmp_path / "a.png"), rgba)
    assert read_image(tmp_path / "a.png")[0, 0].tolist() == [9, 0, 0]


@pytest.mark.parametrize(
    "array,expected",
    [
        (np.full((2, 3), 5, np.uint8), [5, 5, 5]),
        (np.full((2, 3, 1), 6, np.uint8), [6, 6, 6]),
        (np.dstack([np.full((2, 3), v, np.uint8) for v in (1, 2, 3, 4)]), [1, 2, 3]),
        (np.full((2, 3, 3), 0xFF00, np.uint16), [255, 255, 255]),
        (np.full((2, 3, 3), 0.5, np.float32), [128, 128, 128]),
    ],
    ids=["grey", "grey1", "bgra", "uint16", "float"],
)
def test_to_bgr8(array, expected):
    out = to_bgr8(array)
    assert out.shape == (2, 3, 3) and out.dtype == np.uint8
    assert out[1, 2].tolist() == expected


def test_to_bgr8_rejects_non_images():
    for bad in (np.zeros((2, 3, 5), np.uint8), np.zeros((2,), np.uint8), np.zeros((0, 3, 3))):
        with pytest.raises(ValueError):
            to_bgr8(bad)


def test_collect_paths(tmp_path):
    for name in ("b.jpg", "a.png", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    listing = tmp_path / "list.txt"
    listing.write_text(f"{tmp_path / 'b.jpg'}\n\n{tmp_path / 'gone.jpg'}\n")
    found = collect_image_paths([str(tmp_path), str(tmp_path / "*.jpg")], file_list=listing)
    names = [p.rsplit("/", 1)[-1] for p in found.paths]
    assert names == ["a.png", "b.jpg", "b.jpg", "b.jpg", "gone.jpg"]  # missing: the reader says
    assert found.unmatched == []


def test_folders_and_globs_that_name_nothing_are_listed_not_raised(tmp_path):
    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    items = [str(tmp_path / "*.webp"), str(tmp_path / "a.jpg"), str(tmp_path / "sub")]
    found = collect_image_paths(items)
    assert found.paths == [str(tmp_path / "a.jpg")]
    assert [item for item, _ in found.unmatched] == [items[0], items[2]]
    assert "no files match" in found.unmatched[0][1]
    assert "holds no images" in found.unmatched[1][1]
