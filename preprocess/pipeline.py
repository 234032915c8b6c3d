"""`maskpt preprocess`: documents -> masked shards on Ray.

The driver streams the inputs as units (`preprocess.units`) and hands them to
a pool of Ray actors, at most `max_in_flight` per actor, so memory stays flat.
Each actor loads the tokenizer and the policy once (for `ssm_v1`: spaCy's NER,
run with `nlp.pipe` over a unit's segments), processes whole units, and writes
each unit's shards and then its `.done` marker. Policies with `wants_gpu`
get GPU actors (`gpus_per_worker` each) when the cluster has GPUs, CPU actors
otherwise; the output does not depend on which.

Why Ray actors rather than a Ray Data `map_batches` chain: the unit is the
unit of exactly-once output (atomic shard files, then a marker), and Ray Data
re-blocks rows between stages; an actor pool keeps units whole, loads models
once per actor, and streams from inputs that cannot be split (bz2 dumps).

Without `address` an embedded local Ray is started (and stopped); with
`address="auto"` the driver joins a running cluster. The output folder may
be any fsspec URL (`s3://`, `gs://`, `file://`, a local path): every worker
writes its units there, so on a cluster it must be storage all nodes share;
a scheme without an installed filesystem, or a folder that cannot be
written, is refused before any work starts.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path

from maskpt.core.errors import InputNotFound
from maskpt.core.storage import Storage
from maskpt.core.tokenizer import TokenizerInfo, load_tokenizer, tokenizer_fingerprint
from preprocess.config import PreprocessConfig
from preprocess.index import INDEX, InputRef, PolicyInfo, ShardIndex, TokenizerRef
from preprocess.manifest import claim_folder, finalize, planned_moves
from preprocess.units import Unit, UnitMarker, iter_units, process_unit, read_marker


class UnitFailed(RuntimeError):
    """A worker raised while processing a unit; finished units are kept."""


class MaskWorker:
    """One Ray actor: loads tokenizer and policy once, processes units."""

    def __init__(
        self,
        tokenizer: str,
        policy,
        seed: int,
        max_length: int,
        out: str,
        formats: list[str],
        shard_size: int,
    ):
        import ray

        self.tok = load_tokenizer(tokenizer)
        self.policy = policy
        self.device = "cuda" if ray.get_gpu_ids() else "cpu"
        policy.setup(self.device)
        self.args = (seed, max_length, Storage(out), formats, shard_size)

    def process(self, unit: Unit) -> UnitMarker:
        return process_unit(unit, self.tok, self.policy, *self.args)


def make_spec(cfg: PreprocessConfig, tok, policy) -> ShardIndex:
    """The index of the folder this run will write, without counts and shards."""
    from maskpt.core.config import to_dict

    return ShardIndex(
        policy=PolicyInfo(policy.name, to_dict(policy.config), policy.target_format,
                          getattr(policy, "fingerprint", None) or ""),
        seed=cfg.seed,
        max_length=cfg.max_length,
        tokenizer=TokenizerRef(cfg.tokenizer, len(tok), tokenizer_fingerprint(tok)),
        inputs=tuple(InputRef(str(Path(p)), Path(p).stat().st_size) for p in cfg.inputs),
        formats=tuple(cfg.formats),
        shard_size=cfg.shard_size,
        docs_per_unit=cfg.docs_per_unit,
    )  # fmt: skip


def actor_options(policy, resources: dict, gpus_per_worker: float) -> dict:
    """Ray options for one worker actor: a GPU for policies that want one when
    the cluster has GPUs, else one CPU."""
    if getattr(policy, "wants_gpu", False) and resources.get("GPU", 0) > 0:
        return {"num_cpus": 1, "num_gpus": gpus_per_worker}
    return {"num_cpus": 1, "num_gpus": 0}


def run_preprocess(
    cfg: PreprocessConfig, policy=None, progress: bool = True, use_ray: bool = True
) -> ShardIndex:
    """Run (or resume) a preprocessing job; return the index. `policy` may be
    given pre-built (tests, custom policies); by default it is created from
    the registry by `cfg.policy` and `cfg.policy_config`. `use_ray=False`
    processes the same units one after another in this process (small
    inputs, debugging): the output is the same."""
    import policies as registry

    for p in cfg.inputs:
        if not Path(p).exists():
            raise InputNotFound(f"input {p} does not exist")
    out = Storage(cfg.output)  # an unknown scheme or an unwritable folder fails here, first
    if not out.exists(INDEX):
        out.check_writable()
    tok = load_tokenizer(cfg.tokenizer)
    if policy is None:
        policy = registry.create(
            cfg.policy,
            TokenizerInfo.from_tokenizer(tok, cfg.tokenizer, fingerprint=True),
            cfg.policy_config,
        )
    spec = make_spec(cfg, tok, policy)
    done = claim_folder(out, spec)
    if done is not None:
        if progress:
            print(f"{cfg.output} is already complete ({INDEX} matches this run); nothing to do")
        return done

    if use_ray:
        markers = _run_on_ray(cfg, policy, spec, out, progress)
    else:
        policy.setup("cpu")
        moved = planned_moves(out)
        markers = [
            read_marker(out, unit.id, moved)
            or process_unit(
                unit, tok, policy, cfg.seed, cfg.max_length, out, cfg.formats, cfg.shard_size
            )
            for unit in iter_units(cfg.inputs, cfg.docs_per_unit)
        ]
    return finalize(out, spec, markers)


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None):
    """Join `address` or start an embedded local Ray for the block, unless one is
    already running; stop it afterwards only if it was started here."""
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=address, num_cpus=num_cpus, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)  # fmt: skip
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _run_on_ray(cfg, policy, spec, out: Storage, progress: bool) -> list[UnitMarker]:
    with ray_session(cfg.address):
        return _run_units(cfg, policy, spec, out, progress)


def _run_units(cfg, policy, spec, out: Storage, progress: bool) -> list[UnitMarker]:
    import ray
    from tqdm import tqdm

    resources = ray.cluster_resources()
    n_workers = cfg.workers or max(1, int(resources.get("CPU", 1)))
    opts = actor_options(policy, resources, cfg.gpus_per_worker)
    remote_cls = ray.remote(MaskWorker).options(**opts)
    args = (cfg.tokenizer, policy, cfg.seed, cfg.max_length, out.root_url, cfg.formats,
            cfg.shard_size)  # fmt: skip
    actors = [remote_cls.remote(*args) for _ in range(n_workers)]
    idle = list(actors) * cfg.max_in_flight
    pending: dict = {}  # ObjectRef -> (actor, unit id)
    markers: list[UnitMarker] = []
    bar = tqdm(
        desc=f"preprocess {spec.policy.name}",
        unit=" docs",
        disable=not progress,
        dynamic_ncols=True,
    )
    start = time.monotonic()
    totals = {"segments": 0, "tokens": 0, "skipped": 0}

    def collect(ref) -> None:
        actor, unit_id = pending.pop(ref)
        idle.append(actor)
        try:
            marker = ray.get(ref)
        except Exception as exc:  # a worker raised: stop, keeping finished units
            raise UnitFailed(
                f"unit {unit_id} failed in a worker: {exc}\n"
                f"Finished units are kept in {out.root_url}; rerun the same command to resume."
            ) from exc
        record(marker)

    def record(marker: UnitMarker) -> None:
        markers.append(marker)
        c = marker.counts
        totals["segments"] += c.segments_written
        totals["tokens"] += c.tokens_written
        totals["skipped"] += sum(c.skipped_documents.values())
        bar.update(c.documents_read)
        secs = max(1e-9, time.monotonic() - start)
        bar.set_postfix(
            seg_s=f"{totals['segments'] / secs:.0f}",
            tok_s=f"{totals['tokens'] / secs:.0f}",
            skipped=totals["skipped"],
        )

    resumed = 0
    moved = planned_moves(out)
    try:
        for unit in iter_units(cfg.inputs, cfg.docs_per_unit):
            marker = read_marker(out, unit.id, moved)
            if marker is not None:
                resumed += 1
                record(marker)
                continue
            while not idle:
                ready, _ = ray.wait(list(pending), num_returns=1)
                collect(ready[0])
            actor = idle.pop()
            pending[actor.process.remote(unit)] = (actor, unit.id)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            collect(ready[0])
    finally:
        bar.close()
        for a in actors:
            ray.kill(a)
    if progress and resumed:
        print(f"resumed: {resumed} finished units skipped")
    return markers
