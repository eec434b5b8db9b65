"""What holds state nobody can recreate: the one list that the program, the policy pack and the
plan report all read.

Pure data with no imports, because the policy pack runs in a virtualenv of its own and loads this
file by path. A resource of one of these types is `protect`ed and `retain_on_delete` by the stack
transform in `components/protection.py`; the pack refuses one that is not; the plan report marks
its deletion or replacement as stateful.
"""

STATEFUL_TYPES = frozenset(
    {
        "aws:s3/bucket:Bucket",
        "aws:s3/bucketV2:BucketV2",
        "aws:dynamodb/table:Table",
        "aws:kms/key:Key",
        # Every stack's secrets provider URL names the alias (awskms://alias/...): losing it locks
        # every stack's secrets away just as losing the key would.
        "aws:kms/alias:Alias",
        "aws:cloudtrail/trail:Trail",
        "aws:cloudwatch/logGroup:LogGroup",
        "cloudflare:index/pagesProject:PagesProject",
    }
)

# The component whose Commands create and migrate a database schema. Its Commands are stateful by
# structure (their URN names this parent type), not by their command text or their names.
DATABASE_COMPONENT = "webstack:index:Database"
