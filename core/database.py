"""What the pipeline's own PostgreSQL connections call themselves, and the lock a migration holds.

The DDL audit (workflow/ddl_audit.py) tells the pipeline's schema changes from anyone else's by
these `application_name`s, an operator finds a hung migration by them in `pg_stat_activity`, and
the tests look for them on the server. The names are labels, not proofs: anyone with a login may
set one (workflow/audit/anomalies.py holds marked DDL against the deploy runs' times).
"""

# The schema only prod's role may use (workflow.preview_database closes it to every preview role):
# the deploy records, the DDL log, the naming rule's function and prod's locks.
AUDIT_SCHEMA = "webstack_audit"
# A row per lock of prod's steps (steps.database.prod_lock): no advisory key, which any role may hold.
LOCK_TABLE = "locks"
PREVIEW_DATABASE_LOCK = "preview-database"
DDL_AUDIT_LOCK = "ddl-audit"
DEPLOY_RECORD_LOCK = "deploy-record"
# Where the pipeline's sessions and its security-relevant functions look names up: the catalog, then
# the session's own temporary objects (tables only; PostgreSQL never looks functions up there).
SAFE_SEARCH_PATH = "pg_catalog, pg_temp"

STEPS_APPLICATION = "webstack-steps"
SCHEMA_STEP_APPLICATION = "webstack-schema"
PREVIEW_DATABASE_APPLICATION = "webstack-preview-database"
DEPLOY_RECORD_APPLICATION = "webstack-deploy-record"
DDL_AUDIT_APPLICATION = "webstack-ddl-audit"
AUDIT_REPORT_APPLICATION = "webstack-audit-report"
# steps.migrate: drizzle-kit's own sessions (`migrate_session`), the session that holds the lock,
# and the one that checks the connection after drizzle-kit failed silently.
MIGRATE_APPLICATION = "webstack-migrate"
# The connections whose DDL is the pipeline's own (the DDL log's `in_migration`): a migration's
# sessions, the schema step's and the preview-role step's.
SCHEMA_CHANGING_APPLICATIONS = (MIGRATE_APPLICATION, SCHEMA_STEP_APPLICATION, PREVIEW_DATABASE_APPLICATION)


def migrate_session(schema: str, token: str) -> str:
    """The `application_name` of one drizzle-kit push into `schema` (`token` tells two pushes apart)."""
    return f"{MIGRATE_APPLICATION}:{schema}:{token}"


def migrate_lock_session(schema: str) -> str:
    """The session that holds `schema`'s migration lock while drizzle-kit runs."""
    return f"{MIGRATE_APPLICATION}-lock:{schema}"


def migrate_check_session(schema: str) -> str:
    """The session that checks the database answers after drizzle-kit exited without a word."""
    return f"{MIGRATE_APPLICATION}-check:{schema}"


def migration_lock(schema: str) -> str:
    """The name of `schema`'s migration lock: prod's a row of LOCK_TABLE; a PR schema's a session
    advisory lock on `hashtextextended(name, 0)` (steps.migration_lock)."""
    return f"{MIGRATE_APPLICATION}:{schema}"
