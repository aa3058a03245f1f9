"""The cost of inspecting an upload is bounded, whatever its bytes say.

Every crafted input of ``bench.crafted_uploads`` (built against small limits
here, so the whole table runs in a moment) gets the answer it must; the
limits refuse with 413 and say which limit and its value; and for any
animation, inspection refuses or spends no more pixels than its budget.
"""

from __future__ import annotations

import asyncio
import contextvars
import io
import math
import threading
import time

import pytest
from django.core.checks import Error
from django.core.files.uploadedfile import SimpleUploadedFile
from django.http import HttpRequest, HttpResponse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from bench.crafted_inputs import (
    ACCEPTED,
    DEFAULT_LIMITS,
    Limits,
    chunk,
    crafted,
    gif,
    png,
    screenshot,
)
from protected_media import checks, disconnects
from protected_media.conf import DEFAULT_ALLOWED_TYPES
from protected_media.disconnects import client_gone, stop_on_disconnect
from protected_media.inspection import UploadRefused, inspect_upload
from protected_media.inspection.cost import FORMAT_WEIGHT, MODE_BYTES

SMALL = Limits(
    max_size=1024 * 1024,
    max_image_pixels=1_000_000,
    max_frames=50,
    max_processed_pixels=1_600_000,
    max_jpeg_scans=20,
    max_metadata=64 * 1024,
    thumbnail_sizes=(64,),
)
CASES = {case.name: case for case in crafted(SMALL)}


def inspect(data: bytes, limits: Limits = SMALL, **overrides: object):
    options = {"allowed_types": DEFAULT_ALLOWED_TYPES, **limits.options(), **overrides}
    return inspect_upload(SimpleUploadedFile("upload", data), **options)


@pytest.mark.parametrize("name", list(CASES))
def test_every_crafted_upload_gets_its_answer(name: str) -> None:
    case = CASES[name]
    assert len(case.data) <= SMALL.max_size
    if case.expected == ACCEPTED:
        inspected = inspect(case.data)
        assert inspected.processed_pixels <= SMALL.max_processed_pixels
        return
    with pytest.raises(UploadRefused) as refused:
        inspect(case.data)
    assert (refused.value.reason, refused.value.status) == (case.expected, case.status)


@pytest.mark.parametrize(
    ("data", "reason", "message"),
    [
        (
            gif(1, 1, 51),
            "too_many_frames",
            "The image has more than 50 frames.",
        ),
        (
            gif(999, 999, 2),
            "too_much_work",
            "Processing this image (all its frames and thumbnails) would take more than "
            "1,600,000 pixels.",
        ),
        (
            CASES["jpeg-many-scans"].data,
            "too_many_scans",
            "The JPEG has more than 20 scans.",
        ),
        (
            CASES["png-iccp-bomb"].data,
            "too_much_metadata",
            "The image carries more than 64 KiB of metadata.",
        ),
    ],
)
def test_each_limit_is_named_with_its_value(data: bytes, reason: str, message: str) -> None:
    with pytest.raises(UploadRefused) as refused:
        inspect(data)
    assert (refused.value.reason, refused.value.status, refused.value.message) == (
        reason,
        413,
        message,
    )


def test_the_issues_gif_is_refused_before_a_frame_is_decoded() -> None:
    # About 500 bytes: 1x1 frames on a canvas just under the default pixel
    # limit. It once kept a worker busy for 20 s and stored the file.
    data = gif(6324, 6324, 20)
    assert len(data) < 600
    with pytest.raises(UploadRefused) as refused:
        inspect_upload(
            SimpleUploadedFile("a.gif", data),
            allowed_types=DEFAULT_ALLOWED_TYPES,
            max_size=10 * 1024 * 1024,
            max_image_pixels=40_000_000,
        )
    assert (refused.value.reason, refused.value.status) == ("too_much_work", 413)


def test_an_apng_hidden_from_the_type_sniffer_is_budgeted_like_any_animation() -> None:
    # The acTL chunk lies past the 8 KiB the sniffer reads: the upload passes
    # for a still PNG, and Pillow opens it as an animation.
    inspected = inspect(png(32, 32, frames=3))
    assert inspected.content_type == "image/png"
    # Four frames (the default image and three more), each decoded and
    # encoded on the 32x32 canvas, as RGBA (4/3 of RGB) at PNG's weight of
    # 5; no thumbnail, the image is under 64 px.
    assert inspected.processed_pixels == 4 * math.ceil(32 * 32 * 4 / 3 * 5)
    with pytest.raises(UploadRefused) as refused:
        inspect(png(32, 32, frames=50))
    assert refused.value.reason == "too_many_frames"


