"""The database's activity log, as code: an event trigger that records every DDL on prod's schema
in `webstack_audit.ddl_events` (deploy.yml, prod only).

    python -m workflow.ddl_audit install     # idempotent; prints {"table", "schemas", "triggers", "state"}
    python -m workflow.ddl_audit status      # prints the same without changing anything

Two event triggers call one function: `ddl_command_end` (CREATE, ALTER, COMMENT, GRANT, ... with
the objects each command touched) and `sql_drop` (what a DROP removed; only the objects the
statement named, not what CASCADE took along). Each row says who (session and current user, the
client address and backend pid), when (the statement's timestamp), the command tag, the object's
type, schema and identity, the connection's `application_name` and the statement's first
characters, and whether the connection was the pipeline's own (`in_migration`).

The pipeline's connections mark themselves with their `application_name` (MIGRATION_APPLICATIONS:
`steps.migrate`'s `webstack-migrate:<schema>:...` for drizzle-kit's own sessions, `steps.schema`,
`workflow.preview_database`). A mark is a label, not a proof: anyone with a login may set that
name, so the report also holds marked DDL against the deploy runs (workflow.audit). Everything else
is out-of-band DDL, the anomaly the report alerts on.

PostgreSQL 15 lets only a superuser create an event trigger, so `install` needs prod's deploy role
to be one (the case with a self-hosted database); otherwise it warns, changes nothing and exits 0
(non-critical: the deploy goes on) and an administrator runs it once as a superuser. The trigger's
function is SECURITY DEFINER (owned by that superuser) so that any role's DDL is recorded, and the
table is in the audit schema, which `workflow.preview_database` closes to every preview role.
A superuser can still switch the trigger off (`ALTER EVENT TRIGGER ... DISABLE`, or
`session_replication_role = replica`): `status` and the audit report say when it is not enabled.

DATABASE_URL comes from the environment only; every identifier goes through `psycopg.sql`.
"""

from __future__ import annotations

import sys

from core.database import AUDIT_SCHEMA, DDL_AUDIT_APPLICATION, DDL_AUDIT_LOCK, SCHEMA_CHANGING_APPLICATIONS
from core.names import PROD_STACK
from core.stack_files import stack_setting
from steps.args import StepParser
from steps.args import positive_seconds
from steps.database import DEFAULT_LOCK_WAIT, connect, database_url, prod_lock, schema_name_problem
from steps.retry import PermanentError
from steps.runtime import log, run_step, warn

TABLE = "ddl_events"
FUNCTION = "record_ddl"
TRIGGERS = {"webstack_ddl_audit_end": "ddl_command_end", "webstack_ddl_audit_drop": "sql_drop"}
# The connections of the pipeline's own schema changes (core.database).
MIGRATION_APPLICATIONS = SCHEMA_CHANGING_APPLICATIONS
STATEMENT_CHARS = 1000

COLUMNS = (
    "occurred_at",
    "event",
    "command_tag",
    "object_type",
    "schema_name",
    "object_identity",
    "session_user_name",
    "current_user_name",
    "application_name",
    "client_addr",
    "backend_pid",
    "in_migration",
    "statement",
)


def watched_schemas() -> tuple[str, ...]:
    """prod's schema (`dbSchema` of Pulumi.prod.yaml): the app's tables live there."""
    schema = str(stack_setting(PROD_STACK, "dbSchema"))
    problem = schema_name_problem(schema)
    if problem:
        raise PermanentError(problem, hint="fix `dbSchema` in Pulumi.prod.yaml")
    return (schema,)


def migration_pattern() -> str:
    """The `application_name`s of the pipeline's connections, as a PostgreSQL regular expression."""
    return "^(" + "|".join(name.replace("-", "\\-") for name in MIGRATION_APPLICATIONS) + ")([:\\-]|$)"


def _function_sql(schemas: tuple[str, ...]):
    from psycopg import sql

    return sql.SQL(
        """
        CREATE OR REPLACE FUNCTION {function}() RETURNS event_trigger
        LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $audit$
        DECLARE
            touched record;
            app text := coalesce(current_setting('application_name', true), '');
            statement text := left(current_query(), {chars});
        BEGIN
            IF TG_EVENT = 'sql_drop' THEN
                FOR touched IN SELECT object_type, schema_name, object_identity
                               FROM pg_catalog.pg_event_trigger_dropped_objects() WHERE original LOOP
                    IF coalesce(touched.schema_name,
                                CASE WHEN touched.object_type = 'schema' THEN touched.object_identity END)
                       = ANY({schemas}) THEN
                        INSERT INTO {table} ({columns}) VALUES (
                            statement_timestamp(), TG_EVENT, TG_TAG, touched.object_type, touched.schema_name,
                            touched.object_identity, session_user, current_user, app, inet_client_addr(),
                            pg_backend_pid(), app ~ {pattern}, statement);
                    END IF;
                END LOOP;
            ELSE
                FOR touched IN SELECT command_tag, object_type, schema_name, object_identity
                               FROM pg_catalog.pg_event_trigger_ddl_commands() LOOP
                    IF coalesce(touched.schema_name,
                                CASE WHEN touched.object_type = 'schema' THEN touched.object_identity END)
                       = ANY({schemas}) THEN
                        INSERT INTO {table} ({columns}) VALUES (
                            statement_timestamp(), TG_EVENT, touched.command_tag, touched.object_type,
                            touched.schema_name, touched.object_identity, session_user, current_user, app,
                            inet_client_addr(), pg_backend_pid(), app ~ {pattern}, statement);
                    END IF;
                END LOOP;
            END IF;
        END
        $audit$
        """
    ).format(
        function=sql.Identifier(AUDIT_SCHEMA, FUNCTION),
        table=sql.Identifier(AUDIT_SCHEMA, TABLE),
        columns=sql.SQL(", ").join(sql.Identifier(c) for c in COLUMNS),
        schemas=sql.Literal(list(schemas)),
        pattern=sql.Literal(migration_pattern()),
        chars=sql.Literal(STATEMENT_CHARS),
    )


