"""The grader use-cases: stored, named grader objects (create, get, list, update, delete), validation that names
each field, a run over samples that gives each score with its reason and the mean, and `resolve`, which turns the
grader names of a training or evaluation request into grader objects.

Running is torch-free (tuneforge.graders): string and similarity checks in process, python graders in sandboxed
subprocesses (time and memory limited, no network), model graders through this server's deployments."""

from __future__ import annotations

import builtins  # in the service's signatures `list` names its list method: the type is builtins.list
import statistics
import time
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from tuneforge.graders import JudgeClient, SandboxLimits, grade_samples, grader_problems
from tuneforge.schemas import ConfigProblem
from tuneforge.schemas.graders import GRADER_ADAPTER, Grader
from tuneforge.schemas.tasks import name_problem
from tuneforge.service.errors import Conflict, InvalidInput, NotFound, paging_problems
from tuneforge.service.graders.checks import (
    error_problems,
    finite,
    grader_object_problems,
    max_samples_per_run,
    run_size_problem,
    sample_inputs,
)
from tuneforge.service.graders.views import (
    GraderDeleted,
    GraderList,
    GraderProblem,
    GraderRun,
    GraderSummary,
    GraderValidation,
    GraderView,
    SampleScore,
)
from tuneforge.settings import Settings
from tuneforge.store import Database
from tuneforge.store import Grader as GraderRow

GraderRef = int | str | Mapping[str, Any] | BaseModel  # a stored grader's id or name, or a grader object


class GraderService:
    def __init__(self, db: Database, settings: Settings, judge: JudgeClient | None = None,
                 limits: SandboxLimits | None = None) -> None:
        self.db = db
        self.settings = settings
        self.judge = judge
        self.limits = limits

    # -- validate ------------------------------------------------------------------------------------------------
    def validate(self, grader: object, field: str = "grader") -> GraderValidation:
        """Every problem of a grader object, each naming its field; nothing is stored."""
        _, problems = self._checked(grader, field)
        kind = grader.get("type") if isinstance(grader, Mapping) else None
        return GraderValidation(valid=not problems, type=kind if isinstance(kind, str) else None,
                                problems=[GraderProblem(field=p.field, message=p.message) for p in problems])

    def parse(self, grader: object, field: str = "grader") -> Grader:
        """The grader object as the schema's model, or InvalidInput naming every field at fault."""
        parsed, problems = self._checked(grader, field)
        if parsed is None or problems:
            raise InvalidInput.of(problems or [ConfigProblem(field, "is not a grader object")])
        return parsed

    def _checked(self, grader: object, field: str) -> tuple[Grader | None, builtins.list[ConfigProblem]]:
        if isinstance(grader, BaseModel):
            grader = grader.model_dump(mode="json", exclude_none=True)
        if problems := grader_object_problems(grader, field):
            return None, problems
        try:
            parsed = GRADER_ADAPTER.validate_python(grader)
        except ValidationError as exc:
            return None, error_problems(exc.errors(), grader, field)
        found = [ConfigProblem(f"{field}.{path}" if path else field, reason)
                 for path, reason in grader_problems(parsed)]
        return parsed, found

    # -- stored graders ------------------------------------------------------------------------------------------
    def create(self, name: str, grader: object, description: str = "") -> GraderView:
        problems = self._name_problems(name) + self._description_problems(description)
        parsed, grader_found = self._checked(grader, "grader")
        if problems or grader_found or parsed is None:
            raise InvalidInput.of(problems + grader_found)
        now = time.time()
        with self.db.session() as session:
            self._name_free(session, name)
            row = GraderRow(name=name, type=parsed.type, spec=_stored(parsed), description=description,
                            created_at=now, updated_at=now)
            session.add(row)
            try:
                session.flush()
            except IntegrityError as exc:  # a concurrent create took the name between the check and the insert
                raise _taken(name) from exc
            return grader_view(row)

    def get(self, ref: int | str) -> GraderView:
        """A stored grader by id (an int) or name (a str)."""
        with self.db.session() as session:
            return grader_view(_row(session, ref))

    def list(self, type: str | None = None, page: int = 1, page_size: int = 50) -> GraderList:
        if problems := paging_problems(page, page_size):
            raise InvalidInput.of(problems)
        query = select(GraderRow).order_by(GraderRow.name)
        if type:
            query = query.where(GraderRow.type == type)
        with self.db.session() as session:
            total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
            rows = session.scalars(query.offset((page - 1) * page_size).limit(page_size))
            items = [GraderSummary.model_validate(_summary(row)) for row in rows]
        return GraderList(total=total, page=page, page_size=page_size, items=items)

    def update(self, grader_id: int, grader: object | None = None, name: str | None = None,
               description: str | None = None) -> GraderView:
        """Replace a stored grader's object (and rename it, or change its description)."""
        problems = self._name_problems(name) if name is not None else []
        problems += self._description_problems(description) if description is not None else []
        parsed = None
        if grader is not None:
            parsed, found = self._checked(grader, "grader")
            problems += found
        if problems:
            raise InvalidInput.of(problems)
        with self.db.session() as session:
            row = _row(session, grader_id)
            if name is not None and name != row.name:
                self._name_free(session, name)
                row.name = name
            if parsed is not None:
                row.type, row.spec = parsed.type, _stored(parsed)
            if description is not None:
                row.description = description
            row.updated_at = time.time()
            try:
                session.flush()
            except IntegrityError as exc:
                raise _taken(name or row.name) from exc
            return grader_view(row)

    def delete(self, grader_id: int) -> GraderDeleted:
        """Training tasks and evaluations keep the grader objects they resolved: deleting changes none of them."""
        with self.db.session() as session:
            row = _row(session, grader_id)
            name = row.name
            session.delete(row)
        return GraderDeleted(id=grader_id, name=name, deleted=True)

    # -- use -----------------------------------------------------------------------------------------------------
    def resolve(self, refs: Sequence[GraderRef], field: str = "graders") -> builtins.list[Grader]:
        """Stored grader names (or ids) and inline grader objects → grader objects, in order; every unknown name
        and invalid object at once, naming `field.<index>`."""
        graders: builtins.list[Grader] = []
        problems: builtins.list[ConfigProblem] = []
        with self.db.session() as session:
            for index, ref in enumerate(refs):
                where = f"{field}.{index}"
                if isinstance(ref, int | str) and not isinstance(ref, bool):
                    row = _find(session, ref)
                    if row is None:
                        problems.append(ConfigProblem(where, f"no grader named {ref!r} (see GET "
                                                             "/graders/getGraderList, or tuneforge graders list)"))
                        continue
                    ref = row.spec
                parsed, found = self._checked(ref, where)
                problems += found
                if parsed is not None and not found:
                    graders.append(parsed)
        if problems:
            raise InvalidInput.of(problems)
        return graders

    def run(self, grader: GraderRef, samples: object) -> GraderRun:
        """Each sample's score, reason and details, and the mean. `samples`: at most 100 of
        {"sample": {"output_text": …, "output_json": …}, "item": {…the dataset row…}}."""
        stored: GraderView | None = None
        if isinstance(grader, int | str) and not isinstance(grader, bool):
            stored = self.get(grader)
            parsed = self.parse(stored.grader)
        else:
            parsed = self.parse(grader)
        inputs, problems = sample_inputs(samples)
        if not problems and (too_many := run_size_problem(parsed, len(inputs))):
            problems = [too_many]
        if problems:
            raise InvalidInput.of(problems)
        graded = grade_samples(parsed, [s.sample for s in inputs], [s.item for s in inputs], judge=self.judge,
                               limits=self.limits)
        results = [_score(index, result) for index, result in enumerate(graded)]
        mean = statistics.fmean(r.score for r in results) if results else 0.0
        return GraderRun(grader_id=stored.id if stored else None, name=stored.name if stored else None,
                         type=parsed.type, count=len(results), mean=mean, results=results)

    # -- checks ----------------------------------------------------------------------------------------------
    def _name_problems(self, name: object) -> builtins.list[ConfigProblem]:
        why = name_problem(name)
        return [ConfigProblem("name", why)] if why else []

    def _description_problems(self, description: object) -> builtins.list[ConfigProblem]:
        if not isinstance(description, str):
            return [ConfigProblem("description", "must be text")]
        if "\x00" in description:
            return [ConfigProblem("description", "must not contain NUL bytes")]
        if len(description) > self.settings.max_description_chars:
            return [ConfigProblem("description", f"is longer than {self.settings.max_description_chars} characters")]
        return []

    def _name_free(self, session: Session, name: str) -> None:
        if session.scalar(select(GraderRow.id).where(GraderRow.name == name)) is not None:
            raise _taken(name)


