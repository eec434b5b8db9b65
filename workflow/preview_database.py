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

DATABASE_URL comes from the environment only; every identifier goes through `psycopg.sql`.
Prints `{"role", "database", "protected", "members", "naming_rule", "stray"}`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass

from components.settings import stack_setting
from core.database import PREVIEW_DATABASE_APPLICATION
from core.names import PR_SCHEMA, PREVIEW_STACK, PROD_STACK, pr_schema_pattern
from steps.console import shown, warn
from steps.database import connect, database_url, schema_name_problem
from steps.retry import PermanentError
from steps.runtime import run_step
from workflow.deploy_record import SCHEMA as AUDIT_SCHEMA

ROLE = "webstack_preview"
# Serializes concurrent runs (a re-run while a deploy is still at this step).
LOCK_KEY = 0x5EB5_0001
RULE_FUNCTION = "webstack_preview_schema_rule"
RULE_TRIGGER = "webstack_preview_schema_names"
# Role attributes no preview role may have (the columns problems_of reads, in this order).
FORBIDDEN_ATTRIBUTES = ("rolsuper", "rolcreaterole", "rolcreatedb", "rolreplication", "rolbypassrls")
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")


@dataclass(frozen=True)
class Plan:
    role: str
    protected: tuple[str, ...]
    """prod's schema and the audit schema."""
    preview_base: str
    """Preview schemas are `<preview_base>_pr_<N>`."""

    @property
    def pattern(self) -> str:
        """The naming rule as a PostgreSQL regular expression (the base is a plain identifier)."""
        return pr_schema_pattern(self.preview_base)


def plan_from_settings(role: str = ROLE) -> Plan:
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
    return Plan(role=role, protected=(prod_schema, AUDIT_SCHEMA), preview_base=preview_base)


def _owner(conn, schema: str) -> str | None:
    row = conn.execute(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = %s", (schema,)
    ).fetchone()
    return row[0] if row else None


def _members(conn, role: str) -> list[str]:
    """The roles that act with `role`'s privileges: its members, directly or through others, that
    inherit them. Not this deploy's own role: on PostgreSQL 16 the creator of a role becomes its
    member with ADMIN OPTION (without inheriting), which is no reason to treat prod as a preview."""
    rows = conn.execute(
        """
        WITH RECURSIVE m(oid) AS (
            SELECT member FROM pg_auth_members WHERE roleid = (SELECT oid FROM pg_roles WHERE rolname = %(role)s)
            UNION
            SELECT a.member FROM pg_auth_members a JOIN m ON a.roleid = m.oid
        )
        SELECT rolname FROM pg_roles
        WHERE oid IN (SELECT oid FROM m) AND rolname <> current_user AND pg_has_role(rolname, %(role)s, 'USAGE')
        ORDER BY rolname
        """,
        {"role": role},
    ).fetchall()
    return [name for (name,) in rows]


def _ensure_protected_schemas(conn, plan: Plan, members: list[str]) -> None:
    from psycopg import sql

    for schema in plan.protected:
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        owner = _owner(conn, schema)
        owned_by_prod = conn.execute("SELECT pg_has_role(current_user, %s, 'USAGE')", (owner,)).fetchone()[0]
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

    exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (plan.role,)).fetchone() is not None
    if not exists:
        conn.execute(
            sql.SQL(
                "CREATE ROLE {} NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
            ).format(sql.Identifier(plan.role))
        )
    database = sql.Identifier(conn.execute("SELECT current_database()").fetchone()[0])
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


def _install_naming_rule(conn, plan: Plan) -> str:
    """The event trigger that refuses a preview's schema of another name; `skipped` without a superuser."""
    from psycopg import sql

    if not conn.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user").fetchone()[0]:
        return "skipped"
    body = sql.SQL(
        """
        CREATE OR REPLACE FUNCTION {function}() RETURNS event_trigger LANGUAGE plpgsql AS $rule$
        DECLARE
            created record;
        BEGIN
            -- Superusers (prod's administrators) are members of every role: only previews are held.
            IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user)
               OR NOT pg_has_role(current_user, {role}, 'USAGE') THEN
                RETURN;
            END IF;
            FOR created IN SELECT * FROM pg_event_trigger_ddl_commands()
                           WHERE object_type = 'schema' LOOP
                IF created.object_identity !~ {pattern} THEN
                    RAISE EXCEPTION 'webstack: a preview may create only schemas named %_pr_<N>, not %',
                        {base}, created.object_identity
                        USING ERRCODE = 'insufficient_privilege';
                END IF;
            END LOOP;
        END
        $rule$
        """
    ).format(
        function=sql.Identifier(RULE_FUNCTION),
        role=sql.Literal(plan.role),
        pattern=sql.Literal(plan.pattern),
        base=sql.Literal(plan.preview_base),
    )
    conn.execute(body)
    conn.execute(sql.SQL("DROP EVENT TRIGGER IF EXISTS {}").format(sql.Identifier(RULE_TRIGGER)))
    conn.execute(
        sql.SQL(
            "CREATE EVENT TRIGGER {} ON ddl_command_end WHEN TAG IN ('CREATE SCHEMA', 'ALTER SCHEMA') EXECUTE FUNCTION {}()"
        ).format(sql.Identifier(RULE_TRIGGER), sql.Identifier(RULE_FUNCTION))
    )
    return "installed"