def _animation(fmt: str, frames: int, size: tuple[int, int]) -> bytes:
    # Distinct frames: encoders merge identical neighbours.
    pictures = [
        Image.new("RGB", size, (index * 37 % 256, index * 91 % 256, 7)) for index in range(frames)
    ]
    buffer = io.BytesIO()
    pictures[0].save(buffer, fmt, save_all=True, append_images=pictures[1:], duration=40, loop=0)
    data = buffer.getvalue()
    if fmt == "PNG":
        # Past the type sniffer, which refuses an APNG it sees (image/apng).
        data = data[:33] + chunk(b"prVt", b"\0" * 9000) + data[33:]
    return data


def _rgb(pixels: int, mode: str, weight: int = 1) -> int:
    # Pixels of a mode, in RGB pixels: its bytes next to RGB's 3, rounded up.
    return math.ceil(pixels * MODE_BYTES.get(mode, 4) * weight / 3)


def _thumbnails_of(stored: bytes, fmt: str, size: int) -> int:
    # The stored image's first frame decoded once more in its own mode,
    # converted when thumbnails.py must, and one thumbnail written as RGBA.
    with Image.open(io.BytesIO(stored)) as output:
        canvas, mode = output.width * output.height, output.mode
        alpha = "A" in mode or "transparency" in output.info
    if max(output.size) <= size:
        return 0
    thumb_fmt = "PNG" if fmt == "GIF" else fmt
    if thumb_fmt == "JPEG":
        converted = None if mode in ("L", "RGB") else "RGB"
    else:
        converted = None if mode in ("RGB", "RGBA", "L", "LA") else ("RGBA" if alpha else "RGB")
    return (
        _rgb(canvas, mode)
        + (_rgb(canvas, converted) if converted else 0)
        + _rgb(size * size, "RGBA", FORMAT_WEIGHT[thumb_fmt])
    )


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    fmt=st.sampled_from(["GIF", "PNG", "WEBP"]),
    frames=st.integers(2, 12),
    width=st.integers(1, 200),
    height=st.integers(1, 200),
)
def test_an_animation_is_refused_or_costs_no_more_than_the_budget(
    fmt: str, frames: int, width: int, height: int
) -> None:
    limits = Limits(1024 * 1024, 30_000, 8, 600_000, 20, 64 * 1024, (16,))
    data = _animation(fmt, frames, (width, height))
    try:
        inspected = inspect(data, limits)
    except UploadRefused as refusal:
        assert (refusal.status, refusal.reason) in {
            (413, "too_many_frames"),
            (413, "too_much_work"),
            (413, "too_many_pixels"),
        }
        return
    # Observed from the stored bytes: every frame was decoded and encoded on
    # the full canvas, as RGBA (Pillow composes later frames in RGB or RGBA),
    # and the thumbnails decode the first once more.
    with Image.open(io.BytesIO(inspected.replacement)) as output:
        stored_frames = getattr(output, "n_frames", 1)
        canvas = output.width * output.height
    assert stored_frames == frames
    spent = stored_frames * _rgb(canvas, "RGBA", FORMAT_WEIGHT[fmt])
    spent += _thumbnails_of(inspected.replacement, fmt, 16)
    assert spent == inspected.processed_pixels <= limits.max_processed_pixels


_STILL_MODES = [
    ("PNG", "L"),
    ("PNG", "LA"),
    ("PNG", "RGB"),
    ("PNG", "RGBA"),
    ("PNG", "P"),
    ("PNG", "I;16"),
    ("JPEG", "L"),
    ("JPEG", "RGB"),
    ("JPEG", "CMYK"),
    ("WEBP", "RGB"),
    ("WEBP", "RGBA"),
    ("GIF", "P"),
]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(_STILL_MODES),
    width=st.integers(1, 120),
    height=st.integers(1, 120),
    turned=st.booleans(),
)
def test_a_still_is_charged_by_its_mode_and_format(
    kind: tuple[str, str], width: int, height: int, turned: bool
) -> None:
    fmt, mode = kind
    limits = Limits(1024 * 1024, 30_000, 8, 60_000, 20, 64 * 1024, (16,))
    picture = Image.new(mode, (width, height))
    exif = Image.Exif()
    exif[0x0112] = 6 if turned else 1
    buffer = io.BytesIO()
    picture.save(buffer, fmt, **({"exif": exif} if fmt in ("JPEG", "WEBP", "PNG") else {}))
    try:
        inspected = inspect(buffer.getvalue(), limits)
    except UploadRefused as refusal:
        assert refusal.status == 413
        assert refusal.reason in ("too_much_work", "too_many_pixels")
        return
    # The decoded mode's bytes next to RGB's 3, times the format's weight;
    # a turn copies the canvas once; JPEG writes CMYK as RGB.
    canvas = width * height
    with Image.open(io.BytesIO(buffer.getvalue())) as source:
        decoded = source.mode
    spent = _rgb(canvas, decoded, FORMAT_WEIGHT[fmt])
    spent += _rgb(canvas, decoded) if turned and fmt != "GIF" else 0
    spent += _rgb(canvas, "RGB") if fmt == "JPEG" and decoded not in ("L", "RGB") else 0
    spent += _thumbnails_of(inspected.replacement, fmt, 16)
    assert spent == inspected.processed_pixels <= limits.max_processed_pixels


