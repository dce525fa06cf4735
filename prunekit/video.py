"""Read and write short videos as ``uint8`` frame arrays ``[F, H, W, 3]``.

``load`` samples ``num_frames`` frames uniformly, exactly like lmms-eval
(``np.linspace(0, total - 1, num_frames, dtype=int)``). decord is the default decoder; PyAV is the
fallback where decord has no wheel (``backend="auto"``). ``write`` encodes frames with PyAV, by
default losslessly (H.264 in RGB, ``crf=0``) so a round trip gives back the exact pixels.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from prunekit.errors import VideoDecodeError

__all__ = ["load", "write", "sample_indices", "frame_count", "available_backends"]

_BACKENDS = ("decord", "pyav")


def available_backends() -> list[str]:
    """Decoders importable here, in order of preference."""
    found = []
    for name, module in (("decord", "decord"), ("pyav", "av")):
        try:
            __import__(module)
        except ImportError:
            continue
        found.append(name)
    return found


def sample_indices(total: int, num_frames: int) -> np.ndarray:
    """Indices of ``num_frames`` frames spread uniformly over ``total`` (lmms-eval's rule)."""
    _check_count(total, num_frames, path=None)
    return np.linspace(0, total - 1, num_frames, dtype=int)


def load(path: str | os.PathLike, num_frames: int, backend: str = "auto") -> np.ndarray:
    """Decode ``num_frames`` uniformly sampled RGB frames of the video at ``path``.

    Returns a ``uint8`` array ``[num_frames, H, W, 3]``. ``backend`` is ``"decord"``, ``"pyav"`` or
    ``"auto"`` (decord when importable, else PyAV). Raises :class:`VideoDecodeError` for a missing
    file, a file without video frames, a corrupt container, or a ``num_frames`` the video cannot give.
    """
    path = Path(path)
    if not isinstance(num_frames, (int, np.integer)) or isinstance(num_frames, bool) or num_frames < 1:
        raise VideoDecodeError(f"num_frames must be a positive integer, got {num_frames!r}.")
    if not path.is_file():
        raise VideoDecodeError(f"Video file not found: {str(path)!r}. Check the path.")
    reader = _resolve_backend(backend)
    return reader(path, int(num_frames))


def frame_count(path: str | os.PathLike, backend: str = "auto") -> int:
    """Number of frames of the video at ``path`` (as the chosen backend counts them)."""
    path = Path(path)
    if not path.is_file():
        raise VideoDecodeError(f"Video file not found: {str(path)!r}. Check the path.")
    name = _backend_name(backend)
    if name == "decord":
        return len(_open_decord(path))
    return _pyav_count(path)


def write(path: str | os.PathLike, frames: np.ndarray | Sequence[np.ndarray], fps: float = 8,
          *, lossless: bool = True) -> Path:
    """Encode ``frames`` (``uint8 [F, H, W, 3]``, RGB) as an H.264 mp4 at ``path`` with PyAV.

    ``lossless=True`` (default) stores RGB with ``crf=0`` (libx264rgb): decoding gives back the
    exact pixels. ``lossless=False`` writes ordinary yuv420p H.264 (even width and height needed).
    """
    try:
        import av
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("prunekit.video.write needs PyAV: pip install 'prunekit[video]' (or av).") from e
    arr = np.asarray(frames)
    if arr.ndim != 4 or arr.shape[-1] != 3 or arr.shape[0] < 1:
        raise ValueError(f"frames must have shape [F, H, W, 3] with F >= 1, got {arr.shape}.")
    if arr.dtype != np.uint8:
        raise ValueError(f"frames must be uint8, got {arr.dtype}.")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = arr.shape[1:3]
    codec, pix_fmt, options = _codec_settings(lossless, av)
    from fractions import Fraction

    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        stream.options = options
        for frame in arr:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode())
    return path


# ----------------------------------------------------------------------------------------- internals


def _codec_settings(lossless: bool, av) -> tuple[str, str, dict]:
    if lossless and "libx264rgb" in av.codecs_available:
        return "libx264rgb", "rgb24", {"crf": "0", "preset": "veryfast"}
    if lossless:  # near-lossless: full chroma, quantiser 0 (colour conversion rounds by about 1)
        return "libx264", "yuv444p", {"qp": "0", "preset": "veryfast"}
    return "libx264", "yuv420p", {"crf": "18"}


