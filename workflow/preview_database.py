"""The preview database role, as code: what pull requests may do in the shared database (deploy.yml).

    python -m workflow.preview_database [--role webstack_preview]

Run by prod's deploy, before `pulumi up`, with prod's DATABASE_URL; idempotent, critical. It makes
the database match this, in one transaction, then reads the catalog back and refuses if it does not:

- prod's schema (`dbSchema` of Pulumi.prod.yaml) and the audit schema (`webstack_audit`,
  workflow/deploy_record.py) exist and are owned by prod's role. They are created here if missing:
  a preview holds CREATE on the database, and whoever creates a schema first owns it, so a preview
  must never be the first to name one of them;
- the group role (`webstack_preview`, NOLOGIN) exists, is no superuser, cannot create roles or
  databases, bypass RLS or replicate, and is no member of prod's role. It holds CONNECT and CREATE
  on the database, so a preview creates its own schema and owns it (and so may use and drop it).
  Pull requests log in as a member of it (created once by an operator, docs/workflows.md says how:
  `CREATE ROLE webstack_preview_ci LOGIN PASSWORD '...' IN ROLE webstack_preview`), whose DSN is
  the PREVIEW_DATABASE_URL secret; members are held to the same attributes;
- on prod's and the audit schema, and everything in them, nothing is granted to PUBLIC, to the
  group or to any of its members (REVOKE ALL, and the same for objects prod creates later);
- the naming rule: the group's members may create (or rename to) only `<preview dbSchema>_pr_<N>`
  schemas. An event trigger enforces it where the deploy's role may install one (a superuser);
  elsewhere the step warns, and either way it lists schemas the previews own under other names.
  Its function pins `search_path` and names the catalog's objects (`_install_naming_rule`);
- each login member's limits (`Limits`): a connection limit, `statement_timeout` and
  `idle_in_transaction_session_timeout`, set again on every run and read back; a warning when the
  previews' limits together leave prod less than its `databaseConnectionLimit` on the server.

Runs are serialized by `steps.database.prod_lock` (a lock no preview role can take), waiting at
most `--lock-wait` seconds (which also bounds every other lock wait of the transaction).
DATABASE_URL comes from the environment only; every identifier goes through `psycopg.sql`; the
connection looks names up in the catalog only. Prints `{"role", "database", "created",
"protected", "members", "limits", "naming_rule", "stray"}`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from core.database import AUDIT_SCHEMA, PREVIEW_DATABASE_APPLICATION, PREVIEW_DATABASE_LOCK, SAFE_SEARCH_PATH
from core.names import PR_SCHEMA, PREVIEW_STACK, PROD_STACK, pr_schema_pattern
from core.stack_files import stack_setting
from steps.args import StepParser, positive_seconds
from steps.console import log, shown, warn
from steps.database import DEFAULT_LOCK_WAIT, connect, database_url, prod_lock, schema_name_problem
from steps.retry import PermanentError
from steps.runtime import run_step

ROLE = "webstack_preview"
# The deploy steps' own sessions during one preview deploy (steps.migrate's lock session,
# drizzle-kit's, its connection check; steps.schema), on top of what the functions may hold.
STEP_CONNECTIONS = 4
# A preview session idle inside a transaction longer than this is ended by the server.
IDLE_IN_TRANSACTION_SECONDS = 60
RULE_FUNCTION = "webstack_preview_schema_rule"
RULE_TRIGGER = "webstack_preview_schema_names"
# Role attributes no preview role may have (the columns problems_of reads, in this order).
FORBIDDEN_ATTRIBUTES = ("rolsuper", "rolcreaterole", "rolcreatedb", "rolreplication", "rolbypassrls")
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


@dataclass(frozen=True)
class Limits:
    """What each login member of the preview role is held to (ALTER ROLE, re-applied every deploy)."""

    connections: int
    """CONNECTION LIMIT: the previews' `databaseConnectionLimit` plus STEP_CONNECTIONS."""
    statement_timeout: int
    """seconds: the previews' `migrationTimeoutSeconds` (no statement of theirs may run longer)."""
    idle_in_transaction: int = IDLE_IN_TRANSACTION_SECONDS

    @property
    def settings(self) -> dict[str, str]:
        """The role settings as PostgreSQL shows them in pg_db_role_setting."""
        return {
            "statement_timeout": f"{self.statement_timeout}s",
            "idle_in_transaction_session_timeout": f"{self.idle_in_transaction}s",
        }