def test_the_defaults_accept_a_24_mp_photo_turned_by_exif_and_a_12_mp_screenshot() -> None:
    # What phones and cameras send, and what a screen shows: neither may
    # cost past the budget. (Flat pixels: the charge does not read them.)
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.new("RGB", (6000, 4000), (90, 120, 150)).save(buffer, "JPEG", exif=exif)
    turned = inspect(buffer.getvalue(), DEFAULT_LIMITS)
    with Image.open(io.BytesIO(turned.replacement)) as stored:
        assert stored.size == (4000, 6000)
    assert turned.processed_pixels <= DEFAULT_LIMITS.max_processed_pixels
    shot = inspect(screenshot(4000, 3000), DEFAULT_LIMITS)
    with Image.open(io.BytesIO(shot.replacement)) as stored:
        assert (stored.size, stored.mode) == ((4000, 3000), "RGBA")
    # A 36 MP photo is past it.
    buffer = io.BytesIO()
    Image.new("RGB", (7360, 4912), (90, 120, 150)).save(buffer, "JPEG", exif=exif)
    with pytest.raises(UploadRefused) as refused:
        inspect(buffer.getvalue(), DEFAULT_LIMITS)
    assert (refused.value.reason, refused.value.status) == ("too_much_work", 413)


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_an_animation_keeps_its_frames_timing_and_pixels(fmt: str) -> None:
    inspected = inspect(_animation(fmt, 5, (20, 10)))
    tolerance = 8 if fmt == "WEBP" else 0
    with Image.open(io.BytesIO(inspected.replacement)) as image:
        assert image.n_frames == 5
        for index in range(5):
            image.seek(index)
            image.load()
            assert image.info["duration"] == 40
            pixel = image.convert("RGB").getpixel((3, 3))
            wanted = (index * 37 % 256, index * 91 % 256, 7)
            # WebP's re-encode is lossy: close, not equal.
            assert max(abs(a - b) for a, b in zip(pixel, wanted, strict=True)) <= tolerance


@pytest.mark.parametrize(
    ("setting", "check_id"),
    [
        ("PROTECTED_MEDIA_MAX_IMAGE_FRAMES", "protected_media.E017"),
        ("PROTECTED_MEDIA_MAX_PROCESSED_PIXELS", "protected_media.E018"),
        ("PROTECTED_MEDIA_MAX_JPEG_SCANS", "protected_media.E019"),
        ("PROTECTED_MEDIA_MAX_IMAGE_METADATA", "protected_media.E020"),
    ],
)
@pytest.mark.parametrize("value", [0, "100", 2.5, True, None])
def test_e017_to_e020_each_limit_must_be_a_positive_int(
    settings, setting: str, check_id: str, value: object
) -> None:
    assert checks.check_image_limits() == []
    setattr(settings, setting, value)
    errors = checks.check_image_limits()
    assert [(error.id, error.msg) for error in errors] == [
        (check_id, f"{setting} {value!r} must be an int, 1 or more.")
    ]
    assert all(isinstance(error, Error) for error in errors)


async def test_a_view_cancelled_on_disconnect_sees_its_client_gone() -> None:
    # Django's ASGI handler cancels the view's task on http.disconnect; the
    # sync view goes on in its thread, and must learn that nobody waits.
    started, noticed = threading.Event(), threading.Event()

    def view(request: HttpRequest) -> HttpResponse:
        started.set()
        for _ in range(500):
            if client_gone():
                noticed.set()
                break
            time.sleep(0.01)
        return HttpResponse()

    task = asyncio.ensure_future(stop_on_disconnect(view)(HttpRequest()))
    assert await asyncio.to_thread(started.wait, 5)
    assert not client_gone()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await asyncio.to_thread(noticed.wait, 5)


def test_inspection_refuses_once_the_client_is_gone() -> None:
    gone = threading.Event()
    gone.set()
    context = contextvars.copy_context()
    context.run(disconnects._GONE.set, gone)
    with pytest.raises(UploadRefused) as refused:
        context.run(inspect, gif(64, 64, 3))
    assert (refused.value.reason, refused.value.status) == ("client_gone", 499)
