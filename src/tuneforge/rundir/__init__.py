"""The run-directory contract between a worker and the service: paths, event writer and reader."""

from tuneforge.rundir.events import EventScan, EventWriter, SkippedLine, final_event, read_events, scan_events
from tuneforge.rundir.layout import RunDir

__all__ = ["EventScan", "EventWriter", "RunDir", "SkippedLine", "final_event", "read_events", "scan_events"]