def _taken(name: str) -> Conflict:
    return Conflict(f"name: a grader named {name!r} exists; choose another name or update that one (updateGrader)",
                    [ConfigProblem("name", "exists")])


def _find(session: Session, ref: int | str) -> GraderRow | None:
    if isinstance(ref, int):
        return session.get(GraderRow, ref) if 0 < ref < 2**31 else None
    return session.scalar(select(GraderRow).where(GraderRow.name == ref))


def _row(session: Session, ref: int | str) -> GraderRow:
    row = _find(session, ref)
    if row is None:
        field = "id" if isinstance(ref, int) else "name"
        raise NotFound(f"grader {ref!r} does not exist" if isinstance(ref, str) else f"grader {ref} does not exist",
                       [ConfigProblem(field, "no such grader")])
    return row


def _stored(grader: Grader) -> dict[str, Any]:
    """The grader object as stored and shown: the fields the user gave, in the schema's types."""
    stored: dict[str, Any] = GRADER_ADAPTER.dump_python(grader, mode="json", exclude_unset=True)
    stored["type"] = grader.type  # a default tag is still part of the object
    return stored


def _summary(row: GraderRow) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "type": row.type, "description": row.description or "",
            "created_at": row.created_at, "updated_at": row.updated_at}


def grader_view(row: GraderRow) -> GraderView:
    return GraderView.model_validate(_summary(row) | {"grader": row.spec,
                                                      "max_samples_per_run": max_samples_per_run(row.spec)})


def _score(index: int, result: Any) -> SampleScore:
    """A runtime result as the API shows it; a score JSON cannot carry (NaN, infinity) counts as 0, saying so."""
    score, reason = result.score, result.reason
    if not isinstance(score, int | float) or score != score or score in (float("inf"), float("-inf")):
        score, reason = 0.0, f"the grader returned {score!r}, which is not a number; counted as 0"
    return SampleScore(index=index, score=float(score), reason=reason, details=finite(dict(result.details or {})))
