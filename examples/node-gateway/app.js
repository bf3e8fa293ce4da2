// The demo's payments API in Express, behind Greenlight: a refund up to 100
// passes on the client's scope, a larger one needs two finance approvals
// (examples/bundle/policy.cedar), and the one-time action token the approval
// service issues lets exactly that refund through, once.

import express from 'express';
import { Engine, greenlight } from '@greenlight/wasm';

/**
 * The app, its policy loaded and the approval service's keys fetched.
 * @param {{bundleDir: string, serviceUrl: string, wasmPath?: string}} options
 * @returns {Promise<{app: import('express').Express, close: () => void}>}
 */
export async function createApp({ bundleDir, serviceUrl, wasmPath }) {
  const engine = await Engine.load(wasmPath);
  const policy = engine.loadBundleDir(bundleDir);
  const gate = greenlight({ policy, serviceUrl });
  await gate.ready;

  const app = express();
  app.use(gate); // before any body parser: it reads the body and sets req.body
  app.get('/payments/:id', (req, res) => {
    res.json({ payment: req.params.id, status: 'settled', subject: req.headers['x-greenlight-subject'] });
  });
  app.post('/payments/:id/refund', (req, res) => {
    res.json({
      refunded: req.body.amount,
      currency: req.body.currency,
      payment: req.params.id,
      subject: req.headers['x-greenlight-subject'],
      approval: req.headers['x-greenlight-approval'] ?? null,
    });
  });
  return { app, close: () => policy.close() };
}
