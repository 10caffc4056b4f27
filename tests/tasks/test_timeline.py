"""Timelines over long files: segments, windows equal to today's views and decoder's frames, bounded memory,
the pipeline and the CLI."""
import json
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch

import mediaformers as mf
from mediaformers.cli import main
from mediaformers.processors.media_windows import clip_windows, video_file_windows
from mediaformers.processors.video_io import read_frames_at
from mediaformers.tasks.timeline import SegmentMerger, Timeline
from tests.media import make_video

LABELS = {0: "speech", 1: "music", 2: "dog"}


def _scores(*pairs):
    s = torch.zeros(3)
    for i, v in pairs:
        s[i] = v
    return s


# ---- segments -------------------------------------------------------------------------------------
def test_segments_merge_consecutive_windows_and_close_as_soon_as_they_cannot_grow():
    m = SegmentMerger(LABELS)
    assert m.push(0, 2, _scores((0, 0.9))) == []
    assert m.push(1, 3, _scores((0, 0.7))) == []  # overlapping: same segment
    # a music window starting after speech's end (3) closes speech at once, before the media ends
    closed = m.push(4, 6, _scores((1, 0.8)))
    assert closed == [{"label": "speech", "start": 0.0, "end": 3.0, "score": 0.8}]
    assert m.flush() == [{"label": "music", "start": 4.0, "end": 6.0, "score": 0.8}]
    assert m.flush() == []


def test_merge_gap_min_duration_threshold_and_labels_per_window():
    m = SegmentMerger(LABELS, merge_gap=1.0, min_duration=3.0)
    m.push(0, 2, _scores((0, 1.0)))
    m.push(3, 5, _scores((0, 0.5)))  # 1 s after: joined by the gap
    m.push(6, 7, _scores((1, 0.9)))  # music: 1 s long, dropped by min_duration
    assert m.flush() == [{"label": "speech", "start": 0.0, "end": 5.0, "score": 0.75}]
    m = SegmentMerger(LABELS, labels_per_window=2, threshold=0.3)
    m.push(0, 1, _scores((0, 0.6), (2, 0.35)))
    m.push(1, 2, _scores((0, 0.6), (2, 0.2)))  # dog below the threshold: not in this window
    assert m.flush() == [{"label": "dog", "start": 0.0, "end": 1.0, "score": 0.35},  # by start, then label
                         {"label": "speech", "start": 0.0, "end": 2.0, "score": 0.6}]


def test_segment_options_and_window_order_are_checked():
    with pytest.raises(ValueError, match=r"merge_gap: expected a non-negative number of seconds, got -1"):
        SegmentMerger(LABELS, merge_gap=-1)
    with pytest.raises(ValueError, match=r"min_duration: .* got nan"):
        SegmentMerger(LABELS, min_duration=float("nan"))
    with pytest.raises(ValueError, match=r"labels_per_window: expected a positive number, got 0"):
        SegmentMerger(LABELS, labels_per_window=0)
    m = SegmentMerger(LABELS)
    m.push(5, 6, _scores((0, 1)))
    with pytest.raises(ValueError, match=r"windows: expected them in order of start, got 4s after 5s"):
        m.push(4, 5, _scores((0, 1)))


# ---- windows ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def clip_video(tmp_path_factory):
    return make_video(tmp_path_factory.mktemp("tl") / "v.mp4", frames=45, size=(32, 48), fps=10, gop=8)


def test_video_clips_are_the_frames_the_reader_shows_at_their_times(clip_video):
    clips = list(video_file_windows(clip_video, num_frames=4, step=3, stride=1.5))
    assert [c.start for c in clips] == [0.0, 1.5, 3.0]  # 4.5 s of video: a clip every 1.5 s
    assert all(c.end - c.start == pytest.approx(1.5) for c in clips)
    for clip in clips:
        times = [clip.start + (k * 3 + 0.5) / 10 for k in range(4)]
        np.testing.assert_array_equal(clip.data, read_frames_at(clip_video, times).numpy())


def test_a_clip_cut_by_the_end_repeats_the_last_frame(clip_video):
    last = list(video_file_windows(clip_video, num_frames=4, step=5, stride=2.0))[-1]
    assert last.start == 4.0  # frames at 4.05 s, then past the last frame (4.4 s): that one, repeated
    final = read_frames_at(clip_video, [4.4]).numpy()
    np.testing.assert_array_equal(last.data[1:], np.repeat(final, 3, 0))
    assert not np.array_equal(last.data[0], final[0])


def test_clip_windows_hold_a_bounded_number_of_frames_however_long_the_video():
    converted = []

    def frames(n):  # a synthetic hour at 25 fps would be 90000 frames; 6000 of 30 KB show the bound
        for i in range(n):
            def rgb(i=i):
                converted.append(i)
                return np.full((100, 100, 3), i % 251, np.uint8)
            yield i / 25, rgb, 0.0

    tracemalloc.start()
    count = 0
    for _ in clip_windows(frames(6000), num_frames=8, step=4, stride=2.0, fps=25):
        count += 1
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 120
    assert len(converted) == len(set(converted)) == 120 * 8  # frames converted once, only those clips use
    assert peak < 3e6  # the whole video's frames would be 180 MB; a clip is 240 KB


