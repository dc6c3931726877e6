"""Run results, shared by single and island runs: the stop test, the genome record of
``result.json`` and ``hall_of_fame.json``, the ``best.s`` header and the files they go to.

:mod:`evolve.runload` reads what this module writes (and ``replay``/``export``/``analyze``
read it through that), so both kinds of run describe a genome with the same keys.
"""
from __future__ import annotations

from pathlib import Path

from evolve import runfolder as rf
from evolve.config import RunConfig


def should_stop(cfg: RunConfig, solved: bool, gen: int, elapsed: float) -> bool:
    """Whether a run is finished: solved (when it stops at a solution), the last generation
    reached (None: no cap), or its time limit spent (``elapsed``: the run's wall seconds so far)."""
    if solved and cfg.stop_when_solved:
        return True
    if cfg.generations is not None and gen >= cfg.generations:
        return True
    return cfg.time_limit is not None and elapsed >= cfg.time_limit


def genome_record(alphabet, ind, island: int | None = None, verification: dict | None = None) -> dict:
    """A genome as ``result.json`` and ``hall_of_fame.json`` describe it; ``verification``: what
    was established (the solution's), None for a genome no proof or validation has passed.

    An island run's record names the island and leaves out ``parents``: uids are counted per
    island, so a parent uid would not say which genome it was.
    """
    record = {} if island is None else {"island": island}
    record.update(asm=alphabet.render(ind), code_hex=alphabet.encode(ind).hex(), fitness=ind.fitness.values[0],
                  length=len(ind), exact_train=int(ind.exact), uid=ind.uid)
    if island is None:
        record["parents"] = list(ind.parents)
    record.update(op=ind.op, genes=[list(g) for g in ind], verification=verification)
    return record


def best_header(task, cfg: RunConfig, solved: bool, *, n_valid: int | None = None, isa=None,
                island: int | None = None, n_islands: int | None = None,
                verification: dict | None = None) -> list[str]:
    """The comment lines ``best.s`` starts with: the task, whether it was solved and what was
    established (``verification``, :meth:`evolve.verify.Verification.to_json`); a single run
    adds how it was validated (``n_valid`` cases) and its calling convention (``isa``), an
    island run which island (``island`` of ``n_islands``) found it."""
    where = f"{task.name} ({task.description}) on {cfg.isa}"
    proof = [f"// verification: {verification_line(verification)}"] if solved and verification else []
    if island is not None:
        return [f"// Melvin: {where}, island {island} of {n_islands}",
                "// solved: True" if solved else "// not solved: best genome found"] + proof
    return [f"// Melvin: {where}",
            f"// solved: True (validated on {n_valid} held-out cases)" if solved else "// not solved: best genome found",
            *proof,
            f"// inputs {', '.join(isa.arg_regs[:task.arity])}; result {isa.ret_reg}; the return instruction is appended"]


def verification_line(verification: dict) -> str:
    """``result.json``'s ``verification`` in one line."""
    from evolve.verify import Verification
    return Verification(**verification).line()


def assembly_text(header: list[str], asm: list[str]) -> str:
    """``best.s``'s text (also a library genome's)."""
    return "\n".join(header + asm) + "\n"


def write_results(folder: Path, result: dict, fame: list[dict], header: list[str]) -> None:
    """``result.json``, ``hall_of_fame.json`` and ``best.s`` (``result["best"]``'s assembly)."""
    rf.write_json(folder / "result.json", result)
    rf.write_json(folder / "hall_of_fame.json", fame)
    rf.atomic_write(folder / "best.s", assembly_text(header, result["best"]["asm"]))


def summary(result: dict, where: str, seconds: float, folder: Path) -> str:
    """The lines printed at the end of a run: the outcome, ``where`` it ran, the best genome."""
    head = (f"{'solved' if result['solved'] else 'not solved'}: {result['task']}{where} in "
            f"{result['generations']} generations, {result['evaluations']} evaluations, "
            f"{seconds:.1f} s -> {folder}")
    proof = [f"verification: {verification_line(result['verification'])}"] if result.get("verification") else []
    return "\n".join([head] + proof + optimisation_lines(result) + [f"    {line}" for line in result["best"]["asm"]])


def optimisation_lines(result: dict) -> list[str]:
    """The end of a run's word on its optimisation phase (none for a run without ``cost``)."""
    cost, opt = result.get("cost"), result.get("optimize")
    if not cost or not opt:
        return []
    unit = "instructions" if cost["metric"] == "length" else f"cycles ({cost.get('core', '')})"
    if not opt["budget_seconds"]:
        return [f"optimisation: off (--optimize 0); the solution costs {cost['best']} {unit}"]
    if opt.get("started_at") is None:
        return [f"optimisation: no time was left for it; the solution costs {cost['best']} {unit}"]
    return [f"optimisation ({opt['seconds']:.1f} s of {opt['budget_seconds']:g}): {cost['first']} -> "
            f"{cost['best']} {unit}; {len(opt['improvements'])} cheaper programs verified, "
            f"{opt['candidates_refused']} refused"]
