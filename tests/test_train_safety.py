"""train and chat against what a careless or hostile user can hand them: every case ends in one sentence and a
non-zero exit (no traceback, no library warning before it), nothing the user owns changes, and a run that
cannot save says so before it trains, or, failing mid-run, says where the last good model is."""

import errno
import json
import os
import shutil
import subprocess
import sys
import threading
import time

import pytest
import torch
from course_helpers import TINY, course_env, run_course, small_text

pytestmark = pytest.mark.timeout(180)

TRACEBACK = "Traceback (most recent call last)"


def one_sentence(out, code: int = 2) -> str:
    """The sentence on standard error, after checking it is the only thing said there."""
    assert out.returncode == code, out.stdout + out.stderr
    assert TRACEBACK not in out.stdout + out.stderr and "Warning" not in out.stderr, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, f"one sentence, got:\n{out.stderr}"
    return lines[0]


def snapshot(folder) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# --checkpoint ------------------------------------------------------------------------------------------------

BAD_FOLDERS = [
    ("", "--checkpoint is empty"),
    (".", "names no folder of its own"),
    ("/", "names no folder of its own"),
    ("exercises", "is one of the course's own folders"),
    ("notes.txt", "is a file, not a folder"),
    ("notes.txt/inner", "lies inside notes.txt, which is a file"),
]


# train and chat share the check: chat is tried on two of the cases, to keep the suite short
@pytest.mark.parametrize("mode, value, said", [("train", *case) for case in BAD_FOLDERS] + [
    ("chat", *BAD_FOLDERS[0]), ("chat", *BAD_FOLDERS[3])])
def test_a_checkpoint_that_cannot_be_a_folder_of_its_own_is_refused(repo, mode, value, said):
    (repo / "notes.txt").write_text("my notes")
    before = snapshot(repo / "exercises")
    out = run_course(repo, mode, *(["small.txt"] if mode == "train" else []), "--checkpoint", value, *(
        TINY if mode == "train" else []), timeout=60)
    small_text(repo)
    assert said in one_sentence(out)
    assert (repo / "notes.txt").read_text() == "my notes" and snapshot(repo / "exercises") == before


# The text -------------------------------------------------------------------------------------------------------

def test_a_fifo_without_a_writer_is_refused_at_once(repo):
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(repo / "pipe")
    out = run_course(repo, "train", "pipe", *TINY, timeout=30)
    assert "is not a regular file" in one_sentence(out)


def test_a_device_is_refused(repo):
    if not os.path.exists("/dev/zero"):
        pytest.skip("no /dev/zero here")
    assert "is not a regular file" in one_sentence(run_course(repo, "train", "/dev/zero", *TINY, timeout=30))


@pytest.mark.parametrize("encoding, said", [
    ("utf-16", "looks like UTF-16 text, and the course reads UTF-8: convert it, for example with iconv -f UTF-16"),
    ("utf-16-le", "iconv -f UTF-16LE -t UTF-8"),
    ("cp1252", "looks like a one-byte encoding such as Latin-1 or Windows-1252"),
])
def test_a_text_in_another_encoding_is_named_with_how_to_convert_it(repo, encoding, said):
    (repo / "text.txt").write_bytes(("Café au lait, s'il vous plaît. " * 40).encode(encoding))
    assert said in one_sentence(run_course(repo, "train", "text.txt", *TINY, timeout=60))


# Numbers --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", ["1e20", "99999999999999999999", "-1", "0.5", "ten"])
def test_a_seed_out_of_range_is_one_sentence(repo, seed):
    assert "--seed must be a whole number from 0 to" in one_sentence(
        run_course(repo, "train", "--seed", seed, *TINY, timeout=60))


def test_a_model_too_large_for_the_machine_is_refused_before_anything_is_built(repo):
    out = run_course(repo, "train", "--n_layers", "1000000000", "--d_model", "16", "--n_heads", "2", timeout=60)
    said = one_sentence(out)
    assert "would need about" in said and "more than the" in said and "this machine has" in said


def edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


BAD_CONFIGS = [
    ({"n_layer": 10**9}, "describes a model too large for this machine"),
    ({"block_size": 10**12}, "describes a model too large for this machine"),
    ({"n_embd": -16}, "n_embd must be a whole number of at least 1, got -16"),
    ({"d_ff": 0}, "d_ff must be a whole number of at least 1, got 0"),
    ({"n_head": "2"}, "n_head must be a whole number of at least 1, got '2'"),
    ({"n_layer": 1.0}, "n_layer must be a whole number of at least 1, got 1.0"),
    ({"bias": "yes"}, "bias must be true or false"),
    ({"dropout": 2}, "dropout must be a number from 0 to below 1"),
]