@dataclass(frozen=True)
class Plan:
    role: str
    protected: tuple[str, ...]
    """prod's schema and the audit schema."""
    preview_base: str
    """Preview schemas are `<preview_base>_pr_<N>`."""
    limits: Limits | None = None
    prod_connections: int | None = None
    """prod's `databaseConnectionLimit`: what the previews' limits must leave it on the server."""

    @property
    def pattern(self) -> str:
        """The naming rule as a PostgreSQL regular expression (the base is a plain identifier)."""
        return pr_schema_pattern(self.preview_base)


def _whole_setting(stack: str, key: str) -> int:
    value = stack_setting(stack, key)
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit() or int(value) < 1:
        raise PermanentError(
            f"`{key}` of the {stack} stack is not a positive whole number: {shown(value)}",
            hint=f"fix `{key}` in Pulumi.{stack}.yaml (or its default in Pulumi.yaml)",
        )
    return int(value)


def limits_from_settings(connection_limit: int | None = None) -> Limits:
    """The preview logins' limits, from the preview template's settings (`--connection-limit` overrides)."""
    connections = connection_limit or _whole_setting(PREVIEW_STACK, "databaseConnectionLimit") + STEP_CONNECTIONS
    return Limits(connections=connections, statement_timeout=_whole_setting(PREVIEW_STACK, "migrationTimeoutSeconds"))


def plan_from_settings(role: str = ROLE, connection_limit: int | None = None) -> Plan:
    prod_schema = str(stack_setting(PROD_STACK, "dbSchema"))
    preview_base = str(stack_setting(PREVIEW_STACK, "dbSchema"))
    for name in (prod_schema, preview_base, role):
        problem = schema_name_problem(name)
        if problem:
            raise PermanentError(problem, hint="fix `dbSchema` in the stack files, or --role")
    if prod_schema == preview_base or PR_SCHEMA.fullmatch(prod_schema):
        raise PermanentError(
            f"prod's schema {prod_schema!r} looks like a preview schema",
            hint="prod's and the preview template's `dbSchema` must differ, and prod's must not end in _pr_<N>",
        )
    return Plan(
        role=role,
        protected=(prod_schema, AUDIT_SCHEMA),
        preview_base=preview_base,
        limits=limits_from_settings(connection_limit),
        prod_connections=_whole_setting(PROD_STACK, "databaseConnectionLimit"),
    )


# Every statement below runs on a connection whose search_path is pinned (steps.database) and names
# the catalog explicitly all the same: a preview may create a schema named like prod's role and
# plant functions there that would otherwise win the lookup and run with prod's privileges.


def _owner(conn, schema: str) -> str | None:
    row = conn.execute(
        "SELECT pg_catalog.pg_get_userbyid(nspowner) FROM pg_catalog.pg_namespace WHERE nspname OPERATOR(pg_catalog.=) %s",
        (schema,),
    ).fetchone()
    return row[0] if row else None


def _members(conn, role: str) -> list[str]:
    """The roles that act with `role`'s privileges: its members, directly or through others, that
    inherit them. Not this deploy's own role: on PostgreSQL 16 the creator of a role becomes its
    member with ADMIN OPTION (without inheriting), which is no reason to treat prod as a preview."""
    rows = conn.execute(
        """
        WITH RECURSIVE m(oid) AS (
            SELECT member FROM pg_catalog.pg_auth_members
            WHERE roleid OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %(role)s)
            UNION
            SELECT a.member FROM pg_catalog.pg_auth_members a JOIN m ON a.roleid OPERATOR(pg_catalog.=) m.oid
        )
        SELECT rolname FROM pg_catalog.pg_roles
        WHERE oid IN (SELECT oid FROM m) AND rolname OPERATOR(pg_catalog.<>) CURRENT_USER
          AND pg_catalog.pg_has_role(rolname, %(role)s::pg_catalog.name, 'USAGE')
        ORDER BY rolname
        """,
        {"role": role},
    ).fetchall()
    return [name for (name,) in rows]


