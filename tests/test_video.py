"""prunekit.video: uniform sampling like lmms-eval, decord and PyAV backends, clear decode errors."""

from __future__ import annotations

import numpy as np
import pytest

from prunekit import video
from prunekit.errors import VideoDecodeError

av = pytest.importorskip("av")

BACKENDS = [pytest.param(b, marks=pytest.mark.skipif(b not in video.available_backends(), reason=f"{b} missing"))
            for b in ("decord", "pyav")]


def _frames(n: int = 30, h: int = 48, w: int = 64) -> np.ndarray:
    """Distinct frames: noise plus a square whose position encodes the frame index."""
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    for i in range(n):
        frames[i, : 8, (i % 7) * 8 : (i % 7) * 8 + 8] = (255, 0, i * 8 % 256)
    return frames


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    frames = _frames()
    path = video.write(tmp_path_factory.mktemp("video") / "clip.mp4", frames, fps=10)
    return path, frames


def test_sample_indices_match_lmms_eval():
    assert video.sample_indices(30, 7).tolist() == np.linspace(0, 29, 7, dtype=int).tolist()
    assert video.sample_indices(16, 16).tolist() == list(range(16))
    assert video.sample_indices(100, 1).tolist() == [0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_lossless_round_trip_gives_the_exact_sampled_frames(clip, backend):
    path, frames = clip
    out = video.load(path, 7, backend=backend)
    assert out.dtype == np.uint8 and out.shape == (7, 48, 64, 3)
    np.testing.assert_array_equal(out, frames[np.linspace(0, 29, 7, dtype=int)])


@pytest.mark.parametrize("backend", BACKENDS)
def test_all_frames_in_order(clip, backend):
    path, frames = clip
    np.testing.assert_array_equal(video.load(path, 30, backend=backend), frames)
    assert video.frame_count(path, backend=backend) == 30


def test_lossy_encoding_stays_close(tmp_path):
    frames = np.repeat(np.linspace(0, 255, 64, dtype=np.uint8)[None, None, :, None], 48, 1)
    frames = np.repeat(np.repeat(frames, 3, -1), 12, 0)  # smooth gradient, 12 frames
    path = video.write(tmp_path / "lossy.mp4", frames, fps=8, lossless=False)
    out = video.load(path, 12)
    assert np.abs(out.astype(int) - frames).mean() < 3


def test_backends_agree(clip):
    if len(video.available_backends()) < 2:
        pytest.skip("needs both decord and PyAV")
    path, _ = clip
    np.testing.assert_array_equal(video.load(path, 9, backend="decord"), video.load(path, 9, backend="pyav"))


def test_auto_prefers_decord():
    found = video.available_backends()
    assert found and found[0] == ("decord" if "decord" in found else "pyav")


@pytest.mark.parametrize("backend", BACKENDS)
def test_missing_file_is_a_clear_error(tmp_path, backend):
    with pytest.raises(VideoDecodeError, match="not found"):
        video.load(tmp_path / "nope.mp4", 4, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_video_without_frames_is_a_clear_error(tmp_path, backend):
    path = tmp_path / "empty.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=8)
        stream.width = stream.height = 32
        container.start_encoding()
    with pytest.raises(VideoDecodeError, match="no video stream|no decodable"):
        video.load(path, 4, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("content", [b"not a video at all", b"\x00\x00\x00\x18ftypmp42" + bytes(400)])
def test_corrupt_container_is_a_clear_error(tmp_path, backend, content):
    path = tmp_path / "corrupt.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoDecodeError, match="corrupt"):
        video.load(path, 4, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_file_is_a_clear_error(clip, tmp_path, backend):
    path, _ = clip
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(VideoDecodeError):
        video.load(cut, 4, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_too_many_frames_says_how_many_there_are(clip, backend):
    path, _ = clip
    with pytest.raises(VideoDecodeError, match=r"only 30 frames.*num_frames <= 30"):
        video.load(path, 31, backend=backend)


@pytest.mark.parametrize("num_frames", [0, -3, 2.5, True])
def test_num_frames_must_be_a_positive_integer(clip, num_frames):
    path, _ = clip
    with pytest.raises(VideoDecodeError, match="positive integer"):
        video.load(path, num_frames)


def test_unknown_backend_is_rejected(clip):
    with pytest.raises(ValueError, match="decord"):
        video.load(clip[0], 4, backend="opencv")


def test_write_rejects_bad_frames(tmp_path):
    with pytest.raises(ValueError, match="uint8"):
        video.write(tmp_path / "x.mp4", np.zeros((2, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="shape"):
        video.write(tmp_path / "x.mp4", np.zeros((8, 8, 3), np.uint8))
