import { defineConfig } from 'vite'
import vue from '@vitejs/plugin-vue'

// `npm run dev` proxies the API to a running gateway (CLOUDPODS_GATEWAY, default :30300).
export default defineConfig({
  plugins: [vue()],
  server: {
    proxy: { '/api': { target: process.env.CLOUDPODS_GATEWAY ?? 'http://127.0.0.1:30300', ws: true } },
  },
  // noVNC uses top-level await: ES2022.
  build: { outDir: 'dist', emptyOutDir: true, chunkSizeWarningLimit: 1024, target: 'es2022' },
})
