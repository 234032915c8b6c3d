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
