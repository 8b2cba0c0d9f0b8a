"""Attributes the plugin sets on pytest's test reports, plain builtins that xdist carries from
a worker to the controller with the report."""

PAYLOAD_ATTRIBUTE = "llmobs_item"
"""Attribute of the teardown report carrying the finished item (plain builtins; xdist-safe)."""
GOVERNED_ATTRIBUTE = "llmobs_governed"
"""Set on a report whose payload a worker already governed (redacted, cut, made UTF-8-safe)."""
STARTED_ATTRIBUTE = "llmobs_started"
"""Attribute of an xdist worker's setup report: the test's `TestRecord.started`, which the
controller stores should the worker die before the test's teardown report arrives."""
