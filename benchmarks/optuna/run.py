"""aios-optuna benchmarks on the digits: TPE vs random, pruning on vs off, the tuner's overhead, 2 workers vs 1.

Run from the repository root with the project's venv (aios-optuna, aios-torch, aios-data installed)::

    .venv/bin/python benchmarks/optuna/run.py            # writes benchmarks/optuna/RESULTS.md

Every AIOS run goes through the kernel's runner in this process (as ``aios run`` does),
so torch is imported once. Variants alternate (A, B, A, B, ...) so load on the shared
machine hits them alike; medians are reported. Tests never assert these figures.

(a) TPE against random search at an equal budget, several seeds: the best validation
    loss and the test accuracy of the model retrained with the best parameters.
(b) Pruning (median) against none at an equal budget: epochs trained, the tune phase's
    wall time, the best validation loss.
(c) Overhead: the tune phase against a plain Optuna script (``study.optimize``) training
    the same MLPs with a plain torch loop on the same splits, the same random-sampler
    seed (so both try the same parameters), the same SQLite storage. Target <= 1.10.
(d) Two worker processes against one on one SQLite study: trials per minute.
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ[_variable] = "1"

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import yaml  # noqa: E402

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))  # benchmarks/run.py: machine(), shared by the benchmark scripts
from run import machine as describe_machine  # noqa: E402
SPACE = {
    "model.hidden_units": [[16], [64], [128], [64, 32]],
    "trainer.learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
    "trainer.batch_size": [32, 64, 128],
}
EPOCHS = 10
WORKERS_SPACE = {"model.hidden_units": [[256, 256], [512, 256]],
                 "trainer.learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}
WORKERS_EPOCHS = 20
"""(d) uses wider MLPs and more epochs: trials of about a second, where a second process has work to share."""


def _say(text: str) -> None:
    print(text, flush=True)


def _stack(tuner: dict[str, Any], seed: int, epochs: int = EPOCHS) -> str:
    tuner = {"space": SPACE, **tuner}
    return yaml.safe_dump({
        "name": "bench-optuna", "seed": seed, "threads": 1,
        "data": {"plugin": "sklearn", "dataset": "digits", "preprocess": {"scaling": "standardize"}},
        "model": {"framework": "torch", "architecture": "mlp", "hidden_units": [64]},
        "trainer": {"plugin": "torch", "epochs": epochs, "batch_size": 64},
        "tuner": {"plugin": "optuna", **tuner},
        "evaluate": {"batch_sizes": [1], "latency_runs": 5},
        "monitors": [{"plugin": "jsonl"}],
    }, sort_keys=False)


def aios_run(folder: Path, tuner: dict[str, Any], seed: int, epochs: int = EPOCHS) -> dict[str, Any]:
    """One run of the stack through the kernel's runner; its state.json."""
    from aios_core.runner import start_run
    from aios_core.stack import load_stack

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "stack.yaml"
    path.write_text(_stack(tuner, seed, epochs))
    stack_run = start_run(load_stack(path), folder / "runs")
    stack_run.execute()
    return json.loads((stack_run.dir.path / "state.json").read_text())


