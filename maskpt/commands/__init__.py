"""The commands behind `maskpt` (see `maskpt/cli.py`): each module holds a
few related commands as `main_<command>(argv)` functions. Top floor: nothing
below imports them."""
