// Static export for Cloudflare Pages. Nothing is downloaded at build time (no next/font/google,
// no remote images). Set NEXT_TELEMETRY_DISABLED=1 in the build environment.
// The build id is fixed (or NEXT_BUILD_ID) so the same inputs give the same out/ bytes.

/** @type {import('next').NextConfig} */
const nextConfig = {
  output: 'export',
  trailingSlash: true,
  images: { unoptimized: true },
  poweredByHeader: false,
  reactStrictMode: true,
  productionBrowserSourceMaps: false,
  transpilePackages: ['@app/shared-schemas'],
  generateBuildId: async () => process.env.NEXT_BUILD_ID || 'static',
};

export default nextConfig;
