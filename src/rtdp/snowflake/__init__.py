"""Snowflake: the versioned SQL that creates what Snowpipe loads into (``V*.sql`` here), applied
by ``rtdp snowflake init`` (:mod:`rtdp.snowflake.init`)."""
