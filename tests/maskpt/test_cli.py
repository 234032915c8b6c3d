import importlib
import subprocess
import sys

import pytest

from maskpt.cli import COMMANDS, main

# The heavy packages `maskpt COMMAND --help` may load (each 0.1-1.6 s to import): the reason the
# files named in pyproject.toml keep some imports inside functions (ruff PLC0415 exemptions).
HEAVY = ("torch", "transformers", "deepspeed", "ray", "spacy", "higher", "webdataset", "wandb")
HEAVY += ("matplotlib", "scipy", "pyarrow", "fsspec", "numpy")
HELP_LOADS = {
    "mask": {"numpy"},
    "policies": {"numpy"},
    "preprocess": {"numpy", "pyarrow"},
    "pretrain": {"numpy", "pyarrow", "torch"},  # the config's defaults come from torch
    "finetune": {"numpy", "torch"},
    "report": {"numpy"},
    "study": {"numpy"},
    "world": {"numpy"},
    "demo": {"numpy"},
}


def test_help_lists_subcommands(capsys):
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    for cmd in ("demo", "mask", "policies", "tokenizer", "pretrain", "finetune", "preprocess"):
        assert f"  {cmd} " in out
    assert main(["nope"]) == 2
    assert "unknown command 'nope'" in capsys.readouterr().err
    for target, _ in COMMANDS.values():  # each entry names an existing function
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target


@pytest.mark.parametrize(
    ("command", "field_doc"),
    [
        (["pretrain"], "optim.lr = 0.0001"),
        (["finetune"], "Label smoothing of the token cross-entropy."),
        (["preprocess"], "docs_per_unit = 500"),
        (["train-policy", "supervised"], "max_span_length = 10"),
        (["train-policy", "meta"], "outer_loss = 'after'"),
        (["sweep"], "finetune = {}"),
        (["world"], "background_people = 120"),
        (["demo"], "world.people = 120"),
        (["mask"], "policy_config = {}"),
    ],
)
def test_every_job_lists_its_config_fields_in_help(command, field_doc, capsys):
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "--config FILE" in out and "KEY=VALUE" in out and field_doc in out


def test_bad_values_are_one_line_errors(tmp_path, capsys):
    rc = main(["finetune", "--task", "zsre", "lr=-1", "--data-dir", str(tmp_path)])
    assert rc == 2
    err = capsys.readouterr().err
    assert err.startswith("maskpt finetune: error:") and "lr must be > 0" in err
    assert main(["pretrain", "data.shards=[x]", "optim.lr=-1", "model.tokenizer=t"]) == 2
    assert "optim.lr must be > 0" in capsys.readouterr().err
    assert main(["--version"]) == 0


def test_preprocess_warns_that_a_memory_output_dies_with_the_process(
    tmp_path, capsys, tokenizer_dir
):
    """memory:// was accepted silently, and the shards were gone when the command
    ended; in one process (tests/preprocess/test_memory_round_trip.py) it is useful."""
    inp = tmp_path / "in.jsonl"
    inp.write_text('{"id": "a", "text": "A line of text."}\n')
    args = [
        "preprocess",
        f"inputs=[{inp}]",
        f"output=memory://{tmp_path.name}/shards",
        "policy=rand_v1",
        f"tokenizer={tokenizer_dir}",
        "--no-ray",
        "--quiet",
    ]
    assert main(args) == 0
    assert "memory:// lives in this process only" in capsys.readouterr().err


def test_help_loads_no_heavy_package_beyond_its_own():
    """Each command's --help runs in a fork of one interpreter that has imported only
    maskpt.cli, so no command's imports count for another's."""
    script = (
        "import os, sys\n"
        "from maskpt.cli import main\n"
        f"heavy = {HEAVY!r}\n"
        "for name in sys.argv[1:]:\n"
        "    r, w = os.pipe()\n"
        "    if os.fork() == 0:\n"
        "        os.close(r)\n"
        "        sys.stdout = open(os.devnull, 'w')\n"
        "        try:\n"
        "            main([name, '--help'])\n"
        "        except SystemExit:\n"
        "            pass\n"
        "        os.write(w, ' '.join(m for m in heavy if m in sys.modules).encode())\n"
        "        os._exit(0)\n"
        "    os.close(w)\n"
        "    with os.fdopen(r) as f:\n"
        "        print(name + ':' + f.read())\n"
        "    os.wait()\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, *COMMANDS],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout
    loaded = dict(line.split(":", 1) for line in out.splitlines())
    assert set(loaded) == set(COMMANDS)
    for name in COMMANDS:
        assert set(loaded[name].split()) == HELP_LOADS.get(name, set()), name
