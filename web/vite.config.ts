import { defineConfig } from 'vitest/config';

// Preact through esbuild's automatic JSX runtime (no Babel, no React plugin).
export default defineConfig({
  base: './',
  esbuild: {
    jsx: 'automatic',
    jsxImportSource: 'preact',
  },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2020',
    sourcemap: false,
  },
  server: {
    proxy: {
      '/v1': process.env.SLUICE_URL ?? 'http://127.0.0.1:7878',
    },
  },
  test: {
    environment: 'jsdom',
    include: ['test/**/*.test.ts', 'test/**/*.test.tsx'],
  },
});