def _create_table(conn) -> None:
    from psycopg import sql

    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(AUDIT_SCHEMA)))
    conn.execute(
        sql.SQL(
            """
            CREATE TABLE IF NOT EXISTS {table} (
                id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                occurred_at timestamptz NOT NULL,
                event text NOT NULL,
                command_tag text NOT NULL,
                object_type text,
                schema_name text,
                object_identity text,
                session_user_name text NOT NULL,
                current_user_name text NOT NULL,
                application_name text NOT NULL,
                client_addr inet,
                backend_pid integer NOT NULL,
                in_migration boolean NOT NULL,
                statement text
            )
            """
        ).format(table=sql.Identifier(AUDIT_SCHEMA, TABLE))
    )
    conn.execute(
        sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (occurred_at)").format(
            sql.Identifier(f"{TABLE}_occurred_at"), sql.Identifier(AUDIT_SCHEMA, TABLE)
        )
    )


def trigger_states(conn) -> dict[str, str]:
    """Each of our triggers: `enabled`, `disabled`, `replica-only`, or `missing`."""
    found = dict(
        conn.execute(
            "SELECT evtname, evtenabled FROM pg_event_trigger WHERE evtname = ANY(%s)", (list(TRIGGERS),)
        ).fetchall()
    )
    meaning = {"O": "enabled", "A": "enabled", "D": "disabled", "R": "replica-only"}
    return {name: meaning.get(found[name], "unknown") if name in found else "missing" for name in TRIGGERS}


def _is_superuser(conn) -> bool:
    return bool(conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0])


def install(schemas: tuple[str, ...], lock_wait: float = DEFAULT_LOCK_WAIT) -> dict:
    from psycopg import sql

    with connect(database_url(), application_name=DDL_AUDIT_APPLICATION) as conn:
        if not _is_superuser(conn):
            states = trigger_states(conn)
            warn(
                "the DDL audit trigger needs a superuser (PostgreSQL 15) and was not installed or updated: "
                "run `python -m workflow.ddl_audit install` once as a superuser"
            )
            return {"table": f"{AUDIT_SCHEMA}.{TABLE}", "schemas": list(schemas), "triggers": states, "state": "skipped"}
        with conn.transaction():
            prod_lock(conn, DDL_AUDIT_LOCK, wait=lock_wait, what="ddl-audit", log=log)
            _create_table(conn)
            conn.execute(_function_sql(schemas))
            conn.execute(
                sql.SQL("REVOKE ALL ON FUNCTION {}() FROM PUBLIC").format(sql.Identifier(AUDIT_SCHEMA, FUNCTION))
            )
            existing = trigger_states(conn)
            for name, event in TRIGGERS.items():
                if existing[name] == "missing":
                    conn.execute(
                        sql.SQL("CREATE EVENT TRIGGER {} ON {} EXECUTE FUNCTION {}()").format(
                            sql.Identifier(name), sql.SQL(event), sql.Identifier(AUDIT_SCHEMA, FUNCTION)
                        )
                    )
                elif existing[name] != "enabled":
                    conn.execute(sql.SQL("ALTER EVENT TRIGGER {} ENABLE").format(sql.Identifier(name)))
            states = trigger_states(conn)
    return {"table": f"{AUDIT_SCHEMA}.{TABLE}", "schemas": list(schemas), "triggers": states, "state": "installed"}


def status() -> dict:
    with connect(database_url(), application_name=DDL_AUDIT_APPLICATION) as conn:
        states = trigger_states(conn)
    return {"table": f"{AUDIT_SCHEMA}.{TABLE}", "schemas": list(watched_schemas()), "triggers": states,
            "state": "enabled" if set(states.values()) == {"enabled"} else "off"}


def main(argv: list[str] | None = None) -> int:
    parser = StepParser(prog="python -m workflow.ddl_audit", description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=("install", "status"))
    parser.add_argument(
        "--lock-wait", type=positive_seconds, default=DEFAULT_LOCK_WAIT,
        help=f"seconds `install` waits for another install (default {DEFAULT_LOCK_WAIT:.0f})",
    )
    args = parser.parse_args(argv)
    if args.action == "status":
        return run_step("ddl-audit", critical=False, body=status)
    return run_step("ddl-audit", critical=False, body=lambda: install(watched_schemas(), args.lock_wait))


if __name__ == "__main__":
    sys.exit(main())
