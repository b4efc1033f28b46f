"""a06's reference solution trained at a profile's scale, per variant, beside the published figures.

    .venv/bin/python bench/a06_reference.py --profile full            # the exercise as written (a GPU job)
    .venv/bin/python bench/a06_reference.py --profile smoke --seed 0  # what the CPU grader runs

The code cells of the committed solution notebook (`solutions/a06_cifar10_deep/`)
run in this process, in order, with `NNDL_PROFILE` and `NNDL_SEED` set as
grading sets them; nothing is retyped here. This process is not the sandbox,
so `nndl_datasets.load_data` gives the test split too, and each trained
model's accuracy on the 10,000 test images is measured at the end. Prints,
per variant, the test accuracy, the epochs run, the median seconds per epoch,
and the published figures; `--json FILE` writes the same. The backend is
Keras's (`KERAS_BACKEND`; on a machine without TensorFlow use jax).
"""

import argparse
import json
import os
import pathlib
import statistics
import sys
import time

KIT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOK = KIT / "solutions" / "a06_cifar10_deep" / "cifar10_deep.ipynb"

#: (test accuracy, epochs) on one H200, Keras 3.15 on JAX, batch 32, the solution's setup (issue 12).
MEASURED_H200 = {"plain_model": (0.504, 26), "bn_model": (0.535, 29), "selu_model": (0.509, 27),
                 "alpha_model": (0.504, 34)}
#: Géron's test accuracies (the course material) and the published solutions' validation accuracies.
GERON_TEST = {"plain_model": 0.451, "bn_model": 0.516}
PUBLISHED_VALIDATION = {"plain_model": "47.6%", "bn_model": "54.0%", "selu_model": "47.9-50.3%",
                        "alpha_model": "48.9% (MC dropout 48.9%)"}
RECORDS = {"plain_model": "plain_training", "bn_model": "bn_training", "selu_model": "selu_training",
           "alpha_model": "alpha_training"}


def code_cells(path):
    """The solution notebook's code cells (grade id, source), the hand-in cell left out."""
    notebook = json.loads(pathlib.Path(path).read_text())
    for cell in notebook["cells"]:
        grade_id = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id", "")
        if cell["cell_type"] == "code" and grade_id != "hand_in":
            yield grade_id, "".join(cell["source"])


def run(profile, seed, notebook=NOTEBOOK, out=print):
    """Run the solution's cells; return {variant: {test_accuracy, epochs, seconds_per_epoch}}."""
    os.environ["NNDL_PROFILE"], os.environ["NNDL_SEED"] = profile, str(seed)
    namespace = {"__name__": "__main__"}
    started = time.perf_counter()
    for grade_id, source in code_cells(notebook):
        cell_started = time.perf_counter()
        exec(compile(source, f"<{notebook.name}:{grade_id}>", "exec"), namespace)
        out(f"  cell {grade_id}: {time.perf_counter() - cell_started:.1f} s", flush=True)
    x_test, y_test = namespace["X_test"], namespace["y_test"]
    results = {}
    for name, record_name in RECORDS.items():
        model, record = namespace[name], namespace[record_name]
        _, accuracy = model.evaluate(x_test, y_test, verbose=0)
        results[name] = {"test_accuracy": float(accuracy), "epochs": record["epochs"],
                         "seconds_per_epoch": statistics.median(record["seconds_per_epoch"]),
                         "best_validation_accuracy": max(record["history"]["val_accuracy"])}
    results["_total_seconds"] = time.perf_counter() - started
    return results


def table(results, profile):
    import keras

    lines = [f"profile {profile}, Keras {keras.__version__} on {keras.backend.backend()}, "
             f"{results['_total_seconds']:.0f} s in all",
             "| variant | test | epochs | s/epoch | best val | H200 reference (test, epochs) | Géron test | "
             "published val |", "|---|---|---|---|---|---|---|---|"]
    for name in RECORDS:
        r = results[name]
        h200 = MEASURED_H200[name]
        lines.append(f"| {name} | {r['test_accuracy']:.1%} | {r['epochs']} | {r['seconds_per_epoch']:.2f} | "
                     f"{r['best_validation_accuracy']:.1%} | {h200[0]:.1%}, {h200[1]} | "
                     f"{f'{GERON_TEST[name]:.1%}' if name in GERON_TEST else '-'} | "
                     f"{PUBLISHED_VALIDATION[name]} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="full", choices=("full", "smoke"))
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--json", help="also write the figures to this file")
    args = parser.parse_args(argv)
    results = run(args.profile, args.seed)
    print(table(results, args.profile))
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps({"profile": args.profile, "seed": args.seed,
                                                       "results": results}, indent=1))


if __name__ == "__main__":
    sys.exit(main())
