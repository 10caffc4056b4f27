"""TVLT's MAE reconstruction grid (frames and spectrogram): checked against transformers 4.57.1's masks and
predictions (the TVLT golden files), and drawn by a tiny pre-training run."""
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import mediaformers as mf
from mediaformers.family import families
from mediaformers.models.mae import patchify, patchify_2d
from mediaformers.plots import require_matplotlib
from mediaformers.plots import mae_av
from mediaformers.plots.mae import reconstruction_from_loader
from mediaformers.plots.mae_av import reconstruct_av, unpatchify_2d
from mediaformers.train import Recipe
from tests.media import make_video, natural_frames

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "tvlt_models"
PNG = b"\x89PNG\r\n\x1a\n"


def test_unpatchify_2d_inverts_patchify_2d_over_whole_patches():
    x = torch.randn(2, 3, 20, 12)  # 20 is no multiple of 8: the ragged edge is dropped, as the conv drops it
    torch.testing.assert_close(unpatchify_2d(patchify_2d(x, 8, 4), 20, 12, 8, 4), x[:, :, :16], rtol=0, atol=0)


@pytest.mark.parametrize("case, sample, frames, time", [("base", 0, 4, 64), ("padded-patchlevel", 1, 2, 24)])
def test_reconstruction_keeps_the_visible_patches_and_shows_the_reference_predictions(case, sample, frames, time):
    folder = FIXTURES / case / "TvltForPreTraining"
    io = load_file(folder / "io.safetensors")
    masks = load_file(FIXTURES / case / "TvltModel" / "io.safetensors")  # the reference's masks, same seed
    x = {k[3:]: v for k, v in io.items() if k[3:] in ("pixel_values", "audio_values", "pixel_mask", "audio_mask")}
    model = mf.TvltForPreTraining.from_pretrained(folder)
    c = model.config
    torch.manual_seed(json.loads((folder / "meta.json").read_text())["seed"])  # the reference's draws
    inp, hidden, recon = reconstruct_av(model.eval(), **x, sample=sample)["frames"]
    s_inp, s_hidden, s_recon = reconstruct_av(model, **x, generator=torch.Generator().manual_seed(0),
                                              sample=sample)["spectrogram"]  # a generator: masks of its own
    # padding frames and time steps cut off; the input as given
    torch.testing.assert_close(inp, x["pixel_values"][sample, :frames], rtol=0, atol=0)
    torch.testing.assert_close(s_inp, x["audio_values"][sample, :, :time], rtol=0, atol=0)
    p = c.image_patch_size[0]
    patches = lambda v: patchify(v[None], 1, p)[0].flatten(1)  # noqa: E731  (patches, p*p*C)
    n = frames * c.patches_per_frame
    m = masks["masked.out.pixel_label_masks"][sample, :n].bool()
    assert 0 < int(m.sum()) < n
    assert torch.isnan(patches(hidden)[m]).all() and not torch.isnan(patches(hidden)[~m]).any()
    torch.testing.assert_close(patches(recon)[~m], patches(inp)[~m], rtol=0, atol=0)  # visible: the input
    # masked: transformers' pixel predictions of this sample, under the same seed
    torch.testing.assert_close(patches(recon)[m], io["train.out.pixel_logits"][sample, :n][m], rtol=1e-4, atol=1e-5)
    # the spectrogram's visible patches are the input's, its masked ones grey, whatever the mask
    a = lambda v: patchify_2d(v[None], *c.audio_patch_size)[0]  # noqa: E731
    am = torch.isnan(a(s_hidden)).any(-1)
    assert 0 < int(am.sum()) < am.numel() and torch.isnan(a(s_hidden)[am]).all()
    torch.testing.assert_close(a(s_recon)[~am], a(s_inp)[~am], rtol=0, atol=0)
    assert not torch.equal(a(s_recon)[am], a(s_inp)[am])


def test_the_reference_seed_gives_the_reference_spectrogram_predictions():
    folder = FIXTURES / "base" / "TvltForPreTraining"
    io = load_file(folder / "io.safetensors")
    model = mf.TvltForPreTraining.from_pretrained(folder).eval()
    torch.manual_seed(json.loads((folder / "meta.json").read_text())["seed"])
    _, hidden, recon = reconstruct_av(model, io["in.pixel_values"], io["in.audio_values"])["spectrogram"]
    a = lambda v: patchify_2d(v[None], *model.config.audio_patch_size)[0]  # noqa: E731
    m = load_file(FIXTURES / "base" / "TvltModel" / "io.safetensors")["masked.out.audio_label_masks"][0].bool()
    assert torch.equal(torch.isnan(a(hidden)).any(-1), m)
    torch.testing.assert_close(a(recon)[m], io["train.out.audio_logits"][0][m], rtol=1e-4, atol=1e-5)


