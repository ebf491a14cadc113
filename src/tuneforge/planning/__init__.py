"""tuneforge.planning: the one planner — a training config and the host's facts in, a runnable plan or every
problem at once out. Torch-free; the CLI, the service, the API and the console all call it."""

from tuneforge.planning.host import HostFacts, detect_host, installed_packages
from tuneforge.planning.planner import PlanInput, PlanRejected, TrainingPlan, plan_training

__all__ = ["HostFacts", "PlanInput", "PlanRejected", "TrainingPlan", "detect_host", "installed_packages",
           "plan_training"]
