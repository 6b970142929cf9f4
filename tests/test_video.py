"""Video input on real files written with OpenCV: timestamps, frame order, RGB, and every failure
(missing, not a video, empty, truncated, a camera that is not there) as one clear VideoError."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge_vljepa.data.video import Camera, VideoError, VideoFile

N = 45


def write_video(path, fourcc: str, fps: float, n: int = N):
    """n frames (48 x 64): red (RGB), with green = 5 * index so order can be checked."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, (64, 48))
    assert writer.isOpened()
    for i in range(n):
        bgr = np.zeros((48, 64, 3), np.uint8)
        bgr[..., 2], bgr[..., 1] = 200, 5 * i
        writer.write(bgr)
    writer.release()
    return path


def truncate(path, fraction: float = 0.5):
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * fraction)])
    return path


def one_line(err: pytest.ExceptionInfo) -> str:
    message = str(err.value)
    assert "\n" not in message
    return message


@pytest.mark.parametrize(("name", "fourcc", "fps"), [("clip.mp4", "mp4v", 30.0), ("clip.avi", "MJPG", 7.5)])
def test_video_file_frames_and_timestamps(tmp_path, name, fourcc, fps):
    video = VideoFile(write_video(tmp_path / name, fourcc, fps))
    assert (video.fps, video.frame_count, video.width, video.height, video.live) == (fps, N, 64, 48, False)
    frames = list(video)
    assert len(frames) == N
    assert [t for t, _ in frames] == pytest.approx([i / fps for i in range(N)], abs=1e-6)
    rgb = np.stack([f for _, f in frames])  # (N, 48, 64, 3)
    assert rgb.dtype == np.uint8 and rgb.shape == (N, 48, 64, 3)
    assert rgb[..., 0].mean() > 180 and rgb[..., 2].mean() < 20  # RGB, not OpenCV's BGR
    green = rgb[..., 1].mean(axis=(1, 2))
    assert np.abs(green - 5 * np.arange(N)).max() < 6  # in order (lossy codecs: approximately)
    assert len(list(video)) == N  # every iteration starts again


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(VideoError, match="not found") as err:
        VideoFile(tmp_path / "nope.mp4")
    assert "nope.mp4" in one_line(err)
    with pytest.raises(VideoError, match="is a directory"):
        VideoFile(tmp_path)


def test_random_bytes_are_not_a_video(tmp_path):
    path = tmp_path / "noise.mp4"
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(VideoError, match="cannot read .*noise.mp4 as a video") as err:
        VideoFile(path)
    one_line(err)


def test_empty_videos(tmp_path):
    with pytest.raises(VideoError, match="contains no frames") as err:
        VideoFile(write_video(tmp_path / "empty.avi", "MJPG", 30.0, n=0))
    one_line(err)
    with pytest.raises(VideoError, match="empty"):  # an mp4 without frames has no stream at all
        VideoFile(write_video(tmp_path / "empty.mp4", "mp4v", 30.0, n=0))


def test_truncated_files(tmp_path):
    with pytest.raises(VideoError, match="corrupted, truncated"):  # mp4's index is at the end
        VideoFile(truncate(write_video(tmp_path / "cut.mp4", "mp4v", 30.0)))

    video = VideoFile(truncate(write_video(tmp_path / "cut.avi", "MJPG", 30.0)))
    got = []
    with pytest.raises(VideoError, match=r"broke after \d+ of 45 frames.*truncated or corrupted") as err:
        for item in video:
            got.append(item)
    one_line(err)
    assert 0 < len(got) < N  # the frames before the break were delivered
    assert [t for t, _ in got] == pytest.approx([i / 30.0 for i in range(len(got))], abs=1e-6)


def test_camera_that_is_not_there():
    with pytest.raises(VideoError, match="camera 97 is not available") as err:
        Camera(97)
    one_line(err)


