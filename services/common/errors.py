"""Domain errors. Transport code maps them to gRPC status codes (services/common/status.py)."""


class PosterError(Exception):
    """Base of all domain errors; the message is meant for a person."""


class InvalidInput(PosterError):
    """The caller sent something we cannot use (bad upload, bad tensor, bad option)."""


class NotFound(PosterError):
    """No such job or layer (or it belongs to someone else)."""


class ResourceExhausted(PosterError):
    """Out of memory or over a limit; retrying later may work."""


class FailedPrecondition(PosterError):
    """The request does not fit the current state (for example a job that has not finished)."""


class Cancelled(PosterError):
    """The job was cancelled while this work ran."""
