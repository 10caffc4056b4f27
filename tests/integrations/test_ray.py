"""`mediaformers classify|embed --ray` on a local Ray instance: the same records as the single-process command,
and every record exactly once when a model actor dies mid-job. One Ray start for the whole module."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from mediaformers.cli import main
from tests.audio_media import noise, tone
from tests.tasks.conftest import ckpts, media  # noqa: F401  (the task tests' checkpoints and media)

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray")
    pytest.importorskip("ray.data")
    # Workers import this checkout (and this module, for the crashing actor) whatever is installed.
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT), os.environ.get("PYTHONPATH", "")])
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
    ray.shutdown()


def run_cli(capsys, *args) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def assert_close(a, b, path="record"):
    """Equal records, floats within 1e-5 (batches of other sizes round the last bits differently)."""
    if isinstance(a, float) or isinstance(b, float):
        assert a == pytest.approx(b, abs=1e-5), path
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), f"{path}: {sorted(a)} != {sorted(b)}"
        for k in a:
            assert_close(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_close(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a!r} != {b!r}"


def only_partitions(folder: Path) -> list[str]:
    names = sorted(p.name for p in folder.iterdir())
    assert all(n.startswith("part-") and n.endswith(".parquet") for n in names), names  # no leftovers
    return names


@pytest.mark.timeout(300)
@pytest.mark.parametrize("model,extra", [("videomae", ["--clips", "2", "--views"]), ("ast", ["--views"])])
def test_classify_same_records_as_single_process(ray_local, ckpts, media, tmp_path, capsys, model, extra):  # noqa: F811
    from mediaformers.integrations.ray import read_records

    inputs = [media] if model == "videomae" else [media / "tone.wav", media / "long.wav", media / "still.png"]
    code, _, _ = run_cli(capsys, "classify", ckpts[model], *inputs, "--top-k", 2, "--quiet", *extra,
                         "-o", tmp_path / "single.jsonl")
    single = [json.loads(line) for line in (tmp_path / "single.jsonl").read_text().splitlines()]
    ray_code, out, err = run_cli(capsys, "classify", ckpts[model], *inputs, "--top-k", 2, "--quiet", *extra,
                                 "--ray", "-o", tmp_path / "ray")
    assert (ray_code, code) == (1, 1)  # b_corrupt.mp4 / still.png: the same failure, reported the same way
    summary = json.loads(out)
    assert summary == {"output": str(tmp_path / "ray"), "records": len(single), "partitions": 1, "failed": 1}
    assert "mediaformers: failed:" in err
    assert_close(read_records(tmp_path / "ray"), single)
    assert any("views" in r for r in single)
    only_partitions(tmp_path / "ray")


@pytest.mark.timeout(300)
def test_embed_same_records_as_single_process(ray_local, ckpts, media, tmp_path, capsys):  # noqa: F811
    import pyarrow as pa
    import pyarrow.parquet as pq

    from mediaformers.integrations.ray import read_records

    inputs = [media / "tone.wav", media / "long.wav", media / "a.mp4", tmp_path / "missing.wav"]
    code, out, _ = run_cli(capsys, "embed", ckpts["ast"], *inputs, "--quiet", "-o", tmp_path / "single.parquet")
    assert code == 1
    failed = [r for r in map(json.loads, out.splitlines()) if "error" in r]
    single = pq.read_table(tmp_path / "single.parquet").to_pylist()
    ray_code, out, _ = run_cli(capsys, "embed", ckpts["ast"], *inputs, "--quiet", "--ray", "-o", tmp_path / "ray")
    assert ray_code == 1 and json.loads(out)["failed"] == 1
    records = read_records(tmp_path / "ray")
    assert [r["input"] for r in records] == [str(p) for p in inputs]  # input order
    assert_close([r for r in records if "error" not in r], single)
    assert [r for r in records if "error" in r] == failed
    (part,) = only_partitions(tmp_path / "ray")
    schema = pq.read_schema(tmp_path / "ray" / part)
    assert schema.field("embedding").type == pa.list_(pa.float32())  # as the single-process .parquet


@pytest.mark.timeout(60)
def test_output_folder_checked_before_the_model_loads(ray_local, tmp_path, capsys):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("keep me")
    code, _, err = run_cli(capsys, "embed", tmp_path / "no-model", tmp_path, "--ray", "-o", tmp_path / "out")
    assert code == 2 and "is not empty; pass --overwrite" in err
    code, _, err = run_cli(capsys, "embed", tmp_path / "no-model", tmp_path, "--ray", "-o", tmp_path / "out",
                           "--overwrite")
    assert code == 2 and "got also ['notes.txt']" in err
    assert (tmp_path / "out" / "notes.txt").read_text() == "keep me"


def test_missing_ray_is_a_clear_error(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    code, _, err = run_cli(capsys, "classify", tmp_path / "no-model", tmp_path, "--ray", "-o", tmp_path / "out")
    assert code == 2
    assert "--ray: expected the `ray` package (pip install 'mediaformers[ray]'), got ImportError" in err


try:
    from mediaformers.integrations.ray import Model
except ImportError:  # pragma: no cover
    Model = object


class CrashOnce(Model):
    """Kills its worker process (no clean-up, as an OOM kill or a lost node would) on the first batch that holds
    an input named crash*, leaving ``<input>.crashed`` so the restarted actor's retry goes through."""

    def __call__(self, batch):
        for key in batch["key"]:
            key = os.fsdecode(key)
            if Path(key).name.startswith("crash") and not os.path.exists(key + ".crashed"):
                Path(key + ".crashed").touch()
                os._exit(1)
        return super().__call__(batch)