def test_live_capture_stamps_frames_and_reports_the_end(tmp_path):
    camera = Camera(str(write_video(tmp_path / "stream.avi", "MJPG", 30.0)), buffer=4)
    assert camera.live
    got = []
    with pytest.raises(VideoError, match="stopped delivering frames after 44 frames"):
        for item in camera:
            got.append(item)
    times = [t for t, _ in got]
    assert len(got) == N - 1  # the first frame was read when opening, to check the device
    assert times == sorted(times) and times[0] >= 0
    assert got[0][1].shape == (48, 64, 3) and got[0][1][..., 0].mean() > 180


# --- sparse files: frames with timestamp gaps (issue 22, item 3) ---------------------------------

def riff_chunks(data: bytes, start: int, end: int):
    """(fourcc, offset, size) of the RIFF chunks in data[start:end]."""
    pos = start
    while pos + 8 <= end:
        size = int.from_bytes(data[pos + 4:pos + 8], "little")
        yield data[pos:pos + 4], pos, size
        pos += 8 + size + (size & 1)


def make_sparse(src, dst, empty: set[int]):
    """Rewrite an MJPG .avi so that the video chunks numbered in `empty` hold no data (zero-size
    '00dc' chunks, the idx1 index rebuilt): FFmpeg reads no frame there, so the decoded frames' time
    stamps jump while the header still counts every chunk, like a variable-rate recording."""
    data = src.read_bytes()
    out, entries = bytearray(), []
    for fourcc, pos, size in riff_chunks(data, 12, len(data)):
        chunk = data[pos:pos + 8 + size + (size & 1)]
        if fourcc == b"LIST" and data[pos + 8:pos + 12] == b"movi":
            movi, frame = bytearray(b"movi"), 0
            for sub, p, s in riff_chunks(data, pos + 12, pos + 8 + size):
                payload = data[p + 8:p + 8 + s]
                if sub == b"00dc":
                    payload = b"" if frame in empty else payload
                    frame += 1
                entries.append((sub, 0x10 if payload else 0, len(movi), len(payload)))  # offset from 'movi'
                movi += sub + len(payload).to_bytes(4, "little") + payload + b"\0" * (len(payload) & 1)
            chunk = b"LIST" + len(movi).to_bytes(4, "little") + movi
        elif fourcc == b"idx1":
            chunk = b"idx1" + (16 * len(entries)).to_bytes(4, "little") + b"".join(
                sub + b"".join(v.to_bytes(4, "little") for v in (flags, offset, s))
                for sub, flags, offset, s in entries)
        out += chunk
    dst.write_bytes(b"RIFF" + (len(out) + 4).to_bytes(4, "little") + b"AVI " + bytes(out))
    return dst


def test_a_sparse_video_ends_normally_and_a_cut_one_is_still_truncated(tmp_path):
    dense = write_video(tmp_path / "dense.avi", "MJPG", 10.0, n=40)
    gaps = set(range(10, 20)) | set(range(25, 30))  # 15 of 40 chunks empty, none at the end
    sparse = make_sparse(dense, tmp_path / "sparse.avi", gaps)
    cap = cv2.VideoCapture(str(sparse))  # the file really is sparse: the header counts 40, time jumps
    assert cap.get(cv2.CAP_PROP_FRAME_COUNT) == 40
    stamps = []
    while cap.read()[0]:
        stamps.append(cap.get(cv2.CAP_PROP_POS_MSEC))
    cap.release()
    assert len(stamps) == 25 and max(np.diff(stamps)) == pytest.approx(1100)

    video = VideoFile(sparse)
    frames = list(video)  # ends normally: the decoder reached the end of the 4 s duration
    assert [t for t, _ in frames] == pytest.approx([i / 10 for i in range(40) if i not in gaps], abs=1e-6)

    cut = truncate(make_sparse(dense, tmp_path / "cut.avi", gaps), 0.6)
    with pytest.raises(VideoError, match=r"broke after \d+ of 40 frames.*truncated or corrupted") as err:
        list(VideoFile(cut))
    one_line(err)