def plain_optuna(folder: Path, trials: int, seed: int, dataset: Any, wal: bool = False,
                 space: dict[str, Any] | None = None, epochs: int = EPOCHS) -> float:
    """The hand-written script: study.optimize over the same space, a plain torch loop; its wall time (s).

    With ``wal``, its SQLite file is opened as aios-optuna opens its own (write-ahead log, synchronous=NORMAL),
    which separates the runner's overhead from the storage settings.
    """
    import numpy as np
    import optuna
    import torch
    from torch import nn

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    torch.set_num_threads(1)
    x_train, y_train = torch.from_numpy(dataset.x_train), torch.from_numpy(dataset.y_train)
    x_val, y_val = torch.from_numpy(dataset.x_val), torch.from_numpy(dataset.y_val)
    space = space or SPACE
    widths = [json.dumps(w) for w in space["model.hidden_units"]]
    rates = space["trainer.learning_rate"]

    def objective(trial: optuna.Trial) -> float:  # suggests in the space's order, as the tuner asks
        hidden = json.loads(trial.suggest_categorical("model.hidden_units", widths))
        lr = trial.suggest_float("trainer.learning_rate", rates["low"], rates["high"], log=True)
        batch = (trial.suggest_categorical("trainer.batch_size", space["trainer.batch_size"])
                 if "trainer.batch_size" in space else 64)
        torch.manual_seed(seed)
        layers: list[nn.Module] = []
        width = x_train.shape[1]
        for units in hidden:
            layers += [nn.Linear(width, units), nn.ReLU()]
            width = units
        model = nn.Sequential(*layers, nn.Linear(width, 10))
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = nn.CrossEntropyLoss()
        generator = torch.Generator().manual_seed(seed)
        best = float("inf")
        for _ in range(epochs):
            model.train()
            for rows in torch.randperm(len(y_train), generator=generator).split(batch):
                optimizer.zero_grad()
                loss_fn(model(x_train[rows]), y_train[rows]).backward()
                optimizer.step()
            model.eval()
            with torch.no_grad():
                best = min(best, float(loss_fn(model(x_val), y_val)))
        return best

    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    url = f"sqlite:///{folder / 'plain.db'}"
    if wal:
        from aios_optuna._study import open_storage

        url = open_storage(url)
    study = optuna.create_study(storage=url, study_name="plain",
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(objective, n_trials=trials)
    assert np.isfinite(study.best_value)
    return time.perf_counter() - started


def _dataset(seed: int) -> Any:
    """The stack's splits, loaded by the stack's own datastore (the script trains on the same rows)."""
    from aios_core.context import RunContext
    from aios_core.plugins import new_plugin_manager, register
    from aios_core.stack import load_stack

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "stack.yaml"
        path.write_text(_stack({"trials": 1}, seed))
        stack = load_stack(path)
    pm = new_plugin_manager()
    register(pm, stack.components["data"], "data")
    return pm.hook.aios_load_dataset(run=RunContext(name="bench", seed=seed, threads=1, dir=Path(folder),
                                                    stack=stack.resolved, hook=pm.hook))


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--trials", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds of (c) and (d)")
    parser.add_argument("--parts", default="abcd", help="which parts to run: (a) and (b) together, (c), (d)")
    args = parser.parse_args()
    started = time.perf_counter()
    machine = describe_machine("optuna", "torch")
    seeds = list(range(1, args.seeds + 1))
    work = Path(tempfile.mkdtemp(prefix="aios-bench-optuna-"))
    results: dict[str, Any] = {"machine": machine, "trials": args.trials, "epochs": EPOCHS, "space": SPACE}

    aios_run(work / "first", {"trials": 2, "sampler": "random", "pruner": "none"}, seeds[0])  # imports torch
    # (a) TPE vs random, (b) pruning on vs off: alternating per seed
    runs: dict[str, list[dict[str, Any]]] = {"tpe": [], "random": [], "tpe+median": [], "tpe+hyperband": []}
    for seed in seeds if {"a", "b"} & set(args.parts) else []:
        for name, tuner in (("tpe", {"sampler": "tpe", "pruner": "none"}),
                            ("random", {"sampler": "random", "pruner": "none"}),
                            ("tpe+median", {"sampler": "tpe", "pruner": "median"}),
                            ("tpe+hyperband", {"sampler": "tpe", "pruner": "hyperband"})):
            state = aios_run(work / f"{name}-{seed}", {"trials": args.trials, **tuner}, seed)
            tune = state["phases"]["tune"]
            runs[name].append({"seed": seed, "best_val_loss": tune["best_value"],
                               "test_accuracy": state["phases"]["evaluate"]["test_accuracy"],
                               "epochs": tune["epochs_trained"], "seconds": tune["seconds"],
                               "report_seconds": tune.get("report_seconds", 0.0),
                               "pruned": tune["counts"].get("pruned", 0)})
            _say(f"{name} seed {seed}: {runs[name][-1]}")
    results["samplers_and_pruning"] = runs

    # (c) overhead against a plain Optuna script, interleaved; (d) workers, interleaved
    dataset = _dataset(seeds[0])
    aios_run(work / "warm-up", {"trials": 2, "sampler": "random", "pruner": "none"}, seeds[0])  # imports, caches
    plain_optuna(work / "warm-up-plain", 2, seeds[0], dataset)
    overhead: list[dict[str, float]] = []
    workers: list[dict[str, float]] = []
    for round_ in range(args.rounds):
        for size, space, epochs in (("small", SPACE, EPOCHS), ("wide", WORKERS_SPACE, WORKERS_EPOCHS)):
            if "c" not in args.parts:
                break
            state = aios_run(work / f"aios-{size}-{round_}", {"trials": args.trials, "sampler": "random",
                                                              "pruner": "none", "space": space}, seeds[0], epochs)
            plain = plain_optuna(work / f"plain-{size}-{round_}", args.trials, seeds[0], dataset, space=space,
                                 epochs=epochs)
            plain_wal = plain_optuna(work / f"plain-wal-{size}-{round_}", args.trials, seeds[0], dataset, wal=True,
                                     space=space, epochs=epochs)
            tune = state["phases"]["tune"]
            overhead.append({"size": size, "aios_tune_s": tune["seconds"], "report_s": tune.get("report_seconds", 0.0),
                             "plain_s": plain, "plain_wal_s": plain_wal})
            _say(f"overhead round {round_}: {overhead[-1]}")
        for count in (1, 2) if "d" in args.parts else ():
            state = aios_run(work / f"workers{count}-{round_}", {"trials": args.trials, "sampler": "random",
                                                                "pruner": "none", "n_workers": count,
                                                                "space": WORKERS_SPACE}, seeds[0], WORKERS_EPOCHS)
            tune = state["phases"]["tune"]
            workers.append({"workers": count, "seconds": tune["seconds"] - tune.get("report_seconds", 0.0),
                            "trials_per_min": 60 * args.trials / (tune["seconds"] - tune.get("report_seconds", 0.0))})
            _say(f"workers {count} round {round_}: {workers[-1]}")
    results["overhead"], results["workers"] = overhead, workers
    if args.parts != "abcd":
        _say(json.dumps(results, indent=1))  # a partial run: RESULTS.md keeps the last whole one
        return
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["load average at end"] = " ".join(f"{v:.2f}" for v in os.getloadavg())
    (HERE / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (HERE / "RESULTS.md").write_text(report(results))
    _say(f"wrote {HERE / 'RESULTS.md'}")


def report(results: dict[str, Any]) -> str:
    med = statistics.median
    runs = results["samplers_and_pruning"]
    lines = [f"# aios-optuna benchmarks\n\nWritten by `benchmarks/optuna/run.py` on "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} in {results['seconds']} s: digits (sklearn, "
             f"standardized), torch MLPs, {results['epochs']} epochs per trial, {results['trials']} trials per study, "
             f"space {json.dumps(results['space'])}. Variants alternate; medians.\n",
             _table(["machine", ""], [[k, v] for k, v in results["machine"].items()]
                    + [["load average at end", results["load average at end"]]]), ""]
    lines += ["## (a) TPE against random search, (b) pruning on against off", "",
              _table(["variant", "seed", "best val_loss", "test accuracy (retrained best)", "epochs trained",
                      "pruned trials", "tune phase s"],
                     [[name, r["seed"], f"{r['best_val_loss']:.4f}", f"{r['test_accuracy']:.4f}", r["epochs"],
                       r["pruned"], f"{r['seconds']:.1f}"] for name, rows in runs.items() for r in rows]), ""]
    summary = {name: (med(r["best_val_loss"] for r in rows), med(r["test_accuracy"] for r in rows),
                      sum(r["epochs"] for r in rows), sum(r["seconds"] for r in rows)) for name, rows in runs.items()}
    tpe, rnd, pruned, hyper = summary["tpe"], summary["random"], summary["tpe+median"], summary["tpe+hyperband"]
    wins = sum(a["best_val_loss"] < b["best_val_loss"] for a, b in zip(runs["tpe"], runs["random"]))
    lines += [f"- (a) median best val_loss: TPE **{tpe[0]:.4f}** vs random **{rnd[0]:.4f}** (TPE lower on "
              f"{wins} of {len(runs['tpe'])} seeds); median test accuracy of the retrained best: TPE {tpe[1]:.4f} vs "
              f"random {rnd[1]:.4f}.",
              *(f"- (b) pruning ({label}, the defaults: 2 start-up trials, from epoch 1) against none, both TPE: "
                f"**{p[2]} vs {tpe[2]} epochs** ({100 * (1 - p[2] / tpe[2]):.0f}% fewer; target >= 40%), tune "
                f"phases {p[3]:.1f} s vs {tpe[3]:.1f} s in all; median best val_loss {p[0]:.4f} vs {tpe[0]:.4f} "
                f"({'no worse' if p[0] <= tpe[0] else 'worse'}), test accuracy {p[1]:.4f} vs {tpe[1]:.4f}."
                for label, p in (("median", pruned), ("hyperband", hyper))), ""]
    lines += ["## (c) Overhead against a hand-written Optuna script", "",
              "Two trial sizes: `small` is the space of (a) and (b) (trials of about 0.1 s), `wide` the space of "
              f"(d) ({WORKERS_EPOCHS} epochs of wider MLPs, trials of about a second). Both sides try the same "
              "parameters (random sampler, same seed) on the same splits. The plain script keeps SQLite's default "
              "journal, which syncs the disk at each of Optuna's commits; aios-optuna opens its study in "
              "write-ahead-log mode, so the script is also run with that storage (`WAL script`), which isolates "
              "the runner's own cost.", ""]
    for size in ("small", "wide"):
        rows = [o for o in results["overhead"] if o.get("size", "small") == size]
        if not rows:
            continue
        ratios = [o["aios_tune_s"] / o["plain_s"] for o in rows]
        ratios_wal = [o["aios_tune_s"] / o["plain_wal_s"] for o in rows]
        no_report = [(o["aios_tune_s"] - o["report_s"]) / o["plain_wal_s"] for o in rows]
        per_trial = [1000 * (o["aios_tune_s"] - o["report_s"] - o["plain_wal_s"]) / results["trials"] for o in rows]
        lines += [f"### {size}", "",
                  _table(["round", "AIOS tune phase s", "of which report PNGs s", "plain script s", "WAL script s",
                          "ratio", "ratio to WAL script", "same, without the report"],
                         [[i, f"{o['aios_tune_s']:.2f}", f"{o['report_s']:.2f}", f"{o['plain_s']:.2f}",
                           f"{o['plain_wal_s']:.2f}", f"{a:.3f}", f"{b:.3f}", f"{c:.3f}"]
                          for i, (o, a, b, c) in enumerate(zip(rows, ratios, ratios_wal, no_report))]), "",
                  f"Median ratio to the plain script **{med(ratios):.3f}** (target <= 1.10); to the WAL script "
                  f"**{med(ratios_wal):.3f}**, {med(no_report):.3f} without the report PNGs (matplotlib, "
                  f"importances): the runner costs about {med(per_trial):.0f} ms per trial (the framework builds the "
                  "model, the torch trainer trains it with deterministic algorithms, its checkpoint policy and "
                  "monitors, in the trial's own directory; the trial's records in the study).", ""]
    workers = results["workers"]
    one = [w["trials_per_min"] for w in workers if w["workers"] == 1]
    two = [w["trials_per_min"] for w in workers if w["workers"] == 2]
    lines += ["## (d) Two worker processes against one (one SQLite study)", "",
              f"{results['trials']} trials of {WORKERS_EPOCHS} epochs over {json.dumps(WORKERS_SPACE)} (trials of "
              "about a second), random sampler, no pruning; the tune phase without its report.", "",
              _table(["workers", "trials per minute (each round)", "median"],
                     [[1, ", ".join(f"{v:.1f}" for v in one), f"{med(one):.1f}"],
                      [2, ", ".join(f"{v:.1f}" for v in two), f"{med(two):.1f}"]]),
              "", f"Speed-up **{med(two) / med(one):.2f}x** on {results['machine']['cores']} cores shared with other "
                  "work (load averages above).", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