def test_long_audio_is_decoded_in_bounded_chunks(tmp_path, ckpts):
    path = tmp_path / "long.wav"
    rate = 16000
    with sf.SoundFile(path, "w", rate, 1, "FLOAT") as f:  # 20 minutes, written in pieces
        for k in range(20):
            f.write(np.full(60 * rate, 0.01 * (k % 3), np.float32))
    tl = mf.pipeline(model=ckpts["ast"], timeline=True)
    tracemalloc.start()
    n, last = 0, None
    for w in tl.file_windows(path):
        n, last = n + 1, w
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert last.end == pytest.approx(1200.0, abs=0.01) and n == 1874
    assert peak < 8e6  # the file decoded at once would be 77 MB


# ---- pipeline and CLI ---------------------------------------------------------------------------
def test_audio_timeline_windows_score_as_todays_views(ckpts, media):
    views = mf.pipeline(model=ckpts["ast"])(media / "long.wav", views=True, top_k=2)["views"]
    out = mf.pipeline(model=ckpts["ast"], timeline=True, top_k=2)(media / "long.wav")
    assert [w["start"] for w in out["windows"]] == [v["start"] for v in views]
    for w, v in zip(out["windows"], views):
        assert [x["label"] for x in w["labels"]] == [x["label"] for x in v["labels"]]
        np.testing.assert_allclose([x["score"] for x in w["labels"]], [x["score"] for x in v["labels"]], atol=1e-4)
    assert out["segments"][0]["start"] == 0.0 and out["segments"][-1]["end"] == pytest.approx(2.0, abs=0.02)


def test_timeline_refuses_models_and_tasks_it_does_not_fit(ckpts):
    with pytest.raises(ValueError, match=r"timeline: takes audio or video classification models; tvlt takes"):
        mf.pipeline(model=ckpts["tvlt"], timeline=True)
    with pytest.raises(ValueError, match=r"timeline: applies to classification; got the 'feature-extraction'"):
        mf.pipeline("feature-extraction", model=ckpts["ast"], timeline=True)
    with pytest.raises(ValueError, match=r"stride: expected a positive number of seconds, got 0"):
        mf.pipeline(model=ckpts["videomae"], timeline=True, stride=0)
    with pytest.raises(ValueError, match=r"hop: applies to audio models"):
        mf.pipeline(model=ckpts["videomae"], timeline=True, hop=4)
    with pytest.raises(ValueError, match=r"stride: applies with timeline=True"):
        mf.pipeline(model=ckpts["videomae"], stride=1.0)
    assert isinstance(mf.pipeline(model=ckpts["videomae"], timeline=True), Timeline)


def test_cli_timeline_writes_windows_segments_and_a_picture(ckpts, clip_video, tmp_path, capsys):
    out, pic = tmp_path / "t.jsonl", tmp_path / "t.svg"
    assert main(["classify", str(ckpts["videomae"]), str(clip_video), "--timeline", "--stride", "1",
                 "--merge-gap", "0.5", "-o", str(out), "--plot", str(pic)]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    windows = [r for r in recs if r["kind"] == "window"]
    segments = [r for r in recs if r["kind"] == "segment"]
    assert [w["start"] for w in windows] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert segments and all(set(s) == {"input", "kind", "label", "start", "end", "score"} for s in segments)
    assert sum(s["end"] - s["start"] for s in segments) == pytest.approx(5.0)  # one label per moment
    assert pic.read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize("argv, message", [
    (["--stride", "2"], "--stride: applies with --timeline or --stream"),
    (["--timeline", "--plot", "x.gif"], "--plot: expected a .png or .svg file, got 'x.gif'"),
    (["--timeline", "--resume"], "--resume: not available with --timeline/--stream"),
    (["--timeline", "--read-timeout", "3"], "--read-timeout: applies with --stream"),
    (["--timeline", "--max-lag", "3"], "--max-lag: applies with --stream"),
    (["--stream", "tcp://127.0.0.1:9"], "--stream: expected either INPUTS or --stream"),
])
def test_cli_timeline_flags_are_checked_before_the_model_loads(argv, message, clip_video, capsys):
    assert main(["classify", "no-such-model", str(clip_video), *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("lag", ["nan", "inf", "0", "-1"])
def test_cli_max_lag_is_checked_before_the_model_loads(lag, capsys):
    assert main(["classify", "no-such-model", "--stream", "tcp://127.0.0.1:9", f"--max-lag={lag}"]) == 2
    assert f"--max-lag: expected a positive number of seconds, got {float(lag)!r}" in capsys.readouterr().err


def test_cli_classify_without_inputs_says_what_it_needs(capsys):
    assert main(["classify", "no-such-model"]) == 2
    assert "inputs: expected media files, folders or .txt lists (or --stream URL), got none" in capsys.readouterr().err


def test_cli_ctrl_c_keeps_the_records_and_draws_what_was_classified(ckpts, clip_video, tmp_path, monkeypatch, capsys):
    real = Timeline.iter_records

    def interrupted(self, source, collect=None):
        for n, rec in enumerate(real(self, source, collect=collect)):
            if n == 2:
                raise KeyboardInterrupt
            yield rec

    monkeypatch.setattr(Timeline, "iter_records", interrupted)
    out, pic = tmp_path / "t.jsonl", tmp_path / "t.png"
    assert main(["classify", str(ckpts["videomae"]), str(clip_video), "--timeline", "--stride", "1", "-o", str(out),
                 "--plot", str(pic)]) == 130
    assert [json.loads(line)["start"] for line in out.read_text().splitlines()] == [0.0, 1.0]
    assert pic.is_file() and "interrupted; the records written so far are kept" in capsys.readouterr().err
