"""The one thread policy: cores available minus DataLoader workers, overridable, used by every command."""
from __future__ import annotations

import pytest
import torch

from mediaformers import threads
from mediaformers.cli import build_parser, main


@pytest.fixture
def four_cores(monkeypatch):
    monkeypatch.setattr(threads, "available_cores", lambda: 4)


@pytest.mark.parametrize("workers,environ,expected", [
    (0, {}, 4), (1, {}, 3), (3, {}, 1), (8, {}, 1),  # workers take their cores; never below one thread
    (0, {"LOCAL_WORLD_SIZE": "2"}, 2), (1, {"LOCAL_WORLD_SIZE": "2"}, 1),  # torchrun: processes share the cores
    (3, {"MEDIAFORMERS_THREADS": "6"}, 6), (0, {"OMP_NUM_THREADS": "2"}, 2),
    (0, {"MEDIAFORMERS_THREADS": "3", "OMP_NUM_THREADS": "2"}, 3),
])
def test_policy(four_cores, workers, environ, expected):
    assert threads.thread_count(workers, environ=environ) == expected


def test_requested_wins_and_bad_values_are_named(four_cores):
    assert threads.thread_count(2, 7, environ={"MEDIAFORMERS_THREADS": "3"}) == 7
    with pytest.raises(ValueError, match=r"MEDIAFORMERS_THREADS: expected a whole number >= 1, got 'many'"):
        threads.thread_count(environ={"MEDIAFORMERS_THREADS": "many"})
    with pytest.raises(ValueError, match=r"OMP_NUM_THREADS: expected a whole number >= 1, got '0'"):
        threads.thread_count(environ={"OMP_NUM_THREADS": "0"})


def test_available_cores_is_the_affinity():
    import os

    assert threads.available_cores() == len(os.sched_getaffinity(0))


def test_every_command_takes_threads():
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    missing = [name for name, p in sub.choices.items() if not any(a.dest == "threads" for a in p._actions)]
    assert not missing


def test_main_applies_the_policy(four_cores, monkeypatch, capsys):
    monkeypatch.delenv(threads.ENV, raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    seen = []
    monkeypatch.setitem(__import__("mediaformers.cli", fromlist=["COMMANDS"]).COMMANDS, "info",
                        lambda args: seen.append(torch.get_num_threads()) or 0)
    before = torch.get_num_threads()
    try:
        assert main(["info", "x"]) == 0
        assert main(["info", "x", "--threads", "2"]) == 0
        monkeypatch.setenv(threads.ENV, "bad")
        assert main(["info", "x"]) == 2 and "MEDIAFORMERS_THREADS: expected a whole number" in capsys.readouterr().err
    finally:
        torch.set_num_threads(before)
    assert seen == [4, 2]
