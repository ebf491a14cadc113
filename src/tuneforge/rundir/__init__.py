"""The run-directory contract between a worker and the service: paths, event writer and reader."""

from tuneforge.rundir.events import EventWriter, final_event, read_events
from tuneforge.rundir.layout import RunDir

__all__ = ["EventWriter", "RunDir", "final_event", "read_events"]