def _ensure_protected_schemas(conn, plan: Plan, members: list[str]) -> None:
    from psycopg import sql

    for schema in plan.protected:
        if _owner(conn, schema) is None:
            conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        owner = _owner(conn, schema)
        owned_by_prod = conn.execute(
            "SELECT pg_catalog.pg_has_role(CURRENT_USER, %s::pg_catalog.name, 'USAGE')", (owner,)
        ).fetchone()[0]
        # A superuser deploy "has" every role, the previews' included: name them explicitly.
        if not owned_by_prod or owner in (plan.role, *members):
            raise PermanentError(
                f"schema {schema!r} is owned by {owner!r}, not by this deploy's role",
                hint=(
                    "a preview may have created it first; check its contents, then "
                    f"`ALTER SCHEMA {schema} OWNER TO <prod role>` as an administrator"
                ),
            )


def _ensure_role(conn, plan: Plan) -> bool:
    from psycopg import sql

    exists = (
        conn.execute("SELECT 1 FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %s", (plan.role,)).fetchone()
        is not None
    )
    if not exists:
        conn.execute(
            sql.SQL(
                "CREATE ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
            ).format(sql.Identifier(plan.role))
        )
    database = sql.Identifier(conn.execute("SELECT pg_catalog.current_database()").fetchone()[0])
    conn.execute(sql.SQL("GRANT CONNECT, CREATE ON DATABASE {} TO {}").format(database, sql.Identifier(plan.role)))
    return not exists


def _revoke(conn, plan: Plan, grantees: list[str]) -> None:
    from psycopg import sql

    who = sql.SQL(", ").join([sql.SQL("PUBLIC"), *(sql.Identifier(g) for g in grantees)])
    for schema in plan.protected:
        name = sql.Identifier(schema)
        for statement in (
            "REVOKE ALL ON SCHEMA {schema} FROM {who}",
            "REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {who}",
            "REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {who}",
            "REVOKE ALL ON ALL ROUTINES IN SCHEMA {schema} FROM {who}",
            # Objects prod creates there later (a new table of a migration) start closed too.
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} REVOKE ALL ON TABLES FROM {who}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} REVOKE ALL ON SEQUENCES FROM {who}",
            "ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} REVOKE ALL ON ROUTINES FROM {who}",
        ):
            conn.execute(sql.SQL(statement).format(schema=name, who=who))



def _apply_limits(conn, limits: Limits, members: list[str]) -> None:
    """Each login member: its connection limit and its statement and idle-in-transaction timeouts.

    Role settings do not pass through membership, so they are set on each member, and again on
    every deploy: a member may change its own defaults (`ALTER ROLE CURRENT_USER SET ...`), also
    per database, which PostgreSQL prefers to the role-wide ones; those are reset here. Only the
    connection limit binds a member that means harm: any session may `SET statement_timeout` for
    itself. The timeouts end what a PR leaves hanging by accident (a killed migration's session,
    a transaction left open), so its locks on its own schema do not stay held.
    """
    from psycopg import errors, sql

    database = sql.Identifier(conn.execute("SELECT pg_catalog.current_database()").fetchone()[0])
    for member in members:
        who = sql.Identifier(member)
        try:
            conn.execute(sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(who, sql.Literal(limits.connections)))
            for name, value in limits.settings.items():
                conn.execute(sql.SQL("ALTER ROLE {} SET {} = {}").format(who, sql.Identifier(name), sql.Literal(value)))
                conn.execute(sql.SQL("ALTER ROLE {} IN DATABASE {} RESET {}").format(who, database, sql.Identifier(name)))
        except errors.InsufficientPrivilege as exc:
            raise PermanentError(
                f"cannot set the limits of the preview login {member!r}: {' '.join(str(exc).split())}",
                hint=f"the deploy's role needs CREATEROLE (PostgreSQL 16: and ADMIN OPTION on {member}); "
                f"or run `GRANT {member} TO <prod role> WITH ADMIN OPTION` as an administrator",
            ) from None