def test_bad_sample_index():
    model = mf.TvltForPreTraining(mf.TvltConfig(**families()["tvlt"].tiny)).eval()
    c = model.config
    pv, av = torch.rand(2, 2, 3, 32, 32), torch.rand(2, 1, 32, 32)
    for bad in (2, -1, True, 0.0):
        with pytest.raises(ValueError, match=rf"sample: expected a sample of the batch, 0 to 1, got {bad!r}"):
            reconstruct_av(model, pv, av, sample=bad)
    assert c.num_frames == 2 and reconstruct_av(model, pv, av, sample=1)["frames"][0].shape == (2, 3, 32, 32)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_a_cpu_generator_masks_a_model_on_the_gpu():
    """The training loop's seeded evaluation passes a CPU generator whatever the model's device."""
    model = mf.TvltForPreTraining(mf.TvltConfig(**families()["tvlt"].tiny)).eval()
    pv, av = torch.rand(1, 2, 3, 32, 32), torch.rand(1, 1, 32, 32)
    cpu = reconstruct_av(model, pv, av, generator=torch.Generator().manual_seed(3))
    gpu = reconstruct_av(model.cuda(), pv.cuda(), av.cuda(), generator=torch.Generator().manual_seed(3))
    for key in ("frames", "spectrogram"):
        assert torch.equal(torch.isnan(cpu[key][1]), torch.isnan(gpu[key][1]).cpu())


def test_a_tvlt_without_its_mae_task_says_why_no_grid(tmp_path):
    config = mf.TvltConfig(**families()["tvlt"].tiny, task_mae=False)
    said: list[str] = []
    assert reconstruction_from_loader(mf.TvltForPreTraining(config), [], tmp_path / "r.png", None,
                                      log=said.append) is None
    assert said == ["reconstruction grid: not drawn for TvltForPreTraining (takes video or audio-visual MAE models "
                    "with their MAE task on)"]


@pytest.mark.timeout(180)
def test_tvlt_pretraining_writes_a_frames_and_spectrogram_grid(tmp_path, monkeypatch):
    require_matplotlib()
    from PIL import Image

    figures = []
    real_save = mae_av.save
    monkeypatch.setattr(mae_av, "save", lambda fig, path: (figures.append(fig), real_save(fig, path))[1])
    media = tmp_path / "media"
    media.mkdir()
    for i in range(2):
        make_video(media / f"{i}.mp4", frames=natural_frames(8, (32, 32), seed=i), size=(32, 32), fps=8, audio=True)
    run = tmp_path / "mae"
    Recipe(model="tvlt", data=str(media), val=str(media), output=str(run), config=families()["tvlt"].tiny,
           max_steps=1, batch_size=2).fit()
    assert [p.name for p in (run / "reconstructions").iterdir()] == ["step-1.png"]
    png = run / "reconstructions" / "step-1.png"
    assert png.read_bytes().startswith(PNG)
    with Image.open(png) as image:
        image.verify()
    (fig,) = figures
    axes = fig.axes  # row by row: the tiny config's two frames, then the spectrogram
    assert len(axes) == 9
    assert [ax.get_title() for ax in axes[:3]] == ["input", "masked", "reconstruction"]
    assert [axes[i].get_ylabel() for i in (0, 3, 6)] == ["frame 0", "frame 1", "spectrogram"]
    spec = [ax.get_images()[0].get_array() for ax in axes[6:]]
    assert spec[1].mask.any() and not spec[0].mask.any() and not spec[2].mask.any()  # grey only where masked


def test_the_video_writer_adds_a_sound_track_that_reads_back(tmp_path):
    """The writer the docs picture's clips come from (tools/make_timeline_images.py)."""
    import numpy as np

    from mediaformers.processors.audio_io import load_audio
    from mediaformers.processors.video.pyav.writer import write_video

    rate, tone = 16000, 440.0
    sine = (0.3 * np.sin(2 * np.pi * tone * np.arange(rate // 2) / rate)).astype(np.float32)
    frames = np.zeros((4, 32, 32, 3), np.uint8)
    for name in ("a.mp4", "b.mp4"):
        write_video(tmp_path / name, frames, 8, audio=sine, rate=rate)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()  # repeatable bytes
    back = load_audio(tmp_path / "a.mp4", rate, return_numpy=True)
    assert len(sine) <= len(back) <= len(sine) + 4096  # the codec's priming and padding at most
    spectrum = np.abs(np.fft.rfft(back))
    assert abs(np.argmax(spectrum) * rate / len(back) - tone) < 5
    assert 0.5 < np.sqrt(np.sum(back ** 2) / np.sum(sine ** 2)) < 1.5  # the tone's energy, not silence
