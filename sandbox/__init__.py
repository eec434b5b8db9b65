"""The local cloud: the Pulumi engine built from Go modules, stand-in providers for aws and cloudflare,
the Cloudflare API stand-in, and the sandbox that deploys a stack into them on this machine."""