def problems_of(conn, plan: Plan, members: list[str]) -> list[str]:
    """What the catalog says a preview role can still do that it must not."""
    problems = []
    for role in (plan.role, *members):
        attributes = conn.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = %s",
            (role,),
        ).fetchone()
        held = [name.removeprefix("rol") for name, value in zip(FORBIDDEN_ATTRIBUTES, attributes, strict=True) if value]
        if held:
            problems.append(f"role {role!r} has {', '.join(held)}")
        if conn.execute("SELECT pg_has_role(%s, current_user, 'MEMBER')", (role,)).fetchone()[0]:
            problems.append(f"role {role!r} is a member of prod's role")
        for schema in plan.protected:
            held = [
                privilege
                for privilege in ("USAGE", "CREATE")
                if conn.execute("SELECT has_schema_privilege(%s, %s, %s)", (role, schema, privilege)).fetchone()[0]
            ]
            if held:
                problems.append(f"role {role!r} has {', '.join(held)} on schema {schema!r}")
            tables = conn.execute(
                "SELECT c.oid::regclass::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relkind IN ('r', 'p', 'v', 'm', 'f')",
                (schema,),
            ).fetchall()
            for (table,) in tables:
                held = [
                    privilege
                    for privilege in TABLE_PRIVILEGES
                    if conn.execute("SELECT has_table_privilege(%s, %s, %s)", (role, table, privilege)).fetchone()[0]
                ]
                if held:
                    problems.append(f"role {role!r} has {', '.join(held)} on {table}")
    if not conn.execute("SELECT has_database_privilege(%s, current_database(), 'CREATE')", (plan.role,)).fetchone()[0]:
        problems.append(f"role {plan.role!r} cannot create its schemas (CREATE on the database)")
    return problems


def stray_schemas(conn, plan: Plan, members: list[str]) -> list[str]:
    """Schemas a preview role owns whose name breaks the rule."""
    rows = conn.execute(
        "SELECT nspname FROM pg_namespace WHERE pg_get_userbyid(nspowner) = ANY(%s) AND nspname !~ %s ORDER BY 1",
        ([plan.role, *members], plan.pattern),
    ).fetchall()
    return [name for (name,) in rows]


def apply(plan: Plan) -> dict:
    with connect(database_url(), application_name=PREVIEW_DATABASE_APPLICATION) as conn:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (LOCK_KEY,))
            created = _ensure_role(conn, plan)
            members = _members(conn, plan.role)
            _ensure_protected_schemas(conn, plan, members)
            _revoke(conn, plan, [plan.role, *members])
            rule = _install_naming_rule(conn, plan)
            problems = problems_of(conn, plan, members)
            if problems:
                # Raised inside the transaction: nothing of this run is kept.
                raise PermanentError(
                    "the preview database role can reach what only prod may: " + "; ".join(problems),
                    hint="remove those grants or attributes as an administrator, then re-run the deploy",
                )
            stray = stray_schemas(conn, plan, members)
        database = conn.info.dbname
    if rule == "skipped":
        warn(
            "the schema naming rule (an event trigger) needs a superuser and was not installed; "
            "schemas the previews own under other names are listed as `stray`"
        )
    if stray:
        warn(f"preview roles own schemas outside <{plan.preview_base}>_pr_<N>: {shown(', '.join(stray))}")
    return {
        "role": plan.role,
        "database": database,
        "created": created,
        "protected": list(plan.protected),
        "members": members,
        "naming_rule": rule,
        "stray": stray,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m workflow.preview_database", description=__doc__.splitlines()[0])
    parser.add_argument("--role", default=ROLE, help=f"the preview group role (default {ROLE})")
    args = parser.parse_args(argv)
    return run_step("preview-database", critical=True, body=lambda: apply(plan_from_settings(args.role)))


if __name__ == "__main__":
    sys.exit(main())
