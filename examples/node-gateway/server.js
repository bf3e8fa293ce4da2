// Starts the example gateway:
//   GREENLIGHT_URL=http://127.0.0.1:8080 PORT=3000 node server.js
import { fileURLToPath } from 'node:url';
import { createApp } from './app.js';

const bundleDir = process.env.GREENLIGHT_BUNDLE ?? fileURLToPath(new URL('../bundle', import.meta.url));
const serviceUrl = process.env.GREENLIGHT_URL ?? 'http://127.0.0.1:8080';
const port = Number(process.env.PORT ?? 3000);

const { app } = await createApp({ bundleDir, serviceUrl, wasmPath: process.env.GREENLIGHT_WASM });
app.listen(port, '127.0.0.1', () => console.log(`payments API on http://127.0.0.1:${port}, approvals at ${serviceUrl}`));
