"""Photo I/O: PNG/JPEG/TIFF at 8 and 16 bits keep values, size, mode and ICC profile."""

from __future__ import annotations

import dataclasses
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image, ImageCms
from pydicom.data import get_testdata_file

from suite.errors import InputError
from suite.io.photo import PhotoMeta, read_photo, write_photo
from tests import fixtures_dicom as fx


@pytest.fixture(scope="module")
def retina() -> np.ndarray:
    """A 96x128 RGB crop of the real fundus photograph, uint8."""
    photo = read_photo(fx.require_data() / "fundus/skimage_retina.jpg")
    return photo.data[600:696, 600:728].copy()


def test_real_jpeg_reads_and_round_trips(tmp_path: Path) -> None:
    src = fx.require_data() / "fundus/skimage_retina.jpg"
    before = fx.tree_hash(src)
    photo = read_photo(src)
    assert photo.data.shape == (1411, 1411, 3) and photo.data.dtype == np.uint8
    assert (photo.meta.format, photo.meta.mode, photo.meta.bit_depth) == ("JPEG", "RGB", 8)
    back = read_photo(write_photo(tmp_path / "r.jpg", photo.data, photo.meta))
    assert back.meta.size == (1411, 1411) and back.meta.mode == "RGB"
    assert np.abs(back.data.astype(int) - photo.data).mean() < 1.0  # quality 95, 4:4:4
    assert fx.tree_hash(src) == before


@pytest.mark.parametrize(
    ("name", "fmt", "channels", "depth"),
    [
        ("g16.png", "PNG", 1, 16),
        ("g16.tif", "TIFF", 1, 16),
        ("rgb16.tif", "TIFF", 3, 16),
        ("rgba16.tif", "TIFF", 4, 16),
        ("rgb8.png", "PNG", 3, 8),
        ("rgba8.png", "PNG", 4, 8),
        ("rgb8.tif", "TIFF", 3, 8),
        ("l8.png", "PNG", 1, 8),
    ],
)
def test_lossless_round_trip_keeps_bit_depth(
    retina: np.ndarray, tmp_path: Path, name: str, fmt: str, channels: int, depth: int
) -> None:
    base = np.dstack([retina, retina[..., :1]])[..., :channels]
    data = base.astype(np.uint16) * 257 + 3 if depth == 16 else base  # uses all 16 bits
    meta = PhotoMeta(fmt, depth, "", (data.shape[1], data.shape[0]))
    photo = read_photo(write_photo(tmp_path / name, data, meta))
    assert photo.data.dtype == data.dtype and photo.meta.bit_depth == depth
    assert photo.meta.format == fmt and photo.meta.size == (128, 96)
    np.testing.assert_array_equal(photo.data, data)


def test_icc_profile_is_kept(retina: np.ndarray, tmp_path: Path) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = tmp_path / "icc.jpg"
    Image.fromarray(retina).save(src, quality=95, icc_profile=icc)
    photo = read_photo(src)
    assert photo.meta.icc_profile == icc
    for name in ("out.jpg",):
        assert (
            read_photo(write_photo(tmp_path / name, photo.data, photo.meta)).meta.icc_profile == icc
        )
    meta = PhotoMeta("TIFF", 8, "RGB", (128, 96), icc_profile=icc)
    assert read_photo(write_photo(tmp_path / "icc.tif", retina, meta)).meta.icc_profile == icc


def test_the_orientation_tag_travels_into_every_format(retina: np.ndarray,
                                                       tmp_path: Path) -> None:
    """A JPEG from a camera held upright (EXIF Orientation 6) written as TIFF lost the tag,
    so viewers showed the restored photograph turned by 90 degrees."""
    import dataclasses

    exif = Image.Exif()
    exif[274] = 6
    src = tmp_path / "turned.jpg"
    Image.fromarray(retina).save(src, quality=95, exif=exif.tobytes())
    photo = read_photo(src)
    assert photo.meta.orientation == 6
    tiff = write_photo(tmp_path / "out.tif", photo.data, dataclasses.replace(photo.meta,
                                                                             format="TIFF"))
    assert read_photo(tiff).meta.orientation == 6
    again = read_photo(tiff)
    png = write_photo(tmp_path / "out.png", again.data, dataclasses.replace(again.meta,
                                                                            format="PNG"))
    with Image.open(png) as written:
        assert written.getexif().get(274) == 6
    plain = read_photo(write_photo(tmp_path / "plain.tif", retina,
                                   PhotoMeta("TIFF", 8, "RGB", (128, 96))))
    assert plain.meta.orientation is None


