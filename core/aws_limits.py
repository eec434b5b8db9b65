"""What the AWS provider itself accepts, where the program's settings must refuse the same.

Pure data (no pulumi, no boto3): the settings check against it before anything is declared, and the
stand-in `aws` provider (sandbox/providers/aws.py) validates in Check against it, as the real one
does (terraform-provider-aws internal/service/lambda/function.go: `memory_size`
validation.IntBetween(128, 10240), `timeout` validation.IntBetween(1, 900)).
"""

from __future__ import annotations

# Inclusive ranges.
LAMBDA_MEMORY_MB = (128, 10240)
LAMBDA_TIMEOUT_SECONDS = (1, 900)
