"""The webstack Pulumi program: settings -> the phases (core.phases) -> stack outputs."""

import gc

# A short-lived process that loads the providers' large SDK modules (pulumi_aws's submodules load
# while the phases declare their resources) and frees almost none of them: the cyclic collector
# would rescan them again and again while they load, and once more at exit (seconds of each run,
# bench/noop_up.py). Nothing is collected while the program declares its resources; then what it
# made is frozen (never rescanned again) and the collector runs as before while the engine answers.
collecting = gc.isenabled()
gc.disable()
try:
    import pulumi

    from components.pipeline import deploy
    from components.settings import load_settings

    outputs = deploy(load_settings())
finally:
    gc.freeze()
    if collecting:
        gc.enable()

pulumi.export("apiUrl", outputs.api_url)
if outputs.site_url is not None:  # an app without a site has neither
    pulumi.export("siteUrl", outputs.site_url)
    pulumi.export("pagesBranch", outputs.pages_branch)
if outputs.db_schema is not None:  # nor one without a database
    pulumi.export("dbSchema", outputs.db_schema)
pulumi.export("functionName", outputs.function_name)
if outputs.stable_version is not None:
    pulumi.export("stableVersion", outputs.stable_version)
if outputs.foundation is not None:
    pulumi.export("stateBucket", outputs.foundation.state.bucket.bucket)
    # The repository variables of each trust boundary (docs/security.md, "One key per trust boundary").
    pulumi.export("backendUrl", outputs.foundation.state.prod_backend_url)
    pulumi.export("secretsProvider", outputs.foundation.state.prod_secrets_provider)
    pulumi.export("previewBackendUrl", outputs.foundation.state.preview_backend_url)
    pulumi.export("previewSecretsProvider", outputs.foundation.state.preview_secrets_provider)
    pulumi.export("prodDeployRoleArn", outputs.foundation.oidc.prod_role.arn)
    pulumi.export("previewDeployRoleArn", outputs.foundation.oidc.preview_role.arn)
    pulumi.export("cleanupRoleArn", outputs.foundation.oidc.cleanup_role.arn)
    if outputs.foundation.oidc.sweeper_role is not None:
        pulumi.export("sweeperRoleArn", outputs.foundation.oidc.sweeper_role.arn)
    pulumi.export("trailArn", outputs.foundation.trail.trail.arn)
