"""Every error rtdp raises on purpose derives from :class:`RtdpError`."""


class RtdpError(Exception):
    """Base class: the CLI prints these as one clear line and exits non-zero."""


class ConfigError(RtdpError):
    """A setting, flag or environment variable has a value rtdp cannot use."""


class UnsupportedBackendError(ConfigError):
    """``RTDP_QUEUE_URL`` or ``RTDP_LAKE_URI`` names a scheme with no backend."""


class QueueError(RtdpError):
    """The queue refused or failed an operation."""


class MessageTooLargeError(QueueError):
    """One body is larger than the queue's message size limit."""


class LakeError(RtdpError):
    """Reading or writing the lake failed."""


class WarehouseError(RtdpError):
    """The warehouse could not be opened, locked or written."""


class TransformError(RtdpError):
    """dbt failed: a model or a test."""


class SnowflakeError(RtdpError):
    """Snowflake refused a connection or a statement of ``rtdp snowflake init``."""
