"""`maskpt study`: a study (masking policies x downstream tasks x seeds) as a
graph of stages, each an existing maskpt command, run and resumed as a whole.

    spec.py    the study config (configs/study/*.yaml)
    plan.py    the config as stages, each stage's own config checked
    cost.py    GPU-hours from measured throughputs (--dry-run)
    graph.py   stages, their order, and their state on disk (OUT/_study)
    runner.py  running the stages, here or as Ray tasks
    status.py  `maskpt study status OUT`
"""