def _limit_problems(conn, limits: Limits, members: list[str]) -> list[str]:
    """What the catalog says a member may still hold beyond its limits (read back after applying)."""
    problems = []
    for member in members:
        connlimit = conn.execute(
            "SELECT rolconnlimit FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) %s", (member,)
        ).fetchone()[0]
        if connlimit < 0 or connlimit > limits.connections:
            problems.append(f"role {member!r} may open {'any number of' if connlimit < 0 else connlimit} connections")
        rows = conn.execute(
            "SELECT s.setdatabase, s.setconfig FROM pg_catalog.pg_db_role_setting s"
            " JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) s.setrole WHERE r.rolname OPERATOR(pg_catalog.=) %s"
            " AND s.setdatabase IN (0, (SELECT oid FROM pg_catalog.pg_database"
            "   WHERE datname OPERATOR(pg_catalog.=) pg_catalog.current_database()))",
            (member,),
        ).fetchall()
        role_wide = {}
        for database, config in rows:
            for item in config or []:
                name, _, value = item.partition("=")
                if name not in limits.settings:
                    continue
                if database:
                    problems.append(f"role {member!r} sets {name}={value} in this database")
                else:
                    role_wide[name] = value
        for name, value in limits.settings.items():
            if role_wide.get(name) != value:
                problems.append(f"role {member!r} has {name} {role_wide.get(name, 'unset')}, not {value}")
    return problems


def _capacity_warning(conn, plan: Plan, members: list[str]) -> str | None:
    """Whether the previews' connection limits together leave prod its own `databaseConnectionLimit`."""
    if not plan.limits or not plan.prod_connections or not members:
        return None
    max_connections, reserved = conn.execute(
        "SELECT pg_catalog.current_setting('max_connections')::int, pg_catalog.current_setting('superuser_reserved_connections')::int"
    ).fetchone()
    previews = plan.limits.connections * len(members)
    left = max_connections - reserved - previews
    if left >= plan.prod_connections:
        return None
    return (
        f"the preview logins may hold {previews} connections together ({len(members)} x {plan.limits.connections}); "
        f"the server's max_connections {max_connections} ({reserved} reserved for superusers) then leaves prod {left}, "
        f"under its databaseConnectionLimit {plan.prod_connections}: raise max_connections, or lower the previews' "
        "databaseConnectionLimit in Pulumi.preview.yaml"
    )


