-- V003: Snowflake's access to the lake bucket, through an IAM role it assumes.
-- After the first run, `rtdp snowflake init` prints STORAGE_AWS_IAM_USER_ARN and
-- STORAGE_AWS_EXTERNAL_ID: the role's trust policy must allow exactly that principal and id.
-- `if not exists`, never `or replace`: replacing an integration creates a new external id and
-- breaks the role's trust policy. Needs a role with CREATE INTEGRATION (ACCOUNTADMIN by default).
create storage integration if not exists {{ integration }}
    type = external_stage
    storage_provider = 'S3'
    enabled = true
    storage_aws_role_arn = {{ storage_aws_role_arn }}
    storage_allowed_locations = ({{ stage_url }})
    comment = 'rtdp lake (read only)';