@pytest.mark.parametrize("changes, said", BAD_CONFIGS)
def test_every_bad_config_gets_its_sentence_before_anything_is_built(trained_checkpoint, changes, said):
    """The rule itself, on each case; the two tests below show it holds through chat and train."""
    from kata.errors import UserError
    from kata.loader import check_config

    config = {**json.loads((trained_checkpoint / "config.json").read_text()), **changes}
    with pytest.raises(UserError) as refused:
        check_config(config, "checkpoint/config.json is damaged")
    assert said in str(refused.value)


@pytest.mark.parametrize("mode, changes, said", [("chat", *BAD_CONFIGS[0]), ("chat", *BAD_CONFIGS[2]),
                                                 ("train", *BAD_CONFIGS[1]), ("train", *BAD_CONFIGS[4])])
def test_a_config_no_model_can_be_built_from_is_one_sentence(trained_repo, mode, changes, said):
    edit_config(trained_repo / "checkpoint", **changes)
    before = snapshot(trained_repo / "checkpoint")
    args = ["chat"] if mode == "chat" else ["train", "small.txt", "--resume", "--epochs", "3", *TINY]
    assert said in one_sentence(run_course(trained_repo, *args, timeout=60, input_text="The\n"))
    assert snapshot(trained_repo / "checkpoint") == before, "a refused checkpoint is left as it was"


def test_a_duplicated_merge_is_refused_on_load_rather_than_saved(trained_repo):
    folder = trained_repo / "checkpoint"
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    tokenizer["merges"].append(tokenizer["merges"][0])
    (folder / "tokenizer.json").write_text(json.dumps(tokenizer))
    before = snapshot(folder)
    for args in (["chat"], ["train", "small.txt", "--resume", "--epochs", "3", *TINY]):
        said = one_sentence(run_course(trained_repo, *args, timeout=60, input_text="The\n"))
        assert "tokenizer.json is damaged: merge" in said and "repeats merge 0" in said
    assert snapshot(folder) == before


def test_weights_that_are_not_finite_are_refused(trained_repo):
    folder = trained_repo / "checkpoint"
    weights = torch.load(folder / "model.pt", weights_only=True)
    name = next(k for k, v in weights.items() if v.is_floating_point())
    weights[name][0] = float("nan")
    torch.save(weights, folder / "model.pt")
    assert "holds weights that are NaN or infinite" in one_sentence(
        run_course(trained_repo, "chat", timeout=60, input_text="The\n"))


@pytest.mark.parametrize("tamper, said", [
    (lambda s: s.update(epoch=-5), "its epoch must be a whole number of 0 or more"),
    (lambda s: s.update(epoch="2"), "its epoch must be a whole number of 0 or more"),
    (lambda s: s.update(best_val_loss=float("nan")), "its best validation loss must be a number"),
    (lambda s: s.update(optimizer=[1, 2]), "its optimizer is not an optimizer's state_dict()"),
    (lambda s: s["optimizer"]["state"].update({999: {"exp_avg": torch.zeros(3)}}),
     "keeps a state for a parameter 999 that the model does not have"),
])
def test_a_tampered_training_state_is_refused_on_resume(trained_repo, tamper, said):
    path = trained_repo / "checkpoint" / "train_state.pt"
    state = torch.load(path, weights_only=True)
    tamper(state)
    torch.save(state, path)
    before = snapshot(trained_repo / "checkpoint")
    out = run_course(trained_repo, "train", "small.txt", "--resume", "--epochs", "3", *TINY, timeout=60)
    assert said in one_sentence(out)
    assert snapshot(trained_repo / "checkpoint") == before


# Two trainings, and saving ------------------------------------------------------------------------------------

