"""User errors become one line and exit 2; bugs keep their traceback."""

import pytest

from maskpt.core.errors import InputNotFound, UserError, exit_on_user_error


def test_user_errors_are_one_line(capsys):
    def bad():
        raise InputNotFound("input x.jsonl does not exist")

    assert exit_on_user_error("maskpt thing", bad) == 2
    assert capsys.readouterr().err == "maskpt thing: error: input x.jsonl does not exist\n"
    assert isinstance(InputNotFound("x"), FileNotFoundError | UserError)


def test_bugs_keep_their_traceback():
    def bug():
        return {}["missing"]

    with pytest.raises(KeyError):
        exit_on_user_error("maskpt thing", bug)
    assert exit_on_user_error("maskpt thing", lambda: None) == 0


def test_a_message_that_already_names_the_command_is_not_prefixed_twice(capsys):
    def run():
        raise UserError("maskpt preprocess: error: input x: no such file")

    assert exit_on_user_error("maskpt preprocess", run) == 2
    assert capsys.readouterr().err == "maskpt preprocess: error: input x: no such file\n"


def test_a_full_disk_is_one_line_naming_the_file(capsys):
    """ENOSPC (here wrapped, as Ray and torch's writers wrap it) is an
    environment fault: one line and exit 2, not a traceback."""
    import errno

    def write():
        try:
            raise OSError(errno.ENOSPC, "No space left on device", "/data/out/shard-3.arrow")
        except OSError as exc:
            raise RuntimeError("unexpected pos 4096 vs 1024") from exc

    def full():
        raise OSError(errno.ENOSPC, "No space left on device", "/data/out/shard-3.arrow")

    assert exit_on_user_error("maskpt preprocess", full) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no space left on the disk writing /data/out/shard-3" in err
    from maskpt.core.errors import disk_full

    with pytest.raises(RuntimeError):
        write()
    try:
        write()
    except RuntimeError as exc:
        assert disk_full(exc)
    assert not disk_full(OSError(errno.EACCES, "Permission denied"))
