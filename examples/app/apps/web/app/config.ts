// Baked in at build time (NEXT_PUBLIC_* are inlined by Next). The API URL ends with '/'.
export const API_URL = process.env.NEXT_PUBLIC_API_URL ?? '';
export const STACK = process.env.NEXT_PUBLIC_STACK ?? '';
export const SCHEMA = process.env.NEXT_PUBLIC_SCHEMA ?? '';

export function apiUrl(path: string): string {
  const base = API_URL.endsWith('/') ? API_URL : `${API_URL}/`;
  return `${base}${path.replace(/^\//, '')}`;
}