def test_a_second_training_into_a_busy_folder_is_refused(trained_repo):
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (trained_repo / ".checkpoint.lock").write_text(f"write-transformer training\n{holder.pid}\n")
        before = snapshot(trained_repo / "checkpoint")
        said = one_sentence(run_course(trained_repo, "train", "small.txt", "--epochs", "1", *TINY, timeout=60))
        assert f"another training (process {holder.pid}) is saving into checkpoint/" in said
        assert snapshot(trained_repo / "checkpoint") == before
    finally:
        holder.kill()
        holder.wait()
    # The lock of a training that died is recognised and taken over; the run removes its own lock at the end.
    out = run_course(trained_repo, "train", "small.txt", "--epochs", "1", *TINY, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert not (trained_repo / ".checkpoint.lock").exists()


def test_a_lock_file_the_course_did_not_write_is_left_alone(trained_repo):
    (trained_repo / ".checkpoint.lock").write_text("my own file")
    said = one_sentence(run_course(trained_repo, "train", "small.txt", "--epochs", "1", *TINY, timeout=60))
    assert "is in the way, and the course did not write it" in said
    assert (trained_repo / ".checkpoint.lock").read_text() == "my own file"


def test_two_trainings_started_together_one_is_refused(trained_repo):
    results = []

    def train():
        results.append(run_course(trained_repo, "train", "small.txt", "--epochs", "1", *TINY, timeout=120))

    threads = [threading.Thread(target=train) for _ in range(2)]
    for t in threads:
        t.start()
        time.sleep(0.05)
    for t in threads:
        t.join()
    codes = sorted(r.returncode for r in results)
    refused = [r for r in results if r.returncode == 2]
    assert codes == [0, 2], [r.stderr for r in results]
    assert "another training" in one_sentence(refused[0])
    from kata.loader import load_steps

    steps = load_steps(False)
    steps.checkpoint.load_checkpoint(trained_repo / "checkpoint")  # what is left loads


def test_too_little_free_space_is_said_before_training(trained_repo, monkeypatch, capsys):
    from kata import rotation
    from kata.cli import main

    before = snapshot(trained_repo / "checkpoint")
    usage = shutil.disk_usage(trained_repo)
    monkeypatch.setattr(rotation.shutil, "disk_usage", lambda path: usage._replace(free=1000))
    monkeypatch.chdir(trained_repo)
    code = main(["train", "small.txt", "--reference", "--epochs", "1", *TINY])
    out = capsys.readouterr()
    assert code == 2 and "MB free, and a checkpoint of this model needs about" in out.err, out.err
    assert "1 / 1" not in out.out, "nothing was trained"
    assert snapshot(trained_repo / "checkpoint") == before


def test_a_disk_that_fills_during_the_first_save_keeps_the_earlier_model_in_place(trained_repo, monkeypatch,
                                                                                   capsys):
    import solutions.step11_own_model as step11
    from kata.cli import main

    before = snapshot(trained_repo / "checkpoint")

    def full(folder, *args, **kwargs):
        (folder / "model.pt").write_bytes(b"half")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(step11, "write_checkpoint", full)
    monkeypatch.chdir(trained_repo)
    code = main(["train", "small.txt", "--reference", "--epochs", "1", *TINY])
    out = capsys.readouterr()
    assert code == 1 and "epoch 1 could not be saved (No space left on device)" in out.err, out.err
    assert "checkpoint/ still holds the checkpoint it had" in out.err
    assert snapshot(trained_repo / "checkpoint") == before
    assert [p.name for p in trained_repo.iterdir() if p.name.startswith((".checkpoint", "checkpoint."))] == [], \
        "no half-written folder is left beside it"


# chat's commands ----------------------------------------------------------------------------------------------

def test_chat_commands_with_extreme_values_each_get_a_sentence(trained_repo):
    lines = ["/seed 1e20", "/seed 99999999999999999999", "/temp 1e-300", "/temp nan", "/temp -1", "/topp 1e-300",
             "/topp 2", "/topk 1e9", "/len 1e12", "/len 8", "The cat"]
    out = run_course(trained_repo, "chat", "--seed", "1", input_text="\n".join(lines) + "\n", timeout=90)
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout + out.stderr
    assert TRACEBACK not in text and "Warning" not in text, text
    for said in ["the seed must be a whole number from 0 to", "draws the likeliest token every time, as 0 does",
                 "the temperature must be 0 or more", "top-p must be above 0 and at most 1",
                 "is more than the model's", "the length must be from 1 to", "The cat"]:
        assert said in text, f"{said!r} not in:\n{text}"


def test_chat_says_a_line_that_is_not_utf8_and_goes_on(trained_repo):
    proc = subprocess.run([sys.executable, "course.py", "chat", "--len", "5"], cwd=trained_repo, env=course_env(),
                          input=b"\xff\xfe caf\xe9\nThe\n", capture_output=True, timeout=90)
    out, err = proc.stdout.decode(), proc.stderr.decode()
    assert proc.returncode == 0 and TRACEBACK not in out + err, out + err
    assert "that line is not UTF-8 text" in out and "The" in out.split("not UTF-8 text", 1)[1], out