def _backend_name(backend: str) -> str:
    if backend == "auto":
        found = available_backends()
        if not found:
            raise ImportError("No video decoder found: pip install decord (x86-64) or av (PyAV).")
        return found[0]
    if backend not in _BACKENDS:
        raise ValueError(f"Unknown video backend {backend!r}; use 'auto', 'decord' or 'pyav'.")
    if backend not in available_backends():
        module = "av" if backend == "pyav" else "decord"
        raise ImportError(f"Video backend {backend!r} needs the package {module!r}: pip install {module}.")
    return backend


def _resolve_backend(backend: str):
    return {"decord": _load_decord, "pyav": _load_pyav}[_backend_name(backend)]


def _check_count(total: int, num_frames: int, path: Path | None) -> None:
    where = f" {str(path)!r}" if path is not None else ""
    if total < 1:
        raise VideoDecodeError(f"Video{where} has no decodable video frames.")
    if num_frames < 1:
        raise VideoDecodeError(f"num_frames must be at least 1, got {num_frames}.")
    if num_frames > total:
        raise VideoDecodeError(
            f"Video{where} has only {total} frames but num_frames={num_frames} were requested; "
            f"pass num_frames <= {total}."
        )


def _open_decord(path: Path):
    import decord

    try:
        return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
    except Exception as e:  # decord raises RuntimeError / DECORDError for every failure
        if "cannot find video stream" in str(e):
            raise VideoDecodeError(f"Video {str(path)!r} has no video stream (no frames).") from e
        raise VideoDecodeError(f"Cannot decode {str(path)!r} (corrupt or unsupported container): {e}") from e


def _load_decord(path: Path, num_frames: int) -> np.ndarray:
    reader = _open_decord(path)
    total = len(reader)
    _check_count(total, num_frames, path)
    indices = np.linspace(0, total - 1, num_frames, dtype=int)
    try:
        frames = reader.get_batch(indices.tolist()).asnumpy()
    except Exception as e:
        raise VideoDecodeError(f"Cannot decode frames of {str(path)!r} (corrupt stream?): {e}") from e
    return np.ascontiguousarray(frames, dtype=np.uint8)


def _open_pyav(path: Path):
    import av

    try:
        container = av.open(str(path))
    except av.error.FFmpegError as e:
        raise VideoDecodeError(f"Cannot decode {str(path)!r} (corrupt or unsupported container): {e}") from e
    if not container.streams.video:
        container.close()
        raise VideoDecodeError(f"Video {str(path)!r} has no video stream (no frames).")
    return container


def _pyav_count(path: Path) -> int:
    import av

    container = _open_pyav(path)
    try:
        stream = container.streams.video[0]
        if stream.frames:
            return int(stream.frames)
        return sum(1 for packet in container.demux(stream) if packet.size)
    except av.error.FFmpegError as e:
        raise VideoDecodeError(f"Cannot read {str(path)!r} (corrupt stream?): {e}") from e
    finally:
        container.close()


def _load_pyav(path: Path, num_frames: int) -> np.ndarray:
    import av

    total = _pyav_count(path)
    _check_count(total, num_frames, path)
    indices = np.linspace(0, total - 1, num_frames, dtype=int)
    wanted = set(indices.tolist())
    decoded: dict[int, np.ndarray] = {}
    container = _open_pyav(path)
    seen = 0
    try:
        for i, frame in enumerate(container.decode(video=0)):
            seen = i + 1
            if i in wanted:
                decoded[i] = frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as e:
        raise VideoDecodeError(f"Cannot decode frames of {str(path)!r} (corrupt stream?): {e}") from e
    finally:
        container.close()
    if seen != total:  # the header's count was wrong: sample again over the frames really decoded
        _check_count(seen, num_frames, path)
        return _load_pyav_all(path, num_frames)
    return np.ascontiguousarray(np.stack([decoded[i] for i in indices.tolist()]), dtype=np.uint8)


def _load_pyav_all(path: Path, num_frames: int) -> np.ndarray:
    container = _open_pyav(path)
    try:
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    finally:
        container.close()
    indices = np.linspace(0, len(frames) - 1, num_frames, dtype=int)
    return np.ascontiguousarray(np.stack([frames[i] for i in indices]), dtype=np.uint8)