@pytest.mark.timeout(300)
def test_a_killed_actor_loses_and_duplicates_no_record(ray_local, ckpts, tmp_path):  # noqa: F811
    from mediaformers.integrations.ray import Job, read_records, run
    from mediaformers.tasks.pipelines import pipeline

    names = ["s0", "s1", "s2", "crash3", "s4", "s5", "s6"]
    files = []
    for i, name in enumerate(names):
        wave = tone(0.5, 16000, freq=300 + 100 * i) + noise(0.5, 16000, seed=i)
        sf.write(tmp_path / f"{name}.wav", wave, 16000)
        files.append(str(tmp_path / f"{name}.wav"))
    job = Job(str(ckpts["ast"]), "feature-extraction", batch_size=2)
    result = run(job, files, tmp_path / "out", rows_per_file=2, actor=CrashOnce, quiet=True)
    assert (tmp_path / "crash3.wav.crashed").exists()  # the worker did die
    assert result["records"] == len(files) and result["failed"] == 0
    parts = only_partitions(tmp_path / "out")
    assert parts == ["part-000000000-000000001.parquet", "part-000000002-000000003.parquet",
                     "part-000000004-000000005.parquet", "part-000000006-000000006.parquet"]
    records = read_records(tmp_path / "out")
    assert [r["input"] for r in records] == files  # each exactly once, in input order
    reference = pipeline("feature-extraction", str(ckpts["ast"]))(files)
    assert_close(records, reference)


try:
    from mediaformers.integrations.ray import LibraryEmbedder
except ImportError:  # pragma: no cover
    LibraryEmbedder = object


class EmbedCrashOnce(LibraryEmbedder):
    """CrashOnce for the library's embedding actors."""

    def __call__(self, batch):
        for path in map(str, batch["path"]):
            if Path(path).name.startswith("crash") and not os.path.exists(path + ".crashed"):
                Path(path + ".crashed").touch()
                os._exit(1)
        return super().__call__(batch)


def _library_rows(folder) -> list[dict]:
    from mediaformers.library import Library

    rows = Library(folder)._table("audio").to_arrow().to_pylist()
    return sorted(({**r, "path": Path(r["path"]).name} for r in rows), key=lambda r: (r["path"], r["start"], r["whole"]))


@pytest.mark.timeout(300)
def test_index_on_ray_writes_the_library_the_single_process_run_writes(ray_local, ckpts, tmp_path, capsys):  # noqa: F811
    from mediaformers.integrations.ray import library_embedder
    from mediaformers.library import Library

    media = tmp_path / "media"
    media.mkdir()
    for i, name in enumerate(["s0", "crash1", "s2", "s3"]):
        sf.write(media / f"{name}.wav", tone(0.8, 16000, freq=300 + 150 * i) + noise(0.8, 16000, seed=i), 16000)
    (media / "broken.wav").write_bytes(b"RIFF0000WAVEjunk")
    code, out, _ = run_cli(capsys, "index", media, "-o", tmp_path / "single", "--audio-model", ckpts["ast"], "--quiet")
    assert code == 1 and json.loads(out)["added"] == 4 and json.loads(out)["error"] == 1
    lib = Library(tmp_path / "ray", audio_model=str(ckpts["ast"]))
    records = list(lib.add([media], embed_many=library_embedder(lib.path, actor=EmbedCrashOnce, quiet=True)))
    assert (media / "crash1.wav.crashed").exists()  # an actor did die mid-job
    (media / "crash1.wav.crashed").unlink()
    assert sorted(r["status"] for r in records) == ["added"] * 4 + ["error"]
    ours, ref = _library_rows(tmp_path / "ray"), _library_rows(tmp_path / "single")
    assert [(r["path"], r["start"], r["end"], r["whole"]) for r in ours] == \
        [(r["path"], r["start"], r["end"], r["whole"]) for r in ref]  # every vector once, none lost
    np.testing.assert_allclose(np.stack([r["vector"] for r in ours]), np.stack([r["vector"] for r in ref]), atol=1e-5)
    code, out, _ = run_cli(capsys, "index", media, "-o", tmp_path / "ray", "--ray", "--quiet")
    assert code == 1 and json.loads(out)["unchanged"] == 4  # incremental: only the bad file is retried
