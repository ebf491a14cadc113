"""grader_problems: everything that keeps a well-formed grader from running on this host, each with its field path,
all at once — so the API can refuse a grader up front instead of scoring every sample 0 later."""

from __future__ import annotations

import ast

from tuneforge.graders.formula import FormulaError, parse_formula
from tuneforge.graders.sandbox import sandbox_problem
from tuneforge.graders.templates import reference_problem, references
from tuneforge.graders.text_similarity import METRICS, UNAVAILABLE_METRICS
from tuneforge.schemas.graders import (
    Grader,
    LabelModelGrader,
    MultiGrader,
    PythonGrader,
    ScoreModelGrader,
    StringCheckGrader,
    TextSimilarityGrader,
)

Problem = tuple[str, str]  # (field path, e.g. "graders.b.evaluation_metric"; what is wrong and what to do)


def grader_problems(grader: Grader) -> list[Problem]:
    """[] when `grader` can run here; else (field path, reason) for each problem."""
    return list(_problems(grader, ""))


def _problems(grader: Grader, prefix: str) -> list[Problem]:
    problems: list[Problem] = []
    if isinstance(grader, StringCheckGrader | TextSimilarityGrader):
        problems += _template_problems(f"{prefix}input", grader.input)
        problems += _template_problems(f"{prefix}reference", grader.reference)
    if isinstance(grader, TextSimilarityGrader) and grader.evaluation_metric not in METRICS:
        why = UNAVAILABLE_METRICS.get(grader.evaluation_metric, "is not implemented")
        problems.append((f"{prefix}evaluation_metric",
                         f"{grader.evaluation_metric!r} {why}; choose one of {', '.join(METRICS)}"))
    if isinstance(grader, ScoreModelGrader | LabelModelGrader):
        for index, message in enumerate(grader.input):
            problems += _template_problems(f"{prefix}input.{index}.content", message.content)
    if isinstance(grader, PythonGrader):
        problems += _python_problems(grader, prefix)
    if isinstance(grader, MultiGrader):
        try:
            parse_formula(grader.calculate_output, grader.graders)
        except FormulaError as exc:
            problems.append((f"{prefix}calculate_output", str(exc)))
        for name, sub in grader.graders.items():
            problems += _problems(sub, f"{prefix}graders.{name}.")
    return problems


def _template_problems(path: str, template: str) -> list[Problem]:
    return [(path, why) for reference in references(template) if (why := reference_problem(reference))]


def _python_problems(grader: PythonGrader, prefix: str) -> list[Problem]:
    problems: list[Problem] = []
    if grader.image_tag:
        problems.append((f"{prefix}image_tag", f"{grader.image_tag!r} cannot be used: python graders run in a "
                                               "local sandbox on this server's Python (standard library only); "
                                               "leave image_tag empty"))
    try:
        # parsing runs none of the source; the sandbox is for running it
        module = ast.parse(grader.source, filename="<grader>")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        line = f"line {exc.lineno}: " if isinstance(exc, SyntaxError) and exc.lineno else ""
        problems.append((f"{prefix}source", f"{line}{getattr(exc, 'msg', None) or exc}"))
        return problems
    if not _binds_grade(module):
        problems.append((f"{prefix}source", "the source defines no grade(sample, item) function at its top level"))
    unavailable = sandbox_problem()
    if unavailable:
        problems.append((f"{prefix}type", f"{unavailable}; python graders cannot run on this host"))
    return problems


def _binds_grade(module: ast.Module) -> bool:
    for node in module.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "grade":
            return True
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "grade" for t in node.targets):
            return True
        if isinstance(node, ast.ImportFrom | ast.Import) and any((a.asname or a.name) == "grade" for a in node.names):
            return True
    return False
