"""The event log every transport serves: ids, retained history, new-event listeners."""

from rtkit.log.eventlog import DEFAULT_CAPACITY, EventLog, LogEvent, Slice, encode_payload

__all__ = ["DEFAULT_CAPACITY", "EventLog", "LogEvent", "Slice", "encode_payload"]
