"""VideoClipDataset + collate: batches through DataLoader workers, labels, seeds, bad files."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from mediaformers.processors.datasets import VideoClipDataset, collate_video_clips
from mediaformers.processors.sampling import ClipSampler
from mediaformers.processors.video_processors import (
    TvltVideoProcessor,
    VideoMAEVideoProcessor,
)


def small_processor(**kw):
    return VideoMAEVideoProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32},
                                  num_frames=4, frame_step=2, **kw)


def test_batches_through_workers(h264_video, vfr_video):
    ds = VideoClipDataset([h264_video, vfr_video, h264_video], [3, 1, 4], small_processor())
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_video_clips)
    (batch,) = list(loader)
    assert batch["pixel_values"].shape == (3, 4, 3, 32, 32)
    assert batch["labels"].tolist() == [3, 1, 4] and batch["indices"].tolist() == [0, 1, 2]
    assert batch["paths"][1] == str(vfr_video) and batch["failures"] == []
    # same as calling the processor directly
    direct = small_processor()(h264_video)["pixel_values"][0]
    assert torch.allclose(batch["pixel_values"][0], direct)


def test_random_clips_are_reproducible(h264_video):
    sampler = ClipSampler("stride", num_frames=4, step=2, random=True)
    ds = VideoClipDataset([h264_video] * 4, processor=small_processor(), sampler=sampler, seed=7)
    a = torch.stack([ds[i]["pixel_values"] for i in range(4)])
    b = torch.stack([ds[i]["pixel_values"] for i in range(4)])
    assert torch.equal(a, b)
    ds.set_epoch(1)
    c = torch.stack([ds[i]["pixel_values"] for i in range(4)])
    assert not torch.equal(a, c)


def test_raw_frames_and_multi_clip(h264_video):
    ds = VideoClipDataset([h264_video], sampler=ClipSampler("multi_clip", num_frames=4, num_clips=3))
    item = ds[0]
    assert item["pixel_values"].shape == (3, 4, 3, 48, 64) and item["pixel_values"].dtype == torch.uint8


def test_tvlt_mask_is_collated(h264_video):
    ds = VideoClipDataset([h264_video] * 2, processor=TvltVideoProcessor())
    batch = collate_video_clips([ds[0], ds[1]])
    assert batch["pixel_values"].shape == (2, 8, 3, 224, 224) and batch["pixel_mask"].shape == (2, 8 * 196)


def test_bad_file_raises_naming_it(h264_video, broken_files):
    ds = VideoClipDataset([h264_video, broken_files["text"]], processor=small_processor())
    with pytest.raises(ValueError, match=r"dataset item 1 \('.*notes\.txt'\): cannot open video"):
        ds[1]


def test_skip_records_failures(h264_video, broken_files, tmp_path):
    files = [h264_video, broken_files["empty"], tmp_path / "missing.mp4", h264_video]
    ds = VideoClipDataset(files, [0, 1, 2, 3], small_processor(), on_error="skip")
    loader = DataLoader(ds, batch_size=4, num_workers=1, collate_fn=collate_video_clips)
    (batch,) = list(loader)
    assert batch["pixel_values"].shape[0] == 2 and batch["labels"].tolist() == [0, 3]
    assert [p for p, _ in batch["failures"]] == [str(broken_files["empty"]), str(tmp_path / "missing.mp4")]
    assert "the file is empty (0 bytes)" in batch["failures"][0][1]
    assert "video file not found" in batch["failures"][1][1]
    assert collate_video_clips([ds[1]])["pixel_values"] is None


def test_short_video_error_option(h264_video):
    strict = ClipSampler("stride", num_frames=16, step=4, on_short="error")
    ds = VideoClipDataset([h264_video], processor=small_processor(), sampler=strict)
    with pytest.raises(ValueError, match=r"dataset item 0 \('.*h264\.mp4'\): video too short for stride"):
        ds[0]


@pytest.mark.parametrize("kwargs,message", [
    (dict(labels=[1]), r"labels: expected one per file \(2\), got 1"),
    (dict(on_error="ignore"), "on_error: expected 'raise' or 'skip', got 'ignore'"),
    (dict(processor=None), "processor/sampler: expected a processor or a sampler, got neither"),
])
def test_validation(kwargs, message):
    args = dict(files=["a.mp4", "b.mp4"], processor=small_processor())
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        VideoClipDataset(**args)
