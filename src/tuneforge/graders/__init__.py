"""tuneforge.graders: run OpenAI-style graders without torch, so the API can try and validate them, evaluations can
report them and training can use them as rewards — one implementation, so the same sample gets the same score.

    grade_samples(grader, samples, items, judge=..., limits=...) -> [GradeResult, ...]
    grader_problems(grader) -> [(field path, reason), ...]   # [] when the grader can run on this host

A sample is `{"output_text": str, "output_json": parsed output_text or None}`; an item is the dataset row.
"""

from tuneforge.graders.interface import GradeResult, JudgeClient, SandboxLimits
from tuneforge.graders.judge import HttpJudge
from tuneforge.graders.problems import grader_problems
from tuneforge.graders.running import grade_samples

__all__ = ["GradeResult", "HttpJudge", "JudgeClient", "SandboxLimits", "grade_samples", "grader_problems"]