def _install_naming_rule(conn, plan: Plan) -> str:
    """The event trigger that refuses a preview's schema of another name; `skipped` without a superuser.

    The function runs with the caller's privileges, inside the caller's statement: its search_path
    is pinned (`SET search_path = pg_catalog, pg_temp`) and every name in it is the catalog's,
    spelt out, operators included. Otherwise a preview could put its own schema first on its path
    with a `pg_has_role`, a `pg_event_trigger_ddl_commands` or an `!~` operator that says yes, or
    create a temporary table `pg_roles` (PostgreSQL searches the temporary schema first for
    tables unless the path names it) with rolsuper true, and create any schema it likes.
    """
    from psycopg import sql

    if not conn.execute(
        "SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER"
    ).fetchone()[0]:
        return "skipped"
    body = sql.SQL(
        """
        CREATE OR REPLACE FUNCTION {function}() RETURNS event_trigger LANGUAGE plpgsql
        SET search_path = {search_path} AS $rule$
        DECLARE
            created record;
        BEGIN
            -- Superusers (prod's administrators) are members of every role: only previews are held.
            IF (SELECT r.rolsuper FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
               OR NOT pg_catalog.pg_has_role(CURRENT_USER, {role}::pg_catalog.name, 'USAGE') THEN
                RETURN;
            END IF;
            FOR created IN SELECT c.object_identity FROM pg_catalog.pg_event_trigger_ddl_commands() c
                           WHERE c.object_type OPERATOR(pg_catalog.=) 'schema' LOOP
                IF created.object_identity OPERATOR(pg_catalog.!~) {pattern} THEN
                    RAISE EXCEPTION 'webstack: a preview may create only schemas named %_pr_<N>, not %',
                        {base}, created.object_identity
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
            END LOOP;
        END
        $rule$
        """
    ).format(
        function=sql.Identifier(AUDIT_SCHEMA, RULE_FUNCTION),
        search_path=sql.SQL(SAFE_SEARCH_PATH),
        role=sql.Literal(plan.role),
        pattern=sql.Literal(plan.pattern),
        base=sql.Literal(plan.preview_base),
    )
    # In the audit schema, which prod owns and no preview may use (the trigger calls it by oid).
    conn.execute(body)
    conn.execute(sql.SQL("REVOKE ALL ON FUNCTION {}() FROM PUBLIC").format(sql.Identifier(AUDIT_SCHEMA, RULE_FUNCTION)))
    conn.execute(sql.SQL("DROP EVENT TRIGGER IF EXISTS {}").format(sql.Identifier(RULE_TRIGGER)))
    conn.execute(
        sql.SQL(
            "CREATE EVENT TRIGGER {} ON ddl_command_end WHEN TAG IN ('CREATE SCHEMA', 'ALTER SCHEMA') EXECUTE FUNCTION {}()"
        ).format(sql.Identifier(RULE_TRIGGER), sql.Identifier(AUDIT_SCHEMA, RULE_FUNCTION))
    )
    # Earlier versions created it unqualified, on the deploy's default path (public).
    conn.execute(sql.SQL("DROP FUNCTION IF EXISTS {}()").format(sql.Identifier("public", RULE_FUNCTION)))
    return "installed"


def problems_of(conn, plan: Plan, members: list[str]) -> list[str]:
    """What the catalog says a preview role can still do that it must not."""
    problems = []
    for role in (plan.role, *members):
        attributes = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_catalog.pg_roles"
            " WHERE rolname OPERATOR(pg_catalog.=) %s",
            (role,),
        ).fetchone()
        held = [name.removeprefix("rol") for name, value in zip(FORBIDDEN_ATTRIBUTES, attributes, strict=True) if value]
        if held:
            problems.append(f"role {role!r} has {', '.join(held)}")
        if conn.execute("SELECT pg_catalog.pg_has_role(%s::pg_catalog.name, CURRENT_USER, 'MEMBER')", (role,)).fetchone()[0]:
            problems.append(f"role {role!r} is a member of prod's role")
        for schema in plan.protected:
            held = [
                privilege
                for privilege in ("USAGE", "CREATE")
                if conn.execute(
                    "SELECT pg_catalog.has_schema_privilege(%s::pg_catalog.name, %s::pg_catalog.text, %s::pg_catalog.text)",
                    (role, schema, privilege),
                ).fetchone()[0]
            ]
            if held:
                problems.append(f"role {role!r} has {', '.join(held)} on schema {schema!r}")
            tables = conn.execute(
                "SELECT c.oid::pg_catalog.regclass::pg_catalog.text FROM pg_catalog.pg_class c"
                " JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace"
                " WHERE n.nspname OPERATOR(pg_catalog.=) %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                (schema,),
            ).fetchall()
            for (table,) in tables:
                held = [
                    privilege
                    for privilege in TABLE_PRIVILEGES
                    if conn.execute(
                        "SELECT pg_catalog.has_table_privilege(%s::pg_catalog.name, %s::pg_catalog.text, %s::pg_catalog.text)",
                        (role, table, privilege),
                    ).fetchone()[0]
                ]
                if held:
                    problems.append(f"role {role!r} has {', '.join(held)} on {table}")
    if not conn.execute(
        "SELECT pg_catalog.has_database_privilege(%s::pg_catalog.name, pg_catalog.current_database(), 'CREATE')",
        (plan.role,),
    ).fetchone()[0]:
        problems.append(f"role {plan.role!r} cannot create its schemas (CREATE on the database)")
    return problems


