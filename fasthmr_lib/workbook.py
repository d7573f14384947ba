"""Run the workbook's notebooks in order with papermill, with one profile's parameters.

``python -m fasthmr_lib.workbook --profile {tiny,default,paper,paper_smoke} [--only 00,03] [--output DIR]``

* Notebooks: ``notebooks/NN_*.ipynb`` in name order (``--only`` picks by the ``NN`` prefix).
* Parameters: ``notebooks/profiles/<profile>.yaml`` with a ``common:`` section (given to every
  notebook that declares the parameter) and one section per notebook, keyed by its file stem
  (``00_setup_and_data``) or its ``NN`` prefix. A key in a notebook section that the notebook's
  ``parameters`` cell does not declare is an error (papermill itself would only warn).
* Output: executed copies + ``manifest.json`` (versions, seed, params, git hash, machine, wall time
  per notebook; rewritten after every notebook) under ``results/runs/<profile>/``.
* Results (tables, figures, trained artefacts the notebooks write): the ``default`` profile writes the
  workbook's ``results/``; any other profile writes ``<output>/results/`` so a ``tiny`` or ``paper`` run
  never overwrites the default tables (override with ``results_dir`` / ``--results``). The notebooks
  see it through ``FASTHMR_RESULTS`` (``paths.results_dir()``).
* The run stops at the first failing notebook; the error names the notebook and the cell, and the
  executed copy (with papermill's error banner) is kept.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from . import io as fio
from . import paths

PROFILES = ("tiny", "default", "paper", "paper_smoke")
_NB_RE = re.compile(r"^(\d\d)_.+\.ipynb$")


class WorkbookError(RuntimeError):
    """A notebook failed or the profile / notebook set is invalid (message says which)."""


INLINE_BACKEND = "module://matplotlib_inline.backend_inline"  # figures embedded in executed notebooks


def list_notebooks(notebooks_dir: Path, only: list[str] | None = None) -> list[Path]:
    """``NN_*.ipynb`` files of ``notebooks_dir`` in order; ``only`` = list of ``NN`` prefixes."""
    nbs = sorted(p for p in Path(notebooks_dir).glob("*.ipynb") if _NB_RE.match(p.name))
    if only:
        want = [str(o).strip().zfill(2) for o in only if str(o).strip()]
        have = {p.name[:2] for p in nbs}
        missing = [w for w in want if w not in have]
        if missing:
            raise WorkbookError(
                f"--only: no notebook {notebooks_dir}/{missing[0]}_*.ipynb; available prefixes {sorted(have)}"
            )
        nbs = [p for p in nbs if p.name[:2] in want]
    return nbs


def load_profile(profile: str, profiles_dir: Path) -> dict[str, Any]:
    """Read and check ``<profiles_dir>/<profile>.yaml`` -> {"common": {...}, "<section>": {...}}."""
    path = Path(profiles_dir) / f"{profile}.yaml"
    if not path.exists():
        avail = sorted(p.stem for p in Path(profiles_dir).glob("*.yaml"))
        raise WorkbookError(f"profile {profile!r}: {path} not found (available: {avail})")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise WorkbookError(f"{path}: not valid YAML ({e})") from e
    if not isinstance(data, dict):
        raise WorkbookError(f"{path}: expected a mapping with a 'common' section and per-notebook sections")
    for k, v in data.items():
        if v is not None and not isinstance(v, dict):
            raise WorkbookError(f"{path}: section {k!r} must be a mapping of parameter: value")
    return {str(k): dict(v or {}) for k, v in data.items()}


def notebook_parameters(nb: Path, prof: dict[str, Any], profile_path: str = "profile") -> dict[str, Any]:
    """The parameters to inject into ``nb``: declared ``common`` keys + its own section (checked)."""
    import papermill as pm

    declared = set(pm.inspect_notebook(str(nb)))
    params = {k: v for k, v in prof.get("common", {}).items() if k in declared}
    stem, prefix = nb.stem, nb.name[:2]
    own: dict[str, Any] = {}
    for key in (prefix, stem):
        own.update(prof.get(key, {}))
    unknown = sorted(set(own) - declared)
    if unknown:
        raise WorkbookError(
            f"{profile_path}: section for {nb.name} sets {unknown}, which its parameters cell does not "
            f"declare (declared: {sorted(declared)})"
        )
    params.update(own)
    return params


def run_workbook(
    profile: str,
    only: list[str] | None = None,
    output_dir: str | Path | None = None,
    *,
    notebooks_dir: str | Path | None = None,
    profiles_dir: str | Path | None = None,
    kernel_name: str = "python3",
    execution_timeout: float | None = None,
    progress: bool = True,
    results_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Execute the notebooks with ``profile``'s parameters; return the run manifest (also written
    to ``<output_dir>/manifest.json``). Raises :class:`WorkbookError` naming the failing notebook
    and cell (the manifest is written first, with ``status: failed``)."""
    from tqdm.auto import tqdm

    nb_dir = Path(notebooks_dir) if notebooks_dir is not None else paths.notebooks_dir()
    prof_dir = Path(profiles_dir) if profiles_dir is not None else nb_dir / "profiles"
    out = Path(output_dir) if output_dir is not None else paths.results_dir() / "runs" / profile
    prof = load_profile(profile, prof_dir)
    nbs = list_notebooks(nb_dir, only)
    if not nbs:
        raise WorkbookError(f"no notebooks NN_*.ipynb found in {nb_dir}")
    prof_path = str(prof_dir / f"{profile}.yaml")
    stems = {p.stem for p in list_notebooks(nb_dir)}
    stray = [k for k in prof if k != "common" and not re.fullmatch(r"\d\d", k) and k not in stems]
    if stray:
        raise WorkbookError(
            f"{prof_path}: sections {stray} match no notebook (use 'common', a quoted NN prefix like "
            f'"00", or a notebook file stem; notebooks: {sorted(stems)})'
        )
    plan = [(nb, notebook_parameters(nb, prof, prof_path)) for nb in nbs]  # check all before running

    out.mkdir(parents=True, exist_ok=True)
    if results_dir is None:
        results_dir = paths.results_dir() if profile == "default" else out / "results"
    results_dir = Path(results_dir).resolve()
    man = fio.manifest(
        params={"profile": profile, "only": only, "common": prof.get("common", {})},
        results_dir=str(results_dir),
        seed=prof.get("common", {}).get("seed"),
        kind="workbook_run",
        status="running",
        notebooks=[],
        python=sys.executable,
    )
    man_path = out / "manifest.json"
    t_all = time.perf_counter()
    bar = tqdm(plan, desc=f"workbook [{profile}]", unit="notebook", disable=not progress)
    # inherited by the notebook kernels: where results go, and matplotlib's inline backend so that the
    # executed notebooks hold their figures (a shell's MPLBACKEND=Agg would leave them without any)
    kernel_env = {"FASTHMR_RESULTS": str(results_dir), "MPLBACKEND": INLINE_BACKEND}
    old_env = {k: os.environ.get(k) for k in kernel_env}
    os.environ.update(kernel_env)
    try:
        _run_plan(plan, bar, out, man, man_path, t_all, nb_dir, kernel_name, execution_timeout)
    finally:
        for k, v in old_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    man.update(status="ok", wall_s=time.perf_counter() - t_all)
    fio.write_json(man_path, man)
    return man


