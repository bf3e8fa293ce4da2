// The official MCP TypeScript SDK's client (1.32.2, protocol 2025-11-25)
// through the Greenlight gateway: what it sees, as one JSON object on
// stdout, for tests/mcp/test_sdk_clients.py to check.
//
//   node tests/mcp/ts_client.mjs GATEWAY_URL
//
// Environment: TOKEN (the agent's), APPROVERS (space-separated tokens of
// the people who approve), GREENLIGHT (the service's base URL).
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { ErrorCode, McpError } from '@modelcontextprotocol/sdk/types.js';

const [gateway] = process.argv.slice(2);
const { TOKEN, APPROVERS, GREENLIGHT } = process.env;

/** A client connected through the gateway with `token`. */
async function connect(token) {
  // It shows URL elicitations (here: it reads them from the error), and
  // says so, as a 2025-11-25 client must for a server to send one.
  const client = new Client(
    { name: 'greenlight-ts-test', version: '1.0.0' },
    { capabilities: { elicitation: { url: {} } } },
  );
  const transport = new StreamableHTTPClientTransport(new URL(gateway), {
    requestInit: { headers: { authorization: `Bearer ${token}` } },
  });
  await client.connect(transport);
  return client;
}

/** A tool call's outcome: its text and isError, or the MCP error. */
async function call(client, amount) {
  try {
    const r = await client.callTool({
      name: 'refund_payment',
      arguments: { payment_id: 'pay_123', amount, currency: 'EUR' },
    });
    return { isError: Boolean(r.isError), text: r.content?.[0]?.text ?? '' };
  } catch (e) {
    if (e instanceof McpError && e.code === ErrorCode.UrlElicitationRequired) {
      const [elicitation] = e.data.elicitations;
      return { elicitation };
    }
    return { error: String(e) };
  }
}

async function approve(id) {
  for (const approver of APPROVERS.split(' ')) {
    const r = await fetch(`${GREENLIGHT}/v1/approvals/${id}/approve`, {
      method: 'POST',
      headers: { authorization: `Bearer ${approver}`, 'content-type': 'application/json' },
      body: '{}',
    });
    if (r.status !== 200) throw new Error(`approval by one approver: ${r.status} ${await r.text()}`);
  }
}

const out = {};
const client = await connect(TOKEN);
out.protocol = client.getServerVersion()?.name;
out.tools = (await client.listTools()).tools.map((t) => t.name).sort();
out.small = await call(client, 50);
out.refused = await call(client, 20000);
out.asked = await call(client, 500);
out.askedAgain = await call(client, 500);
await approve(out.asked.elicitation.elicitationId);
out.approved = await call(client, 500);
out.replayed = await call(client, 500);
out.altered = await call(client, 600);
await client.close();
process.stdout.write(JSON.stringify(out) + '\n');