def stray_schemas(conn, plan: Plan, members: list[str]) -> list[str]:
    """Schemas a preview role owns whose name breaks the rule."""
    rows = conn.execute(
        "SELECT nspname FROM pg_catalog.pg_namespace"
        " WHERE pg_catalog.pg_get_userbyid(nspowner) OPERATOR(pg_catalog.=) ANY(%s::pg_catalog.name[])"
        " AND nspname::pg_catalog.text OPERATOR(pg_catalog.!~) %s::pg_catalog.text ORDER BY 1",
        ([plan.role, *members], plan.pattern),
    ).fetchall()
    return [name for (name,) in rows]


def apply(plan: Plan, lock_wait: float = DEFAULT_LOCK_WAIT) -> dict:
    with connect(database_url(), application_name=PREVIEW_DATABASE_APPLICATION) as conn:
        with conn.transaction():
            # Bounds this run's wait for another run, and every other lock wait of the transaction.
            # Serializes runs (a re-run while a deploy is still here) with a lock no preview can take.
            prod_lock(conn, PREVIEW_DATABASE_LOCK, wait=lock_wait, what="preview-database", log=log)
            created = _ensure_role(conn, plan)
            members = _members(conn, plan.role)
            _ensure_protected_schemas(conn, plan, members)
            _revoke(conn, plan, [plan.role, *members])
            if plan.limits:
                _apply_limits(conn, plan.limits, members)
            rule = _install_naming_rule(conn, plan)
            problems = problems_of(conn, plan, members)
            if plan.limits:
                problems += _limit_problems(conn, plan.limits, members)
            if problems:
                # Raised inside the transaction: nothing of this run is kept.
                raise PermanentError(
                    "the preview database role can reach what only prod may: " + "; ".join(problems),
                    hint="remove those grants or attributes as an administrator, then re-run the deploy",
                )
            stray = stray_schemas(conn, plan, members)
            capacity = _capacity_warning(conn, plan, members)
        database = conn.info.dbname
    if rule == "skipped":
        warn(
            "the schema naming rule (an event trigger) needs a superuser and was not installed; "
            "schemas the previews own under other names are listed as `stray`"
        )
    if stray:
        warn(f"preview roles own schemas outside <{plan.preview_base}>_pr_<N>: {shown(', '.join(stray))}")
    if capacity:
        warn(capacity)
    return {
        "role": plan.role,
        "database": database,
        "created": created,
        "protected": list(plan.protected),
        "members": members,
        "limits": {"connections": plan.limits.connections, **plan.limits.settings} if plan.limits else None,
        "naming_rule": rule,
        "stray": stray,
    }


def _connection_limit(text: str) -> int:
    import argparse

    if not text.isdigit() or not 1 <= int(text) <= 10000:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 10000, not {shown(text)}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = StepParser(prog="python -m workflow.preview_database", description=__doc__.splitlines()[0])
    parser.add_argument("--role", default=ROLE, help=f"the preview group role (default {ROLE})")
    parser.add_argument(
        "--lock-wait", type=positive_seconds, default=DEFAULT_LOCK_WAIT,
        help=f"seconds to wait for another run of this step (default {DEFAULT_LOCK_WAIT:.0f}); then it fails and alerts",
    )
    parser.add_argument(
        "--connection-limit", type=_connection_limit, default=None,
        help="each preview login's connection limit (default: the previews' databaseConnectionLimit "
        f"+ {STEP_CONNECTIONS} for the deploy steps)",
    )
    args = parser.parse_args(argv)
    return run_step(
        "preview-database",
        critical=True,
        body=lambda: apply(plan_from_settings(args.role, args.connection_limit), args.lock_wait),
    )


if __name__ == "__main__":
    sys.exit(main())