def _run_plan(plan, bar, out, man, man_path, t_all, nb_dir, kernel_name, execution_timeout) -> None:
    """Execute each (notebook, parameters) of ``plan``; update and rewrite the manifest after each."""
    import papermill as pm
    from papermill.exceptions import PapermillExecutionError

    for nb, params in bar:
        bar.set_postfix_str(nb.name)
        dest = out / nb.name
        entry: dict[str, Any] = {"notebook": nb.name, "params": params, "output": str(dest)}
        man["notebooks"].append(entry)
        t0 = time.perf_counter()
        try:
            pm.execute_notebook(
                str(nb), str(dest), parameters=params, kernel_name=kernel_name, cwd=str(nb_dir),
                progress_bar=False, execution_timeout=execution_timeout,
            )  # fmt: skip
        except PapermillExecutionError as e:
            entry.update(status="failed", wall_s=time.perf_counter() - t0, error={
                "cell_index": e.cell_index, "exec_count": e.exec_count, "ename": e.ename, "evalue": e.evalue,
            })  # fmt: skip
            man.update(status="failed", wall_s=time.perf_counter() - t_all)
            fio.write_json(man_path, man)
            first = (e.source or "").strip().splitlines()[:1]
            raise WorkbookError(
                f"notebook {nb.name} failed in cell {e.cell_index} (execution count {e.exec_count}"
                + (f", starting {first[0]!r}" if first else "")
                + f"): {e.ename}: {e.evalue}. Executed copy with the error: {dest}"
            ) from e
        except Exception as e:
            err = {"ename": type(e).__name__, "evalue": str(e)}
            entry.update(status="failed", wall_s=time.perf_counter() - t0, error=err)
            man.update(status="failed", wall_s=time.perf_counter() - t_all)
            fio.write_json(man_path, man)
            raise WorkbookError(f"notebook {nb.name} could not be run: {type(e).__name__}: {e}") from e
        entry.update(status="ok", wall_s=time.perf_counter() - t0)
        fio.write_json(man_path, man)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m fasthmr_lib.workbook", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--profile", default="default", help=f"one of {PROFILES} (notebooks/profiles/<name>.yaml)"
    )
    ap.add_argument("--only", default=None, help="comma-separated notebook prefixes, e.g. 00,03")
    ap.add_argument("--output", default=None, help="output folder (default results/runs/<profile>)")
    ap.add_argument("--results", default=None, help="results folder (default: results/ for 'default')")
    ap.add_argument("--execution-timeout", type=float, default=None, help="per-cell timeout in seconds")
    args = ap.parse_args(argv)
    only = args.only.split(",") if args.only else None
    try:
        t = args.execution_timeout
        man = run_workbook(args.profile, only, args.output, results_dir=args.results, execution_timeout=t)
    except WorkbookError as e:
        print(f"workbook failed: {e}", file=sys.stderr)
        return 1
    for e in man["notebooks"]:
        print(f"{e['notebook']}: {e['status']} in {e['wall_s']:.1f} s")
    print(f"workbook [{args.profile}] done in {man['wall_s']:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
