"""`maskpt preprocess`: documents -> masked shards on Ray.

The driver plans the inputs as units (`preprocess/plan.py`: byte ranges of a
multistream dump from its index, of a JSONL file at line ends, Parquet row
groups) without parsing them, and hands the units to a pool of Ray actors,
at most `max_in_flight` per actor; each actor reads its own units, so the
driver is not the ceiling however many nodes there are. Inputs that cannot
be split (a bz2 dump without its index, compressed JSONL) are streamed by
the driver as before, with a warning.
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

import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from tqdm import tqdm

import policies as registry
from maskpt.core.config import to_dict
from maskpt.core.errors import InputNotFound, UserError
from maskpt.core.interrupts import Interrupted, terminate_as_interrupt
from maskpt.core.io import sha256_stream
from maskpt.core.storage import Storage, input_path, metered, missing_input
from maskpt.core.tokenizer import TokenizerInfo, load_tokenizer, tokenizer_fingerprint
from maskpt.core.worker_tokenizer import TokenizerFile, WorkerTokenizer
from preprocess.config import PreprocessConfig
from preprocess.index import INDEX, PROGRESS, InputRef, PolicyInfo, ShardIndex, TokenizerRef
from preprocess.manifest import claim_folder, finalize, planned_moves, store_tokenizer
from preprocess.plan import Unit, plan_units, splittable
from preprocess.ray_local import start_watchdog, stop_watchdog
from preprocess.units import UnitMarker, UnitSettings, process_unit, read_marker, tune_gc


class UnitFailed(RuntimeError):
    """A worker raised while processing a unit; finished units are kept."""


class DriverGone(RuntimeError):
    """The driver of this run is no longer running: write nothing more."""


class MaskWorker:
    """One Ray actor: sets up the policy once (the tokenizer comes as a
    `WorkerTokenizer`, or a `TokenizerFile` naming its definition in the
    output folder: no transformers or torch in a worker unless its policy
    needs torch), processes units. When
    the driver runs on the same machine (an embedded local Ray) and has died,
    the worker writes nothing more."""

    def __init__(
        self,
        tokenizer: WorkerTokenizer | TokenizerFile,
        policy,
        settings: UnitSettings,
        out: str,
        driver: tuple[str, int] = ("", 0),
    ):
        import ray

        self.tok = tokenizer.load() if isinstance(tokenizer, TokenizerFile) else tokenizer
        self.policy = policy
        self.device = "cuda" if ray.get_gpu_ids() else "cpu"
        policy.setup(self.device)
        self.settings, self.out = settings, Storage(out)
        self.driver_pid = driver[1] if driver[0] == socket.gethostname() else 0
        tune_gc()

    def _check_driver(self) -> None:
        if self.driver_pid:
            try:
                os.kill(self.driver_pid, 0)
            except ProcessLookupError:
                raise DriverGone(f"driver process {self.driver_pid} is gone") from None

    def process(self, unit: Unit) -> UnitMarker:
        self._check_driver()
        return process_unit(
            unit, self.tok, self.policy, self.settings, self.out, guard=self._check_driver
        )


def make_spec(cfg: PreprocessConfig, tok, policy) -> ShardIndex:
    """The index of the folder this run will write, without counts and shards.
    Inputs are identified by the sha256 of their content (streamed: about a
    second per GB, see BENCHMARKS.md), so an input changed since a run began
    is refused on resume whatever its size and path. An input on remote
    storage is read whole for this by the driver, once per run."""

    local = Path(cfg.tokenizer)  # a folder is recorded by its name (the copy is in the output)
    tok_name = local.resolve().name if local.is_dir() else cfg.tokenizer
    paths = [input_path(p) for p in cfg.inputs]
    inputs = []
    for p in paths:
        if isinstance(p, Path) and p.is_dir():
            raise UserError(f"input {p} is a folder; give the files in it")
        with p.open("rb") as f:
            where = p.name if isinstance(p, Path) else str(p)
            inputs.append(InputRef(where, p.stat().st_size, sha256_stream(f)))
    return ShardIndex(
        policy=PolicyInfo(
            policy.name,
            to_dict(policy.config),
            policy.target_format,
            getattr(policy, "fingerprint", None) or "",
        ),
        seed=cfg.seed,
        max_length=cfg.max_length,
        tokenizer=TokenizerRef(tok_name, len(tok), tokenizer_fingerprint(tok)),
        inputs=tuple(inputs),
        formats=tuple(cfg.formats),
        shard_size=cfg.shard_size,
        docs_per_unit=cfg.docs_per_unit,
        annotations=tuple(sorted(policy.provides)),
    )


def actor_options(policy, resources: dict, gpus_per_worker: float) -> dict:
    """Ray options for one worker actor: a GPU for policies that want one when
    the cluster has GPUs, else one CPU. An actor whose node dies is restarted
    elsewhere and its units are retried (units are idempotent: whole-or-nothing
    files, the same bytes every time), so a run outlives the nodes a spot
    market takes."""
    restart = {"max_restarts": -1, "max_task_retries": -1}
    if getattr(policy, "wants_gpu", False) and resources.get("GPU", 0) > 0:
        return {"num_cpus": 1, "num_gpus": gpus_per_worker, **restart}
    return {"num_cpus": 1, "num_gpus": 0, **restart}


def run_preprocess(
    cfg: PreprocessConfig, policy=None, progress: bool = True, use_ray: bool = True
) -> ShardIndex:
    """Run (or resume) a preprocessing job; return the index. `policy` may be
    given pre-built (tests, custom policies); by default it is created from
    the registry by `cfg.policy` and `cfg.policy_config`. `use_ray=False`
    processes the same units one after another in this process (small
    inputs, debugging): the output is the same."""

    for p in cfg.inputs:
        if not input_path(p).exists():
            raise InputNotFound(missing_input(p))
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
        markers = _run_on_ray(cfg, WorkerTokenizer.from_tokenizer(tok), policy, spec, out, progress)
    else:
        markers = _run_here(cfg, tok, policy, out, progress)
    store_tokenizer(out, tok)
    return finalize(out, spec, markers)


def _run_here(
    cfg: PreprocessConfig, tok, policy, out: Storage, progress: bool = False
) -> list[UnitMarker]:
    """The units one after another in this process (`--no-ray`)."""
    policy.setup("cpu")
    tune_gc()
    moved = planned_moves(out)
    units, total = planned(cfg)
    prog = _Progress(policy.name, progress, total)
    settings = UnitSettings.of(cfg)
    try:
        with _reading(cfg, progress):
            for unit in units:
                prog.record(
                    read_marker(out, unit.id, moved)
                    or process_unit(unit, tok, policy, settings, out)
                )
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted with {len(prog.markers)} units finished; they are kept in "
            f"{out.root_url}: rerun the same command to resume"
        ) from None
    finally:
        prog.bar.close()
    return prog.markers


@contextmanager
def _reading(cfg: PreprocessConfig, enabled: bool):
    """A second progress bar, in bytes against the files' sizes, over the
    inputs the driver streams (they cannot be counted in records ahead of
    time); their reads are metered while the block runs."""

    streamed = [p for p in map(input_path, cfg.inputs) if splittable(p) == "records"]
    if not streamed or not enabled:
        yield
        return

    total = sum(p.stat().st_size for p in streamed)
    with (
        tqdm(
            desc="reading (driver)",
            total=total,
            unit="B",
            unit_scale=True,
            position=1,
            dynamic_ncols=True,
        ) as bar,
        metered(bar.update, streamed),
    ):
        yield


@contextmanager
def ray_session(address: str | None = None, num_cpus: int | None = None):
    """Ray for the block, unless this process has one already: `address` as
    `ray.init` takes it (None: the cluster in RAY_ADDRESS or the one `ray start`
    last started on this machine, else a new embedded local Ray; "local": always a
    new embedded one, sized by `num_cpus`; "auto": a running cluster or an
    error). A Ray started here is stopped afterwards (and, if this driver is
    killed instead, by a watchdog)."""
    import ray

    started = not ray.is_initialized()
    watchdog = None
    if started:
        ray.init(
            address=address,
            num_cpus=num_cpus,
            include_dashboard=False,
            log_to_driver=False,
            configure_logging=False,
        )
        terminate_as_interrupt()  # Ray's core worker installs its own SIGTERM handler
        if address in (None, "local"):
            watchdog = start_watchdog()  # nothing to watch when it joined a cluster
    try:
        yield
    finally:
        if started:
            ray.shutdown()
            stop_watchdog(watchdog)


def planned(cfg: PreprocessConfig):
    """The units and, when every input can be cut from metadata alone, the
    number of records they hold (the progress bar's total). Inputs the driver
    has to stream stay a lazy iterator, with no total."""

    kinds = {splittable(input_path(p)) for p in cfg.inputs}
    if "records" in kinds:
        return plan_units(cfg.inputs, cfg.docs_per_unit), None
    units = list(plan_units(cfg.inputs, cfg.docs_per_unit))
    known = "file" not in kinds  # a text file's documents are counted by reading it
    return units, sum(u.size for u in units) if known else None


def _run_on_ray(cfg, tok, policy, spec, out: Storage, progress: bool) -> list[UnitMarker]:
    with ray_session(cfg.address):
        return _run_units(cfg, tok, policy, spec, out, progress)


class _Progress:
    """The progress bar and its rates over finished units."""

    def __init__(self, name: str, enabled: bool, total: int | None = None):
        self.bar = tqdm(
            desc=f"preprocess {name}",
            unit=" docs",
            disable=not enabled,
            total=total,
            dynamic_ncols=True,
        )
        self.start = time.monotonic()
        self.totals = {"segments": 0, "tokens": 0, "skipped": 0}
        self.markers: list[UnitMarker] = []

    def record(self, marker: UnitMarker) -> None:
        self.markers.append(marker)
        c, t = marker.counts, self.totals
        t["segments"] += c.segments_written
        t["tokens"] += c.tokens_written
        t["skipped"] += sum(c.skipped_documents.values())
        self.bar.update(c.documents_read)
        secs = max(1e-9, time.monotonic() - self.start)
        self.bar.set_postfix(
            seg_s=f"{t['segments'] / secs:.0f}",
            tok_s=f"{t['tokens'] / secs:.0f}",
            skipped=t["skipped"],
        )


class _Pool:
    """Worker actors with `slots` units in flight each; `submit` blocks until
    a slot is free and returns the markers of the units that finished."""

    def __init__(self, actors, slots: int, out: Storage):
        self.actors, self.idle, self.out = actors, list(actors) * slots, out
        self.pending: dict = {}  # ObjectRef -> (actor, unit id)

    def _collect(self) -> UnitMarker:
        import ray

        ready, _ = ray.wait(list(self.pending), num_returns=1)
        actor, unit_id = self.pending.pop(ready[0])
        self.idle.append(actor)
        try:
            return ray.get(ready[0])
        except Exception as exc:  # a worker raised: stop, keeping finished units
            raise UnitFailed(
                f"unit {unit_id} failed in a worker: {exc}\n"
                f"Finished units are kept in {self.out.root_url}; rerun the same command to "
                "resume."
            ) from exc

    def submit(self, unit: Unit) -> list[UnitMarker]:
        done = []
        while not self.idle:
            done.append(self._collect())
        actor = self.idle.pop()
        self.pending[actor.process.remote(unit)] = (actor, unit.id)
        return done

    def drain(self) -> list[UnitMarker]:
        return [self._collect() for _ in range(len(self.pending))]

    def close(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a, no_restart=True)


def _run_units(cfg, tok, policy, spec, out: Storage, progress: bool) -> list[UnitMarker]:
    import ray

    resources = ray.cluster_resources()
    n_workers = cfg.workers or max(1, int(resources.get("CPU", 1)))
    remote_cls = ray.remote(MaskWorker).options(
        **actor_options(policy, resources, cfg.gpus_per_worker)
    )
    # the tokenizer's definition (MBs for a 50k vocabulary) goes to the output folder once,
    # which every worker reads (not to the object store: see maskpt/core/worker_tokenizer.py)
    args = (
        tok.to_file(out, f"{PROGRESS}/tokenizer.json"),
        policy,
        UnitSettings.of(cfg),
        out.root_url,
        (socket.gethostname(), os.getpid()),
    )
    pool = _Pool([remote_cls.remote(*args) for _ in range(n_workers)], cfg.max_in_flight, out)
    units, total = planned(cfg)
    prog = _Progress(spec.policy.name, progress, total)
    resumed = 0
    moved = planned_moves(out)
    try:
        with _reading(cfg, progress):
            for unit in units:
                marker = read_marker(out, unit.id, moved)
                if marker is not None:
                    resumed += 1
                    prog.record(marker)
                    continue
                for m in pool.submit(unit):
                    prog.record(m)
        for m in pool.drain():
            prog.record(m)
    except KeyboardInterrupt:
        raise Interrupted(
            f"interrupted with {len(prog.markers)} units finished; they are kept in "
            f"{out.root_url}: rerun the same command to resume"
        ) from None
    finally:
        prog.bar.close()
        pool.close()
    if progress and resumed:
        print(f"resumed: {resumed} finished units skipped")
    return prog.markers
