"""Video signals: frames sampled on the video's own timeline and PDQ-hashed as the same picture
saved as a file would be; hostile and broken input gives named errors."""

from __future__ import annotations

import numpy as np
import pytest

from meldpunt.signals import (
    CorruptVideo,
    ImageTooLarge,
    NotAVideo,
    VideoOptions,
    hamming,
    looks_like_video,
    pdq_signal,
    video_signal,
)
from triage_support import pattern, png, sized, video


@pytest.mark.parametrize(("fmt", "codec"), [("mp4", "libx264"), ("matroska", "libx264"),
                                            ("webm", "libvpx-vp9"), ("avi", "mpeg4"),
                                            ("mov", "mpeg4")])  # fmt: skip
def test_frames_hash_like_the_picture(fmt, codec):
    picture = sized("astronaut")
    data = video([picture] * 6, fmt=fmt, codec=codec, rate=2)
    assert looks_like_video(data[:512])
    signal = video_signal(data)
    assert [f.seconds for f in signal.frames] == [0.0, 1.0, 2.0]  # one a second, of 3 s
    reference = pdq_signal(png(picture)).hash
    assert all(hamming(f.hash, reference) <= 16 for f in signal.frames)
    assert (signal.width, signal.height) == (320, 240)


def test_sampling_follows_the_settings():
    frames = [pattern(i, (240, 320)) for i in range(10)]
    data = video(frames, rate=5)
    every = video_signal(data, VideoOptions(seconds_per_frame=0.2))
    assert len(every.frames) == 10
    assert len({f.hash for f in every.frames}) == 10
    assert len(video_signal(data, VideoOptions(seconds_per_frame=0.2, max_frames=4)).frames) == 4
    blank = video([np.zeros((240, 320, 3), dtype=np.uint8)] * 4)
    assert video_signal(blank).usable(50) == ()  # a blank frame has no usable hash


def test_hostile_and_broken_videos_are_named():
    data = video([sized("rocket")] * 8)
    with pytest.raises(NotAVideo):
        video_signal(b"plain text, not a video" * 10)
    with pytest.raises((CorruptVideo, NotAVideo)):
        video_signal(data[:600])
    with pytest.raises(ImageTooLarge):
        video_signal(data, VideoOptions(max_frame_pixels=1000))
    with pytest.raises(CorruptVideo):
        video_signal(data, VideoOptions(max_decoded_frames=3, seconds_per_frame=0.01))
    with pytest.raises(NotAVideo):
        video_signal(png(pattern(1)))  # a picture is no video