def test_pixel_density_is_kept_and_tiff_centimetres_read_as_inches(
    retina: np.ndarray, tmp_path: Path
) -> None:
    import tifffile

    src = tmp_path / "cm.tif"
    tifffile.imwrite(src, retina, photometric="rgb", resolution=(100.0, 100.0),
                     resolutionunit="CENTIMETER")
    photo = read_photo(src)
    assert photo.meta.dpi == pytest.approx((254.0, 254.0))
    for name in ("out.tif", "out.png", "out.jpg"):
        meta = PhotoMeta(name[-3:].upper().replace("JPG", "JPEG").replace("TIF", "TIFF"), 8,
                         "RGB", (128, 96), dpi=photo.meta.dpi)
        back = read_photo(write_photo(tmp_path / name, retina, meta))
        assert back.meta.dpi == pytest.approx((254.0, 254.0), abs=0.01), name
    tifffile.imwrite(tmp_path / "bare.tif", retina, photometric="rgb")
    assert read_photo(tmp_path / "bare.tif").meta.dpi is None


def _png_rgb16(path: Path, h: int = 4, w: int = 5) -> Path:
    """A minimal 16-bit RGB PNG, written by hand because Pillow cannot write one."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = b"".join(b"\x00" + np.full((w, 3), 40000, ">u2").tobytes() for _ in range(h))
    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )
    return path


@pytest.mark.parametrize(("compress", "dtype"), [("lzw", np.uint8), ("lzw", np.uint16),
                                                 ("deflate", np.uint16), ("jpeg", np.uint8)])
def test_tiff_compressions_that_tifffile_leaves_to_imagecodecs_are_read(
        retina: np.ndarray, tmp_path: Path, compress: str, dtype: type) -> None:
    # LZW and JPEG-in-TIFF are what cameras and image viewers write; tifffile alone cannot
    # decode them, and such photos failed as "corrupt or unreadable".
    import rasterio
    from rasterio.errors import NotGeoreferencedWarning

    data = retina.astype(dtype) * (257 if dtype == np.uint16 else 1)
    path = tmp_path / f"{compress}.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", width=data.shape[1], height=data.shape[0],
                           count=3, dtype=data.dtype, compress=compress,
                           photometric="rgb") as dst:
            dst.write(np.moveaxis(data, -1, 0))
    photo = read_photo(path)
    assert photo.data.shape == data.shape and photo.data.dtype == dtype
    assert photo.meta.bit_depth == 8 * np.dtype(dtype).itemsize
    if compress == "jpeg":
        assert np.abs(photo.data.astype(int) - data).mean() < 3.0
    else:
        assert np.array_equal(photo.data, data)


def test_16bit_colour_png_is_refused_not_reduced(tmp_path: Path) -> None:
    path = _png_rgb16(tmp_path / "rgb16.png")
    with pytest.raises(InputError) as info:
        read_photo(path)
    assert str(path) in str(info.value) and "16-bit colour PNG" in str(info.value)


@pytest.mark.parametrize("name", ["cut.png", "cut.jpg", "cut.tif", "junk.png"])
def test_corrupt_file_is_named(retina: np.ndarray, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    if name.startswith("junk"):
        path.write_bytes(b"definitely not an image")
    else:
        fmt = {"png": "PNG", "jpg": "JPEG", "tif": "TIFF"}[name[-3:]]
        write_photo(path, retina, PhotoMeta(fmt, 8, "RGB", (128, 96)))
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError) as info:
        read_photo(path)
    assert str(path) in str(info.value)


def test_dicom_given_as_photo_is_refused_without_warnings() -> None:
    path = Path(str(get_testdata_file("CT_small.dcm")))  # ships with pydicom, no download
    with warnings.catch_warnings(record=True) as caught, pytest.raises(InputError) as info:
        warnings.simplefilter("always")
        read_photo(path)
    assert str(path) in str(info.value)
    assert not caught, [str(w.message) for w in caught]  # a warning is a second stderr line


def test_write_refusals_leave_nothing(retina: np.ndarray, tmp_path: Path) -> None:
    meta = PhotoMeta("PNG", 16, "RGB", (128, 96))
    with pytest.raises(ValueError, match="dtype"):
        write_photo(tmp_path / "a.png", retina, meta)
    with pytest.raises(InputError, match="16-bit RGB PNG"):
        write_photo(tmp_path / "a.png", retina.astype(np.uint16), meta)
    with pytest.raises(InputError, match="does not exist"):
        write_photo(tmp_path / "no" / "a.png", retina, PhotoMeta("PNG", 8, "RGB", (128, 96)))
    src = tmp_path / "in.png"
    Image.fromarray(retina).save(src)
    photo = read_photo(src)
    with pytest.raises(InputError, match="input"):
        write_photo(src, photo.data, photo.meta)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.png"]


def test_a_name_of_another_format_is_refused(retina: np.ndarray, tmp_path: Path) -> None:
    """JPEG bytes written under a .png name would fool every viewer and reader after it."""
    meta = PhotoMeta("JPEG", 8, "RGB", (128, 96))
    with pytest.raises(InputError, match=r"the name says PNG but meta\.format is JPEG"):
        write_photo(tmp_path / "a.png", retina, meta)
    assert not list(tmp_path.iterdir())
    assert read_photo(write_photo(tmp_path / "a.jpeg", retina, meta)).meta.format == "JPEG"


def test_a_jpeg_without_a_resolution_gets_no_invented_dpi(retina: np.ndarray,
                                                          tmp_path: Path) -> None:
    """Pillow reports 72 dpi for a JPEG whose EXIF has no resolution; outputs carried it."""
    img = Image.fromarray(retina)
    exif = img.getexif()
    exif[271] = "FundusCam"
    img.save(tmp_path / "e.jpg", exif=exif)
    assert read_photo(tmp_path / "e.jpg").meta.dpi is None
    img.save(tmp_path / "d.jpg", dpi=(300, 300))
    assert read_photo(tmp_path / "d.jpg").meta.dpi == pytest.approx((300.0, 300.0))


def test_camera_and_date_tags_travel_between_tiff_and_exif(retina: np.ndarray,
                                                          tmp_path: Path) -> None:
    """A TIFF output lost ImageDescription, Make, Model and DateTime (and carried tifffile's
    JSON instead); a JPEG's camera and date were lost in a TIFF output, and a TIFF's in a JPEG."""
    tifffile.imwrite(tmp_path / "src.tif", retina, photometric="rgb", metadata=None,
                     description="OD macula", datetime="2024:05:06 07:08:09", software=False,
                     extratags=[(271, "s", 0, "FundusCam", False), (272, "s", 0, "X1", False)])
    photo = read_photo(tmp_path / "src.tif")
    with tifffile.TiffFile(write_photo(tmp_path / "out.tif", photo.data, photo.meta)) as back:
        tags = back.pages[0].tags
        assert (tags[270].value, tags[271].value, tags[272].value, tags[306].value) == (
            "OD macula", "FundusCam", "X1", "2024:05:06 07:08:09")
    jpeg_meta = dataclasses.replace(photo.meta, format="JPEG")
    with Image.open(write_photo(tmp_path / "out.jpg", photo.data, jpeg_meta)) as written:
        exif = written.getexif()
    assert (exif[271], exif[306]) == ("FundusCam", "2024:05:06 07:08:09")
    jpeg = read_photo(tmp_path / "out.jpg")
    tiff_meta = dataclasses.replace(jpeg.meta, format="TIFF")
    with tifffile.TiffFile(write_photo(tmp_path / "again.tif", jpeg.data, tiff_meta)) as again:
        assert again.pages[0].tags[272].value == "X1"
